"""Daily API requests, counted per org and UTC day, for ``Sforce-Limit-Info`` and ``/limits``.

Counting every request with its own write would cost a transaction per call, so each process
counts in memory and adds its count to the day's row of ``oc_sequence`` at most once a second
(and when it closes). What a caller is told is the database's total at the last flush plus this
process's unflushed requests: exact for one process, at most a second behind the other
processes' requests when several serve one database. A process that crashes loses at most
its last second of requests (those not yet added). A request answered on the API's event loop
(api/dispatch.py), which must not wait for the database's writer lock, hands the due write to
a thread of its own instead of writing it itself. The day is the wall clock's UTC day, not
the manual clock's: moving the org's clock is for cadences, not for resetting quotas.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from opencadence.storage import records, schema

log = logging.getLogger("opencadence.api_usage")

#: How often (seconds) a process adds its pending requests to the database.
FLUSH_SECONDS = 1.0


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


class ApiUsage:
    """The org's API request counter for the current UTC day."""

    def __init__(
        self,
        store: records.Store,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        today: Callable[[], str] = _today,
    ) -> None:
        self._store = store
        self._flush_seconds = flush_seconds
        self._today = today
        self._lock = threading.Lock()
        #: held by the one thread writing the count; the others never wait for the database
        self._writing = threading.Lock()
        self._day = ""
        self._stored = 0  # the day's total in the database at the last flush
        self._inflight = 0  # being added to the database right now
        self._pending = 0  # this process's requests not yet written
        self._flushed_at = 0.0

    def count(self) -> int:
        """Count one request; the day's total including it. At most once a second, the thread
        that counts writes the process's count, outside the counter's lock, so a slow write
        (a busy SQLite writer) delays that one request, not every request."""
        with self._lock:
            self._roll()
            self._pending += 1
            total = self._stored + self._inflight + self._pending
            due = time.monotonic() - self._flushed_at >= self._flush_seconds
        if due and self._writing.acquire(blocking=False):
            if records.writes_refused():  # on the API's event loop: written by a thread
                _flusher().submit(self._flush_releasing)
                return total
            self._flush_releasing()
            return self.used()  # the writer also learnt the other processes' count
        return total

    def _flush_releasing(self) -> None:
        """``_flush``, then release ``_writing`` (acquired by the caller, maybe another thread)."""
        try:
            self._flush()
        finally:
            self._writing.release()

    def used(self) -> int:
        """The day's total so far (without counting a request)."""
        with self._lock:
            self._roll()
            return self._stored + self._inflight + self._pending

    def flush(self) -> None:
        with self._writing:
            self._flush()

    def restart(self) -> None:
        """Count from zero again, writing nothing: the database was put back to rows without
        this day's count (the pytest plugin's reused org, opencadence.testing). The next flush
        makes the counter row, as in a fresh database."""
        with self._writing, self._lock:
            self._stored = self._inflight = self._pending = 0

    def _roll(self) -> None:
        """A new day starts at zero; what the old day still had pending is written to it (once
        a day, under the lock)."""
        day = self._today()
        if day == self._day:
            return
        if self._day and self._pending:
            _add(self._store, _key(self._day), self._pending)
        self._day, self._pending = day, 0
        self._stored = _add(self._store, _key(day), 0)  # the other processes' count so far
        self._flushed_at = time.monotonic()

    def _flush(self) -> None:
        """Add the pending count to the database (the caller holds ``_writing``). A failed
        write keeps the count pending for the next one: counting never fails a request."""
        with self._lock:
            self._roll()
            day, self._inflight, self._pending = self._day, self._pending, 0
            self._flushed_at = time.monotonic()
        try:
            stored = _add(self._store, _key(day), self._inflight)
        except Exception as exc:  # the database is down or busy: try again at the next flush
            log.warning("could not record %d API requests: %s", self._inflight, exc)
            with self._lock:
                self._pending += self._inflight
                self._inflight = 0
            return
        with self._lock:
            if day == self._day:
                self._stored = stored
            self._inflight = 0


_FLUSHER: concurrent.futures.ThreadPoolExecutor | None = None
_FLUSHER_GUARD = threading.Lock()


def _flusher() -> concurrent.futures.ThreadPoolExecutor:
    """The thread that writes counts for callers that may not write (``records.read_only``)."""
    global _FLUSHER
    with _FLUSHER_GUARD:
        if _FLUSHER is None:
            _FLUSHER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="api-usage")
        return _FLUSHER


def _key(day: str) -> str:
    return f"api_requests:{day}"


def _add(store: records.Store, name: str, n: int) -> int:
    """Add ``n`` to the counter row ``name`` (made at 0 if missing); its new value."""
    seq = store.meta.tables[schema.SEQUENCES]
    with store.transaction() as tx:
        value = tx.conn.execute(
            seq.update()
            .where(seq.c.name == name)
            .values(value=seq.c.value + n)
            .returning(seq.c.value)
        ).scalar()
        if value is None:
            tx.conn.execute(seq.insert().values(name=name, value=n))
            value = n
    return int(value)
