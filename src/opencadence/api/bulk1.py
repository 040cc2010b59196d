"""Bulk API 1.0 JSON jobs at ``/services/async/{version}/job``, as simple-salesforce's
``sf.bulk`` uses them: jobs, batches (a JSON array of records, or a SOQL text for query
jobs), batch results, query result sets.

The session comes in ``X-SFDC-Session`` (or ``Authorization: Bearer``). Errors answer Bulk
1.0's JSON body, ``{"exceptionCode", "exceptionMessage"}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies, bulk2, rest, versions
from opencadence.bulk import jobs
from opencadence.org import Org
from opencadence.storage import accounts

#: Bulk 1.0's batch size limit (10 MB).
MAX_BATCH_BYTES = 10 * 1024 * 1024
Handler = Callable[[Request, jobs.Bulk, accounts.Session, str], Any]


def _session(request: Request, org: Org) -> accounts.Session:
    token = request.headers.get("x-sfdc-session", "").strip()
    if not token:
        scheme, _, rest_of = request.headers.get("authorization", "").partition(" ")
        token = rest_of.strip() if scheme.lower() in ("bearer", "oauth") else ""
    if not token:
        raise errors.InvalidSession("Invalid session id")
    return org.accounts.session(token)


def _error(exc: errors.OpenCadenceError) -> Response:
    code = exc.error_code
    status = exc.http_status
    if isinstance(exc, errors.InvalidSession):
        code, status = "InvalidSessionId", 400
    return rest.json_response({"exceptionCode": code, "exceptionMessage": exc.message}, status)


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        org: Org = request.app.state.org
        try:

            def authenticate() -> tuple[accounts.Session, str]:
                session = _session(request, org)
                version = versions.check(request.path_params["version"])
                request.state.api_usage = org.count_api_request()
                return session, version

            session, version = await rest.blocking(authenticate)
            if request.method == "POST":
                request.state.raw = await bodies.read(request, MAX_BATCH_BYTES)
            bulk = bulk2.service(request)
            result = await rest.blocking(lambda: handler(request, bulk, session, version))
        except errors.OpenCadenceError as exc:
            response = _error(exc)
        else:
            if isinstance(result, Response):
                response = result
            elif isinstance(result, str):
                response = Response(result, media_type="application/json;charset=UTF-8")
            else:
                response = rest.json_response(result, 201 if request.method == "POST" else 200)
        rest.add_limit_info(request, response)
        return response

    return run


def _body(request: Request) -> dict[str, Any]:
    data = bodies.parse_json(request.state.raw or b"{}")
    if not isinstance(data, dict):
        raise jobs.InvalidJob("The request body must be a JSON object")
    return data


def create_job(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    return bulk.v1_create(session, _body(request), version)


def job(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    job_id = request.path_params["job"]
    if request.method == "POST":
        info = bulk.v1_set_state(session, job_id, _body(request).get("state"))
        return rest.json_response(info)
    return bulk.v1_info(bulk.v1_job(session, job_id))


def batches(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    job_id = request.path_params["job"]
    if request.method == "POST":
        return bulk.v1_add_batch(session, job_id, request.state.raw)
    return bulk.v1_batches(session, job_id)


def batch(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    return bulk.v1_batch(session, request.path_params["job"], request.path_params["batch"])


def batch_result(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    return bulk.v1_batch_result(session, request.path_params["job"], request.path_params["batch"])


def query_result(request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str) -> Any:
    p = request.path_params
    return bulk.v1_query_result(session, p["job"], p["batch"], p["result"])


def batch_request(
    request: Request, bulk: jobs.Bulk, session: accounts.Session, version: str
) -> Any:
    return bulk.v1_batch_request(session, request.path_params["job"], request.path_params["batch"])


def routes() -> list[Route]:
    j = "/services/async/{version}/job"
    b = f"{j}/{{job}}/batch/{{batch}}"
    return [
        Route(j, endpoint(create_job), methods=["POST"]),
        Route(f"{j}/{{job}}", endpoint(job), methods=["GET", "POST"]),
        Route(f"{j}/{{job}}/batch", endpoint(batches), methods=["GET", "POST"]),
        Route(b, endpoint(batch), methods=["GET"]),
        Route(f"{b}/result", endpoint(batch_result), methods=["GET"]),
        Route(f"{b}/result/{{result}}", endpoint(query_result), methods=["GET"]),
        Route(f"{b}/request", endpoint(batch_request), methods=["GET"]),
    ]
