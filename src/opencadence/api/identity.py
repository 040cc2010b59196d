"""The identity URL ``/id/{orgId}/{userId}``: who a token's user is, and where the org's APIs are.

Every token response names it as ``id``; the version's resources list it as ``identity``, which
is how jsforce's ``identity()`` finds it. The token comes as a Bearer header or as an
``oauth_token``/``access_token`` parameter. As Salesforce's identity service, a user's token
reads that user's identity; reading another user's needs a token of a user who sees all data
(an admin here). A bad token answers 403 ``Bad_OAuth_Token``, an identity it may not read or that
does not exist 403 ``Bad_Id`` (plain-text bodies, as the identity service answers). ``urls``
lists only the APIs opencadence serves; without ``?version=`` they carry the literal
``{version}``, as Salesforce's do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import versions
from opencadence.api.rest import identity_path, json_response
from opencadence.org import Org
from opencadence.storage import migrate, values


def _token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    params = request.query_params
    return params.get("oauth_token") or params.get("access_token") or None


def _urls(base: str, version: str, user_id: str) -> dict[str, str]:
    org = migrate.ORG_ID
    return {
        "partner": f"{base}/services/Soap/u/{version}/{org}",
        "rest": f"{base}/services/data/v{version}/",
        "sobjects": f"{base}/services/data/v{version}/sobjects/",
        "query": f"{base}/services/data/v{version}/query/",
        "profile": f"{base}/{user_id}",
        "custom_domain": base,
    }


def _utc_offset_ms(zone: str) -> int:
    try:
        offset = datetime.now(ZoneInfo(zone)).utcoffset()
    except (KeyError, ValueError):  # an unknown zone name: GMT, as Salesforce falls back
        return 0
    return int(offset.total_seconds() * 1000) if offset is not None else 0


def identity_body(
    request: Request, org: Org, user: dict[str, Any], asserted: bool
) -> dict[str, Any]:
    base = f"{request.url.scheme}://{request.url.netloc}"
    version = request.query_params.get("version")
    if version == "latest":
        version = f"{versions.NEWEST}.0"
    elif version is not None:
        version = versions.check(version)
    user_id = str(user["Id"])
    modified = user.get("LastModifiedDate")
    return {
        "id": base + identity_path(user_id),
        "asserted_user": asserted,
        "user_id": user_id,
        "organization_id": migrate.ORG_ID,
        "username": user.get("Username"),
        "nick_name": user.get("CommunityNickname") or user.get("Alias"),
        "display_name": user.get("Name"),
        "email": user.get("Email"),
        "email_verified": True,
        "first_name": user.get("FirstName"),
        "last_name": user.get("LastName"),
        "timezone": user.get("TimeZoneSidKey"),
        "active": bool(user.get("IsActive")),
        "user_type": "STANDARD",
        "language": user.get("LanguageLocaleKey"),
        "locale": user.get("LocaleSidKey"),
        "utcOffset": _utc_offset_ms(str(user.get("TimeZoneSidKey") or "GMT")),
        "last_modified_date": values.format_datetime(modified) if modified else None,
        "urls": _urls(base, version or "{version}", user_id),
    }


async def identity(request: Request) -> Response:
    org: Org = request.app.state.org
    token = _token(request)

    def look_up() -> Response:
        try:
            session = org.accounts.session(token or "")
        except errors.InvalidSession:
            return PlainTextResponse("Bad_OAuth_Token", status_code=403)
        wanted = request.path_params["user_id"]
        same = wanted[:15] == session.user_id[:15]
        try:
            user = org.store.get("User", wanted) if (same or session.is_admin) else None
        except errors.OpenCadenceError:  # not an id at all
            user = None
        if request.path_params["org_id"][:15] != migrate.ORG_ID[:15] or user is None:
            return PlainTextResponse("Bad_Id", status_code=403)
        return json_response(identity_body(request, org, user, asserted=same))

    return await run_in_threadpool(look_up)


def routes() -> list[Route]:
    return [Route("/id/{org_id}/{user_id}", identity, methods=["GET", "POST"])]
