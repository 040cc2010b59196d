"""The Composite resources: ``/composite``, ``/composite/batch`` and ``/composite/tree/{type}``.

``/composite`` and ``/composite/batch`` dispatch each subrequest through the ASGI app itself
(an internal request with the caller's Authorization header), so a subrequest may target any
REST URL the app serves, including ones added after this module. ``/composite/tree`` creates
its records directly through ``Org.create`` in one transaction.

All-or-none ``/composite`` (docs/composite.md): the subrequests run in one transaction, opened
in one dedicated thread (``rest.PINNED``) that runs every subrequest's blocking work, and made
ambient (``org.ambient_transaction``) so every Org write joins it. When a subrequest fails, the
transaction is rolled back: no record and no change event of any subrequest remains.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence import errors
from opencadence import org as org_module
from opencadence.api import rest
from opencadence.org import Org
from opencadence.storage import accounts

MAX_COMPOSITE = 25  # subrequests in a /composite request
MAX_COMPOSITE_QUERIES = 5  # of which query, queryAll or sObject Collections subrequests
_QUERY_OR_COLLECTION = re.compile(
    r"^/services/data/v[^/]+/(query|queryAll|composite/sobjects)(/|\?|$)"
)
MAX_BATCH = 25  # subrequests in a /composite/batch request
MAX_TREE = 200  # records (all levels) in a /composite/tree request
MAX_TREE_DEPTH = 5  # levels of nested children, the top level included
MAX_TREE_TYPES = 5  # different sObject types in one tree request

_REFERENCE = re.compile(r"@\{([^{}]*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
_PATH_TOKEN = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")
_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE", "HEAD")


class InvalidInput(errors.OpenCadenceError):
    """The composite request is malformed."""

    error_code = "INVALID_INPUT"
    http_status = 400


class LimitExceeded(errors.OpenCadenceError):
    """A composite request over its size limit."""

    error_code = "LIMIT_EXCEEDED"
    http_status = 400


class _RollBack(Exception):
    """Raised into an all-or-none transaction to roll it back."""


# --- dispatching a subrequest through the app ----------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


async def dispatch(
    request: Request,
    method: str,
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    counted: bool,
) -> Answer:
    """``method url`` as the caller, through the app (its routes, errors and middleware)."""
    path, _, query = url.partition("?")
    raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    sent: list[tuple[bytes, bytes]] = [
        (b"host", request.headers.get("host", "").encode("latin-1")),
        (b"authorization", request.headers.get("authorization", "").encode("latin-1")),
        (b"content-length", str(len(raw)).encode()),
    ]
    if body is not None:
        sent.append((b"content-type", b"application/json"))
    for name, value in (headers or {}).items():
        if str(name).lower() not in ("host", "authorization", "content-length", "content-type"):
            sent.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": request.url.scheme,
        "server": request.scope.get("server"),
        "client": request.scope.get("client"),
        "root_path": "",
        "path": unquote(path),
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": query.encode("latin-1", "replace"),
        "headers": sent,
        "state": {},
        rest.UNCOUNTED: not counted,
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    status, answered, chunks = 500, {}, bytearray()

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answered
        if message["type"] == "http.response.start":
            status = message["status"]
            answered = {k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            chunks.extend(message.get("body", b""))

    await request.app(scope, receive, send)
    return Answer(status, answered, _decoded(bytes(chunks), answered))


def _decoded(raw: bytes, headers: dict[str, str]) -> Any:
    if not raw:
        return None
    if "json" in headers.get("content-type", ""):
        return json.loads(raw)
    return raw.decode("utf-8", "replace")


# --- references: @{referenceId.path} -------------------------------------------------------


class _Unresolved(Exception):
    def __init__(self, expression: str) -> None:
        self.expression = expression


def _lookup(expression: str, results: dict[str, Any]) -> Any:
    """The value ``referenceId.a.b[0].c`` names in an earlier subrequest's response body."""
    tokens = [(int(i) if i else name) for i, name in _PATH_TOKEN.findall(expression)]
    if not tokens or not isinstance(tokens[0], str) or tokens[0] not in results:
        raise _Unresolved(expression)
    value = results[tokens[0]]
    for token in tokens[1:]:
        if isinstance(token, int) and isinstance(value, list) and 0 <= token < len(value):
            value = value[token]
        elif isinstance(token, str) and isinstance(value, dict) and token in value:
            value = value[token]
        else:
            raise _Unresolved(expression)
    if value is None or isinstance(value, (dict, list)):
        raise _Unresolved(expression)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve(value: Any, results: dict[str, Any]) -> Any:
    """``value`` with its references replaced: a string that is one reference takes the
    referenced value (a number stays a number); references inside a longer string are
    spliced in as text."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), results)
        return _REFERENCE.sub(lambda m: _text(_lookup(m.group(1), results)), value)
    if isinstance(value, dict):
        return {k: resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results) for v in value]
    return value


def _halted(message: str) -> list[dict[str, Any]]:
    return [{"errorCode": "PROCESSING_HALTED", "message": message}]


ROLLED_BACK = (
    "The transaction was rolled back since another operation in the same transaction failed."
)


# --- /composite ----------------------------------------------------------------------------


@dataclass
class Subrequest:
    method: str
    url: str
    reference_id: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise errors.JsonParserError(f"Cannot deserialize value of type boolean for {name}")
    return value


def _target(given: Any, *, relative: bool) -> str:
    """A subrequest's URL, checked: it must be a REST URL under /services/data."""
    if not isinstance(given, str) or not given:
        raise InvalidInput("The url of a subrequest is required")
    url: str = given
    if relative and not url.startswith("/"):  # batch: "v59.0/sobjects/Account"
        url = "/services/data/" + url
    if not url.startswith("/services/data/v"):
        raise InvalidInput(f"The url {url[:200]} is not a REST API url under /services/data/")
    path = url.partition("?")[0].rstrip("/")
    if re.match(r"^/services/data/v[^/]+/composite(/batch)?$", path):
        raise InvalidInput("A composite request cannot contain composite or batch subrequests")
    return url


def _method(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in _METHODS:
        raise InvalidInput(f"The method of a subrequest must be one of {', '.join(_METHODS)}")
    return value.upper()


def parse_composite(body: dict[str, Any], version: str) -> list[Subrequest]:
    listed = body.get("compositeRequest")
    if not isinstance(listed, list) or not listed:
        raise InvalidInput("compositeRequest is required: a list of subrequests")
    if len(listed) > MAX_COMPOSITE:
        raise LimitExceeded(
            f"A composite request has at most {MAX_COMPOSITE} subrequests; this one has {len(listed)}"
        )
    subrequests, seen = [], set()
    for item in listed:
        if not isinstance(item, dict):
            raise errors.JsonParserError("Each subrequest must be a JSON object")
        ref = item.get("referenceId")
        if not isinstance(ref, str) or not _REFERENCE_ID.match(ref):
            raise InvalidInput(
                "Each subrequest needs a referenceId of letters, numbers and underscores"
            )
        if ref in seen:
            raise InvalidInput(f"Duplicate referenceId provided in the request: {ref}")
        seen.add(ref)
        headers = item.get("httpHeaders") or {}
        if not isinstance(headers, dict):
            raise errors.JsonParserError("httpHeaders must be a JSON object")
        subrequests.append(
            Subrequest(
                _method(item.get("method")),
                _target(item.get("url"), relative=False),
                ref,
                item.get("body"),
                {str(k): str(v) for k, v in headers.items()},
            )
        )
    heavy = sum(1 for sub in subrequests if _QUERY_OR_COLLECTION.match(sub.url))
    if heavy > MAX_COMPOSITE_QUERIES:
        raise LimitExceeded(
            f"A composite request has at most {MAX_COMPOSITE_QUERIES} query or sObject "
            f"Collections subrequests; this one has {heavy}"
        )
    return subrequests


def _result(sub: Subrequest, answer: Answer) -> dict[str, Any]:
    headers = {}
    for name in ("Location", "ETag", "Last-Modified"):
        value = answer.headers.get(name.lower())
        if value is not None:
            headers[name] = value
    if (
        answer.status == 201
        and "Location" not in headers
        and isinstance(answer.body, dict)
        and isinstance(answer.body.get("id"), str)
    ):  # a create's result says where the new record is, as Salesforce's does
        headers["Location"] = sub.url.partition("?")[0].rstrip("/") + "/" + answer.body["id"]
    return {
        "body": answer.body,
        "httpHeaders": headers,
        "httpStatusCode": answer.status,
        "referenceId": sub.reference_id,
    }


async def _run_subrequests(
    request: Request, subrequests: list[Subrequest], all_or_none: bool
) -> tuple[list[dict[str, Any]], bool]:
    """Each subrequest in order; (results, whether one failed)."""
    results: list[dict[str, Any]] = []
    bodies: dict[str, Any] = {}
    failed = False
    for sub in subrequests:
        if failed and all_or_none:  # the rest are not run: the transaction is rolled back
            results.append(_halted_result(sub, ROLLED_BACK))
            continue
        try:
            url = _text(resolve(sub.url, bodies))
            body = resolve(sub.body, bodies)
        except _Unresolved as exc:
            ref = exc.expression.split(".")[0].split("[")[0]
            results.append(
                _halted_result(
                    sub,
                    f"Invalid reference specified. No value for {exc.expression} found in {ref}. "
                    "Provided referenceId must be one of a subrequest before it that succeeded.",
                )
            )
            failed = True
            continue
        answer = await dispatch(request, sub.method, url, body, sub.headers, counted=False)
        result = _result(Subrequest(sub.method, url, sub.reference_id), answer)
        results.append(result)
        if answer.status >= 400:
            failed = True
        else:
            bodies[sub.reference_id] = answer.body
    if failed and all_or_none:  # what ran before the failure was rolled back too
        for result in results:
            if result["httpStatusCode"] < 400:
                result.update(body=_halted(ROLLED_BACK), httpHeaders={}, httpStatusCode=400)
    return results, failed


def _halted_result(sub: Subrequest, message: str) -> dict[str, Any]:
    return {
        "body": _halted(message),
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": sub.reference_id,
    }


async def _in_one_transaction(
    request: Request, org: Org, session: accounts.Session, version: str, subs: list[Subrequest]
) -> list[dict[str, Any]]:
    """All-or-none: every subrequest's blocking work in one thread, in one transaction."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1, thread_name_prefix="opencadence-composite") as pinned:
        manager = org.transaction(session, version)
        tx = await loop.run_in_executor(pinned, manager.__enter__)
        pin = rest.PINNED.set(pinned)
        try:
            with org_module.ambient_transaction(tx):
                results, failed = await _run_subrequests(request, subs, True)
        except BaseException as exc:
            rest.PINNED.reset(pin)
            await loop.run_in_executor(pinned, manager.__exit__, type(exc), exc, None)
            raise
        rest.PINNED.reset(pin)
        if failed:
            rollback = _RollBack()
            await loop.run_in_executor(pinned, manager.__exit__, _RollBack, rollback, None)
        else:
            await loop.run_in_executor(pinned, manager.__exit__, None, None, None)
    return results


async def _authenticated(request: Request) -> tuple[Org, accounts.Session, str, dict[str, Any]]:
    """Authenticate (and count) before the body is read, as every REST endpoint does."""
    org: Org = request.app.state.org

    def authenticate() -> tuple[accounts.Session, str]:
        session, version = rest.session_of(request, org), rest.version_of(request)
        request.state.api_usage = org.count_api_request()
        return session, version

    session, version = await rest.blocking(authenticate)
    body = await rest.read_json(request)
    return org, session, version, body


async def composite(request: Request) -> Response:
    org, session, version, body = await _authenticated(request)
    all_or_none = _flag(body, "allOrNone")
    _flag(body, "collateSubrequests")  # accepted; subrequests always run in order
    subs = parse_composite(body, version)
    if all_or_none:
        results = await _in_one_transaction(request, org, session, version, subs)
    else:
        results, _ = await _run_subrequests(request, subs, False)
    response = rest.json_response({"compositeResponse": results})
    rest.add_limit_info(request, response)
    return response


# --- /composite/batch ----------------------------------------------------------------------

BATCH_HALTED = {
    "errorCode": "BATCH_PROCESSING_HALTED",
    "message": "Batch processing halted per request",
}


async def batch(request: Request) -> Response:
    org, session, version, body = await _authenticated(request)
    halt_on_error = _flag(body, "haltOnError")
    listed = body.get("batchRequests")
    if not isinstance(listed, list) or not listed:
        raise InvalidInput("batchRequests is required: a list of subrequests")
    if len(listed) > MAX_BATCH:
        raise LimitExceeded(
            f"A batch request has at most {MAX_BATCH} subrequests; this one has {len(listed)}"
        )
    planned = []
    for item in listed:
        if not isinstance(item, dict):
            raise errors.JsonParserError("Each subrequest must be a JSON object")
        planned.append(
            (
                _method(item.get("method")),
                _target(item.get("url"), relative=True),
                item.get("richInput"),
            )
        )
    results: list[dict[str, Any]] = []
    halted = False
    for method, url, rich_input in planned:
        if halted:
            results.append({"statusCode": 412, "result": [dict(BATCH_HALTED)]})
            continue
        # each subrequest counts against the API limits (Salesforce's rule for batch)
        answer = await dispatch(request, method, url, rich_input, counted=True)
        results.append({"statusCode": answer.status, "result": answer.body})
        halted = halt_on_error and answer.status >= 400
    has_errors = any(r["statusCode"] >= 400 for r in results)
    response = rest.json_response({"hasErrors": has_errors, "results": results})
    rest.add_limit_info(request, response)
    return response


# --- /composite/tree/{type} ----------------------------------------------------------------


@dataclass
class TreeRecord:
    object_name: str
    reference_id: str
    fields: dict[str, Any]
    parent: TreeRecord | None = None
    parent_field: str | None = None
    id: str | None = None


class _TreeError(Exception):
    def __init__(self, reference_id: str, code: str, message: str, fields: list[str]) -> None:
        self.reference_id, self.code, self.message, self.fields = (
            reference_id,
            code,
            message,
            fields,
        )


def _tree_records(org: Org, version: str, top: str, body: dict[str, Any]) -> list[TreeRecord]:
    """The request's records flattened parent-first (the order they are created in)."""
    listed = body.get("records")
    if not isinstance(listed, list) or not listed:
        raise InvalidInput("records is required: a list of records")
    flat: list[TreeRecord] = []
    seen: set[str] = set()

    def walk(
        items: Any, name: str, parent: TreeRecord | None, parent_field: str | None, depth: int
    ) -> None:
        if depth > MAX_TREE_DEPTH:
            raise LimitExceeded(f"A tree request nests at most {MAX_TREE_DEPTH} levels of records")
        if not isinstance(items, list):
            raise errors.JsonParserError("records must be a list of records")
        for item in items:
            if not isinstance(item, dict):
                raise errors.JsonParserError("Each record must be a JSON object")
            attributes = item.get("attributes")
            if not isinstance(attributes, dict):
                raise InvalidInput("Each record needs attributes with its type and referenceId")
            ref = attributes.get("referenceId")
            if not isinstance(ref, str) or not _REFERENCE_ID.match(ref):
                raise InvalidInput(
                    "Each record needs a referenceId of letters, numbers and underscores"
                )
            if ref in seen:
                raise InvalidInput(f"Duplicate referenceId provided in the request: {ref}")
            seen.add(ref)
            kind = attributes.get("type")
            if not isinstance(kind, str) or kind.lower() != name.lower():
                raise _TreeError(
                    ref,
                    "INVALID_TYPE",
                    f"The record's type {kind!r} is not {name} (the URL's or its relationship's)",
                    [],
                )
            record = TreeRecord(name, ref, {}, parent, parent_field)
            flat.append(record)
            if len(flat) > MAX_TREE:
                raise LimitExceeded(f"A tree request creates at most {MAX_TREE} records")
            children = []
            for key, value in item.items():
                if key == "attributes":
                    continue
                if isinstance(value, dict) and "records" in value:
                    children.append((key, value["records"]))
                else:
                    record.fields[key] = value
            for relationship, nested in children:
                found = org.registry.child_relationship(name, relationship)
                if found is None:
                    raise _TreeError(
                        ref,
                        "INVALID_FIELD",
                        f"No such relationship {relationship} on {name}",
                        [relationship],
                    )
                walk(nested, found.child_object, record, found.field, depth + 1)

    walk(listed, org.registry.get(top).name, None, None, 1)  # type: ignore[union-attr]
    if len({r.object_name for r in flat}) > MAX_TREE_TYPES:
        raise LimitExceeded(f"A tree request creates records of at most {MAX_TREE_TYPES} types")
    return flat


def _create_tree(org: Org, session: accounts.Session, version: str, flat: list[TreeRecord]) -> None:
    with org.transaction(session, version) as tx:
        for record in flat:
            fields = dict(record.fields)
            if record.parent is not None and record.parent_field is not None:
                fields[record.parent_field] = record.parent.id
            try:
                record.id = org.create(session, record.object_name, fields, version, tx=tx)
            except errors.OpenCadenceError as exc:
                code = exc.error_code
                raise _TreeError(record.reference_id, code, exc.message, exc.fields) from None


def _tree_failure(exc: _TreeError) -> Response:
    error = {"statusCode": exc.code, "message": exc.message, "fields": exc.fields}
    body = {"hasErrors": True, "results": [{"referenceId": exc.reference_id, "errors": [error]}]}
    return rest.json_response(body, 400)


def tree(request: Request, org: Org, session: accounts.Session, version: str) -> Response:
    try:
        flat = _tree_records(org, version, request.path_params["sobject"], request.state.body)
        _create_tree(org, session, version, flat)
    except _TreeError as exc:
        return _tree_failure(exc)
    results = [{"referenceId": r.reference_id, "id": r.id} for r in flat]
    return rest.json_response({"hasErrors": False, "results": results}, 201)


def routes() -> list[Route]:
    v = "/services/data/v{version}/composite"
    return [
        Route(v, composite, methods=["POST"]),
        Route(f"{v}/", composite, methods=["POST"]),
        Route(f"{v}/batch", batch, methods=["POST"]),
        Route(f"{v}/batch/", batch, methods=["POST"]),
        Route(f"{v}/tree/{{sobject}}", rest.endpoint(tree), methods=["POST"]),
        Route(f"{v}/tree/{{sobject}}/", rest.endpoint(tree), methods=["POST"]),
    ]
