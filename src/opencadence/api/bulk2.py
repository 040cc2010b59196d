"""Bulk API 2.0 under ``/services/data/vXX.X/jobs/ingest`` and ``/jobs/query``.

Handlers authenticate first (401 before a body is read, as every REST endpoint), then call
``bulk.jobs.Bulk``. An upload (PUT ``.../batches``) is streamed to a temporary file on disk as
it arrives, never held in memory, and parsed from there; results and query pages are
streamed back a chunk at a time. Errors answer Bulk API 2.0's body, ``[{"errorCode",
"message"}]`` (no ``fields`` key).
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies, rest
from opencadence.bulk import jobs
from opencadence.org import Org
from opencadence.storage import accounts

Handler = Callable[[Request, jobs.Bulk, accounts.Session, str], Any]


def service(request: Request) -> jobs.Bulk:
    """The org's Bulk API jobs (made on first use, kept with the app)."""
    state = request.app.state
    found: jobs.Bulk | None = getattr(state, "bulk", None)
    if found is None:
        found = state.bulk = jobs.Bulk(state.org)
    return found


def error_response(request: Request, exc: errors.OpenCadenceError) -> Response:
    response = rest.json_response(
        [{"errorCode": exc.error_code, "message": exc.message}], exc.http_status
    )
    rest.add_limit_info(request, response)
    return response


def endpoint(handler: Handler, *, body: bool = True) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        org: Org = request.app.state.org
        try:

            def authenticate() -> tuple[accounts.Session, str]:
                session, version = rest.session_of(request, org), rest.version_of(request)
                request.state.api_usage = org.count_api_request()
                return session, version

            session, version = await rest.blocking(authenticate)
            if body and request.method in ("POST", "PATCH"):
                request.state.body = await rest.read_json(request)
            if request.method == "PUT":
                request.state.spool = await _spool(request)
            bulk = service(request)
            try:
                result = await rest.blocking(lambda: handler(request, bulk, session, version))
            finally:
                spool = getattr(request.state, "spool", None)
                if spool is not None:
                    spool.close()
        except errors.InvalidSession:
            raise  # the REST 401 body, which clients recognise
        except errors.OpenCadenceError as exc:
            return error_response(request, exc)
        response = result if isinstance(result, Response) else rest.json_response(result)
        rest.add_limit_info(request, response)
        return response

    return run


async def _spool(request: Request) -> Any:
    """The body in a temporary file on disk, as it streams in (at most MAX_UPLOAD_BYTES)."""
    limit = jobs.MAX_UPLOAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise bodies.too_large(limit)
    spool = tempfile.TemporaryFile(prefix="opencadence-bulk-")
    size = 0
    try:
        async for piece in request.stream():
            size += len(piece)
            if size > limit:
                raise bodies.too_large(limit)
            spool.write(piece)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


# --- ingest ---------------------------------------------------------------------------------


def ingest_jobs(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    if request.method == "POST":
        return bulk.create_ingest(session, request.state.body, version)
    return bulk.list_jobs(session, "ingest", version, request.query_params.get("queryLocator"))


def ingest_job(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    job_id = request.path_params["job"]
    if request.method == "PATCH":
        return bulk.set_ingest_state(session, job_id, request.state.body.get("state"))
    if request.method == "DELETE":
        bulk.delete_job(session, job_id, "ingest")
        return Response(status_code=204)
    return jobs.ingest_info(bulk.job(session, job_id, "2.0", "ingest"), full=True)


def upload(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    bulk.upload(session, request.path_params["job"], request.state.spool)
    return Response(status_code=201)


def _results(which: str) -> Handler:
    def handler(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
        pieces = bulk.ingest_results(session, request.path_params["job"], which)
        return StreamingResponse(
            (p.encode("utf-8") for p in pieces), media_type="text/csv; charset=UTF-8"
        )

    return handler


# --- query ----------------------------------------------------------------------------------


def query_jobs(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    if request.method == "POST":
        return bulk.create_query(session, request.state.body, version)
    return bulk.list_jobs(session, "query", version, request.query_params.get("queryLocator"))


def query_job(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    job_id = request.path_params["job"]
    if request.method == "PATCH":
        return bulk.abort_query(session, job_id, request.state.body.get("state"))
    if request.method == "DELETE":
        bulk.delete_job(session, job_id, "query")
        return Response(status_code=204)
    return jobs.query_info(bulk.job(session, job_id, "2.0", "query"), full=True)


def query_results(
    request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str
) -> Any:
    given = request.query_params.get("maxRecords")
    max_records = None
    if given:
        if not given.isascii() or not given.isdigit() or int(given) < 1:
            raise errors.InvalidOperation(f"maxRecords: a positive integer, not {given!r}")
        max_records = int(given)
    locator = request.query_params.get("locator") or None
    if locator == "null":
        locator = None
    count, after, pieces = bulk.query_results(
        session, request.path_params["job"], locator, max_records
    )
    return StreamingResponse(
        (p.encode("utf-8") for p in pieces),
        media_type="text/csv; charset=UTF-8",
        headers={"Sforce-Locator": after, "Sforce-NumberOfRecords": str(count)},
    )


def routes() -> list[Route]:
    base = "/services/data/v{version}/jobs"
    i, q = f"{base}/ingest", f"{base}/query"
    out = []
    for slash in ("", "/"):
        out += [
            Route(i + slash, endpoint(ingest_jobs), methods=["GET", "POST"]),
            Route(q + slash, endpoint(query_jobs), methods=["GET", "POST"]),
            Route(f"{i}/{{job}}{slash}", endpoint(ingest_job), methods=["GET", "PATCH", "DELETE"]),
            Route(f"{i}/{{job}}/batches{slash}", endpoint(upload), methods=["PUT"]),
            Route(f"{q}/{{job}}{slash}", endpoint(query_job), methods=["GET", "PATCH", "DELETE"]),
            Route(f"{q}/{{job}}/results{slash}", endpoint(query_results), methods=["GET"]),
        ]
        for which in ("successfulResults", "failedResults", "unprocessedrecords"):
            out.append(
                Route(f"{i}/{{job}}/{which}{slash}", endpoint(_results(which)), methods=["GET"])
            )
    return out
