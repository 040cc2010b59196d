"""Bulk API jobs as the API layers see them: create, upload, close, abort, delete, list, read
results; the job info shapes of Bulk API 2.0 (ingest and query) and 1.0 (JSON jobs).

Nothing here writes records: the workers do (``runner``). An upload is parsed from the spool
file the API streamed it into, a few thousand rows per chunk row, so no body is ever held in
memory; results are read back a chunk at a time. A job is visible to the user who created it
and to administrators; to anyone else it does not exist (NOT_FOUND).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import json
import secrets
import threading
import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from opencadence import errors, ids
from opencadence.bulk import csvdata
from opencadence.metadata import model
from opencadence.org import Org
from opencadence.soql import stream
from opencadence.storage import accounts, values
from opencadence.storage.bulk import BulkTables

#: Rows per ingest chunk: what one worker transaction writes.
CHUNK_ROWS = 2000
#: Bulk 1.0 batch limit (records) and Bulk 2.0 upload limit (bytes), as Salesforce's.
V1_BATCH_RECORDS = 10_000
MAX_UPLOAD_BYTES = 150 * 1024 * 1024
#: Jobs per page of a job listing.
LIST_PAGE = 1000
#: Records per query results page when the client gives no maxRecords.
DEFAULT_MAX_RECORDS = 100_000

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
#: The states a 2.0 job leaves no more.
FINAL_STATES = ("JobComplete", "Failed", "Aborted")
#: Job states whose chunks the workers take.
RUNNABLE = ("UploadComplete", "InProgress", "Open", "Closed")


class InvalidJobState(errors.OpenCadenceError):
    """The job is not in a state that allows this."""

    error_code = "INVALIDJOBSTATE"
    http_status = 400


class InvalidJob(errors.OpenCadenceError):
    """The job's definition is not valid (Bulk 1.0: InvalidJob)."""

    error_code = "InvalidJob"
    http_status = 400


class InvalidBatch(errors.OpenCadenceError):
    """The batch's data is not valid (Bulk 1.0: InvalidBatch)."""

    error_code = "InvalidBatch"
    http_status = 400


class InvalidLocator(errors.OpenCadenceError):
    """The results locator is not one this job handed out."""

    error_code = "INVALID_LOCATOR"
    http_status = 400


#: Per store: the events set when one of its jobs has work for the workers (the worker of this
#: process waits on its event when idle). Weak both ways: a dropped Store or Worker goes.
_READY: weakref.WeakKeyDictionary[Any, weakref.WeakSet[threading.Event]] = (
    weakref.WeakKeyDictionary()
)


def on_ready(store: Any, event: threading.Event) -> None:
    """Set ``event`` whenever a job of ``store`` becomes ready to run in this process."""
    _READY.setdefault(store, weakref.WeakSet()).add(event)


def _ready(store: Any) -> None:
    for event in list(_READY.get(store, ())):
        event.set()


def new_id(prefix: str) -> str:
    """750 jobs, 751 batches, 752 result sets (Salesforce's key prefixes)."""
    return ids.to18(prefix + "".join(secrets.choice(ids.BASE62) for _ in range(12)))


def locator_of(position: int) -> str:
    """Salesforce's results locators are base64 of the next record's position."""
    return base64.b64encode(str(position).encode()).decode().rstrip("=")


def position_of(locator: str) -> int:
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidLocator(f"Invalid locator: {locator}") from None
    if not text.isascii() or not text.isdigit():
        raise InvalidLocator(f"Invalid locator: {locator}")
    return int(text)


def _text_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.JsonParserError(f"{name}: expected a string, got {value!r}")
    return value


class Bulk:
    """The jobs of one org."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.store = org.store
        self.tables = BulkTables(org.store.meta)

    def _now(self) -> datetime:
        return values.to_db_datetime(self.store.clock.now())

    # -- jobs, both APIs ----------------------------------------------------------------------

    def _new_job(
        self, session: accounts.Session, api: str, kind: str, version: str, **fields: Any
    ) -> dict[str, Any]:
        now = self._now()
        row: dict[str, Any] = {
            "id": new_id("750"),
            "api": api,
            "kind": kind,
            "object": None,
            "external_id": None,
            "content_type": "CSV",
            "column_delimiter": "COMMA",
            "line_ending": "LF",
            "concurrency_mode": "Parallel",
            "api_version": version,
            "query": None,
            "created_by": session.user_id,
            "time_zone": session.time_zone,
            "admin": session.is_admin,
            "permissions": json.dumps(sorted(session.permission_sets)),
            "created_date": now,
            "system_modstamp": now,
            "header": None,
            "error_message": None,
            "uploaded": False,
            "records_processed": 0,
            "records_failed": 0,
            "processing_ms": 0,
            "retries": 0,
            "lease_owner": None,
            "lease_until": None,
            **fields,
        }
        with self.store.transaction(session.user_id) as tx:
            self.tables.insert_job(tx.conn, row)
        return row

    def job(self, session: accounts.Session, job_id: str, api: str, kind: str) -> dict[str, Any]:
        """The job, if the session may see it and it is of this API and kind (else NOT_FOUND)."""
        try:
            canonical = ids.parse(job_id)
        except errors.OpenCadenceError:
            raise errors.NotFound("The requested resource does not exist") from None
        with self.store.reading() as conn:
            found = self.tables.job(conn, canonical)
        if (
            found is None
            or found["api"] != api
            or found["kind"] != kind
            or not (session.is_admin or found["created_by"] == session.user_id)
        ):
            raise errors.NotFound("The requested resource does not exist")
        return found

    def _ingest_object(self, name: Any, version: str, operation: str) -> model.ObjectDef:
        if not isinstance(name, str) or not name:
            raise InvalidJob("object: the sObject type is required")
        obj = self.org.registry.get(name)
        if obj is None or not obj.visible_in(version):
            raise InvalidJob(f"Entity '{name}' is not supported by the Bulk API.")
        call = {"insert": "create", "hardDelete": "delete"}.get(operation, operation)
        if not obj.supports(call):
            raise InvalidJob(f"Entity '{obj.name}' is not supported for {operation}")
        return obj

    def _external_id(self, obj: model.ObjectDef, body: dict[str, Any], version: str) -> str:
        key = _text_field(body, "externalIdFieldName")
        if not key:
            raise InvalidJob("externalIdFieldName: required for upsert")
        return self.org.external_id_field(obj.name, key, version).name

    # -- Bulk API 2.0 ingest ------------------------------------------------------------------

    def create_ingest(
        self, session: accounts.Session, body: dict[str, Any], version: str
    ) -> dict[str, Any]:
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise errors.InvalidOperation(
                f"operation: expected one of {', '.join(INGEST_OPERATIONS)}, got {operation!r}"
            )
        obj = self._ingest_object(body.get("object"), version, str(operation))
        if operation == "hardDelete" and not session.is_admin:
            raise errors.InsufficientAccess(
                "hardDelete requires the Bulk API Hard Delete permission (administrators)"
            )
        external = self._external_id(obj, body, version) if operation == "upsert" else None
        delimiter = _text_field(body, "columnDelimiter") or "COMMA"
        line = _text_field(body, "lineEnding") or "LF"
        content = _text_field(body, "contentType") or "CSV"
        if delimiter not in csvdata.DELIMITERS:
            raise errors.InvalidOperation(f"columnDelimiter: unknown value {delimiter}")
        if line not in csvdata.LINE_ENDINGS:
            raise errors.InvalidOperation(f"lineEnding: unknown value {line}")
        if content != "CSV":
            raise errors.InvalidOperation(f"contentType: only CSV is supported, not {content}")
        row = self._new_job(
            session,
            "2.0",
            "ingest",
            version,
            operation=operation,
            object=obj.name,
            external_id=external,
            state="Open",
            column_delimiter=delimiter,
            line_ending=line,
        )
        return ingest_info(row, full=False)

    def upload(self, session: accounts.Session, job_id: str, spool: IO[bytes]) -> None:
        """PUT .../batches: the job's one upload, read from its spool file into chunks."""
        job = self.job(session, job_id, "2.0", "ingest")
        if job["state"] != "Open":
            raise InvalidJobState(f"Job is not in Open state: {job['state']}")
        if job["uploaded"]:
            raise InvalidJobState("Found multiple uploads for the job: only one is allowed")
        reader = csv.reader(
            codecs.getreader("utf-8-sig")(spool),
            delimiter=csvdata.DELIMITERS[job["column_delimiter"]],
        )
        try:
            header = next(reader, None)
            if not header:
                raise InvalidBatch("The uploaded data has no header row")
            header = [h.strip() for h in header]
            problem = self._check_header(job, header)
            with self.store.transaction(session.user_id) as tx:
                seq, count = self._store_chunks(tx.conn, job["id"], reader, len(header))
                self.tables.update_job(
                    tx.conn,
                    job["id"],
                    {
                        "uploaded": True,
                        "header": json.dumps(header),
                        "error_message": problem,
                        "system_modstamp": self._now(),
                    },
                    states=["Open"],
                )
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidBatch(f"The uploaded data is not valid UTF-8 CSV: {exc}") from None

    def _store_chunks(self, conn: Any, job_id: str, reader: Any, width: int) -> tuple[int, int]:
        seq, count, rows = 0, 0, []
        now = self._now()
        for row in reader:
            if not row or row == [""]:
                continue
            if len(row) != width:
                raise InvalidBatch(
                    f"Row {count + 1} has {len(row)} values where the header has {width}"
                )
            rows.append(row)
            if len(rows) == CHUNK_ROWS:
                self._chunk(conn, job_id, seq, count, rows, now, "Open")
                seq, count, rows = seq + 1, count + len(rows), []
        if rows:
            self._chunk(conn, job_id, seq, count, rows, now, "Open")
            seq, count = seq + 1, count + len(rows)
        return seq, count

    def _chunk(
        self,
        conn: Any,
        job_id: str,
        seq: int,
        first: int,
        rows: list[list[str]] | str,
        now: datetime,
        state: str,
        *,
        batch_id: str | None = None,
        count: int | None = None,
    ) -> None:
        self.tables.insert_chunk(
            conn,
            {
                "job_id": job_id,
                "seq": seq,
                "batch_id": batch_id,
                "parent_seq": None,
                "state": state,
                "first_record": first,
                "records": count if count is not None else len(rows),
                "data": rows if isinstance(rows, str) else csvdata.internal_text(rows),
                "processed": 0,
                "failed": 0,
                "success": None,
                "failures": None,
                "state_message": None,
                "processing_ms": 0,
                "created_date": now,
                "system_modstamp": now,
            },
        )

    def _check_header(self, job: dict[str, Any], header: list[str]) -> str | None:
        """The job's error message when the header cannot be loaded (the job then fails when
        closed, as Salesforce's does), else None."""
        obj = self.org.registry.object(job["object"])
        seen: set[str] = set()
        for name in header:
            f = obj.field(name)
            if f is None or not f.visible_in(job["api_version"]):
                return f"InvalidBatch : Field name not found : {name}"
            if f.name in seen:
                return f"InvalidBatch : Duplicate field name: {name}"
            seen.add(f.name)
        op = job["operation"]
        if op in ("update", "delete", "hardDelete") and "Id" not in seen:
            return "InvalidBatch : Field name not found : Id"
        if op in ("delete", "hardDelete") and seen != {"Id"}:
            return "InvalidBatch : The 'delete' batch must contain only 'Id'"
        if op == "upsert" and job["external_id"] not in seen:
            return f"InvalidBatch : Field name not found : {job['external_id']}"
        return None

    def set_ingest_state(
        self, session: accounts.Session, job_id: str, state: Any
    ) -> dict[str, Any]:
        job = self.job(session, job_id, "2.0", "ingest")
        now = self._now()
        with self.store.transaction(session.user_id) as tx:
            if state == "UploadComplete":
                if job["state"] != "Open":
                    raise InvalidJobState(f"Job is not in Open state: {job['state']}")
                if job["error_message"]:
                    self.tables.set_chunks_state(tx.conn, job["id"], ["Open"], "NotProcessed", now)
                    new = "Failed"
                elif self.tables.count_chunks(tx.conn, job["id"], ["Open"]) == 0:
                    new = "JobComplete"  # nothing was uploaded: nothing to do
                else:
                    self.tables.set_chunks_state(tx.conn, job["id"], ["Open"], "Queued", now)
                    new = "UploadComplete"
                self.tables.update_job(
                    tx.conn, job["id"], {"state": new, "system_modstamp": now}, states=["Open"]
                )
                tx.on_commit.append(lambda: _ready(self.store))
            elif state == "Aborted":
                self._abort(tx.conn, job, now)
            else:
                raise InvalidJobState(f"state: expected UploadComplete or Aborted, got {state!r}")
        return ingest_info(self.job(session, job_id, "2.0", "ingest"), full=False)

    def _abort(self, conn: Any, job: dict[str, Any], now: datetime) -> None:
        if job["state"] in FINAL_STATES or job["state"] == "Closed":
            raise InvalidJobState(f"Aborting already {job['state']} Job not allowed")
        # chunks first, then the job: the order a worker locks them in (no deadlock)
        self.tables.set_chunks_state(conn, job["id"], ["Open", "Queued"], "NotProcessed", now)
        self.tables.update_job(
            conn,
            job["id"],
            {"state": "Aborted", "system_modstamp": now},
            states=[job["state"], "UploadComplete", "InProgress", "Open"],
        )

    def delete_job(self, session: accounts.Session, job_id: str, kind: str) -> None:
        job = self.job(session, job_id, "2.0", kind)
        if job["state"] not in (*FINAL_STATES, "UploadComplete") or (
            kind == "ingest" and job["state"] == "UploadComplete"
        ):
            raise InvalidJobState(
                f"Job can't be deleted in state {job['state']}: abort it or wait until it ends"
            )
        with self.store.transaction(session.user_id) as tx:
            self.tables.delete_job(tx.conn, job["id"])

    def list_jobs(
        self, session: accounts.Session, kind: str, version: str, locator: str | None
    ) -> dict[str, Any]:
        after = None
        if locator:
            try:
                last = self.job(session, locator, "2.0", kind)
            except errors.NotFound:
                raise InvalidLocator(f"Invalid queryLocator: {locator}") from None
            after = (last["created_date"], last["id"])
        with self.store.reading() as conn:
            found = self.tables.list_jobs(
                conn,
                kind=kind,
                api="2.0",
                created_by=None if session.is_admin else session.user_id,
                after=after,
                limit=LIST_PAGE + 1,
            )
        more = len(found) > LIST_PAGE
        found = found[:LIST_PAGE]
        shaped = [ingest_info(j, full=False) if kind == "ingest" else query_info(j) for j in found]
        for item in shaped:
            item["jobType"] = "V2Ingest" if kind == "ingest" else "V2Query"
        next_url = (
            f"/services/data/v{version}/jobs/{kind}?queryLocator={found[-1]['id']}"
            if more
            else None
        )
        return {"done": not more, "records": shaped, "nextRecordsUrl": next_url}

    def ingest_results(self, session: accounts.Session, job_id: str, which: str) -> Iterator[str]:
        """successfulResults, failedResults or unprocessedrecords as CSV text pieces."""
        job = self.job(session, job_id, "2.0", "ingest")
        header: list[str] = json.loads(job["header"] or "[]")
        if which == "unprocessedrecords":
            return self._pieces(job, ["Open", "Queued", "NotProcessed"], "data", header)
        if job["state"] not in FINAL_STATES:
            raise InvalidJobState(f"Job is not complete: its state is {job['state']}")
        if which == "successfulResults":
            return self._pieces(job, ["Completed"], "success", ["sf__Id", "sf__Created", *header])
        return self._pieces(job, ["Completed"], "failures", ["sf__Id", "sf__Error", *header])

    def _pieces(
        self, job: dict[str, Any], states: list[str], column: str, header: list[str]
    ) -> Iterator[str]:
        with self.store.reading() as conn:
            chunks = self.tables.chunk_list(conn, job["id"], states)

        def generate() -> Iterator[str]:
            if header:
                yield csvdata.header_line(header)
            for chunk in chunks:
                with self.store.reading() as conn:
                    text = self.tables.chunk_text(conn, job["id"], chunk["seq"], column)
                if not text:
                    continue
                if column == "data":  # the uploaded rows, quoted as results are
                    yield csvdata.quoted_text(csvdata.internal_rows(text))
                else:
                    yield text

        return generate()

    # -- Bulk API 2.0 query -------------------------------------------------------------------

    def create_query(
        self, session: accounts.Session, body: dict[str, Any], version: str
    ) -> dict[str, Any]:
        operation = body.get("operation") or "query"
        if operation not in QUERY_OPERATIONS:
            raise errors.InvalidOperation(
                f"operation: expected query or queryAll, got {operation!r}"
            )
        text = _text_field(body, "query")
        if not text:
            raise errors.InvalidOperation("query: a SOQL query is required")
        delimiter = _text_field(body, "columnDelimiter") or "COMMA"
        line = _text_field(body, "lineEnding") or "LF"
        if delimiter not in csvdata.DELIMITERS:
            raise errors.InvalidOperation(f"columnDelimiter: unknown value {delimiter}")
        if line not in csvdata.LINE_ENDINGS:
            raise errors.InvalidOperation(f"lineEnding: unknown value {line}")
        compiled = self.org.queries.compile(
            text,
            self.org.caller(session),
            version=version,
            include_deleted=operation == "queryAll",
        )
        stream.check_bulk(compiled)
        row = self._new_job(
            session,
            "2.0",
            "query",
            version,
            operation=operation,
            object=compiled.bq.obj.name,
            state="UploadComplete",
            query=text,
            column_delimiter=delimiter,
            line_ending=line,
            uploaded=True,
            header=json.dumps([c.name for c in stream.columns(compiled)]),
        )
        _ready(self.store)
        return query_info(row)

    def abort_query(self, session: accounts.Session, job_id: str, state: Any) -> dict[str, Any]:
        job = self.job(session, job_id, "2.0", "query")
        if state != "Aborted":
            raise InvalidJobState(f"state: expected Aborted, got {state!r}")
        with self.store.transaction(session.user_id) as tx:
            if job["state"] in FINAL_STATES:
                raise InvalidJobState(f"Aborting already {job['state']} Job not allowed")
            self.tables.update_job(
                tx.conn,
                job["id"],
                {"state": "Aborted", "system_modstamp": self._now(), "lease_owner": None},
                states=["UploadComplete", "InProgress"],
            )
        return query_info(self.job(session, job_id, "2.0", "query"))

    def query_results(
        self,
        session: accounts.Session,
        job_id: str,
        locator: str | None,
        max_records: int | None,
    ) -> tuple[int, str, Iterator[str]]:
        """(records in this page, the next page's locator or "null", the CSV text pieces)."""
        job = self.job(session, job_id, "2.0", "query")
        if job["state"] != "JobComplete":
            raise InvalidJobState(f"Job is not complete: its state is {job['state']}")
        total = int(job["records_processed"])
        start = position_of(locator) if locator else 0
        if start > total:
            raise InvalidLocator(f"Invalid locator: {locator}")
        wanted = DEFAULT_MAX_RECORDS if max_records is None else max_records
        count = max(0, min(wanted, total - start))
        end = start + count
        after = locator_of(end) if end < total else "null"
        delimiter = csvdata.DELIMITERS[job["column_delimiter"]]
        line = csvdata.LINE_ENDINGS[job["line_ending"]]
        header = json.loads(job["header"] or "[]")
        return count, after, self._page(job["id"], start, end, header, delimiter, line)

    def _page(
        self, job_id: str, start: int, end: int, header: list[str], delimiter: str, line: str
    ) -> Iterator[str]:
        yield csvdata.quoted_text([header], delimiter, line)
        position = start
        while position < end:
            with self.store.reading() as conn:
                chunk = self.tables.chunk_at(conn, job_id, position)
                text = (
                    None
                    if chunk is None
                    else self.tables.chunk_text(conn, job_id, chunk["seq"], "data")
                )
            if chunk is None or text is None:
                return
            first, size = int(chunk["first_record"]), int(chunk["records"])
            if position == first and end >= first + size:
                yield text
            else:
                skip, take = position - first, min(end, first + size) - position
                for i, record in enumerate(csvdata.split_records(text, line)):
                    if i >= skip + take:
                        break
                    if i >= skip:
                        yield record
            position = min(end, first + size)

    # -- Bulk API 1.0 (JSON) ------------------------------------------------------------------

    def v1_create(
        self, session: accounts.Session, body: dict[str, Any], version: str
    ) -> dict[str, Any]:
        operation = body.get("operation")
        if operation not in (*INGEST_OPERATIONS, *QUERY_OPERATIONS):
            raise InvalidJob(f"Invalid operation: {operation!r}")
        content = _text_field(body, "contentType") or "JSON"
        if content != "JSON":
            raise InvalidJob(f"Unsupported content type: {content} (JSON only)")
        mode = body.get("concurrencyMode", "Parallel")
        mode = {0: "Parallel", 1: "Serial"}.get(mode, mode) if not isinstance(mode, bool) else mode
        if mode not in ("Parallel", "Serial"):
            raise InvalidJob(f"Invalid concurrencyMode: {mode!r}")
        if operation in QUERY_OPERATIONS:
            name = body.get("object")
            obj = self.org.registry.get(name) if isinstance(name, str) else None
            if obj is None or not obj.supports("query"):
                raise InvalidJob(f"Entity '{name}' is not supported by the Bulk API.")
        else:
            obj = self._ingest_object(body.get("object"), version, str(operation))
        if operation == "hardDelete" and not session.is_admin:
            raise InvalidJob("hardDelete requires the Bulk API Hard Delete permission")
        external = self._external_id(obj, body, version) if operation == "upsert" else None
        row = self._new_job(
            session,
            "1.0",
            "query" if operation in QUERY_OPERATIONS else "ingest",
            version,
            operation=operation,
            object=obj.name,
            external_id=external,
            state="Open",
            content_type="JSON",
            concurrency_mode=mode,
        )
        return self.v1_info(row)

    def v1_job(self, session: accounts.Session, job_id: str) -> dict[str, Any]:
        try:
            return self.job(session, job_id, "1.0", "ingest")
        except errors.NotFound:
            try:
                return self.job(session, job_id, "1.0", "query")
            except errors.NotFound:
                raise InvalidJob(f"Unable to find object: {job_id}") from None

    def v1_set_state(self, session: accounts.Session, job_id: str, state: Any) -> dict[str, Any]:
        job = self.v1_job(session, job_id)
        now = self._now()
        with self.store.transaction(session.user_id) as tx:
            if state == "Closed":
                if job["state"] != "Open":
                    raise InvalidJobState(f"Job is not open: {job['state']}")
                self.tables.update_job(
                    tx.conn, job["id"], {"state": "Closed", "system_modstamp": now}, states=["Open"]
                )
            elif state == "Aborted":
                if job["state"] not in ("Open", "Closed"):
                    raise InvalidJobState(f"Job is {job['state']}: it cannot be aborted")
                self.tables.set_chunks_state(tx.conn, job["id"], ["Queued"], "NotProcessed", now)
                self.tables.update_job(
                    tx.conn,
                    job["id"],
                    {"state": "Aborted", "system_modstamp": now},
                    states=["Open", "Closed"],
                )
            else:
                raise InvalidJob(f"Invalid state: {state!r}")
        return self.v1_info(self.v1_job(session, job_id))

    def v1_add_batch(self, session: accounts.Session, job_id: str, raw: bytes) -> dict[str, Any]:
        job = self.v1_job(session, job_id)
        if job["state"] != "Open":
            raise InvalidJobState(f"Job is not open: {job['state']}")
        if job["kind"] == "query":
            text = raw.decode("utf-8", "replace").strip()
            compiled = self.org.queries.compile(
                text,
                self.org.caller(session),
                version=job["api_version"],
                include_deleted=job["operation"] == "queryAll",
            )
            stream.check_bulk(compiled)
            data, count = text, 0
        else:
            try:
                records = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise InvalidBatch("Failed to parse the batch: not JSON") from None
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise InvalidBatch("The batch must be a JSON array of records")
            if len(records) > V1_BATCH_RECORDS:
                raise InvalidBatch(f"Records in a batch are limited to {V1_BATCH_RECORDS}")
            data, count = json.dumps(records), len(records)
        batch_id = new_id("751")
        now = self._now()
        with self.store.transaction(session.user_id) as tx:
            seq = self.tables.next_seq(tx.conn, job["id"])
            self._chunk(
                tx.conn, job["id"], seq, 0, data, now, "Queued", batch_id=batch_id, count=count
            )
        _ready(self.store)
        return self.v1_batch(session, job_id, batch_id)

    def _v1_chunk(self, session: accounts.Session, job_id: str, batch_id: str) -> dict[str, Any]:
        job = self.v1_job(session, job_id)
        with self.store.reading() as conn:
            chunk = self.tables.chunk_by_batch(conn, batch_id) if ids.is_valid(batch_id) else None
        if chunk is None or chunk["job_id"] != job["id"]:
            raise InvalidBatch(f"Unable to find batch: {batch_id}")
        return chunk

    def v1_batch(self, session: accounts.Session, job_id: str, batch_id: str) -> dict[str, Any]:
        return v1_batch_info(self._v1_chunk(session, job_id, ids.parse(batch_id)))

    def v1_batches(self, session: accounts.Session, job_id: str) -> dict[str, Any]:
        job = self.v1_job(session, job_id)
        with self.store.reading() as conn:
            chunks = self.tables.chunk_list(conn, job["id"])
        return {"batchInfo": [v1_batch_info(c) for c in chunks if c["batch_id"]]}

    def v1_batch_result(self, session: accounts.Session, job_id: str, batch_id: str) -> str:
        """A DML batch's results (JSON array), or a query batch's result set ids."""
        chunk = self._v1_chunk(session, job_id, ids.parse(batch_id))
        if chunk["state"] != "Completed":
            raise InvalidBatch(f"Batch not completed: {chunk['state']}")
        with self.store.reading() as conn:
            job = self.tables.job(conn, chunk["job_id"])
            assert job is not None
            if job["kind"] == "query":
                results = [
                    c
                    for c in self.tables.chunk_list(conn, job["id"], ["Result"])
                    if c["parent_seq"] == chunk["seq"]
                ]
                return json.dumps([ids.make_id("752", c["seq"]) for c in results])
            return self.tables.chunk_text(conn, job["id"], chunk["seq"], "success") or "[]"

    def v1_query_result(
        self, session: accounts.Session, job_id: str, batch_id: str, result_id: str
    ) -> str:
        chunk = self._v1_chunk(session, job_id, ids.parse(batch_id))
        with self.store.reading() as conn:
            results = [
                c
                for c in self.tables.chunk_list(conn, chunk["job_id"], ["Result"])
                if c["parent_seq"] == chunk["seq"]
                and ids.make_id("752", c["seq"]).lower() == result_id[:18].lower()
            ]
            if not results:
                raise InvalidBatch(f"Unable to find result: {result_id}")
            return self.tables.chunk_text(conn, chunk["job_id"], results[0]["seq"], "data") or "[]"

    def v1_batch_request(self, session: accounts.Session, job_id: str, batch_id: str) -> str:
        chunk = self._v1_chunk(session, job_id, ids.parse(batch_id))
        with self.store.reading() as conn:
            return self.tables.chunk_text(conn, chunk["job_id"], chunk["seq"], "data") or "[]"

    def v1_info(self, job: dict[str, Any]) -> dict[str, Any]:
        with self.store.reading() as conn:
            chunks = [c for c in self.tables.chunk_list(conn, job["id"]) if c["batch_id"]]
        count = {s: sum(1 for c in chunks if c["state"] == s) for s in _V1_BATCH_STATES}
        return {
            "apexProcessingTime": 0,
            "apiActiveProcessingTime": int(job["processing_ms"]),
            "apiVersion": float(job["api_version"]),
            "assignmentRuleId": None,
            "concurrencyMode": job["concurrency_mode"],
            "contentType": job["content_type"],
            "createdById": job["created_by"],
            "createdDate": values.format_datetime(job["created_date"]),
            "externalIdFieldName": job["external_id"],
            "fastPathEnabled": False,
            "id": job["id"],
            "numberBatchesCompleted": count["Completed"],
            "numberBatchesFailed": count["Failed"],
            "numberBatchesInProgress": count["InProgress"],
            "numberBatchesQueued": count["Queued"],
            "numberBatchesTotal": len(chunks),
            "numberRecordsFailed": int(job["records_failed"]),
            "numberRecordsProcessed": int(job["records_processed"]),
            "numberRetries": int(job["retries"]),
            "object": job["object"],
            "operation": job["operation"],
            "state": job["state"],
            "systemModstamp": values.format_datetime(job["system_modstamp"]),
            "totalProcessingTime": int(job["processing_ms"]),
        }


_V1_BATCH_STATES = ("Queued", "InProgress", "Completed", "Failed", "NotProcessed")


def _common(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": job["id"],
        "operation": job["operation"],
        "object": job["object"],
        "createdById": job["created_by"],
        "createdDate": values.format_datetime(job["created_date"]),
        "systemModstamp": values.format_datetime(job["system_modstamp"]),
        "state": job["state"],
    }


def ingest_info(job: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """A 2.0 ingest job's info: as created (``full`` False) or as Get Job Info answers."""
    info = _common(job)
    if job["external_id"]:
        info["externalIdFieldName"] = job["external_id"]
    info.update(
        {
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job["api_version"]),
            "contentUrl": f"services/data/v{job['api_version']}/jobs/ingest/{job['id']}/batches",
            "lineEnding": job["line_ending"],
            "columnDelimiter": job["column_delimiter"],
        }
    )
    if full:
        info.update(
            {
                "jobType": "V2Ingest",
                "numberRecordsProcessed": int(job["records_processed"]),
                "numberRecordsFailed": int(job["records_failed"]),
                "retries": int(job["retries"]),
                "totalProcessingTime": int(job["processing_ms"]),
                "apiActiveProcessingTime": int(job["processing_ms"]),
                "apexProcessingTime": 0,
            }
        )
        if job["state"] == "Failed" and job["error_message"]:
            info["errorMessage"] = job["error_message"]
    return info


def query_info(job: dict[str, Any], *, full: bool = False) -> dict[str, Any]:
    info = _common(job)
    info.update(
        {
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job["api_version"]),
            "lineEnding": job["line_ending"],
            "columnDelimiter": job["column_delimiter"],
        }
    )
    if full:
        info.update(
            {
                "jobType": "V2Query",
                "numberRecordsProcessed": int(job["records_processed"]),
                "retries": int(job["retries"]),
                "totalProcessingTime": int(job["processing_ms"]),
                "isPkChunkingSupported": False,
            }
        )
        if job["state"] == "Failed" and job["error_message"]:
            info["errorMessage"] = job["error_message"]
    return info


def v1_batch_info(chunk: dict[str, Any]) -> dict[str, Any]:
    return {
        "apexProcessingTime": 0,
        "apiActiveProcessingTime": int(chunk["processing_ms"]),
        "createdDate": values.format_datetime(chunk["created_date"]),
        "id": chunk["batch_id"],
        "jobId": chunk["job_id"],
        "numberRecordsFailed": int(chunk["failed"]),
        "numberRecordsProcessed": int(chunk["processed"]),
        "state": chunk["state"],
        "stateMessage": chunk["state_message"],
        "systemModstamp": values.format_datetime(chunk["system_modstamp"]),
        "totalProcessingTime": int(chunk["processing_ms"]),
    }
