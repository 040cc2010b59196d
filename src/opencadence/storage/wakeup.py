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
import contextlib
import logging
import os
import threading
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
        return events.newest(conn, store.meta)


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


class Beacon:
    """The newest committed replay id, for threads that wait for commits (a Pub/Sub stream, an
    ``events tail``), fed by ``Store.event_listeners`` and, in a thread of its own running an
    event loop, by ``watch``. A waiter registers a callback (``listen``) and is called, from
    whichever thread saw the commit, after ``newest`` has grown: it looks at ``newest`` under
    its own lock, so a commit between its read and its wait is never missed.

    Idle, it runs no query: ``newest`` comes with each commit of this process and with each
    NOTIFY; only a change seen without a replay id (a SQLite file touched by another process)
    costs one ``newest_replay_id``."""

    def __init__(self, store: records.Store) -> None:
        self.store = store
        self.newest = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Beacon:
        """Begin listening (once); returns itself."""
        if self._thread is not None:
            return self
        self.store.event_listeners.append(self.seen)
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="oc-beacon", daemon=True
        )
        self._thread.start()
        started.wait(5)
        return self

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.store.event_listeners.remove(self.seen)
        loop, task, thread = self._loop, self._task, self._thread
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(task.cancel)
        if thread is not None:
            thread.join(5)
        self._loop = self._task = self._thread = None

    def listen(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def unlisten(self, callback: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def seen(self, replay_id: int) -> None:
        """Events up to ``replay_id`` are committed (any thread): call the waiters if news."""
        with self._lock:
            if replay_id <= self.newest:
                return
            self.newest = replay_id
            waiters = list(self._listeners)
        for callback in waiters:
            callback()

    def _run(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(watch(self.store, self._foreign))
            started.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            loop.close()

    def _foreign(self, replay_id: int | None) -> None:
        """A commit seen by the watcher (on its loop); without its replay id, ask once."""
        if replay_id is None:
            try:
                replay_id = newest_replay_id(self.store)
            except Exception:  # noqa: BLE001 - the database is away: the next change asks again
                log.warning("could not read the newest replay id", exc_info=True)
                return
        self.seen(replay_id)
