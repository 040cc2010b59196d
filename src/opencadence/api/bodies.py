"""Reading request bodies: bounded before they are read, strict JSON.

Every endpoint reads its body here, after it authenticated the caller (the logins excepted:
their body is the credentials), so an unauthenticated or oversized request never costs more
memory than its cap. The cap is checked against Content-Length before anything is read and
again while a body without one (chunked) streams in. An oversized body answers 413
EXCEEDED_MAX_SIZE_REQUEST (the Salesforce code for a message over its size limit). The
server discards the rest of the body as it arrives (uvicorn drains it without keeping it) and
the connection stays usable; closing it instead made clients still sending the body fail
with a broken pipe before they read the 413.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from opencadence import errors

#: REST and action bodies (records, action inputs, settings, the clock).
REST_MAX = 1_000_000
#: The SOAP login envelope: a username and a password.
SOAP_LOGIN_MAX = 64 * 1024
#: The OAuth token and revoke forms.
OAUTH_FORM_MAX = 64 * 1024
#: A batch of Bayeux messages.
COMETD_MAX = 256 * 1024


def too_large(limit: int) -> errors.RequestTooLarge:
    return errors.RequestTooLarge(f"The request body is larger than {limit} bytes")


async def read(request: Request, limit: int) -> bytes:
    """The body, or RequestTooLarge as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def _refuse_constant(name: str) -> Any:
    # Salesforce's JSON parser knows no NaN or Infinity (they are not JSON), and a stored
    # one would make every later query answer invalid JSON
    first = name.lstrip("-")[0]
    raise errors.JsonParserError(
        f"Unexpected character ('{first}' (code {ord(first)})): expected a valid value "
        "(number, String, array, object, 'true', 'false' or 'null')"
    )


def parse_json(raw: bytes) -> Any:
    """Strict JSON: JSON_PARSER_ERROR for what is not JSON (NaN, Infinity, bad UTF-8), for
    nesting deeper than the parser recurses and for numbers longer than Python converts."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise errors.JsonParserError(
            f"Unexpected character in the JSON body: {exc.msg} at [line:{exc.lineno}, column:{exc.colno}]"
        ) from None
    except UnicodeDecodeError:
        raise errors.JsonParserError("The request body is not UTF-8") from None
    except RecursionError:
        raise errors.JsonParserError("The JSON body nests too deeply") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise errors.JsonParserError(f"Invalid number in the JSON body: {str(exc)[:80]}") from None
