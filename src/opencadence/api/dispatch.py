"""Where a REST request's blocking work runs: a worker thread, or the event loop itself when
the work is known to be short.

A trip to a worker thread and back costs two thread wake-ups (~0.1 ms on an idle machine,
0.3-0.9 ms on a loaded one: more than a 10-record query on SQLite costs), and a request
without a session read of its own would pay it for microseconds of work. So, on a SQLite file
only -- whose reads are in-process and, in WAL mode, never wait for a writer -- work runs on
the loop when:

- it is authentication (the session is usually remembered: storage/session_cache.py), or
- it is a GET handler whose last run with the same method, path and query string took under
  ``INLINE_SECONDS`` of CPU and under ``INLINE_WALL_SECONDS`` from start to end (the first
  run of each is in a thread, and measured). CPU time, because on a loaded machine the wall
  time of the same work triples with waiting for a CPU, which the loop would wait through in
  either place (the work holds the GIL but in SQLite's own C code); the wall-clock bound
  keeps out work that waited for something else.

Work on the loop runs inside ``records.read_only``: a write transaction (a session's expiry
extended, a query's locator saved, FOR VIEW stamps, the API count's due write) is refused
before it waits for anything, and the work runs again in a thread -- a write may wait up to
10 s for SQLite's writer lock, and the loop must never wait. Such a key is not tried on the
loop again until a thread run measures it short and writing nothing. On PostgreSQL, every read
is a network round trip that an outage could hold for long: all work runs in threads, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from opencadence.storage import dialect, fastread, records

T = TypeVar("T")

#: A GET handler measured this short (CPU time of its thread) runs on the event loop next time
INLINE_SECONDS = 0.002
#: ... if it also took no longer than this from start to end (on a machine with four runnable
#: processes a core, 1 ms of CPU took 20 ms now and then: waiting for a CPU, not for a lock)
INLINE_WALL_SECONDS = 0.05
#: The weight of a new measurement in the average of a key's runs.
SMOOTHING = 0.25
#: Keys (method, path and query string) remembered; past it, all are forgotten (measured again).
MAX_KEYS = 2048

#: measured the last time, or float("inf") for work that wanted to write
_NEVER = float("inf")


class Dispatch:
    """The measurements of one app's handlers, and whether its store allows loop work."""

    def __init__(self, store: records.Store) -> None:
        # a file (a pool of connections), not one in-memory database shared by all threads
        self.enabled = dialect.is_sqlite(store.engine) and fastread.supported(store.engine)
        self._took: dict[tuple[str, str, bytes], float] = {}

    def short(self, key: tuple[str, str, bytes]) -> bool:
        """Whether the work of ``key`` may run on the loop."""
        return self.enabled and self._took.get(key, _NEVER) < INLINE_SECONDS

    def measure(self, key: tuple[str, str, bytes], func: Callable[[], T]) -> T:
        """Run ``func`` (in a thread: it may write), remembering how long it took and whether
        it would have run on the loop (wrote nothing)."""
        if not self.enabled:
            return func()
        start, cpu = time.perf_counter(), time.thread_time()
        before = records.write_count()
        result = func()
        self._note(key, _took(start, cpu) if records.write_count() == before else _NEVER)
        return result

    def on_loop(
        self, key: tuple[str, str, bytes] | None, func: Callable[[], T]
    ) -> tuple[bool, T | None]:
        """Try ``func`` on the loop, read-only: (True, its result), or (False, None) when it
        wanted to write (nothing was written; run it in a thread)."""
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            with records.read_only():
                result = func()
        except records.WriteRefused:
            if key is not None:
                self._note(key, _NEVER)
            return False, None
        if key is not None:
            self._note(key, _took(start, cpu))
        return True, result

    def _note(self, key: tuple[str, str, bytes], took: float) -> None:
        """Remember ``took`` for ``key``: averaged with the runs before (one slow run -- a
        garbage collection, a CPU shared with a neighbour -- does not send the work back to a
        thread), except that work which wrote or waited counts at once, and a run after one
        that did starts afresh."""
        before = self._took.get(key)
        if before is None:
            if len(self._took) >= MAX_KEYS:
                self._took.clear()
        elif before != _NEVER and took != _NEVER:
            took = before + (took - before) * SMOOTHING
        self._took[key] = took


def _took(start: float, cpu: float) -> float:
    """The CPU time since ``cpu`` (``time.thread_time``), or _NEVER when the wall time since
    ``start`` (``time.perf_counter``) passed INLINE_WALL_SECONDS."""
    if time.perf_counter() - start > INLINE_WALL_SECONDS:
        return _NEVER
    return time.thread_time() - cpu
