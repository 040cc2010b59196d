"""Heartbeats of cadence worker loops across processes (table ``oc_worker_heartbeat``).

Each running worker loop (an ``opencadence worker`` process, the worker thread of
``opencadence serve``) owns one row: it inserts it when it starts, updates ``beat_at`` (wall
time, never a manual clock) at most every ``WRITE_EVERY`` seconds while it finishes batches,
and deletes it when it stops. ``/_opencadence/health`` of any server process on the database
lists the rows, so one probe sees every worker process of the org, wherever it runs. A
process killed without stopping leaves its row, which goes silent; rows silent longer than
``FORGET_AFTER`` are deleted by the next loop that starts.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from opencadence.clock import SystemClock, as_utc
from opencadence.storage import records, schema

#: A beat is written at most this often (the loop may finish many batches a second).
WRITE_EVERY = timedelta(seconds=5)
#: Rows silent this long are forgotten (the process is gone).
FORGET_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Beat:
    """One worker loop's row."""

    id: str
    role: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    failures: int
    last_error: str | None
    transitions: int


def _now() -> datetime:
    """Wall time, naive UTC to the millisecond, as the database stores datetimes."""
    now = as_utc(SystemClock().now())
    return now.replace(tzinfo=None, microsecond=now.microsecond // 1000 * 1000)


class Heartbeats:
    """The heartbeat rows of one database."""

    def __init__(self, store: records.Store) -> None:
        self.store = store
        self.table = store.meta.tables[schema.WORKER_HEARTBEATS]

    def register(self, role: str) -> str:
        """A new row for a loop of this process (``role``: "worker" or "server"); its id.
        Rows silent past FORGET_AFTER go at the same time."""
        now = _now()
        row_id = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
        with self.store.transaction() as tx:
            tx.conn.execute(self.table.delete().where(self.table.c.beat_at < now - FORGET_AFTER))
            tx.conn.execute(
                self.table.insert().values(
                    id=row_id,
                    role=role,
                    host=socket.gethostname()[:255],
                    pid=os.getpid(),
                    started_at=now,
                    beat_at=now,
                    failures=0,
                    last_error=None,
                    transitions=0,
                )
            )
        return row_id

    def beat(self, row_id: str, *, failures: int, last_error: str | None, transitions: int) -> bool:
        """Write a beat of ``row_id``: wall time now and the loop's counters. False when the
        row is gone (forgotten while the loop was silent past FORGET_AFTER): register again."""
        t = self.table
        with self.store.transaction() as tx:
            done = tx.conn.execute(
                t.update()
                .where(t.c.id == row_id)
                .values(
                    beat_at=_now(),
                    failures=failures,
                    last_error=last_error,
                    transitions=transitions,
                )
            )
        return bool(done.rowcount)

    def remove(self, row_id: str) -> None:
        with self.store.transaction() as tx:
            tx.conn.execute(self.table.delete().where(self.table.c.id == row_id))

    def all(self) -> list[Beat]:
        """Every row, the most recent beat first."""
        t = self.table
        with self.store.reading() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.beat_at.desc(), t.c.id)).mappings()
            return [Beat(**dict(r)) for r in rows]
