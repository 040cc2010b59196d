"""The web app's routes: login, logout, My Work and its step actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from opencadence import errors, ids
from opencadence.org import Org
from opencadence.storage import accounts, values
from opencadence.web import auth

HERE = Path(__file__).parent
#: the API version the app's queries and writes are made at
VERSION = "62.0"
#: login and action forms are small
FORM_MAX = 16 * 1024
#: the step types a person works (the rest the runtime runs by itself)
MANUAL_STEPS = ("MakeACall", "SendAnEmail", "CreateTask", "LinkedInConnection", "LinkedInMail")
#: the open states a person works in
OPEN_STATES = ("Active", "InProgress")
#: at most this many steps on one page
PAGE_SIZE = 200
#: the answer to any failed sign-in: it does not say whether the user exists
LOGIN_FAILED = (
    "Check your username and password. If you still can't log in, contact your administrator."
)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = HTMLResponse(_env.get_template(name).render(**context), status_code=status)
    # pages show one user's data: never cached, never framed
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    return response


def _org(request: Request) -> Org:
    org: Org = request.app.state.org
    return org


#: reads a body up to a byte limit, or raises RequestTooLarge (``api.bodies.read``, handed in
#: by ``mount``: the app sits below the api layer, which mounts it)
BodyReader = Callable[[Request, int], Awaitable[bytes]]


async def _form(request: Request) -> dict[str, str]:
    read: BodyReader = request.app.state.web_read_body
    raw = await read(request, FORM_MAX)
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _to_login() -> RedirectResponse:
    return RedirectResponse("/app/login", status_code=303)


# --- sign-in ------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    return _login_form(request, error=None, username="")


def _login_form(request: Request, error: str | None, username: str, status: int = 200) -> Response:
    token = auth.new_login_token()
    response = _render("login.html", status, error=error, username=username, csrf=token)
    auth.set_cookie(response, request, auth.LOGIN_COOKIE, token)
    return response


async def login(request: Request) -> Response:
    org = _org(request)
    form = await _form(request)
    if not auth.login_token_ok(request, form.get("csrf")):
        return _refused()
    username, password = form.get("username", ""), form.get("password", "")

    def sign_in() -> str | None:
        try:
            user_id = org.accounts.authenticate(username, password)
        except errors.LoginFailed:
            return None
        return org.accounts.open_session(user_id, client="web")

    token = await run_in_threadpool(sign_in)
    if token is None:
        return _login_form(request, LOGIN_FAILED, username, status=401)
    response = RedirectResponse("/app/work", status_code=303)
    auth.set_cookie(response, request, auth.SESSION_COOKIE, token)
    response.delete_cookie(auth.LOGIN_COOKIE, path="/app")
    return response


async def logout(request: Request) -> Response:
    org = _org(request)
    form = await _form(request)
    found = await run_in_threadpool(auth.current, request, org)
    if found is None:
        return _to_login()
    token, _ = found
    if not auth.csrf_ok(org, token, form.get("csrf")):
        return _refused()
    await run_in_threadpool(org.accounts.revoke, token)
    response = _to_login()
    response.delete_cookie(auth.SESSION_COOKIE, path="/app")
    return response


def _refused() -> Response:
    return _render("refused.html", 403)


# --- My Work ------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    return RedirectResponse("/app/work", status_code=303)


def _my_work_soql(session: accounts.Session, scope: str) -> str:
    states = ", ".join(f"'{s}'" for s in OPEN_STATES)
    types = ", ".join(f"'{t}'" for t in MANUAL_STEPS)
    where = f"State IN ({states}) AND StepType IN ({types})"
    if scope != "team":  # the team: whatever visibility lets the user see (ManagerId chain)
        where += f" AND ActionCadenceTracker.OwnerId = '{session.user_id}'"
    return (
        "SELECT Id, StepTitle, StepType, State, DueDateTime, SecondsOverdue, ActionCadenceName, "
        "TargetId, Target.Name, ActionCadenceTracker.Owner.Name "
        f"FROM ActionCadenceStepTracker WHERE {where} "
        f"ORDER BY DueDateTime ASC NULLS LAST, Id LIMIT {PAGE_SIZE}"
    )


def _local(text: str | None, zone: ZoneInfo) -> str:
    if not text:
        return ""
    when: datetime = values.parse_datetime(text).astimezone(zone)
    return when.strftime("%Y-%m-%d %H:%M %Z")


def _overdue(seconds: int | None) -> str:
    if not seconds or seconds <= 0:
        return ""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    if days:
        return f"{days} d {hours} h overdue"
    return f"{hours} h {rest // 60} min overdue"


#: My Work's sections, in the order shown
GROUPS = ("Overdue", "Due Today", "Upcoming")


def _group(record: dict[str, Any], today: date, zone: ZoneInfo) -> str:
    """Overdue (SecondsOverdue > 0), Due Today (due on the user's today), or Upcoming."""
    if (record["SecondsOverdue"] or 0) > 0:
        return "Overdue"
    due = record["DueDateTime"]
    if due and values.parse_datetime(due).astimezone(zone).date() == today:
        return "Due Today"
    return "Upcoming"


def _grouped(
    records: list[dict[str, Any]], now: datetime, zone: ZoneInfo
) -> list[tuple[str, list[dict[str, Any]]]]:
    today = now.astimezone(zone).date()
    rows = _rows(records, zone)
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for record, row in zip(records, rows):
        by_group[_group(record, today, zone)].append(row)
    return [(g, by_group[g]) for g in GROUPS if by_group[g]]


def _rows(records: list[dict[str, Any]], zone: ZoneInfo) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        target = r.get("Target") or {}
        tracker = r.get("ActionCadenceTracker") or {}
        owner = (tracker.get("Owner") or {}).get("Name", "")
        rows.append(
            {
                "id": r["Id"],
                "title": r["StepTitle"] or r["StepType"],
                "type": r["StepType"],
                "state": r["State"],
                "cadence": r["ActionCadenceName"],
                "target": target.get("Name") or r["TargetId"],
                "target_id": r["TargetId"],
                "owner": owner,
                "due": _local(r["DueDateTime"], zone),
                "seconds_overdue": r["SecondsOverdue"] or 0,
                "overdue": _overdue(r["SecondsOverdue"]),
            }
        )
    return rows


async def my_work(request: Request) -> Response:
    org = _org(request)
    found = await run_in_threadpool(auth.current, request, org)
    if found is None:
        return _to_login()
    token, session = found
    scope = "team" if request.query_params.get("scope") == "team" else "mine"

    def load() -> tuple[list[dict[str, Any]], str, list[str]]:
        result = org.query(session, _my_work_soql(session, scope), VERSION)
        user = org.query(session, f"SELECT Name FROM User WHERE Id = '{session.user_id}'", VERSION)[
            "records"
        ]
        return result["records"], (user[0]["Name"] if user else ""), _call_results(org, session)

    records, name, dispositions = await run_in_threadpool(load)
    # "today" is the org's (its clock may be the manual one), in the user's time zone
    groups = _grouped(records, org.store.clock.now(), ZoneInfo(session.time_zone))
    return _render(
        "work.html",
        groups=groups,
        scope=scope,
        user_name=name,
        time_zone=session.time_zone,
        csrf=auth.csrf_token(org, token),
        dispositions=dispositions,
        message=request.query_params.get("message", ""),
        error=request.query_params.get("error", ""),
    )


async def step_action(request: Request) -> Response:
    """POST /app/work/{step}/{action}: call | complete | skip, for the signed-in user."""
    org = _org(request)
    form = await _form(request)
    found = await run_in_threadpool(auth.current, request, org)
    if found is None:
        return _to_login()
    token, session = found
    if not auth.csrf_ok(org, token, form.get("csrf")):
        return _refused()
    action = request.path_params["action"]
    step = request.path_params["step"]
    scope = "team" if form.get("scope") == "team" else "mine"
    try:
        message = await run_in_threadpool(_act, org, session, step, action, form)
    except errors.OpenCadenceError as exc:
        return _back(scope, error=str(exc) or exc.__class__.__name__)
    return _back(scope, message=message)


def _back(scope: str, **params: str) -> Response:
    query = {"scope": scope, **params} if scope == "team" else params
    return RedirectResponse(f"/app/work?{urlencode(query)}", status_code=303)


def _act(org: Org, session: accounts.Session, step: str, action: str, form: dict[str, str]) -> str:
    try:
        step_id = ids.parse_for_object(step, "0cK", "ActionCadenceStepTracker")
    except (errors.OpenCadenceError, ValueError):
        raise errors.NotFound("That step does not exist or you cannot see it.") from None
    # the step as this user may see it: one they cannot see does not exist for them
    found = org.query(
        session,
        "SELECT Id, TargetId, Target.Name, StepType, State FROM ActionCadenceStepTracker "
        f"WHERE Id = '{step_id}'",
        VERSION,
    )["records"]
    if not found:
        raise errors.NotFound("That step does not exist or you cannot see it.")
    record = found[0]
    target = (record.get("Target") or {}).get("Name") or record["TargetId"]
    if action == "call":
        return _log_call(org, session, record, form, target)
    event = {"complete": "ManualComplete", "skip": "Skip"}.get(action)
    if event is None:
        raise errors.NotFound("Unknown action.")
    (result,) = org.invoke_action(
        session, "sendSalesCadenceEvent", [{"recordId": step_id, "eventType": event}]
    )
    if not result.get("isSuccess"):
        raise errors.InvalidOperation(result["errors"][0]["message"])
    return f"{'Completed' if action == 'complete' else 'Skipped'}: {target}"


def _log_call(
    org: Org, session: accounts.Session, record: dict[str, Any], form: dict[str, str], target: str
) -> str:
    if record["StepType"] != "MakeACall":
        raise errors.InvalidOperation("Only a call step is completed by logging a call.")
    disposition = form.get("disposition", "")
    if disposition not in _call_results(org, session):
        raise errors.InvalidOperation("Choose a call result.")
    body = {
        "Subject": "Call",
        "TaskSubtype": "Call",
        "Status": "Completed",
        "WhoId": record["TargetId"],
        "CallDisposition": disposition,
        "Description": form.get("comments", "")[:32_000] or None,
    }
    org.create(session, "Task", body, VERSION, api="web")
    return f"Call logged: {target} ({disposition})"


def _call_results(org: Org, session: accounts.Session) -> list[str]:
    """The call results a rep picks from: the org's CallDisposition records."""
    soql = "SELECT Disposition FROM CallDisposition ORDER BY Id"
    return [r["Disposition"] for r in org.query(session, soql, VERSION)["records"]]


def mount(app_state: Any, read_body: BodyReader) -> Mount:
    """The app's routes, mounted at /app; ``read_body`` bounds request bodies."""
    app_state.web_read_body = read_body
    return Mount(
        "/app",
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/work", my_work, methods=["GET"]),
            Route("/work/{step}/{action}", step_action, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ],
    )
