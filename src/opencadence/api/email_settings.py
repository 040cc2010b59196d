"""Email settings over REST (admins): caps, org switches, sending windows, HVS access.

``GET  /services/data/vXX.X/opencadence/email-settings`` → every scope's values with defaults;
``PATCH`` the same path with ``{"scope": "org" | <ActionCadence or User Id>, "values": {name: int}}``.
Unknown names, non-integer values or a bad scope are a 400 that changes nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from opencadence import errors, ids
from opencadence.api.rest import endpoint
from opencadence.email import settings
from opencadence.org import Org
from opencadence.storage import accounts


def _require_admin(session: accounts.Session) -> None:
    if not session.is_admin:
        raise errors.InsufficientAccess("only an administrator can read or change email settings")


def email_settings(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    _require_admin(session)
    if request.method == "PATCH":
        scope, changes = _parse(request.state.body)
        settings.put_all(org.store, session.user_id, scope, changes)
    snapshot = settings.read(org.store)
    scopes = {scope: dict(values) for scope, values in snapshot.rows.items()}
    return {"defaults": dict(settings.DEFAULTS), "scopes": scopes}


def _parse(body: Any) -> tuple[str, dict[str, int]]:
    scope = body.get("scope", settings.ORG) if isinstance(body, dict) else None
    values = body.get("values") if isinstance(body, dict) else None
    if not isinstance(scope, str) or not isinstance(values, dict) or not values:
        raise errors.JsonParserError(
            'expected {"scope": "org" or an Id, "values": {"name": integer}}'
        )
    if scope != settings.ORG and not ids.is_valid(scope):
        raise errors.MalformedId(f"scope: not 'org' nor an Id: {scope}", fields=["scope"])
    for name, value in values.items():
        if name not in settings.DEFAULTS:
            raise errors.InvalidField(f"No such email setting '{name}'", fields=[str(name)])
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise errors.InvalidTypeOnField(
                f"{name}: value not of required type: {value}", fields=[name]
            )
    scope = scope if scope == settings.ORG else ids.parse(scope)
    return scope, {str(k): int(v) for k, v in values.items()}


def routes() -> list[Route]:
    path = "/services/data/v{version}/opencadence/email-settings"
    return [Route(path, endpoint(email_settings), methods=["GET", "PATCH"])]
