"""Every statement on the Bulk API tables: jobs (``oc_bulk_job``) and their chunks
(``oc_bulk_chunk``).

The bulk layer (``opencadence.bulk``) decides what a job does; this module reads and writes the
rows on connections a ``Store`` transaction or read hands it, so a chunk's records, its results
and its ``Completed`` mark commit together, or not at all.

Chunk states: ``Open`` (uploaded, the job not closed yet), ``Queued`` (waiting for a worker),
``Completed``, ``Failed``, ``NotProcessed`` (its job was aborted or failed first), ``Result``
(a query job's result rows). A worker claims one ``Queued`` chunk at a time with ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL (several workers take different chunks; a chunk whose worker died
is rolled back to ``Queued`` with the transaction); SQLite has one writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opencadence.storage import dialect, schema, search_index

#: The handle every function here runs on: ``Store.transaction().conn`` or ``Store.reading()``.
Connection = sa.Connection
#: A failure of the database itself (retried later), as opposed to one of a chunk's data.
DatabaseError = sa.exc.SQLAlchemyError

#: Chunk columns that are not row data (what listings read).
_META_COLUMNS = (
    "job_id",
    "seq",
    "batch_id",
    "parent_seq",
    "state",
    "first_record",
    "records",
    "processed",
    "failed",
    "state_message",
    "processing_ms",
    "created_date",
    "system_modstamp",
)


class BulkTables:
    """The two tables of one schema."""

    def __init__(self, meta: sa.MetaData) -> None:
        self.jobs = meta.tables[schema.BULK_JOBS]
        self.chunks = meta.tables[schema.BULK_CHUNKS]
        self.meta = meta

    # -- jobs ---------------------------------------------------------------------------------

    def insert_job(self, conn: Connection, row: Mapping[str, Any]) -> None:
        conn.execute(self.jobs.insert(), dict(row))

    def job(self, conn: Connection, job_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        j = self.jobs
        stmt = sa.select(j).where(j.c.id == job_id)
        if lock:
            stmt = dialect.for_update(stmt, conn)
        found = conn.execute(stmt).mappings().first()
        return None if found is None else dict(found)

    def list_jobs(
        self,
        conn: Connection,
        *,
        kind: str,
        api: str,
        created_by: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Jobs oldest first (created date, then id), after ``after``; ``created_by`` None: all."""
        j = self.jobs
        stmt = sa.select(j).where(j.c.kind == kind, j.c.api == api)
        if created_by is not None:
            stmt = stmt.where(j.c.created_by == created_by)
        if after is not None:
            stmt = stmt.where(
                sa.or_(
                    j.c.created_date > after[0],
                    sa.and_(j.c.created_date == after[0], j.c.id > after[1]),
                )
            )
        stmt = stmt.order_by(j.c.created_date, j.c.id).limit(limit)
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def update_job(
        self,
        conn: Connection,
        job_id: str,
        values: Mapping[str, Any],
        *,
        states: Iterable[str] | None = None,
    ) -> bool:
        """Update the job (only while its state is one of ``states``); True if it was."""
        j = self.jobs
        stmt = sa.update(j).where(j.c.id == job_id)
        if states is not None:
            stmt = stmt.where(j.c.state.in_(list(states)))
        return bool(conn.execute(stmt.values(**values)).rowcount == 1)

    def count_into_job(
        self, conn: Connection, job_id: str, processed: int, failed: int, ms: int, now: datetime
    ) -> None:
        """Add a chunk's counts to its job (an atomic increment: concurrent chunks add up).
        The job row stays locked until the transaction ends, so the chunk that finds nothing
        left to do after this is the one that completes the job."""
        j = self.jobs
        conn.execute(
            sa.update(j)
            .where(j.c.id == job_id)
            .values(
                records_processed=j.c.records_processed + processed,
                records_failed=j.c.records_failed + failed,
                processing_ms=j.c.processing_ms + ms,
                system_modstamp=now,
            )
        )

    def delete_job(self, conn: Connection, job_id: str) -> None:
        c, j = self.chunks, self.jobs
        conn.execute(sa.delete(c).where(c.c.job_id == job_id))
        conn.execute(sa.delete(j).where(j.c.id == job_id))

    def prune(self, conn: Connection, states: Sequence[str], before: datetime) -> int:
        """Delete the jobs in ``states`` last changed before ``before``, with their chunks."""
        j, c = self.jobs, self.chunks
        old = sa.select(j.c.id).where(j.c.state.in_(list(states)), j.c.system_modstamp < before)
        gone = [str(i) for i in conn.execute(old.limit(500)).scalars()]
        if gone:
            conn.execute(sa.delete(c).where(c.c.job_id.in_(gone)))
            conn.execute(sa.delete(j).where(j.c.id.in_(gone)))
        return len(gone)

    def claim_query_job(
        self, conn: Connection, now: datetime, owner: str, lease_until: datetime
    ) -> dict[str, Any] | None:
        """A 2.0 query job to run: one waiting (UploadComplete) or whose worker's lease ran out
        (a worker that died mid-run); the lease is this worker's from now on."""
        j = self.jobs
        candidates = (
            sa.select(j.c.id)
            .where(
                j.c.kind == "query",
                j.c.api == "2.0",
                sa.or_(
                    j.c.state == "UploadComplete",
                    sa.and_(j.c.state == "InProgress", j.c.lease_until < now),
                ),
            )
            .order_by(j.c.created_date)
            .limit(5)
        )
        for job_id in conn.execute(candidates).scalars().all():
            taken = conn.execute(
                sa.update(j)
                .where(
                    j.c.id == job_id,
                    sa.or_(
                        j.c.state == "UploadComplete",
                        sa.and_(j.c.state == "InProgress", j.c.lease_until < now),
                    ),
                )
                .values(
                    state="InProgress",
                    lease_owner=owner,
                    lease_until=lease_until,
                    retries=sa.case(
                        (j.c.lease_owner.is_(None), j.c.retries), else_=j.c.retries + 1
                    ),
                    system_modstamp=now,
                )
            ).rowcount
            if taken == 1:
                return self.job(conn, job_id)
        return None

    def renew_lease(self, conn: Connection, job_id: str, owner: str, until: datetime) -> bool:
        """Extend this worker's lease; False when it has lost the job (aborted, taken over)."""
        j = self.jobs
        n = conn.execute(
            sa.update(j)
            .where(j.c.id == job_id, j.c.lease_owner == owner, j.c.state == "InProgress")
            .values(lease_until=until)
        ).rowcount
        return bool(n == 1)

    # -- chunks -------------------------------------------------------------------------------

    def insert_chunk(self, conn: Connection, row: Mapping[str, Any]) -> None:
        conn.execute(self.chunks.insert(), dict(row))

    def next_seq(self, conn: Connection, job_id: str) -> int:
        c = self.chunks
        top = conn.execute(sa.select(sa.func.max(c.c.seq)).where(c.c.job_id == job_id)).scalar()
        return 0 if top is None else int(top) + 1

    def set_chunks_state(
        self, conn: Connection, job_id: str, from_states: Sequence[str], to: str, now: datetime
    ) -> int:
        c = self.chunks
        stmt = (
            sa.update(c)
            .where(c.c.job_id == job_id, c.c.state.in_(list(from_states)))
            .values(state=to, system_modstamp=now)
        )
        return int(conn.execute(stmt).rowcount)

    def claim_chunk(self, conn: Connection, job_states: Sequence[str]) -> dict[str, Any] | None:
        """The oldest Queued chunk of a job in ``job_states``, locked for this transaction
        (PostgreSQL skips chunks other workers hold; only the chunk row is locked)."""
        c, j = self.chunks, self.jobs
        runnable = sa.select(j.c.id).where(j.c.state.in_(list(job_states)))
        stmt = (
            sa.select(c)
            .where(c.c.state == "Queued", c.c.job_id.in_(runnable))
            .order_by(c.c.created_date, c.c.job_id, c.c.seq)
            .limit(1)
        )
        found = conn.execute(dialect.for_update(stmt, conn, skip_locked=True)).mappings().first()
        return None if found is None else dict(found)

    def finish_chunk(
        self, conn: Connection, job_id: str, seq: int, values: Mapping[str, Any]
    ) -> None:
        c = self.chunks
        conn.execute(sa.update(c).where(c.c.job_id == job_id, c.c.seq == seq).values(**values))

    def count_chunks(self, conn: Connection, job_id: str, states: Sequence[str]) -> int:
        c = self.chunks
        stmt = sa.select(sa.func.count()).where(c.c.job_id == job_id, c.c.state.in_(list(states)))
        return int(conn.execute(stmt).scalar_one())

    def chunk_list(
        self, conn: Connection, job_id: str, states: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The job's chunks without their data, in order."""
        c = self.chunks
        stmt = sa.select(*(c.c[name] for name in _META_COLUMNS)).where(c.c.job_id == job_id)
        if states is not None:
            stmt = stmt.where(c.c.state.in_(list(states)))
        return [dict(r) for r in conn.execute(stmt.order_by(c.c.seq)).mappings()]

    def chunk_by_batch(self, conn: Connection, batch_id: str) -> dict[str, Any] | None:
        c = self.chunks
        stmt = sa.select(*(c.c[name] for name in _META_COLUMNS)).where(c.c.batch_id == batch_id)
        found = conn.execute(stmt).mappings().first()
        return None if found is None else dict(found)

    def chunk_text(self, conn: Connection, job_id: str, seq: int, column: str) -> str | None:
        """One text column (data, success, failures) of one chunk."""
        c = self.chunks
        stmt = sa.select(c.c[column]).where(c.c.job_id == job_id, c.c.seq == seq)
        value = conn.execute(stmt).scalar()
        return None if value is None else str(value)

    def chunk_at(self, conn: Connection, job_id: str, position: int) -> dict[str, Any] | None:
        """The result chunk holding record ``position`` (0-based) of a query job."""
        c = self.chunks
        stmt = (
            sa.select(*(c.c[name] for name in _META_COLUMNS))
            .where(
                c.c.job_id == job_id,
                c.c.state == "Result",
                c.c.first_record <= position,
                c.c.first_record + c.c.records > position,
            )
            .limit(1)
        )
        found = conn.execute(stmt).mappings().first()
        return None if found is None else dict(found)

    def delete_chunks(self, conn: Connection, job_id: str, states: Sequence[str]) -> None:
        c = self.chunks
        conn.execute(sa.delete(c).where(c.c.job_id == job_id, c.c.state.in_(list(states))))

    # -- hard delete --------------------------------------------------------------------------

    def purge(self, conn: Connection, object_name: str, record_ids: Sequence[str]) -> None:
        """Empty soft-deleted records out of the recycle bin for good (a hard delete): the
        rows go; the deleted-records log keeps them (getDeleted still reports the delete)."""
        if not record_ids:
            return
        table = self.meta.tables[object_name]
        gone = conn.execute(
            sa.delete(table)
            .where(table.c.Id.in_(list(record_ids)), table.c.IsDeleted == sa.true())
            .returning(table.c.Id)
        ).scalars()
        # their search documents go with them (a soft delete keeps them for undelete)
        search_index.forget(conn, self.meta, list(gone))
