"""REST resources under /services/data, shaped as Salesforce's.

Handlers are thin: read the request, call ``Org``, render JSON. Errors raised below are
translated once, in ``api.errors``.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import email.utils
import json
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies, dispatch, versions
from opencadence.metadata import model
from opencadence.org import Org
from opencadence.storage import accounts, migrate

MAX_BODY = bodies.REST_MAX  # bytes; Salesforce's REST limit for a record body is far smaller
Handler = Callable[[Request, Org, accounts.Session, str], Any]
T = TypeVar("T")

#: The one thread an all-or-none composite request runs its subrequests' blocking work in
#: (api/composite.py): its transaction's connection is that thread's (the store reads through
#: it there, so a subrequest sees what the earlier ones wrote), and SQLite's writer lock is
#: taken and released by the same thread. None: Starlette's thread pool.
PINNED: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "opencadence_pinned_executor", default=None
)
#: Set in the scope of a composite subrequest: the composite request was counted, not each
#: subrequest (Salesforce counts a composite request as one API call; batch subrequests count).
UNCOUNTED = "opencadence.uncounted"


async def blocking(func: Callable[[], T]) -> T:
    """Run blocking ``func`` in a worker thread (the pinned one inside a composite request)."""
    pinned = PINNED.get()
    if pinned is None:
        return await run_in_threadpool(func)
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(pinned, context.run, func)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(render_json(data), status_code=status, media_type=JSON_TYPE)


JSON_TYPE = "application/json;charset=UTF-8"
#: Types the standard library would not render either (datetimes, dataclasses) are not
#: rendered by orjson: they fall through to it and fail as before.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def render_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, rendered by orjson (C; several times the standard library's speed).

    What orjson refuses -- a lone surrogate echoed back, an integer beyond 64 bits, a non-string
    key -- goes through the standard library as before (lone surrogates replaced). Neither
    writes invalid JSON: a NaN (a bug, never output) is null from orjson, refused by the
    standard library."""
    try:
        return orjson.dumps(data, option=_STRICT)
    except orjson.JSONEncodeError:
        pass
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return body.encode("utf-8", "replace")


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
    """Authenticate, check the version, read the body, run the (blocking) handler. As
    Salesforce, a request without a valid session answers 401 before its body is read, so a
    malformed body from a caller without a session is INVALID_SESSION_ID.

    Where each part runs (a worker thread or, when short and on SQLite, the event loop) is
    ``api.dispatch``'s decision; the answer is the same either way."""

    async def run(request: Request) -> Response:
        org: Org = request.app.state.org
        scope = request.scope
        turn: dispatch.Dispatch | None = getattr(request.app.state, "dispatch", None)
        if turn is not None and (not turn.enabled or PINNED.get() is not None):
            turn = None  # every part in a thread (the pinned one inside a composite request)

        def authenticate() -> tuple[accounts.Session, str]:
            session, version = session_of(request, org), version_of(request)
            if not scope.get(UNCOUNTED):
                request.state.api_usage = org.count_api_request()  # an authenticated request
            _check_sobject(request, org)
            return session, version

        if request.method in ("POST", "PATCH"):
            session, version = await _authenticated(turn, authenticate)
            request.state.body = await read_json(request)
            result = await blocking(lambda: handler(request, org, session, version))
        else:
            request.state.body = None
            key = (request.method, scope["path"], scope["query_string"])
            if turn is not None and request.method in ("GET", "HEAD") and turn.short(key):
                session, version = await _authenticated(turn, authenticate)
                done, result = turn.on_loop(key, lambda: handler(request, org, session, version))
                if not done:  # it wanted to write: in a thread
                    result = await blocking(
                        lambda: turn.measure(key, lambda: handler(request, org, session, version))
                    )
            else:  # one trip to a worker thread, not two

                def authenticated() -> Any:
                    return handler(request, org, *authenticate())

                if turn is None:
                    result = await blocking(authenticated)
                else:
                    result = await blocking(lambda: turn.measure(key, authenticated))
        response = result if isinstance(result, Response) else json_response(result)
        add_limit_info(request, response)
        return response

    return run


async def _authenticated(
    turn: dispatch.Dispatch | None, authenticate: Callable[[], tuple[accounts.Session, str]]
) -> tuple[accounts.Session, str]:
    """``authenticate`` on the loop when it may (and needs no write), else in a thread."""
    if turn is not None:
        done, found = turn.on_loop(None, authenticate)
        if done and found is not None:
            return found
    return await blocking(authenticate)


def add_limit_info(request: Request, response: Response) -> None:
    """``Sforce-Limit-Info: api-usage=N/M`` on the response to a counted request (clients such
    as simple-salesforce and jsforce read it on every call); errors carry it too."""
    usage = getattr(request.state, "api_usage", None)
    if usage is not None:
        response.headers["Sforce-Limit-Info"] = f"api-usage={usage[0]}/{usage[1]}"


# --- resources ----------------------------------------------------------------------------


def resources(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    base = f"/services/data/v{version}"
    listed = {
        name: f"{base}/{name}"
        for name in (
            "sobjects",
            "query",
            "queryAll",
            "search",
            "parameterizedSearch",
            "limits",
            "actions",
        )
    }
    # where jsforce's identity() and the sf CLI find the identity URL (the token's user's)
    listed["identity"] = f"{request.url.scheme}://{request.url.netloc}" + identity_path(
        session.user_id
    )
    return listed


def identity_path(user_id: str) -> str:
    """The identity URL's path for ``user_id`` (api/identity.py serves it)."""
    return f"/id/{migrate.ORG_ID}/{user_id}"


def call_client(request: Request) -> str:
    """The ``client`` of a ``Sforce-Call-Options: client=ID[, defaultNamespace=NS]`` header (""
    when absent), which the change events' changeOrigin carries as Salesforce's do."""
    for part in request.headers.get("sforce-call-options", "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "client":
            return value.strip()[:255]
    return ""


def metadata_unchanged(request: Request) -> Response | None:
    """304 Not Modified when ``If-Modified-Since`` is at or after the moment the metadata was
    last changed, as Salesforce answers describe and describeGlobal. The metadata is static
    per version for a running server, so "changed" is when this server started serving
    (``app.state.metadata_since``): a restart, the only way the schema changes, counts as a
    change (docs/sf-cli.md). An unparsable date is ignored, as HTTP says."""
    since = getattr(request.app.state, "metadata_since", None)
    header = request.headers.get("if-modified-since")
    if since is None or not header:
        return None
    try:
        asked = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if asked.tzinfo is None:
        asked = asked.replace(tzinfo=dt.UTC)
    if asked < since:
        return None
    return Response(status_code=304, headers={"Last-Modified": http_date(since)})


def http_date(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def _described(request: Request, data: Any) -> Response:
    response = json_response(data)
    since = getattr(request.app.state, "metadata_since", None)
    if since is not None:
        response.headers["Last-Modified"] = http_date(since)
    return response


def sobjects(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    return metadata_unchanged(request) or _described(request, org.describe_global(version))


def sobject(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    name = request.path_params["sobject"]
    if request.method == "POST":
        client = call_client(request)
        record_id = org.create(session, name, request.state.body, version, client=client)
        return json_response({"id": record_id, "success": True, "errors": []}, status=201)
    return org.basic_info(name, version)


def sobject_describe(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    # an unknown sObject was answered 404 before (endpoint's _check_sobject)
    unchanged = metadata_unchanged(request)
    return unchanged or _described(request, org.describe(request.path_params["sobject"], version))


#: The read-only resources under an sObject that the ``{id}`` route would otherwise take for ids.
_SOBJECT_RESOURCES = frozenset({"describe", "updated", "deleted"})


def record(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    name, record_id = request.path_params["sobject"], request.path_params["id"]
    if record_id in _SOBJECT_RESOURCES:  # a PATCH or DELETE of .../describe is not a record's
        raise HTTPException(405, headers={"Allow": "HEAD, GET"})
    if request.method == "GET":
        fields = request.query_params.get("fields")
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        return org.retrieve(session, name, record_id, names, version)
    if request.method == "PATCH":
        org.update(
            session, name, record_id, request.state.body, version, client=call_client(request)
        )
    else:
        org.delete(session, name, record_id, version, client=call_client(request))
    return Response(status_code=204)


def by_external_id(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    """``GET|PATCH /sobjects/{type}/{field}/{value}`` on Id or an idLookup field: GET reads the
    one matching record; PATCH upserts (201 created; 200 with the result from API 46.0, 204
    before, when updated). Several matches: 300 with their URLs, and nothing is written."""
    name, key = request.path_params["sobject"], request.path_params["field"]
    value = request.path_params["value"]
    obj = org.registry.object(name)
    f = obj.field(key)
    if f is None or not f.visible_in(version):
        raise errors.NotFound(
            f"Provided external ID field does not exist or is not accessible: {key}"
        )
    if request.method == "PATCH":
        return _upsert(request, org, session, version, f.name, value)
    f = org.external_id_field(obj.name, f.name, version)
    matches = org.matching_ids(session, obj.name, f.name, value, version, limit=2000)
    if not matches:
        raise errors.NotFound("The requested resource does not exist")
    if len(matches) > 1:
        return _multiple(obj.name, matches, version)
    fields = request.query_params.get("fields")
    names = [n.strip() for n in fields.split(",") if n.strip()] if fields else None
    return org.retrieve(session, obj.name, matches[0], names, version)


def _multiple(name: str, matches: list[str], version: str) -> Response:
    """300 Multiple Choices: the matching records' URLs, as Salesforce lists them."""
    urls = [f"/services/data/v{version}/sobjects/{name}/{m}" for m in matches]
    return json_response(urls, status=300)


def _upsert(
    request: Request, org: Org, session: accounts.Session, version: str, key: str, value: str
) -> Response:
    body: dict[str, Any] = request.state.body
    given = next((v for k, v in body.items() if k.lower() == key.lower()), None)
    if given is not None and str(given).lower() != value.lower():
        raise errors.InvalidField(
            f"{key}: the body's value {given!r} is not the URL's {value!r}", fields=[key]
        )
    try:
        record_id, created = org.upsert(
            session,
            request.path_params["sobject"],
            key,
            value,
            body,
            version,
            client=call_client(request),
        )
    except errors.DuplicateExternalId as exc:
        return _multiple(
            org.registry.object(request.path_params["sobject"]).name, exc.matches, version
        )
    result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
    if model.version_key(version) >= (46, 0):
        result["created"] = created
    elif not created:
        return Response(status_code=204)
    return json_response(result, status=201 if created else 200)


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
        if request.query_params.get("columns") == "true":  # the sf CLI's data query asks
            return org.query_columns(session, soql)
        return org.query(
            session, soql, version, include_deleted=include_deleted, batch_size=_batch_size(request)
        )

    return handler


#: Salesforce's standard /limits keys and the maximums reported for them (an Enterprise
#: Edition org's, roughly). opencadence meters DailyApiRequests; the rest report their maximum
#: as remaining, because nothing here consumes them (no Apex, reports, dashboards, packages).
STANDARD_LIMITS: dict[str, int] = {
    "AnalyticsExternalDataSizeMB": 40_960,
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentEinsteinDataInsightsStoryCreation": 5,
    "ConcurrentEinsteinDiscoveryStoryCreation": 2,
    "ConcurrentSyncReportRuns": 20,
    "DailyAnalyticsDataflowJobExecutions": 60,
    "DailyAnalyticsUploadedFilesSizeMB": 51_200,
    "DailyApiRequests": 0,  # metered: see limits()
    "DailyAsyncApexExecutions": 250_000,
    "DailyAsyncApexTests": 500,
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DailyBulkV2QueryJobs": 10_000,
    "DailyDeliveredPlatformEvents": 50_000,
    "DailyDurableGenericStreamingApiEvents": 1_000_000,
    "DailyDurableStreamingApiEvents": 1_000_000,
    "DailyEinsteinDataInsightsStoryCreation": 1_000,
    "DailyEinsteinDiscoveryPredictAPICalls": 50_000,
    "DailyEinsteinDiscoveryPredictionsByCDC": 500_000,
    "DailyEinsteinDiscoveryStoryCreation": 100,
    "DailyFunctionsApiCallLimit": 235_000,
    "DailyGenericStreamingApiEvents": 10_000,
    "DailyScratchOrgs": 6,
    "DailyStandardVolumePlatformEvents": 10_000,
    "DailyStreamingApiEvents": 1_000_000,
    "DailyWorkflowEmails": 1_000_000,
    "DataStorageMB": 1_024,
    "DurableStreamingApiConcurrentClients": 2_000,
    "FileStorageMB": 10_240,
    "HourlyAsyncReportRuns": 1_200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5_000,
    "HourlyDashboardStatuses": 999_999_999,
    "HourlyLongTermIdMapping": 100_000,
    "HourlyManagedContentPublicRequests": 50_000,
    "HourlyODataCallout": 10_000,
    "HourlyPublishedPlatformEvents": 250_000,
    "HourlyPublishedStandardVolumePlatformEvents": 100_000,
    "HourlyShortTermIdMapping": 100_000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 1_000,
    "MassEmail": 5_000,
    "MonthlyEinsteinDiscoveryStoryCreation": 500,
    "MonthlyPlatformEventsUsageEntitlement": 0,
    "Package2VersionCreates": 6,
    "Package2VersionCreatesWithoutValidation": 500,
    "PermissionSets": 1_500,
    "PrivateConnectOutboundCalloutHourlyLimitMB": 0,
    "PublishCallbackUsageInApex": 5_000_000,
    "SingleEmail": 5_000,
    "StreamingApiConcurrentClients": 2_000,
}


def limits(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    body: dict[str, Any] = {
        name: {"Max": maximum, "Remaining": maximum} for name, maximum in STANDARD_LIMITS.items()
    }
    maximum = org.daily_api_requests_max
    body["DailyApiRequests"] = {
        "Max": maximum,
        "Remaining": max(0, maximum - org.api_usage.used()),
    }
    body["PermissionSets"]["CreateCustom"] = {"Max": 1_000, "Remaining": 1_000}
    return body


def record_count(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    """``/limits/recordCount[?sObjects=A,B]``: live records per object."""
    named = request.query_params.get("sObjects")
    names = [n.strip() for n in named.split(",") if n.strip()] if named is not None else None
    return {"sObjects": org.record_counts(names)}


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
        # after {id} and the named resources: two segments are a field and its value
        Route(f"{s}/{{field}}/{{value}}", endpoint(by_external_id), methods=["GET", "PATCH"]),
        Route(f"{v}/query", endpoint(_query(False)), methods=["GET"]),
        Route(f"{v}/query/", endpoint(_query(False)), methods=["GET"]),
        Route(f"{v}/query/{{locator}}", endpoint(_query(False)), methods=["GET"]),
        Route(f"{v}/queryAll", endpoint(_query(True)), methods=["GET"]),
        Route(f"{v}/queryAll/", endpoint(_query(True)), methods=["GET"]),
        Route(f"{v}/queryAll/{{locator}}", endpoint(_query(True)), methods=["GET"]),
        Route(f"{v}/limits", endpoint(limits), methods=["GET"]),
        Route(f"{v}/limits/", endpoint(limits), methods=["GET"]),
        Route(f"{v}/limits/recordCount", endpoint(record_count), methods=["GET"]),
        Route(f"{v}/limits/recordCount/", endpoint(record_count), methods=["GET"]),
    ]
