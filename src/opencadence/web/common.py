"""What every page of the web app shares: templates, the signed-in session, forms, answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from opencadence.org import Org
from opencadence.storage import accounts, values
from opencadence.web import assets, auth

HERE = Path(__file__).parent
#: the API version the app's queries and writes are made at
VERSION = "62.0"
#: login and action forms are small
FORM_MAX = 16 * 1024
#: the email composer's form: a body up to the email size limits
EMAIL_FORM_MAX = 256 * 1024

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
env.globals["asset"] = assets.url
#: whether the request's signed-in user may build cadences (nav.html shows the builder links)
_CAN_BUILD: ContextVar[bool] = ContextVar("can_build", default=False)
env.globals["can_build"] = _CAN_BUILD.get


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = HTMLResponse(env.get_template(name).render(**context), status_code=status)
    # pages show one user's data: never cached, never framed
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    return response


def org_of(request: Request) -> Org:
    org: Org = request.app.state.org
    return org


#: reads a body up to a byte limit, or raises RequestTooLarge (``api.bodies.read``, handed in
#: by ``mount``: the app sits below the api layer, which mounts it)
BodyReader = Callable[[Request, int], Awaitable[bytes]]


async def form(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in (await form_lists(request)).items()}


async def form_lists(request: Request, limit: int = FORM_MAX) -> dict[str, list[str]]:
    """The form with every value of repeated fields (checkboxes)."""
    read: BodyReader = request.app.state.web_read_body
    raw = await read(request, limit)
    return parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)


def to_login() -> RedirectResponse:
    return RedirectResponse("/app/login", status_code=303)


def refused() -> Response:
    return render("refused.html", 403)


@dataclass(frozen=True, slots=True)
class Signed:
    """The signed-in user of a request."""

    token: str
    session: accounts.Session
    csrf: str
    name: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.session.time_zone)


async def signed_in(request: Request) -> Signed | None:
    """The request's signed-in user (None: send them to the login page)."""
    org = org_of(request)

    def load() -> Signed | None:
        found = auth.current(request, org)
        if found is None:
            return None
        token, session = found
        user = org.query(session, f"SELECT Name FROM User WHERE Id = '{session.user_id}'", VERSION)
        name = user["records"][0]["Name"] if user["records"] else ""
        return Signed(token, session, auth.csrf_token(org, token), name)

    found = await run_in_threadpool(load)
    _CAN_BUILD.set(found is not None and found.session.can_manage_cadences)
    return found


async def posted(
    request: Request, limit: int = FORM_MAX
) -> tuple[Signed | None, dict[str, list[str]], Response | None]:
    """A state-changing request: its signed-in user and form, or the answer to give instead
    (the login page, or 403 when the CSRF token is missing or wrong: nothing is done)."""
    fields = await form_lists(request, limit)
    who = await signed_in(request)
    if who is None:
        return None, fields, to_login()
    sent = (fields.get("csrf") or [""])[0]
    if not auth.csrf_ok(org_of(request), who.token, sent):
        return None, fields, refused()
    return who, fields, None


def forbidden(who: Signed) -> Response:
    """The 403 page: the record is not the user's to see (or does not exist: same answer)."""
    return render(
        "forbidden.html",
        403,
        user_name=who.name,
        time_zone=who.session.time_zone,
        csrf=who.csrf,
    )


def local(text: str | None, zone: ZoneInfo) -> str:
    if not text:
        return ""
    when: datetime = values.parse_datetime(text).astimezone(zone)
    return when.strftime("%Y-%m-%d %H:%M %Z")


def soql_string(text: str) -> str:
    """A SOQL string literal's inside: backslash and quote escaped."""
    return text.replace("\\", "\\\\").replace("'", "\\'")
