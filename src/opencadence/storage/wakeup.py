"""Commits of change events, seen without a query while nothing changes.

CometD long-polls, Pub/Sub streams and ``events tail`` wait for a commit instead of polling
the log, all on one ``Beacon`` per store (``Beacon.of``): one watcher, so one LISTEN
connection per process. Commits in this process call ``Store.event_listeners``; ``watch``
reports the commits of other processes (``opencadence worker``, a second server on the same
database):

- PostgreSQL: a connection of its own (outside the pool) LISTENs to the NOTIFY each event
  write sends (``dialect.notify_events``, payload: the last replay id). A lost connection is
  reopened with backoff, and reported as "something may have changed" once it is back.
- SQLite file: the size and mtime of the database file and its WAL, looked at every 10 ms
  while commits come, less often (up to every 0.5 s) while none do (two ``stat`` calls, no
  query); a change is reported without a replay
  id (the beacon asks ``newest_replay_id`` once, for all its readers).
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

#: How often a SQLite file is looked at for other processes' commits (two stat calls): every
#: SQLITE_STAT_SECONDS while commits come and for SQLITE_STAT_KEEP_SECONDS after the last one,
#: so a commit is seen within 10 ms (about 1 % of a core meanwhile); then each idle look waits
#: half as long again, up to SQLITE_STAT_IDLE_SECONDS, so a quiet database costs about 0.1 %
#: of a core (measured; 0.7 % at a steady 20 ms) and the first commit after a quiet spell is
#: seen within half a second.
SQLITE_STAT_SECONDS = 0.01
SQLITE_STAT_KEEP_SECONDS = 1.0
SQLITE_STAT_IDLE_SECONDS = 0.5
#: The longest wait before reopening a lost PostgreSQL LISTEN connection.
MAX_BACKOFF_SECONDS = 30.0

#: Called with the last replay id committed, or None when it is unknown.
OnChange = Callable[[int | None], None]
#: Called with a notification on one of ``dialect.NOTICE_CHANNELS``: (channel, payload); the
#: payload is "" when the LISTEN connection was (re)opened (anything may have changed).
OnNotice = Callable[[str, str], None]


def newest_replay_id(store: records.Store) -> int:
    """The largest replay id in the log (0 when it is empty)."""
    with store.reading() as conn:
        return events.newest(conn, store.meta)


async def watch(
    store: records.Store, on_change: OnChange, on_notice: OnNotice | None = None
) -> None:
    """Report other processes' commits (and, on PostgreSQL, their notices) until cancelled."""
    engine = store.engine
    if not dialect.is_sqlite(engine):
        await _listen(store, on_change, on_notice)
        return
    path = engine.url.database
    if not path or path == ":memory:":
        await asyncio.Event().wait()  # nothing to watch; wait to be cancelled
        return
    await _stat_poll(path, on_change)


async def _stat_poll(path: str, on_change: OnChange) -> None:
    last = _signature(path)
    interval, quiet = SQLITE_STAT_SECONDS, 0.0
    while True:
        await asyncio.sleep(interval)
        now = _signature(path)
        if now != last:
            last = now
            interval, quiet = SQLITE_STAT_SECONDS, 0.0
            on_change(None)
        else:
            quiet += interval
            if quiet >= SQLITE_STAT_KEEP_SECONDS:
                interval = min(interval * 1.5, SQLITE_STAT_IDLE_SECONDS)


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


async def _listen(
    store: records.Store, on_change: OnChange, on_notice: OnNotice | None = None
) -> None:
    import psycopg  # the PostgreSQL driver; imported only when PostgreSQL is in use

    engine = store.engine
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    delay = 1.0
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(*args, **kwargs, autocommit=True)
            async with conn:
                await conn.execute(f"LISTEN {dialect.EVENTS_CHANNEL}")
                if on_notice is not None:
                    for channel in dialect.NOTICE_CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                        on_notice(channel, "")  # whatever was sent while nobody listened
                on_change(None)  # whatever was committed while nobody listened
                delay = 1.0
                async for note in conn.notifies():
                    if note.channel == dialect.EVENTS_CHANNEL:
                        on_change(_replay_id(note.payload))
                    elif on_notice is not None:
                        on_notice(note.channel, note.payload)
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
    """The newest committed replay id, for everything in this process that waits for commits
    (CometD's long-polls, Pub/Sub streams, ``events tail``, the web app's live pages): one per
    store (``Beacon.of``), fed by ``Store.event_listeners`` and, in a thread of its own running
    an event loop, by ``watch`` (so one LISTEN connection per process, however many readers).
    A waiter registers a callback (``listen``) and is called, from whichever thread saw the
    commit, after ``newest`` has grown: it looks at ``newest`` under its own lock, so a commit
    between its read and its wait is never missed. A callback must be quick and must not block
    (set an event, notify a condition, ``call_soon_threadsafe``): it runs in the committing
    thread.

    ``start``/``stop`` count their users: the watcher runs from the first ``start`` to the last
    ``stop``. Idle, it runs no query: ``newest`` comes with each commit of this process and with
    each NOTIFY; only the first ``start`` and a change seen without a replay id (a SQLite file
    touched by another process) cost one ``newest_replay_id``."""

    _shared_lock = threading.Lock()

    @classmethod
    def of(cls, store: records.Store) -> Beacon:
        """The beacon of ``store`` (made on first use, kept on the store, so it goes with it):
        every reader of one store shares it."""
        with cls._shared_lock:
            found = store.change_beacon
            if not isinstance(found, Beacon):
                found = cls(store)
                store.change_beacon = found
            return found

    def __init__(self, store: records.Store) -> None:
        self.store = store
        self.newest = 0
        self._lock = threading.Lock()
        self._users = 0
        self._listeners: list[Callable[[], None]] = []
        self._notices: dict[str, list[Callable[[str], None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Beacon:
        """One more user: the first one starts the watcher. Returns itself."""
        with self._lock:
            self._users += 1
            if self._users > 1:
                return self
        self.store.event_listeners.append(self.seen)
        self._foreign(None)  # where the log is now, so ``newest`` is right from the start
        started = threading.Event()
        thread = threading.Thread(target=self._run, args=(started,), name="oc-beacon", daemon=True)
        self._thread = thread
        thread.start()
        started.wait(5)
        return self

    def stop(self) -> None:
        """One user less: the last one stops the watcher."""
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users:
                return
        with contextlib.suppress(ValueError):
            self.store.event_listeners.remove(self.seen)
        loop, task, thread = self._loop, self._task, self._thread
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(task.cancel)
        if thread is not None:
            thread.join(5)
        self._loop = self._task = self._thread = None

    @property
    def running(self) -> bool:
        return self._users > 0

    def listen(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def unlisten(self, callback: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def listen_notices(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(payload)`` (from the watcher's thread; quick, non-blocking) for each
        notification on ``channel`` (one of ``dialect.NOTICE_CHANNELS``), and with "" when
        the LISTEN connection is (re)opened. PostgreSQL only: SQLite has no notifications."""
        with self._lock:
            self._notices.setdefault(channel, []).append(callback)

    def unlisten_notices(self, channel: str, callback: Callable[[str], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._notices.get(channel, []).remove(callback)

    def _notice(self, channel: str, payload: str) -> None:
        with self._lock:
            callbacks = list(self._notices.get(channel, ()))
        for callback in callbacks:
            callback(payload)

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
            self._task = loop.create_task(watch(self.store, self._foreign, self._notice))
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
