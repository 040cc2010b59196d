"""Change-event streaming over CometD (Bayeux long-polling), as Salesforce's Streaming API.

``POST /cometd/{version}`` takes a JSON array of Bayeux messages: ``/meta/handshake``
(``supportedConnectionTypes: ["long-polling"]``, ``ext: {replay: true, payload.format: true}``),
``/meta/subscribe`` to ``/data/ChangeEvents`` or ``/data/<Object>ChangeEvent`` with
``ext.replay {channel: -1 | -2 | replayId}``, ``/meta/connect`` (held until events arrive or the
advice timeout passes), ``/meta/unsubscribe``, ``/meta/disconnect``. Every request needs the
bearer token. Events come from the change-event log, whose replay ids follow commit order, so
resuming after a replay id never skips an event.

Who sees what: a subscriber without "View All Data" receives only the events of records the
record rules let it see (``storage.visibility``, applied inside the SQL of the read), on every
channel, and no User events (Salesforce asks for "View All Users"); see docs/runtime-decisions.md.

What waiting costs: nothing. A held /meta/connect sleeps on an asyncio event that a commit
writing change events sets (the store's one ``storage.wakeup.Beacon``, shared with the Pub/Sub
API), and reads the log only then (``storage.events.read_visible``, the log's one reader); it
ends when its HTTP client goes away.

Where clients live (``Clients``, one interface): in this process's memory (``MemoryClients``:
no statement per message), or, for the children of ``serve --processes N``, in the database
(``SharedClients`` over ``storage.cometd_clients``), so any child answers any message of any
client; a change made through one child (subscription, disconnect, newer connect) reaches a
connect another child holds by ``NOTIFY oc_cometd_clients`` (docs/runtime-decisions.md). As
Salesforce does, a client that has not come back within 40 s of its last response is dropped
(never while a connect is held), and at most 2,000 exist at once, org-wide (a handshake past
that gets ``403::Organization concurrent user limit exceeded``); an unknown client id gets
``403::Unknown client`` with ``advice.reconnect = handshake``, and the client re-handshakes.

One connect per client, as Bayeux has it: a second /meta/connect answers the held one at once
and is held in its place; a delivery advances the cursors only if the client is unchanged
since it read them (a compare-and-set on its ``version``), so two connects never hand over the
same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies
from opencadence.api.rest import json_response, session_of
from opencadence.metadata import event_schema
from opencadence.org import Org
from opencadence.storage import cometd_clients, events, wakeup

#: How long /meta/connect is held when nothing arrives (Salesforce: 110 s).
CONNECT_TIMEOUT = 110.0
#: A client that does not come back within this long of its last response is dropped
#: (Salesforce's reconnect timeout).
IDLE_TIMEOUT = 40.0
#: Clients at once (Salesforce's StreamingApiConcurrentClients of the larger editions).
MAX_CLIENTS = 2000
#: How much longer than the connect timeout a hold counts in the shared registry (a process
#: killed while holding a connect leaves its hold: the client expires that much later).
HOLD_MARGIN = 30.0
#: Events handed over per channel and response.
BATCH = 500
ALL = "/data/ChangeEvents"
_ADVICE = {"interval": 0, "timeout": int(CONNECT_TIMEOUT * 1000), "reconnect": "retry"}


@dataclass
class Client:
    """One client: in memory (``MemoryClients``), or a snapshot of its row (``SharedClients``)."""

    user_id: str
    #: whose record visibility limits the events (None: "View All Data")
    viewer: str | None
    subscriptions: dict[str, int] = field(default_factory=dict)  # channel -> replay id seen
    connected: bool = False  # Bayeux: the first /meta/connect is answered at once
    #: grows with every change a delivery must not race (subscriptions, cursors, holder)
    version: int = 0
    #: the one /meta/connect held for it (Bayeux: one at a time; a newer one takes over)
    holder: str | None = None
    #: when the last response went out (time.monotonic), for the reconnect timeout
    last_seen: float = field(default_factory=time.monotonic)

    @property
    def waiting(self) -> int:
        """/meta/connect requests being held for it (a held client is not idle)."""
        return 0 if self.holder is None else 1

    def behind(self, newest: int) -> bool:
        """Whether a subscription has not yet seen replay id ``newest``."""
        return any(cursor < newest for cursor in self.subscriptions.values())


class Clients(Protocol):
    """Where the clients live: one interface, two implementations. ``MemoryClients`` for one
    server process (no query, no write); ``SharedClients`` (a table, cursors advanced with a
    compare-and-set) under ``serve --processes N``, where any child answers any message of any
    client (docs/runtime-decisions.md). Every change that a held connect must learn of pokes
    it (``Streaming.poke``), in whichever process it is held."""

    async def handshake(self, user_id: str, viewer: str | None) -> str | None:
        """A new client's id; None past the client limit."""

    async def find(self, client_id: str) -> Client | None:
        """A snapshot of the client (None: unknown, or dropped past the reconnect timeout)."""

    async def subscribe(self, client_id: str, channel: str, cursor: int) -> None: ...

    async def unsubscribe(self, client_id: str, channel: str) -> None: ...

    async def disconnect(self, client_id: str) -> None: ...

    async def connected(self, client_id: str) -> None:
        """Its first /meta/connect is answered."""

    async def hold(self, client_id: str, connect_id: str) -> Client | None:
        """``connect_id`` becomes its one held connect (an older one answers at once): the
        client as now held; None when it is gone."""

    async def advance(
        self, client_id: str, version: int, cursors: dict[str, int], release: str | None
    ) -> bool:
        """Cursors moved if nothing changed since ``version`` (False: read again); with
        ``release``, that connect is answered."""

    async def release(self, client_id: str, connect_id: str) -> None:
        """The held ``connect_id`` is answered."""

    async def answered(self, client_id: str) -> None:
        """A response went out: its reconnect timeout starts again."""


class MemoryClients:
    """The clients of one process, in its memory, by last response (oldest first, so expiry
    looks at the front only)."""

    def __init__(self, hub: Streaming) -> None:
        self.hub = hub
        self.clients: OrderedDict[str, Client] = OrderedDict()

    def expire(self) -> None:
        """Drop the clients that have not come back within the reconnect timeout."""
        cutoff = time.monotonic() - self.hub.idle_timeout
        for _ in range(len(self.clients)):
            client_id, client = next(iter(self.clients.items()))
            if client.waiting:  # held right now: not idle, looked at again after its response
                self.clients.move_to_end(client_id)
            elif client.last_seen < cutoff:
                del self.clients[client_id]
            else:
                break

    def _touch(self, client_id: str, client: Client) -> None:
        client.last_seen = time.monotonic()
        if client_id in self.clients:
            self.clients.move_to_end(client_id)

    async def handshake(self, user_id: str, viewer: str | None) -> str | None:
        self.expire()
        if len(self.clients) >= self.hub.max_clients:
            return None
        client_id = secrets.token_urlsafe(18)
        self.clients[client_id] = Client(user_id, viewer)
        return client_id

    async def find(self, client_id: str) -> Client | None:
        self.expire()
        client = self.clients.get(client_id)
        if client is None:
            return None
        return replace(client, subscriptions=dict(client.subscriptions))

    async def subscribe(self, client_id: str, channel: str, cursor: int) -> None:
        client = self.clients.get(client_id)
        if client is not None:
            client.subscriptions[channel] = cursor
            client.version += 1
            self._touch(client_id, client)

    async def unsubscribe(self, client_id: str, channel: str) -> None:
        client = self.clients.get(client_id)
        if client is not None:
            client.subscriptions.pop(channel, None)
            client.version += 1
            self._touch(client_id, client)

    async def disconnect(self, client_id: str) -> None:
        self.clients.pop(client_id, None)

    async def connected(self, client_id: str) -> None:
        client = self.clients.get(client_id)
        if client is not None:
            client.connected = True
            self._touch(client_id, client)

    async def hold(self, client_id: str, connect_id: str) -> Client | None:
        client = self.clients.get(client_id)
        if client is None:
            return None
        older, client.holder = client.holder, connect_id
        client.version += 1
        if older is not None:
            self.hub.poke(client_id)  # the older one sees it is no longer the holder
        return replace(client, subscriptions=dict(client.subscriptions))

    async def advance(
        self, client_id: str, version: int, cursors: dict[str, int], release: str | None
    ) -> bool:
        client = self.clients.get(client_id)
        if client is None or client.version != version:
            return False
        client.subscriptions = dict(cursors)
        client.version += 1
        if release is not None:
            await self.release(client_id, release)
        return True

    async def release(self, client_id: str, connect_id: str) -> None:
        client = self.clients.get(client_id)
        if client is not None:
            if client.holder == connect_id:
                client.holder = None
            self._touch(client_id, client)

    async def answered(self, client_id: str) -> None:
        client = self.clients.get(client_id)
        if client is not None:
            self._touch(client_id, client)


class SharedClients:
    """The clients of every server process on the database (``storage.cometd_clients``):
    each call is one short transaction, in the thread pool. The idle expiry and the client
    limit count every process's clients, as Salesforce counts the org's."""

    def __init__(self, hub: Streaming) -> None:
        self.hub = hub
        self.rows = cometd_clients.CometdClients(hub.org.store)

    def _idle(self) -> timedelta:
        return timedelta(seconds=self.hub.idle_timeout)

    async def handshake(self, user_id: str, viewer: str | None) -> str | None:
        client_id = secrets.token_urlsafe(18)
        made = await run_in_threadpool(
            self.rows.create,
            client_id,
            user_id,
            viewer,
            idle=self._idle(),
            limit=self.hub.max_clients,
        )
        return client_id if made else None

    async def find(self, client_id: str) -> Client | None:
        return _snapshot(await run_in_threadpool(self.rows.get, client_id, idle=self._idle()))

    async def subscribe(self, client_id: str, channel: str, cursor: int) -> None:
        await run_in_threadpool(self.rows.subscribe, client_id, channel, cursor)

    async def unsubscribe(self, client_id: str, channel: str) -> None:
        await run_in_threadpool(self.rows.unsubscribe, client_id, channel)

    async def disconnect(self, client_id: str) -> None:
        await run_in_threadpool(self.rows.remove, client_id)

    async def connected(self, client_id: str) -> None:
        await run_in_threadpool(self.rows.connected, client_id)

    async def hold(self, client_id: str, connect_id: str) -> Client | None:
        at_most = timedelta(seconds=self.hub.timeout + HOLD_MARGIN)
        return _snapshot(
            await run_in_threadpool(self.rows.hold, client_id, connect_id, at_most=at_most)
        )

    async def advance(
        self, client_id: str, version: int, cursors: dict[str, int], release: str | None
    ) -> bool:
        return bool(
            await run_in_threadpool(self.rows.advance, client_id, version, cursors, release=release)
        )

    async def release(self, client_id: str, connect_id: str) -> None:
        await run_in_threadpool(self.rows.release, client_id, connect_id)

    async def answered(self, client_id: str) -> None:
        await run_in_threadpool(self.rows.answered, client_id)


def _snapshot(row: cometd_clients.ClientRow | None) -> Client | None:
    if row is None:
        return None
    return Client(
        row.user_id,
        row.viewer,
        subscriptions=row.subscriptions,
        connected=row.connected,
        version=row.version,
        holder=row.holder,
    )


class Wakeups:
    """Wakes the held long-polls of one event loop when change events are committed.

    ``newest`` is the largest replay id known to be committed; ``changed()`` is an asyncio
    event that is set (and replaced) whenever it grows. The commits come from the store's one
    ``storage.wakeup.Beacon`` (shared with the Pub/Sub API: this process's commits and, through
    its single watcher, other processes'), which calls from its own thread, so the news is
    handed to the loop.
    """

    def __init__(self, org: Org) -> None:
        self.org = org
        #: called on the loop with the payload of each CometD client notice (another
        #: process changed that client; "" for any), when set (``SharedClients``)
        self.on_notice: Callable[[str], None] | None = None
        self.newest = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._beacon: wakeup.Beacon | None = None
        self._held: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin listening, on the running loop (the server's), once; until that loop ends."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self.stop()
        self._loop, self._event = loop, asyncio.Event()
        beacon = self._beacon = wakeup.Beacon.of(self.org.store).start()
        beacon.listen(self._committed)
        beacon.listen_notices(cometd_clients.CHANNEL, self._noticed)
        self.seen(beacon.newest)
        self._held = loop.create_task(self._hold())

    async def _hold(self) -> None:
        """Cancelled when the server's loop ends (its remaining tasks are): let go of the
        beacon then, so its watcher (and its LISTEN connection) stops with the last user."""
        try:
            await asyncio.Event().wait()
        finally:
            self.stop()

    def stop(self) -> None:
        held, self._held = self._held, None
        if held is not None and held is not asyncio.current_task(held.get_loop()):
            with contextlib.suppress(RuntimeError):  # its loop is closed: it is gone already
                held.cancel()
        beacon, self._beacon = self._beacon, None
        if beacon is not None:
            beacon.unlisten(self._committed)
            beacon.unlisten_notices(cometd_clients.CHANNEL, self._noticed)
            beacon.stop()
        self._loop = self._event = None

    def changed(self) -> asyncio.Event:
        assert self._event is not None, "start() first"
        return self._event

    def seen(self, replay_id: int) -> None:
        """Committed events up to ``replay_id`` exist: wake the waiters if that is news."""
        if replay_id > self.newest:
            self.newest = replay_id
            if self._event is not None:
                self._event.set()
                self._event = asyncio.Event()

    def _noticed(self, payload: str) -> None:
        """A CometD client notice (the watcher's thread): handed to the loop."""
        loop, handler = self._loop, self.on_notice
        if loop is None or handler is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(handler, payload)

    def _committed(self) -> None:
        """The beacon's news (any thread): handed to the loop."""
        loop, beacon = self._loop, self._beacon
        if loop is None or beacon is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(self.seen, beacon.newest)


class Streaming:
    """The Bayeux endpoint's state: clients (``MemoryClients``, or ``SharedClients`` when
    ``shared``: every server process on the database answers every client) and the wake-ups
    of the connects this process holds."""

    def __init__(
        self,
        org: Org,
        connect_timeout: float = CONNECT_TIMEOUT,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_clients: int = MAX_CLIENTS,
        shared: bool = False,
    ) -> None:
        self.org = org
        self.timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self.wakeups = Wakeups(org)
        self.registry: Clients
        if shared:
            self.registry = SharedClients(self)
            self.wakeups.on_notice = self.poke
        else:
            self.registry = MemoryClients(self)
        #: per client id, the event its connects held here wait on (gone with its waiters)
        self._pokes: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()

    @property
    def clients(self) -> OrderedDict[str, Client]:
        """The clients of a single process (``MemoryClients``)."""
        assert isinstance(self.registry, MemoryClients), "shared clients live in the database"
        return self.registry.clients

    def poked(self, client_id: str) -> asyncio.Event:
        """Set when ``client_id`` changes in a way its held connect must look at."""
        found = self._pokes.get(client_id)
        if found is None:
            found = self._pokes[client_id] = asyncio.Event()
        return found

    def poke(self, client_id: str) -> None:
        """``client_id`` (every client, for "") subscribed, unsubscribed, left or was taken
        over by a newer connect (on the loop): its connects held here look again."""
        ids = list(self._pokes.keys()) if client_id == "" else [client_id]
        for one in ids:
            found = self._pokes.pop(one, None)
            if found is not None:
                found.set()

    # --- meta channels ------------------------------------------------------------------------

    async def handshake(
        self, msg: dict[str, Any], user_id: str, viewer: str | None
    ) -> dict[str, Any]:
        client_id = await self.registry.handshake(user_id, viewer)
        if client_id is None:
            return {
                "channel": "/meta/handshake",
                "successful": False,
                "error": "403::Organization concurrent user limit exceeded",
                "advice": {"reconnect": "none"},
                **_id(msg),
            }
        return {
            "channel": "/meta/handshake",
            "version": "1.0",
            "minimumVersion": "1.0",
            "clientId": client_id,
            "supportedConnectionTypes": ["long-polling"],
            "successful": True,
            "ext": {"replay": True, "payload.format": True},
            "advice": _ADVICE,
            **_id(msg),
        }

    def subscribe(self, msg: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """The reply to a /meta/subscribe and, when it succeeds, the subscription's cursor."""
        channel = str(msg.get("subscription", ""))
        base = {
            "channel": "/meta/subscribe",
            "clientId": msg.get("clientId"),
            "subscription": channel,
            **_id(msg),
        }
        entity = self._entity(channel)
        if entity is False:
            return {
                **base,
                "successful": False,
                "error": f"404::The channel {channel} does not exist",
            }, None
        replay = _object(_object(msg.get("ext")).get("replay")).get(channel, -1)
        cursor = self._cursor(replay)
        if cursor is None:
            return {
                **base,
                "successful": False,
                "error": (
                    f"400::The replayId {{{replay}}} you provided was invalid.  Please provide a valid ID, "
                    "-2 to replay all events, or -1 to replay only new events."
                ),
            }, None
        return {**base, "successful": True}, cursor

    def _entity(self, channel: str) -> str | None | bool:
        """None for all change events, the object name for one, False for no such channel."""
        if channel == ALL:
            return None
        if channel.startswith("/data/") and channel.endswith("ChangeEvent"):
            obj = self.org.registry.get(channel[len("/data/") : -len("ChangeEvent")])
            if obj is not None and obj.change_events:
                return obj.name
        return False

    def _cursor(self, replay: Any) -> int | None:
        with self.org.store.reading() as conn:
            lo, hi = events.replay_bounds(conn, self.org.store.meta)
        if replay == -1:
            return int(hi or 0)
        if replay == -2:
            return int(lo or 1) - 1
        if (
            isinstance(replay, int)
            and not isinstance(replay, bool)
            and (lo is None or lo - 1 <= replay <= (hi or 0))
        ):
            return replay
        return None

    def events_for(self, client: Client) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Events past each subscription's cursor that the client may see, and the cursors
        past them (``Clients.advance`` moves the client's there, if nobody else did first)."""
        out: list[dict[str, Any]] = []
        cursors = dict(client.subscriptions)
        with self.org.store.reading() as conn:
            for channel, cursor in client.subscriptions.items():
                entity = self._entity(channel)
                found, seen = events.read_visible(
                    conn,
                    self.org.store.meta,
                    after=cursor,
                    entities=[entity] if isinstance(entity, str) else None,
                    viewer=client.viewer,
                    limit=BATCH,
                )
                for ev in found:
                    name = ev["payload"]["ChangeEventHeader"]["entityName"]
                    # the schema id, as Salesforce sends it: /event/eventSchema/{id} serves it
                    schema = event_schema.schema_id(self.org.registry.object(name))
                    out.append({"channel": channel, "data": {"schema": schema, **ev}})
                cursors[channel] = seen
        return out, cursors


def _object(value: Any) -> dict[str, Any]:
    """A Bayeux field that should be an object (``ext``, ``ext.replay``); anything else
    (a number, a list, a string) counts as absent, as CometD servers ignore it."""
    return value if isinstance(value, dict) else {}


def _id(msg: dict[str, Any]) -> dict[str, Any]:
    return {"id": msg["id"]} if "id" in msg else {}


def _unknown(msg: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": msg.get("channel"),
        "successful": False,
        "error": "403::Unknown client",
        "advice": {"reconnect": "handshake", "interval": 0},
        **_id(msg),
    }


#: How much of a request without a valid session is read: enough for the messages of a connect
#: or subscribe (to answer each on its own channel and id), never a large body.
UNAUTHENTICATED_MAX = 16 * 1024


async def _unauthenticated(request: Request) -> Response:
    """401::Authentication invalid, answered on the channel and id of each request message, so
    the client matches it to its request and re-authenticates (aiocometd's auth extension
    resends the payload with a new token; the clientId and subscriptions survive, so a
    subscriber resumes with no gap). A handshake is told not to retry without new credentials;
    any other message to handshake again."""
    try:
        messages = bodies.parse_json(await bodies.read(request, UNAUTHENTICATED_MAX))
    except (ClientDisconnect, errors.OpenCadenceError):
        messages = []  # too large or not JSON: answered as a handshake, the body left unread
    if isinstance(messages, dict):
        messages = [messages]
    found = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    replies = [_auth_error(m) for m in found] or [_auth_error({"channel": "/meta/handshake"})]
    return json_response(replies, 401)


def _auth_error(msg: dict[str, Any]) -> dict[str, Any]:
    channel = msg.get("channel") if isinstance(msg.get("channel"), str) else "/meta/handshake"
    again = "none" if channel == "/meta/handshake" else "handshake"
    return {
        "channel": channel,
        "successful": False,
        "error": "401::Authentication invalid",
        "advice": {"reconnect": again, "interval": 0},
        **(_id(msg) if isinstance(msg.get("id"), str | int) else {}),
    }


async def endpoint(request: Request) -> Response:
    streaming: Streaming = request.app.state.streaming
    org: Org = request.app.state.org
    try:
        session = await run_in_threadpool(session_of, request, org)
    except errors.InvalidSession:
        return await _unauthenticated(request)
    try:
        messages = bodies.parse_json(await bodies.read(request, bodies.COMETD_MAX))
    except ClientDisconnect:  # gone before its body arrived: nobody to answer
        return Response(status_code=400)
    except errors.RequestTooLarge as exc:
        return json_response([{"successful": False, "error": f"413::{exc.message}"}], 413)
    except errors.JsonParserError:
        return json_response([{"successful": False, "error": "400::invalid JSON"}], 400)
    if isinstance(messages, dict):
        messages = [messages]
    user = _User(session.user_id, org.caller(session).viewer, request)
    replies: list[dict[str, Any]] = []
    for msg in messages if isinstance(messages, list) else []:
        replies += await _handle(streaming, msg if isinstance(msg, dict) else {}, user)
    return json_response(replies)


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str
    viewer: str | None
    request: Request


async def _handle(streaming: Streaming, msg: dict[str, Any], user: _User) -> list[dict[str, Any]]:
    channel = msg.get("channel")
    if channel == "/meta/handshake":
        return [await streaming.handshake(msg, user.user_id, user.viewer)]
    client_id = str(msg.get("clientId"))
    client = await streaming.registry.find(client_id)
    if client is None or client.user_id != user.user_id:
        return [_unknown(msg)]
    return await _handle_client(streaming, msg, client_id, client, user.request)


async def _handle_client(
    streaming: Streaming, msg: dict[str, Any], client_id: str, client: Client, request: Request
) -> list[dict[str, Any]]:
    """One message of a known client; each answer starts its reconnect timeout again (the
    registry's write of it is the answer's own: subscribe, connect, ...)."""
    channel = msg.get("channel")
    registry = streaming.registry
    if channel == "/meta/subscribe":
        reply, cursor = await run_in_threadpool(streaming.subscribe, msg)
        if cursor is not None:
            await registry.subscribe(client_id, str(msg.get("subscription", "")), cursor)
            streaming.poke(client_id)  # clients subscribe while their connect is held already
        else:
            await registry.answered(client_id)
        return [reply]
    if channel == "/meta/unsubscribe":
        await registry.unsubscribe(client_id, str(msg.get("subscription")))
        streaming.poke(client_id)
        return [
            {
                "channel": channel,
                "clientId": msg.get("clientId"),
                "subscription": msg.get("subscription"),
                "successful": True,
                **_id(msg),
            }
        ]
    if channel == "/meta/disconnect":
        await registry.disconnect(client_id)
        streaming.poke(client_id)  # its held connect, if any, ends now
        return [
            {"channel": channel, "clientId": msg.get("clientId"), "successful": True, **_id(msg)}
        ]
    if channel == "/meta/connect":
        found: list[dict[str, Any]] = []
        if client.connected:
            found = await _wait_for_events(streaming, client_id, request)
        else:
            await registry.connected(client_id)
        return found + [
            {
                "channel": channel,
                "clientId": msg.get("clientId"),
                "successful": True,
                "advice": _ADVICE,
                **_id(msg),
            }
        ]
    await registry.answered(client_id)
    return [
        {
            "channel": channel,
            "successful": False,
            "error": f"400::Unsupported channel {channel}",
            **_id(msg),
        }
    ]


async def _wait_for_events(
    streaming: Streaming, client_id: str, request: Request
) -> list[dict[str, Any]]:
    """Events for the client as soon as there are any; [] at the timeout, when the HTTP
    client has gone, when the client left or when a newer /meta/connect of it took over (in
    any process: Bayeux holds one connect per client, and CometD servers answer the older one
    at once). Reads the log once now, then only when a commit or a change of the client wakes
    it. The cursors advance only if the client's row is still as read (a compare-and-set), so
    two connects never hand over the same events."""
    hub, registry = streaming.wakeups, streaming.registry
    hub.start()
    connect_id = secrets.token_urlsafe(18)
    poked = streaming.poked(client_id)  # before the hold: a newer connect pokes it
    held = await registry.hold(client_id, connect_id)
    if held is None:
        return []
    released = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + streaming.timeout
    gone = loop.create_task(_disconnected(request))
    try:
        read = True  # the first look: events committed before this connect
        client: Client | None = None
        fresh: Client | None = held  # the client as the hold left it: the first read's
        while True:
            # taken before the read: a commit or a change of the client during it sets them
            changed = hub.changed()
            if poked.is_set():  # what the hold saw may have changed since
                poked, fresh = streaming.poked(client_id), None
            if read or client is None:
                client, fresh = fresh or await registry.find(client_id), None
                if client is None or client.holder != connect_id:
                    return []  # gone, or a newer connect holds it now
                found, cursors = await run_in_threadpool(streaming.events_for, client)
                if cursors != client.subscriptions:
                    done = await registry.advance(
                        client_id, client.version, cursors, connect_id if found else None
                    )
                    if not done:  # changed meanwhile (by another connect?): read again
                        continue
                    if found:
                        released = True
                        return found
                    # only events it may not see were passed: its cursors are past them
                    client = replace(client, subscriptions=cursors, version=client.version + 1)
            remaining = deadline - loop.time()
            if remaining <= 0 or gone.done():
                return []
            woken = [loop.create_task(changed.wait()), loop.create_task(poked.wait())]
            try:
                await asyncio.wait({*woken, gone}, timeout=remaining, return_when="FIRST_COMPLETED")
            finally:
                for task in woken:
                    task.cancel()
            read = poked.is_set() or (changed.is_set() and client.behind(hub.newest))
    finally:
        gone.cancel()
        if not released:
            await registry.release(client_id, connect_id)


async def _disconnected(request: Request) -> None:
    """Returns when the HTTP client has gone (the request body has been read already)."""
    receive: Any = request.receive
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


def routes() -> list[Route]:
    return [
        Route("/cometd/{version}", endpoint, methods=["POST"]),
        Route("/cometd/{version}/", endpoint, methods=["POST"]),
    ]
