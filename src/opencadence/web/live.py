"""Live My Work: server-sent events from the change-event log, respecting visibility.

``GET /app/work/events`` holds a ``text/event-stream``. It runs no query while nothing is
committed: it waits on the CometD hub's wake-ups (``app.state.streaming.wakeups``: commits of
this process, LISTEN/NOTIFY on PostgreSQL, the SQLite file's stat), then reads the log past
its cursor with the CometD reader (``read_changes``: ``events.read_visible``, the visibility
rules inside the SQL), so a user hears of exactly the step and tracker changes they could
receive over CometD. Each batch is one ``changed`` event whose ``id`` is the replay id read up
to: a reconnecting EventSource sends it back (``Last-Event-ID``) and misses nothing. The page
(``work.html``) re-fetches its list with htmx when it hears one.

``read_changes`` is the app's one call into the reader, so a merged CometD/Pub/Sub reader
replaces it in one place."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from opencadence.org import Org
from opencadence.storage import accounts, events, wakeup
from opencadence.web import auth, common

#: the objects whose changes touch a My Work list
ENTITIES = ("ActionCadenceStepTracker", "ActionCadenceTracker")
#: a comment line this often keeps proxies from closing an idle stream
KEEP_ALIVE = 15.0
#: a stream ends after this long (the browser reconnects at once with Last-Event-ID): a
#: session that ended is noticed, and a server shutting down waits no longer than this
LIFETIME = 60.0
#: the browser waits this long (ms) before reconnecting
RETRY_MS = 1000


class Wakeups(Protocol):
    """What the app uses of the CometD hub (``api.streaming.Wakeups``)."""

    newest: int

    def start(self) -> None: ...

    def changed(self) -> asyncio.Event: ...


def read_changes(
    org: Org, session: accounts.Session, after: int
) -> tuple[list[dict[str, Any]], int]:
    """Change events of ``ENTITIES`` past replay id ``after`` that the session's user may
    see, and the replay id read up to (the CometD reader)."""
    with org.store.reading() as conn:
        return events.read_visible(
            conn,
            org.store.meta,
            after=after,
            entities=ENTITIES,
            viewer=org.caller(session).viewer,
            limit=500,
        )


def _summary(found: list[dict[str, Any]]) -> dict[str, Any]:
    changes = [ev["payload"]["ChangeEventHeader"] for ev in found]
    return {
        "changes": len(changes),
        "entities": sorted({c["entityName"] for c in changes}),
        "types": sorted({c["changeType"] for c in changes}),
    }


async def events_stream(request: Request) -> Response:
    """GET /app/work/events (see the module docstring)."""
    org = common.org_of(request)
    found = await run_in_threadpool(auth.current, request, org)
    if found is None:
        return PlainTextResponse("Not signed in", status_code=401)
    _, session = found
    hub: Wakeups = request.app.state.streaming.wakeups
    hub.start()
    # where to read from: the reconnecting browser's last id, else the page's (the replay id
    # the page was rendered at, so nothing committed since it was read is missed)
    last = request.headers.get("last-event-id") or request.query_params.get("after", "")
    cursor = (
        int(last) if last.isdigit() else await run_in_threadpool(wakeup.newest_replay_id, org.store)
    )
    return StreamingResponse(
        _stream(request, org, session, hub, cursor),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _stream(
    request: Request, org: Org, session: accounts.Session, hub: Wakeups, cursor: int
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIFETIME
    gone = loop.create_task(_disconnected(request))
    try:
        yield f"retry: {RETRY_MS}\n: listening from {cursor}\n\n"
        read = True  # the first look: what was committed since the page's cursor
        while not gone.done():
            changed = hub.changed()  # taken before the read: a commit during it sets it
            if read:
                found, cursor = await run_in_threadpool(read_changes, org, session, cursor)
                if found:
                    yield f"id: {cursor}\nevent: changed\ndata: {json.dumps(_summary(found))}\n\n"
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            woken = loop.create_task(changed.wait())
            try:
                done, _ = await asyncio.wait(
                    {woken, gone},
                    timeout=min(KEEP_ALIVE, remaining),
                    return_when="FIRST_COMPLETED",
                )
            finally:
                woken.cancel()
            read = changed.is_set() and hub.newest > cursor
            if not done:
                yield ": keep-alive\n\n"
    finally:
        gone.cancel()


async def _disconnected(request: Request) -> None:
    """Returns when the HTTP client has gone."""
    receive: Any = request.receive
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return
