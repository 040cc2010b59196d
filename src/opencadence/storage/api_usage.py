"""Daily API requests, counted per org and UTC day, for ``Sforce-Limit-Info`` and ``/limits``.

Counting every request with its own write would cost a transaction per call, so each process
counts in memory and adds its count to the day's row of ``oc_sequence`` at most once a second
(and when it closes). What a caller is told is the database's total at the last flush plus this
process's unflushed requests: exact for one process, at most a second behind the other
processes' requests when several serve one database. The day is the wall clock's UTC day, not
the manual clock's: moving the org's clock is for cadences, not for resetting quotas.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from opencadence.storage import records, schema

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
        self._day = ""
        self._stored = 0  # the day's total in the database at the last flush
        self._pending = 0  # this process's requests since then
        self._flushed_at = 0.0

    def count(self) -> int:
        """Count one request; the day's total including it."""
        with self._lock:
            self._roll()
            self._pending += 1
            if time.monotonic() - self._flushed_at >= self._flush_seconds:
                self._flush()
            return self._stored + self._pending

    def used(self) -> int:
        """The day's total so far (without counting a request)."""
        with self._lock:
            self._roll()
            return self._stored + self._pending

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _roll(self) -> None:
        """A new day starts at zero; what the old day still had pending is written to it."""
        day = self._today()
        if day == self._day:
            return
        if self._day:
            self._flush()
        self._day, self._stored, self._pending = day, 0, 0
        self._flush()  # read the new day's total from the other processes

    def _flush(self) -> None:
        self._stored = _add(self._store, _key(self._day), self._pending)
        self._pending = 0
        self._flushed_at = time.monotonic()


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
