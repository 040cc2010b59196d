"""REST resources under /services/data, shaped as Salesforce's.

Handlers are thin: read the request, call ``Org``, render JSON. Errors raised below are
translated once, in ``api.errors``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies, versions
from opencadence.org import Org
from opencadence.storage import accounts

MAX_BODY = bodies.REST_MAX  # bytes; Salesforce's REST limit for a record body is far smaller
Handler = Callable[[Request, Org, accounts.Session, str], Any]


def json_response(data: Any, status: int = 200) -> Response:
    # allow_nan=False: never answer invalid JSON (a NaN reaching here is a bug, not output)
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return Response(
        body.encode("utf-8", "replace"),  # a lone surrogate echoed back is not UTF-8
        status_code=status,
        media_type="application/json;charset=UTF-8",
    )


def session_of(request: Request, org: Org) -> accounts.Session:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "oauth") or not token:
        raise errors.InvalidSession("Session expired or invalid")
    return org.accounts.session(token.strip())


def version_of(request: Request) -> str:
    return versions.check(request.path_params["version"])


async def read_json(request: Request) -> dict[str, Any]:
    raw = await bodies.read(request, MAX_BODY)
    data = bodies.parse_json(raw or b"{}")
    if not isinstance(data, dict):
        raise errors.JsonParserError(
            "Cannot deserialize instance of object from a non-object value"
        )
    return data


def _check_sobject(request: Request, org: Org) -> None:
    """An unknown sObject in a URL is a resource that does not exist: 404 NOT_FOUND, as
    Salesforce answers (INVALID_TYPE is SOQL's answer to an unknown object in FROM)."""
    name = request.path_params.get("sobject")
    if name is not None and org.registry.get(name) is None:
        raise errors.NotFound("The requested resource does not exist")


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, check the version, read the body, run the (blocking) handler in a worker
    thread. As Salesforce, a request without a valid session answers 401 before its body is
    read, so a malformed body from a caller without a session is INVALID_SESSION_ID."""

    async def run(request: Request) -> Response:
        org: Org = request.app.state.org

        def authenticate() -> tuple[accounts.Session, str]:
            session, version = session_of(request, org), version_of(request)
            _check_sobject(request, org)
            return session, version

        session, version = await run_in_threadpool(authenticate)
        body = await read_json(request) if request.method in ("POST", "PATCH") else None
        request.state.body = body
        result = await run_in_threadpool(handler, request, org, session, version)
        return result if isinstance(result, Response) else json_response(result)

    return run


# --- resources ----------------------------------------------------------------------------


def resources(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    base = f"/services/data/v{version}"
    return {
        name: f"{base}/{name}" for name in ("sobjects", "query", "queryAll", "limits", "actions")
    }


def sobjects(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    return org.describe_global(version)


def sobject(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    name = request.path_params["sobject"]
    if request.method == "POST":
        record_id = org.create(session, name, request.state.body, version)
        return json_response({"id": record_id, "success": True, "errors": []}, status=201)
    return org.basic_info(name, version)


def sobject_describe(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    return org.describe(request.path_params["sobject"], version)


def record(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    name, record_id = request.path_params["sobject"], request.path_params["id"]
    if request.method == "GET":
        fields = request.query_params.get("fields")
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        return org.retrieve(session, name, record_id, names, version)
    if request.method == "PATCH":
        org.update(session, name, record_id, request.state.body, version)
    else:
        org.delete(session, name, record_id, version)
    return Response(status_code=204)


#: A UTC offset whose '+' a query string decoded to a space ("...T06:30:00 00:00").
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


def _replication_date(request: Request, name: str) -> str:
    """``start``/``end`` as sent: Salesforce's docs write ``?start=2026-11-30T06:30:00+00:00``
    unencoded, and the '+' arrives as a space, which is read back as the offset's sign."""
    return _SPACED_OFFSET.sub(r"\1+\2", request.query_params.get(name, ""))


def updated(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    start, end = _replication_date(request, "start"), _replication_date(request, "end")
    return org.updated(session, request.path_params["sobject"], start, end, version)


def deleted(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    start, end = _replication_date(request, "start"), _replication_date(request, "end")
    return org.deleted(session, request.path_params["sobject"], start, end, version)


def _batch_size(request: Request) -> int | None:
    options = request.headers.get("sforce-query-options", "")
    for part in options.split(","):
        key, _, value = part.strip().partition("=")
        digits = value.strip()
        # str.isdigit() is true of '²' too, which int() refuses: ASCII digits only
        if key.strip().lower() == "batchsize" and digits.isascii() and digits.isdigit():
            return int(digits) if len(digits) <= 12 else 10**12  # clamped downstream
    return None


def _query(include_deleted: bool) -> Handler:
    def handler(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
        locator = request.path_params.get("locator")
        if locator:
            return org.query_more(session, locator, version)
        soql = request.query_params.get("q")
        if not soql:
            raise errors.MalformedQuery("A query string has to be specified")
        return org.query(
            session, soql, version, include_deleted=include_deleted, batch_size=_batch_size(request)
        )

    return handler


def limits(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    def limit(maximum: int, remaining: int) -> dict[str, int]:
        return {"Max": maximum, "Remaining": remaining}

    return {
        "DailyApiRequests": limit(15_000_000, 15_000_000),
        "DailyBulkApiBatches": limit(15_000, 15_000),
        "DailyStreamingApiEvents": limit(1_000_000, 1_000_000),
        "ActiveCadenceTrackers": limit(150_000, 150_000),
    }


def routes() -> list[Route]:
    v = "/services/data/v{version}"
    s = f"{v}/sobjects/{{sobject}}"
    return [
        Route(f"{v}", endpoint(resources), methods=["GET"]),
        Route(f"{v}/", endpoint(resources), methods=["GET"]),
        Route(f"{v}/sobjects", endpoint(sobjects), methods=["GET"]),
        Route(f"{v}/sobjects/", endpoint(sobjects), methods=["GET"]),
        Route(f"{s}", endpoint(sobject), methods=["GET", "POST"]),
        Route(f"{s}/", endpoint(sobject), methods=["GET", "POST"]),
        Route(f"{s}/describe", endpoint(sobject_describe), methods=["GET"]),
        Route(f"{s}/describe/", endpoint(sobject_describe), methods=["GET"]),
        Route(f"{s}/updated", endpoint(updated), methods=["GET"]),
        Route(f"{s}/updated/", endpoint(updated), methods=["GET"]),
        Route(f"{s}/deleted", endpoint(deleted), methods=["GET"]),
        Route(f"{s}/deleted/", endpoint(deleted), methods=["GET"]),
        Route(f"{s}/{{id}}", endpoint(record), methods=["GET", "PATCH", "DELETE"]),
        Route(f"{v}/query", endpoint(_query(False)), methods=["GET"]),
        Route(f"{v}/query/", endpoint(_query(False)), methods=["GET"]),
        Route(f"{v}/query/{{locator}}", endpoint(_query(False)), methods=["GET"]),
        Route(f"{v}/queryAll", endpoint(_query(True)), methods=["GET"]),
        Route(f"{v}/queryAll/", endpoint(_query(True)), methods=["GET"]),
        Route(f"{v}/queryAll/{{locator}}", endpoint(_query(True)), methods=["GET"]),
        Route(f"{v}/limits", endpoint(limits), methods=["GET"]),
        Route(f"{v}/limits/", endpoint(limits), methods=["GET"]),
    ]
