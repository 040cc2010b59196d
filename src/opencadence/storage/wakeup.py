"""Commits of change events by other processes, seen without a query while nothing changes.

A CometD long-poll waits for a commit instead of polling the log. Commits in this process call
``Store.event_listeners``; ``watch`` reports the commits of other processes (``opencadence
worker``, a second server on the same database):

- PostgreSQL: a connection of its own (outside the pool) LISTENs to the NOTIFY each event
  write sends (``dialect.notify_events``, payload: the last replay id). A lost connection is
  reopened with backoff, and reported as "something may have changed" once it is back.
- SQLite file: the size and mtime of the database file and its WAL, looked at once a second
  (a ``stat``, no query); a change is reported without a replay id (the caller asks
  ``newest_replay_id`` once, for all its readers).
- SQLite in memory: only this process can write, so there is nothing to watch.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from opencadence.storage import dialect, events, records

log = logging.getLogger(__name__)

#: How often a SQLite file is looked at for other processes' commits.
SQLITE_STAT_SECONDS = 1.0
#: The longest wait before reopening a lost PostgreSQL LISTEN connection.
MAX_BACKOFF_SECONDS = 30.0

#: Called with the last replay id committed, or None when it is unknown.
OnChange = Callable[[int | None], None]


def newest_replay_id(store: records.Store) -> int:
    """The largest replay id in the log (0 when it is empty)."""
    with store.reading() as conn:
        return int(events.replay_bounds(conn, store.meta)[1] or 0)


async def watch(store: records.Store, on_change: OnChange) -> None:
    """Report other processes' commits until cancelled."""
    engine = store.engine
    if not dialect.is_sqlite(engine):
        await _listen(store, on_change)
        return
    path = engine.url.database
    if not path or path == ":memory:":
        await asyncio.Event().wait()  # nothing to watch; wait to be cancelled
        return
    await _stat_poll(path, on_change)


async def _stat_poll(path: str, on_change: OnChange) -> None:
    last = _signature(path)
    while True:
        await asyncio.sleep(SQLITE_STAT_SECONDS)
        now = _signature(path)
        if now != last:
            last = now
            on_change(None)


def _signature(path: str) -> tuple[tuple[int, int], ...]:
    """(size, mtime) of the database file and its WAL: any commit changes one of them."""
    found = []
    for name in (path, f"{path}-wal"):
        try:
            st = os.stat(name)
        except OSError:
            found.append((-1, -1))
        else:
            found.append((st.st_size, st.st_mtime_ns))
    return tuple(found)


async def _listen(store: records.Store, on_change: OnChange) -> None:
    import psycopg  # the PostgreSQL driver; imported only when PostgreSQL is in use

    engine = store.engine
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    delay = 1.0
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(*args, **kwargs, autocommit=True)
            async with conn:
                await conn.execute(f"LISTEN {dialect.EVENTS_CHANNEL}")
                on_change(None)  # whatever was committed while nobody listened
                delay = 1.0
                async for note in conn.notifies():
                    on_change(_replay_id(note.payload))
        except psycopg.Error as exc:
            log.warning("change-event LISTEN connection lost (%s); retrying in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def _replay_id(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None
