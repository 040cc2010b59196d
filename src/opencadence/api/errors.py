"""Translate the error tree into Salesforce's REST error bodies, in one place."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from opencadence import errors
from opencadence.api.rest import add_limit_info, json_response

log = logging.getLogger("opencadence.api")


async def opencadence_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.OpenCadenceError)
    status = exc.http_status
    error: dict[str, object] = {"message": exc.message, "errorCode": exc.error_code}
    if status != 401:  # Salesforce's 401 body is message and errorCode only, no fields key
        error["fields"] = exc.fields
    body = [error]
    if status >= 500:
        log.error("request failed: %s %s: %s", request.method, request.url.path, exc.message)
    response = json_response(body, status)
    add_limit_info(request, response)
    return response


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    body = [
        {
            "message": "An unexpected error occurred. Please include this ErrorId if you contact "
            "support: opencadence-internal",
            "errorCode": "UNKNOWN_EXCEPTION",
            "fields": [],
        }
    ]
    return json_response(body, 500)


async def not_found(request: Request, exc: Exception) -> Response:
    body = [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND", "fields": []}
    ]
    return json_response(body, 404)


#: The order Salesforce lists a resource's methods in ("Allowed are HEAD,GET,POST").
METHOD_ORDER = ("HEAD", "GET", "POST", "PUT", "PATCH", "DELETE")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 naming the methods the resource allows (Starlette's Allow header carries them)."""
    headers = getattr(exc, "headers", None) or {}
    offered = {m.strip().upper() for m in headers.get("Allow", "").split(",") if m.strip()}
    allowed = sorted(offered, key=lambda m: (METHOD_ORDER + (m,)).index(m))
    body = [
        {
            "message": f"HTTP Method '{request.method}' not allowed. Allowed are {','.join(allowed)}",
            "errorCode": "METHOD_NOT_ALLOWED",
            "fields": [],
        }
    ]
    response = json_response(body, 405)
    response.headers["Allow"] = ", ".join(allowed)
    return response
