"""The workers' part of Bulk API jobs: write an ingest chunk's records, run a query job.

``Runner.run_once`` is one unit of work, run by the worker loop between its cadence batches
(``system.build`` adds it to ``Worker.tasks``):

* **An ingest chunk** (2.0, or a 1.0 DML batch) is claimed, written and marked ``Completed``
  in one transaction: its records, their change events, its results and the job's counters
  commit together or not at all. PostgreSQL workers claim with ``FOR UPDATE SKIP LOCKED``
  (several take different chunks at once); a worker killed mid-chunk leaves the chunk
  ``Queued`` (its transaction rolls back), so every record is written exactly once. Records
  go through ``Org`` (the one write path: the same validation, permission and record-access
  checks, hooks and change events as a single-record write, as the job's creator), in groups
  of 200, each a savepoint: a record that fails is taken out and the group tried again, then
  it is tried alone and its error goes to the failed results.
* **A 2.0 query job** is leased (a worker that dies loses it when the lease runs out, and
  the next worker starts it again), its rows streamed from one statement and written as
  result chunks of ``RESULT_ROWS`` CSV records; memory stays flat.
* **A 1.0 query batch** runs like an ingest chunk, its result sets written with it.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from opencadence import errors
from opencadence.bulk import csvdata, jobs
from opencadence.clock import SystemClock
from opencadence.org import Org, partial_success
from opencadence.soql import stream
from opencadence.storage import accounts, records, values
from opencadence.storage.bulk import BulkTables, DatabaseError

log = logging.getLogger(__name__)

#: Records per savepoint inside a chunk (Salesforce's Bulk API saves in chunks of 200 too).
GROUP = 200
#: Tries of a group before its records go one at a time.
GROUP_TRIES = 3
#: CSV records per query result chunk (one write transaction each).
RESULT_ROWS = 20_000
#: Records per Bulk 1.0 query result set.
V1_RESULT_RECORDS = 10_000
#: How long a query job's worker holds it without renewing.
QUERY_LEASE = timedelta(seconds=60)
#: Ended jobs and their results are deleted this long after they ended (Salesforce: 7 days).
RETENTION = timedelta(days=7)
#: How often (wall clock) an idle runner looks for jobs past their retention.
PRUNE_EVERY = timedelta(minutes=10)

#: (id or "", created) of a written record, or the error that refused it.
Outcome = tuple[str, bool] | errors.OpenCadenceError
Write = Callable[[records.Tx, dict[str, Any]], tuple[str, bool]]


class _LeaseLost(Exception):
    """The query job was aborted or taken over while this worker ran it."""


def _session(job: dict[str, Any]) -> accounts.Session:
    """The job creator's rights, as recorded when the job was created."""
    return accounts.Session(
        job["created_by"],
        bool(job["admin"]),
        job["time_zone"],
        datetime.max,
        None,
        frozenset(json.loads(job["permissions"] or "[]")),
    )


def _wall() -> datetime:
    return SystemClock().now().astimezone(UTC).replace(tzinfo=None)


class Runner:
    """Runs the Bulk API jobs of one org, a unit of work per ``run_once``."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.store = org.store
        self.tables = BulkTables(org.store.meta)
        self.owner = str(uuid.uuid4())
        self._pruned_at: datetime | None = None
        #: the chunk the current ``_chunk`` claimed (job id, seq)
        self._claimed: tuple[str, int] | None = None
        #: records written so far (benchmarks and tests read it)
        self.records = 0

    def run_once(self) -> int:
        """One chunk or one query job; how many records it handled (0: nothing to do)."""
        done = self._chunk_or_fail()
        if done is None:
            done = self._query_job()
        if done is None:
            self._prune()
        return done or 0

    def _prune(self, *, force: bool = False) -> int:
        """Delete ended jobs past RETENTION (at most every PRUNE_EVERY of wall time)."""
        wall = _wall()
        if not force and self._pruned_at is not None and wall - self._pruned_at < PRUNE_EVERY:
            return 0
        self._pruned_at = wall
        before = values.to_db_datetime(self.store.clock.now()) - RETENTION
        with self.store.transaction() as tx:
            return self.tables.prune(tx.conn, (*jobs.FINAL_STATES, "Closed"), before)

    def run_until_idle(self) -> int:
        total = 0
        while True:
            done = self._chunk_or_fail()
            if done is None:
                done = self._query_job()
            if done is None:
                return total
            total += done

    # -- ingest chunks and 1.0 query batches --------------------------------------------------

    def _chunk_or_fail(self) -> int | None:
        """``_chunk``; a chunk that raises something other than a database failure (which is
        retried: the chunk stays Queued) would fail again on every try, so it is marked
        Failed (its 2.0 job too) instead of stopping the worker loop for good."""
        self._claimed = None
        try:
            return self._chunk()
        except (DatabaseError, errors.UnableToLockRow):
            # the chunk's transaction rolled back and it stays Queued: a lock another writer
            # held past the lock wait (two workers writing one object's rows) is contention,
            # not a fault of the chunk; the worker loop backs off and a later turn retries it
            raise
        except Exception as exc:
            if self._claimed is None:
                raise
            log.exception("bulk chunk %s/%s failed", *self._claimed)
            self._fail_chunk(*self._claimed, f"UNKNOWN_EXCEPTION: {type(exc).__name__}: {exc}")
            return 1

    def _fail_chunk(self, job_id: str, seq: int, message: str) -> None:
        now = values.to_db_datetime(self.store.clock.now())
        with self.store.transaction() as tx:
            self.tables.finish_chunk(
                tx.conn, job_id, seq, {"state": "Failed", "state_message": message[:2000]}
            )
            job = self.tables.job(tx.conn, job_id)
            if job is not None and job["api"] == "2.0":
                self.tables.set_chunks_state(tx.conn, job_id, ["Queued"], "NotProcessed", now)
                self.tables.update_job(
                    tx.conn,
                    job_id,
                    {"state": "Failed", "error_message": message[:2000], "system_modstamp": now},
                    states=["UploadComplete", "InProgress"],
                )

    def _chunk(self) -> int | None:
        started = time.perf_counter()
        with self.store.transaction() as outer:
            chunk = self.tables.claim_chunk(outer.conn, jobs.RUNNABLE)
            if chunk is None:
                return None
            self._claimed = (chunk["job_id"], chunk["seq"])
            job = self.tables.job(outer.conn, chunk["job_id"])
            assert job is not None
            session = _session(job)
            now = values.to_db_datetime(self.store.clock.now())
            if job["state"] == "UploadComplete":
                self.tables.update_job(
                    outer.conn,
                    job["id"],
                    {"state": "InProgress", "system_modstamp": now},
                    states=["UploadComplete"],
                )
            result: dict[str, Any]
            if job["kind"] == "query":
                try:
                    count, failed, result = self._v1_query(outer, job, chunk, session), 0, {}
                except _V1Refused as refused:
                    self.tables.finish_chunk(
                        outer.conn,
                        job["id"],
                        chunk["seq"],
                        {"state": "Failed", "state_message": refused.message},
                    )
                    return 1
            else:
                with records.ambient(outer):
                    count, failed, result = self._ingest(job, chunk, session)
            ms = int((time.perf_counter() - started) * 1000)
            self.tables.finish_chunk(
                outer.conn,
                job["id"],
                chunk["seq"],
                {
                    "state": "Completed",
                    "processed": count,
                    "failed": failed,
                    "processing_ms": ms,
                    "system_modstamp": now,
                    **result,
                },
            )
            self.tables.count_into_job(outer.conn, job["id"], count, failed, ms, now)
            if job["api"] == "2.0" and not self.tables.count_chunks(
                outer.conn, job["id"], ["Open", "Queued"]
            ):
                self.tables.update_job(
                    outer.conn, job["id"], {"state": "JobComplete"}, states=["InProgress"]
                )
        self.records += count
        return max(count, 1)

    def _ingest(
        self, job: dict[str, Any], chunk: dict[str, Any], session: accounts.Session
    ) -> tuple[int, int, dict[str, Any]]:
        write = self._writer(job, session)
        if job["api"] == "2.0":
            header: list[str] = json.loads(job["header"])
            rows = list(csvdata.internal_rows(chunk["data"]))
            items = [_csv_record(header, row) for row in rows]
        else:
            given = json.loads(chunk["data"])
            items = [_json_record(r) for r in given]
        outcomes: list[Outcome] = []
        for start in range(0, len(items), GROUP):
            outcomes += self._group(job, session, items[start : start + GROUP], write)
        failed = sum(1 for o in outcomes if isinstance(o, errors.OpenCadenceError))
        if job["api"] == "2.0":
            return len(items), failed, _csv_results(job, rows, items, outcomes)
        return len(items), failed, {"success": json.dumps([_v1_result(o) for o in outcomes])}

    def _group(
        self,
        job: dict[str, Any],
        session: accounts.Session,
        items: list[dict[str, Any]],
        write: Write,
    ) -> list[Outcome]:
        """Partial success (``org.partial_success``): the group in one savepoint of the
        chunk's transaction, a failing record taken out and the rest tried again (up to
        GROUP_TRIES times); then each record left on its own savepoint."""

        def one(tx: records.Tx | None, index: int) -> tuple[str, bool]:
            assert tx is not None
            return write(tx, items[index])

        def savepoint() -> AbstractContextManager[records.Tx]:
            return self._savepoint(job, session)

        return partial_success(len(items), savepoint, savepoint, one, GROUP_TRIES)

    def _savepoint(
        self, job: dict[str, Any], session: accounts.Session
    ) -> AbstractContextManager[records.Tx]:
        """A savepoint of the chunk's transaction, writing as the job's creator."""
        return self.store.transaction(
            session.user_id,
            origin=f"com/salesforce/api/bulk/{job['api_version']}",
            principal=session.principal,
        )

    def _writer(self, job: dict[str, Any], session: accounts.Session) -> Write:
        org, name, version = self.org, job["object"], job["api_version"]
        op, key = job["operation"], job["external_id"]

        def write(tx: records.Tx, record: dict[str, Any]) -> tuple[str, bool]:
            body = dict(record)
            with records.duplicates_refused():
                if op == "insert":
                    return org.create(session, name, body, version, api="bulk", tx=tx), True
                if op == "upsert":
                    given = next((k for k in body if k.lower() == key.lower()), key)
                    value = body.pop(given, None)
                    return org.upsert(session, name, key, value, body, version, api="bulk", tx=tx)
                record_id = _pop_id(body)
                if op == "update":
                    org.update(session, name, record_id, body, version, api="bulk", tx=tx)
                    return record_id, False
                org.delete(session, name, record_id, version, api="bulk", tx=tx)
                if op == "hardDelete":
                    self.tables.purge(tx.conn, name, [record_id])
                return record_id, False

        return write

    def _v1_query(
        self,
        outer: records.Tx,
        job: dict[str, Any],
        chunk: dict[str, Any],
        session: accounts.Session,
    ) -> int:
        """A 1.0 query batch: its result sets (JSON arrays of records) written with it."""
        version = job["api_version"]
        try:
            compiled = self.org.queries.compile(
                chunk["data"],
                self.org.caller(session),
                version=version,
                include_deleted=job["operation"] == "queryAll",
            )
            stream.check_bulk(compiled)
        except errors.OpenCadenceError as exc:
            raise _V1Refused(exc) from None
        plan = stream.plan(self.org.queries, compiled, version)
        dated = [c.name.split(".") for c in stream.columns(compiled) if c.kind == "datetime"]
        now = values.to_db_datetime(self.store.clock.now())
        seq = self.tables.next_seq(outer.conn, job["id"])
        total, batch = 0, list[dict[str, Any]]()

        def flush() -> None:
            nonlocal seq
            self.tables.insert_chunk(
                outer.conn,
                {
                    "job_id": job["id"],
                    "seq": seq,
                    "batch_id": None,
                    "parent_seq": chunk["seq"],
                    "state": "Result",
                    "first_record": total - len(batch),
                    "records": len(batch),
                    "data": json.dumps(batch),
                    "processed": len(batch),
                    "failed": 0,
                    "success": None,
                    "failures": None,
                    "state_message": None,
                    "processing_ms": 0,
                    "created_date": now,
                    "system_modstamp": now,
                },
            )
            seq += 1

        with stream.rows(self.org.queries, compiled) as rows:
            for row in rows:
                record = plan.record(row)
                for path in dated:
                    _epoch_ms(record, path)
                batch.append(record)
                total += 1
                if len(batch) == V1_RESULT_RECORDS:
                    flush()
                    batch = []
        if batch or total == 0:
            flush()
        return total

    # -- 2.0 query jobs -----------------------------------------------------------------------

    def _query_job(self) -> int | None:
        wall = _wall()
        with self.store.transaction() as tx:
            job = self.tables.claim_query_job(tx.conn, wall, self.owner, wall + QUERY_LEASE)
        if job is None:
            return None
        started = time.perf_counter()
        session = _session(job)
        try:
            total = self._run_query(job, session)
        except _LeaseLost:
            return 1
        except errors.OpenCadenceError as exc:
            self._finish_query(job, {"state": "Failed", "error_message": exc.message})
            return 1
        ms = int((time.perf_counter() - started) * 1000)
        self._finish_query(
            job, {"state": "JobComplete", "records_processed": total, "processing_ms": ms}
        )
        return max(total, 1)

    def _finish_query(self, job: dict[str, Any], changes: dict[str, Any]) -> None:
        now = values.to_db_datetime(self.store.clock.now())
        with self.store.transaction() as tx:
            if self.tables.renew_lease(tx.conn, job["id"], self.owner, _wall()):
                self.tables.update_job(
                    tx.conn,
                    job["id"],
                    {**changes, "lease_owner": None, "lease_until": None, "system_modstamp": now},
                    states=["InProgress"],
                )

    def _run_query(self, job: dict[str, Any], session: accounts.Session) -> int:
        compiled = self.org.queries.compile(
            job["query"],
            self.org.caller(session),
            version=job["api_version"],
            include_deleted=job["operation"] == "queryAll",
        )
        stream.check_bulk(compiled)
        columns = stream.columns(compiled)
        with self.store.transaction() as tx:
            self.tables.delete_chunks(tx.conn, job["id"], ["Result"])  # a dead worker's
        delimiter = csvdata.DELIMITERS[job["column_delimiter"]]
        line = csvdata.LINE_ENDINGS[job["line_ending"]]
        indexes = [c.index for c in columns]
        converts = [(i, _FORMATS[c.kind]) for i, c in enumerate(columns) if c.kind in _FORMATS]
        total, seq = 0, 0
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line, quoting=csv.QUOTE_ALL)
        pending = 0
        now = values.to_db_datetime(self.store.clock.now())

        def flush() -> None:
            nonlocal seq, pending, buffer, writer
            with self.store.transaction() as tx:
                if not self.tables.renew_lease(
                    tx.conn, job["id"], self.owner, _wall() + QUERY_LEASE
                ):
                    raise _LeaseLost()
                self.tables.insert_chunk(
                    tx.conn,
                    {
                        "job_id": job["id"],
                        "seq": seq,
                        "batch_id": None,
                        "parent_seq": None,
                        "state": "Result",
                        "first_record": total - pending,
                        "records": pending,
                        "data": buffer.getvalue(),
                        "processed": pending,
                        "failed": 0,
                        "success": None,
                        "failures": None,
                        "state_message": None,
                        "processing_ms": 0,
                        "created_date": now,
                        "system_modstamp": now,
                    },
                )
            seq, pending = seq + 1, 0
            buffer = io.StringIO()
            writer = csv.writer(
                buffer, delimiter=delimiter, lineterminator=line, quoting=csv.QUOTE_ALL
            )

        def shaped(row: Any) -> list[Any]:
            out = [row[i] for i in indexes]
            for position, convert in converts:
                out[position] = convert(out[position])
            return out

        with stream.rows(self.org.queries, compiled) as rows:
            while block := list(itertools.islice(rows, RESULT_ROWS)):
                writer.writerows(map(shaped, block))
                total += len(block)
                pending = len(block)
                flush()
        return total


class _V1Refused(errors.OpenCadenceError):
    """A 1.0 query batch whose query cannot run (the batch fails with its message)."""

    def __init__(self, cause: errors.OpenCadenceError) -> None:
        super().__init__(
            f"InvalidBatch : Failed to process query: {cause.error_code}: {cause.message}"
        )
        self.cause = cause


def _boolean(value: Any) -> str:
    return "" if value is None else ("true" if value else "false")


def _datetime(value: Any) -> str:
    """The database's ``...+0000`` as the Bulk API's ``...Z``."""
    if value is None:
        return ""
    text = str(value)
    return text[:-5] + "Z" if text.endswith("+0000") else text


_FORMATS: dict[str, Callable[[Any], str]] = {"boolean": _boolean, "datetime": _datetime}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+0000$")


def _epoch_ms(record: dict[str, Any], path: list[str]) -> None:
    """Bulk 1.0 JSON writes dateTimes as milliseconds since the epoch."""
    node: Any = record
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        value = node.get(path[-1])
        if isinstance(value, str) and _DATETIME.match(value):
            moment = values.parse_datetime(value).replace(tzinfo=UTC)
            node[path[-1]] = int(moment.timestamp() * 1000)


def _csv_record(header: list[str], row: list[str]) -> dict[str, Any]:
    """An uploaded row: an empty value is left out (nothing set), ``#N/A`` sets null."""
    return {
        name: (None if value == csvdata.NULL else value)
        for name, value in zip(header, row)
        if value != ""
    }


def _json_record(given: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v == csvdata.NULL else v) for k, v in given.items() if k != "attributes"}


def _pop_id(body: dict[str, Any]) -> str:
    key = next((k for k in body if k.lower() == "id"), None)
    value = body.pop(key, None) if key is not None else None
    if not isinstance(value, str) or not value:
        raise errors.MissingArgument("Id not specified in an update call", fields=["Id"])
    return value


def _row_id(record: dict[str, Any]) -> str:
    value = next((v for k, v in record.items() if k.lower() == "id"), "")
    return value if isinstance(value, str) else ""


def _csv_results(
    job: dict[str, Any],
    rows: list[list[str]],
    items: list[dict[str, Any]],
    outcomes: list[Outcome],
) -> dict[str, Any]:
    success, failures = [], []
    for row, item, outcome in zip(rows, items, outcomes):
        if isinstance(outcome, errors.OpenCadenceError):
            failures.append([_row_id(item), csvdata.error_text(outcome), *row])
        else:
            success.append([outcome[0], "true" if outcome[1] else "false", *row])
    return {
        "success": csvdata.quoted_text(success) if success else None,
        "failures": csvdata.quoted_text(failures) if failures else None,
    }


def _v1_result(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, errors.OpenCadenceError):
        return {
            "success": False,
            "created": False,
            "id": None,
            "errors": [
                {
                    "fields": outcome.fields,
                    "message": outcome.message,
                    "statusCode": outcome.error_code,
                }
            ],
        }
    return {"success": True, "created": outcome[1], "id": outcome[0], "errors": []}
