"""The Pub/Sub API: Salesforce's ``eventbus.v1.PubSub`` gRPC service over the change-event log.

- Authentication: every call carries the metadata headers ``accesstoken`` (a session id of this
  org), ``instanceurl`` and ``tenantid`` (the org id, 15 or 18 characters). A missing or dead
  session, or another org's id, answers ``UNAUTHENTICATED`` as Salesforce words it.
- GetTopic: ``/data/ChangeEvents`` and ``/data/<Object>ChangeEvent``; change-event topics can be
  subscribed to, never published to. GetSchema: the Avro schema of a change event entity by the
  schema id GetTopic and every event carry (``metadata/event_schema.py``).
- Subscribe: bidirectional stream. The first FetchRequest names the topic and where to start
  (LATEST, EARLIEST, CUSTOM after ``replay_id``); every FetchRequest adds ``num_requested``
  (at most 100 each) to what the server may send, and the server never sends more events than
  were requested (``pending_num_requested`` says how many it still owes). With nothing to send,
  an empty FetchResponse carrying ``latest_replay_id`` goes out every ``keepalive`` seconds
  (Salesforce: within 270 s). A later FetchRequest naming another topic ends the stream with
  ``INVALID_ARGUMENT``. A stream reads up to READ_AHEAD events at once and serves the next
  FetchRequests from them; ``latest_replay_id`` is then its last event sent.
- Sessions: an open Subscribe stream looks at its session again every SESSION_CHECK_SECONDS
  (when it wakes), which counts as a use, so an open stream keeps its session alive as
  Salesforce's does; a session that has ended anyway (revoked, the user deactivated, expired)
  ends the stream with ``UNAUTHENTICATED`` and the ``error-code`` trailer
  ``sfdc.platform.eventbus.grpc.service.auth.error``, and the client subscribes again with a
  new token from its last replay id (docs/pubsub-decisions.md).
- Replay ids are the change-event log's (the same as CometD's), sent as 8 bytes big-endian.
- Events: Avro binary (``api/pubsub_avro.py``), filtered by the subscriber's visibility by the
  change-event log's one reader, the same as CometD's (``storage.events.read_visible``).
- Publish / PublishStream: change data capture topics are not publishable (PERMISSION_DENIED).
- ManagedSubscribe: UNIMPLEMENTED, with the reason in its message: a managed subscription is a
  Tooling API ``ManagedEventSubscription`` record, which opencadence does not serve
  (docs/pubsub-decisions.md); Subscribe with the client's own last replay id does the same.

A waiting stream runs no query: it sleeps until a commit that may concern it (the store's one
``storage.wakeup.Beacon``, shared with CometD: commits of this process, and of others through
PostgreSQL NOTIFY or a SQLite file's stat), more events are requested, or the keepalive is
due, and reads the log only then.

The server is grpcio's thread-pool server: each open Subscribe holds one worker thread (plus a
thread reading its requests), so ``MAX_WORKERS`` bounds the concurrent streams and calls.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import grpc

from opencadence import errors
from opencadence.api import pubsub_avro
from opencadence.api.pubsub_defaults import KEEPALIVE_SECONDS
from opencadence.api.pubsub_proto import pubsub_api_pb2 as pb
from opencadence.api.pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from opencadence.metadata import event_schema, model
from opencadence.org import Org
from opencadence.storage import accounts, events, migrate, wakeup

#: The most events one FetchRequest may ask for (larger values count as this).
MAX_REQUESTED = 100
#: Events one read of the log takes at most for a stream (sent over several FetchResponses).
READ_AHEAD = 500
MAX_WORKERS = 64
#: How often an open Subscribe stream looks at its session again (a query; not while idle
#: between keepalives shorter than this). The look counts as a use of the session, so an
#: open stream keeps its session alive, as Salesforce's does ("the session timeout doesn't
#: matter for a subscriber client"); a session that has ended anyway (revoked, logged out,
#: the user deactivated, a fixed lifetime over) ends the stream with UNAUTHENTICATED.
SESSION_CHECK_SECONDS = 30.0
#: Encoded events kept for the other streams that will send them (about 10 MB at most).
ENCODED_KEPT = 10_000
ALL_TOPIC = "/data/ChangeEvents"

AUTH_MESSAGE = (
    "An authentication exception occurred. Provide valid authentication via metadata headers."
)
AUTH_CODE = "sfdc.platform.eventbus.grpc.service.auth.error"
REPLAY_CODE = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid"
MANAGED_MESSAGE = (
    "ManagedSubscribe isn't available: opencadence has no managed event subscriptions (the "
    "Tooling API's ManagedEventSubscription). Use Subscribe with a CUSTOM replay ID instead."
)


def encode_replay_id(replay_id: int) -> bytes:
    return replay_id.to_bytes(8, "big")


def decode_replay_id(raw: bytes) -> int | None:
    """The replay id in ``raw`` (8 bytes big-endian), None when it is not one."""
    return int.from_bytes(raw, "big") if len(raw) == 8 else None


class _Flow:
    """What a Subscribe stream owes its client, fed by the thread reading its FetchRequests,
    and what may wake it: more requested, a bad request, a commit, the call ending."""

    def __init__(self) -> None:
        self.pending = 0
        self.error: str | None = None
        self.ended = False
        self.changed = threading.Condition()

    def add(self, requested: int) -> None:
        with self.changed:
            self.pending += max(0, min(requested, MAX_REQUESTED))
            self.changed.notify_all()

    def fail(self, message: str) -> None:
        with self.changed:
            self.error = message
            self.changed.notify_all()

    def end(self) -> None:
        """The call is over (cancelled, timed out, the server stopping)."""
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def poke(self) -> None:
        """Something was committed (the beacon calls this from the committing thread)."""
        with self.changed:
            self.changed.notify_all()

    def take(self, sent: int) -> int:
        with self.changed:
            self.pending -= sent
            return self.pending

    def wait(self, seconds: float, due: Callable[[], bool]) -> None:
        """Until ``due()`` (looked at under the lock, so a wake-up between the caller's last
        look and this wait is not lost), an error, the end, or ``seconds``."""
        with self.changed:
            self.changed.wait_for(lambda: self.error is not None or self.ended or due(), seconds)


class PubSub(pb_grpc.PubSubServicer):  # the generated servicer: UNIMPLEMENTED for the rest
    def __init__(
        self,
        org: Org,
        *,
        keepalive: float = KEEPALIVE_SECONDS,
        beacon: wakeup.Beacon | None = None,
        session_check: float = SESSION_CHECK_SECONDS,
    ) -> None:
        self.org = org
        self.keepalive = keepalive
        self.session_check = session_check
        #: commits as they happen (this process's and, through ``storage.wakeup``, others'):
        #: a waiting stream reads the log only when one may concern it
        self.beacon = beacon or wakeup.Beacon.of(org.store)
        #: replay id -> its ConsumerEvent, the most recent ENCODED_KEPT: an event is the same
        #: bytes for every subscriber (visibility only decides who gets it), so streams that
        #: follow the same commits encode each event once
        self._encoded: OrderedDict[int, Any] = OrderedDict()
        self._encoded_lock = threading.Lock()
        #: open Subscribe streams, so stopping can wait until none touches the database
        self.streams = 0
        self.idle = threading.Condition()

    def wait_idle(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.streams == 0, timeout)

    # --- helpers ----------------------------------------------------------------------------

    def _session(self, context: grpc.ServicerContext, rpc_id: str) -> accounts.Session:
        """The caller's live session (a use of it); UNAUTHENTICATED otherwise."""
        headers = {k.lower(): v for k, v in context.invocation_metadata()}
        token, tenant = str(headers.get("accesstoken", "")), str(headers.get("tenantid", ""))
        if token and tenant[:15] == migrate.ORG_ID[:15] and len(tenant) in (15, 18):
            try:
                return self.org.accounts.session(token)
            except errors.InvalidSession:
                pass
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, AUTH_MESSAGE, rpc_id, AUTH_CODE)

    def _topic(
        self, name: str, context: grpc.ServicerContext, rpc_id: str
    ) -> model.ObjectDef | None:
        """The object of a change-event topic (None: every object); NOT_FOUND otherwise."""
        if name == ALL_TOPIC:
            return None
        if name.startswith("/data/"):
            obj = event_schema.by_event_name(self.org.registry, name[len("/data/") :])
            if obj is not None:
                return obj
        _abort(
            context,
            grpc.StatusCode.NOT_FOUND,
            f"The topic {name or '(none)'} doesn't exist or you don't have access to it.",
            rpc_id,
        )

    # --- unary calls ------------------------------------------------------------------------

    def GetTopic(self, request: Any, context: grpc.ServicerContext) -> Any:
        rpc_id = str(uuid.uuid4())
        self._session(context, rpc_id)
        obj = self._topic(request.topic_name, context, rpc_id)
        return pb.TopicInfo(
            topic_name=request.topic_name,
            tenant_guid=migrate.ORG_ID,
            can_publish=False,
            can_subscribe=True,
            schema_id=event_schema.schema_id(obj) if obj is not None else "",
            rpc_id=rpc_id,
        )

    def GetSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        rpc_id = str(uuid.uuid4())
        self._session(context, rpc_id)
        obj = event_schema.by_schema_id(self.org.registry, request.schema_id)
        if obj is None:
            _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"The schema ID {request.schema_id or '(none)'} doesn't exist.",
                rpc_id,
            )
        return pb.SchemaInfo(
            schema_json=event_schema.schema_json(obj), schema_id=request.schema_id, rpc_id=rpc_id
        )

    def Publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        rpc_id = str(uuid.uuid4())
        self._session(context, rpc_id)
        self._refuse_publish(request.topic_name, context, rpc_id)

    def PublishStream(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
        rpc_id = str(uuid.uuid4())
        self._session(context, rpc_id)
        first = next(request_iterator, None)
        if first is not None:
            self._refuse_publish(first.topic_name, context, rpc_id)
        return iter(())

    def _refuse_publish(self, topic: str, context: grpc.ServicerContext, rpc_id: str) -> NoReturn:
        self._topic(topic, context, rpc_id)  # an unknown topic is NOT_FOUND first
        _abort(
            context,
            grpc.StatusCode.PERMISSION_DENIED,
            f"Publishing isn't allowed on the topic {topic}: change data capture topics can only "
            "be subscribed to.",
            rpc_id,
        )

    def ManagedSubscribe(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        rpc_id = str(uuid.uuid4())
        self._session(context, rpc_id)
        _abort(context, grpc.StatusCode.UNIMPLEMENTED, MANAGED_MESSAGE, rpc_id)
        yield  # a generator, as a stream method is (never reached)

    # --- Subscribe --------------------------------------------------------------------------

    def Subscribe(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        with self.idle:
            self.streams += 1
        try:
            yield from self._subscribe(request_iterator, context)
        finally:
            with self.idle:
                self.streams -= 1
                self.idle.notify_all()

    def _subscribe(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        rpc_id = str(uuid.uuid4())
        session = self._session(context, rpc_id)
        first = next(request_iterator, None)
        if first is None:
            return
        topic = first.topic_name
        obj = self._topic(topic, context, rpc_id)
        cursor = self._start(first, context, rpc_id)
        flow = _Flow()
        flow.add(first.num_requested)
        threading.Thread(
            target=_read_requests, args=(request_iterator, topic, flow), daemon=True
        ).start()
        viewer = None if session.is_admin else session.user_id
        entities = [obj.name] if obj is not None else None
        beacon = self.beacon
        context.add_callback(flow.end)
        beacon.listen(flow.poke)
        try:
            unread = True  # the first look: what the replay preset starts with
            last_sent = checked = time.monotonic()
            #: events read and not yet sent (a read takes up to READ_AHEAD, a response at
            #: most what was requested): a client catching up costs one read per READ_AHEAD
            #: events, not one per FetchRequest
            ahead: deque[dict[str, Any]] = deque()
            position = cursor  # where the client is: the last event sent, or the read's end

            def due() -> bool:  # events may be there and the client wants some
                return flow.pending > 0 and (bool(ahead) or unread or beacon.newest > cursor)

            while context.is_active() and not flow.ended:
                if flow.error is not None:
                    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, flow.error, rpc_id)
                if time.monotonic() - checked >= self.session_check:
                    self._session(context, rpc_id)  # ended: UNAUTHENTICATED, the stream stops
                    checked = time.monotonic()
                if due():
                    if not ahead:
                        with self.org.store.reading() as conn:
                            found, cursor = events.read_visible(
                                conn,
                                self.org.store.meta,
                                after=cursor,
                                entities=entities,
                                viewer=viewer,
                                limit=READ_AHEAD,
                            )
                        ahead.extend(found)
                        unread = False
                        if not ahead:
                            position = cursor
                    if ahead:
                        batch = [
                            ahead.popleft()
                            for _ in range(min(flow.pending, MAX_REQUESTED, len(ahead)))
                        ]
                        position = int(batch[-1]["event"]["replayId"]) if ahead else cursor
                        left = flow.take(len(batch))
                        yield pb.FetchResponse(
                            events=[self._event(ev) for ev in batch],
                            latest_replay_id=encode_replay_id(position),
                            rpc_id=rpc_id,
                            pending_num_requested=left,
                        )
                        last_sent = time.monotonic()
                        continue
                if time.monotonic() - last_sent >= self.keepalive:
                    yield pb.FetchResponse(
                        latest_replay_id=encode_replay_id(position),
                        rpc_id=rpc_id,
                        pending_num_requested=flow.pending,
                    )
                    last_sent = time.monotonic()
                if not due():
                    flow.wait(last_sent + self.keepalive - time.monotonic(), due)
        finally:
            beacon.unlisten(flow.poke)

    def _start(self, first: Any, context: grpc.ServicerContext, rpc_id: str) -> int:
        """The replay id the stream starts after."""
        with self.org.store.reading() as conn:
            lo, hi = events.replay_bounds(conn, self.org.store.meta)
        newest = int(hi or 0)
        if first.replay_preset == pb.EARLIEST:
            return int(lo) - 1 if lo is not None else newest
        if first.replay_preset != pb.CUSTOM:
            return newest
        wanted = decode_replay_id(first.replay_id)
        if wanted is None:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "The replay ID isn't valid: a replay ID is the 8 bytes the server sent.",
                rpc_id,
                REPLAY_CODE + ".corrupted",
            )
        if lo is not None and not (int(lo) - 1 <= wanted <= newest):
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The replay ID {wanted} isn't in the retention window of {first.topic_name}: "
                "subscribe with EARLIEST, LATEST or a replay ID received in the last 72 hours.",
                rpc_id,
                REPLAY_CODE + ".invalid",
            )
        return wanted

    def _event(self, ev: dict[str, Any]) -> Any:
        replay_id = int(ev["event"]["replayId"])
        with self._encoded_lock:
            found = self._encoded.get(replay_id)
        if found is None:
            found = self._encode(ev, replay_id)
            with self._encoded_lock:
                self._encoded[replay_id] = found
                if len(self._encoded) > ENCODED_KEPT:
                    self._encoded.popitem(last=False)
        return found

    def _encode(self, ev: dict[str, Any], replay_id: int) -> Any:
        payload = ev["payload"]
        obj = self.org.registry.object(payload["ChangeEventHeader"]["entityName"])
        return pb.ConsumerEvent(
            event=pb.ProducerEvent(
                id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"opencadence-event-{replay_id}")),
                schema_id=event_schema.schema_id(obj),
                payload=pubsub_avro.encode(obj, payload),
            ),
            replay_id=encode_replay_id(replay_id),
        )


def _read_requests(requests: Iterator[Any], topic: str, flow: _Flow) -> None:
    """Adds each later FetchRequest's count; a different topic fails the stream."""
    try:
        for req in requests:
            if req.topic_name and req.topic_name != topic:
                flow.fail(
                    f"The topic of a subscription can't change: it is {topic}, "
                    f"a FetchRequest named {req.topic_name}."
                )
                return
            flow.add(req.num_requested)
    except Exception:  # noqa: BLE001 - the stream ended or was cancelled: nothing more comes
        return


def _abort(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    rpc_id: str,
    error_code: str | None = None,
) -> NoReturn:
    """End the call as Salesforce does: the status, the message with its rpcId, and the
    ``error-code`` trailer clients look at."""
    trailers: list[tuple[str, str]] = [("rpc-id", rpc_id)]
    if error_code is not None:
        trailers.append(("error-code", error_code))
    context.set_trailing_metadata(trailers)
    context.abort(code, f"{message} rpcId: {rpc_id}")
    raise AssertionError("unreachable: abort raises")


class Running:
    """A started Pub/Sub server: the port it listens on, and how to stop it."""

    def __init__(self, server: grpc.Server, servicer: PubSub, port: int) -> None:
        self.server, self.servicer, self.port = server, servicer, port

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every call, then wait until no stream is left reading the log (so the
        database can be closed behind it)."""
        self.server.stop(grace=None).wait(timeout)
        self.servicer.wait_idle(timeout)
        self.servicer.beacon.stop()


def start(
    org: Org,
    *,
    host: str,
    port: int,
    tls_files: tuple[Path, Path] | None,
    keepalive: float = KEEPALIVE_SECONDS,
    session_check: float = SESSION_CHECK_SECONDS,
) -> Running:
    """A started Pub/Sub server on ``host:port`` (TLS with ``tls_files`` = (cert, key));
    OSError when the port cannot be had."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="pubsub"),
        options=[("grpc.so_reuseport", 0)],  # a busy port must fail, not be shared
    )
    servicer = PubSub(org, keepalive=keepalive, session_check=session_check)
    pb_grpc.add_PubSubServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    address = f"{host}:{port}"
    try:
        if tls_files is not None:
            cert, key = tls_files[0].read_bytes(), tls_files[1].read_bytes()
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises when it cannot bind
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if not bound:
        raise OSError(f"cannot listen on {address}")
    servicer.beacon.start()
    server.start()
    return Running(server, servicer, int(bound))
