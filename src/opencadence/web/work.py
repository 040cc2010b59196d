"""My Work: the signed-in user's open steps, their actions, filters and keyset paging.

Every read is one SOQL query through ``Org.query`` for the session; every action an
``Org.create`` (a logged call), ``Org.invoke_action`` (the REST API's actions) or
``Org.send_step_email`` (a manual email, through the outbox)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from opencadence import errors, ids
from opencadence.org import Org
from opencadence.storage import accounts, values, wakeup
from opencadence.web import common

#: the step types a person works (the rest the runtime runs by itself)
MANUAL_STEPS = ("MakeACall", "SendAnEmail", "CreateTask", "LinkedInConnection", "LinkedInMail")
#: the open states a person works in
OPEN_STATES = ("Active", "InProgress")
#: steps on one page; the next page starts after the last one's (DueDateTime, Id)
PAGE_SIZE = 50
#: My Work's sections, in the order shown
GROUPS = ("Overdue", "Due Today", "Upcoming", "Paused")
#: the tracker actions of the step rows: form action -> (REST action, result message)
TRACKER_ACTIONS = {
    "pause": ("pauseSalesCadenceTracker", "Paused"),
    "resume": ("resumeSalesCadenceTracker", "Resumed"),
    "remove": ("removeTargetFromSalesCadence", "Removed from the cadence"),
}
NOT_FOUND = "That step does not exist or you cannot see it."


class Filters:
    """The page's query parameters: scope, status, cadence, step type and the page start."""

    def __init__(self, params: Any) -> None:
        self.scope = "team" if params.get("scope") == "team" else "mine"
        self.status = "paused" if params.get("status") == "paused" else "open"
        cadence = params.get("cadence") or ""
        self.cadence = ids.parse(cadence) if ids.is_valid(cadence) else ""
        kind = params.get("type") or ""
        self.step_type = kind if kind in MANUAL_STEPS else ""
        self.after = _cursor(params.get("after") or "")

    def query(self, **changes: str) -> str:
        """These filters as a query string (``changes`` replacing some; no page start)."""
        params = {
            "scope": self.scope if self.scope != "mine" else "",
            "status": self.status if self.status != "open" else "",
            "cadence": self.cadence,
            "type": self.step_type,
        }
        params.update(changes)
        return urlencode({k: v for k, v in params.items() if v})


def _cursor(text: str) -> tuple[str | None, str] | None:
    """``after`` = ``DUE~ID`` (DUE empty for a step without a due date), or None."""
    due, sep, step = text.partition("~")
    if not sep or not ids.is_valid(step):
        return None
    if due:
        try:
            due = values.format_datetime(values.parse_datetime(due))
        except (ValueError, errors.OpenCadenceError):
            return None
    return (due or None), ids.parse(step)


def soql(session: accounts.Session, f: Filters, limit: int = PAGE_SIZE + 1) -> str:
    """The one query behind a page of My Work (the bench runs it through the API too)."""
    states = OPEN_STATES if f.status == "open" else ("Paused",)
    types = (f.step_type,) if f.step_type else MANUAL_STEPS
    where = [
        "State IN (%s)" % ", ".join(f"'{s}'" for s in states),
        "StepType IN (%s)" % ", ".join(f"'{t}'" for t in types),
    ]
    if f.scope != "team":  # the team: whatever visibility lets the user see (ManagerId chain)
        where.append(f"ActionCadenceTracker.OwnerId = '{session.user_id}'")
    if f.cadence:
        where.append(f"ActionCadenceTracker.ActionCadenceId = '{f.cadence}'")
    if f.after is not None:
        due, step = f.after
        if due is None:
            where.append(f"(DueDateTime = null AND Id > '{step}')")
        else:
            where.append(
                f"(DueDateTime > {due} OR (DueDateTime = {due} AND Id > '{step}') "
                "OR DueDateTime = null)"
            )
    return (
        "SELECT Id, StepTitle, StepType, State, DueDateTime, SecondsOverdue, ActionCadenceName, "
        "TargetId, Target.Name, ActionCadenceTracker.Owner.Name "
        f"FROM ActionCadenceStepTracker WHERE {' AND '.join(where)} "
        f"ORDER BY DueDateTime ASC NULLS LAST, Id LIMIT {limit}"
    )


def _overdue(seconds: int | None) -> str:
    if not seconds or seconds <= 0:
        return ""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    if days:
        return f"{days} d {hours} h overdue"
    return f"{hours} h {rest // 60} min overdue"


def _group(record: dict[str, Any], today: date, zone: ZoneInfo) -> str:
    """Paused, Overdue (SecondsOverdue > 0), Due Today (due on the user's today), Upcoming."""
    if record["State"] == "Paused":
        return "Paused"
    if (record["SecondsOverdue"] or 0) > 0:
        return "Overdue"
    due = record["DueDateTime"]
    if due and values.parse_datetime(due).astimezone(zone).date() == today:
        return "Due Today"
    return "Upcoming"


def grouped(
    records: list[dict[str, Any]], now: datetime, zone: ZoneInfo
) -> list[tuple[str, list[dict[str, Any]]]]:
    today = now.astimezone(zone).date()
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for record in records:
        by_group[_group(record, today, zone)].append(_row(record, zone))
    return [(g, by_group[g]) for g in GROUPS if by_group[g]]


def _row(r: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    target = r.get("Target") or {}
    tracker = r.get("ActionCadenceTracker") or {}
    return {
        "id": r["Id"],
        "title": r["StepTitle"] or r["StepType"],
        "type": r["StepType"],
        "state": r["State"],
        "cadence": r["ActionCadenceName"],
        "target": target.get("Name") or r["TargetId"],
        "target_id": r["TargetId"],
        "owner": (tracker.get("Owner") or {}).get("Name", ""),
        "due": common.local(r["DueDateTime"], zone),
        "seconds_overdue": r["SecondsOverdue"] or 0,
        "overdue": _overdue(r["SecondsOverdue"]),
    }


def call_results(org: Org, session: accounts.Session) -> list[str]:
    """The call results a rep picks from: the org's CallDisposition records."""
    soql = "SELECT Disposition FROM CallDisposition ORDER BY Id"
    return [r["Disposition"] for r in org.query(session, soql, common.VERSION)["records"]]


def _cadences(org: Org, session: accounts.Session) -> list[dict[str, Any]]:
    found = org.query(session, "SELECT Id, Name FROM ActionCadence ORDER BY Name LIMIT 200", "62.0")
    return [{"id": r["Id"], "name": r["Name"]} for r in found["records"]]


async def my_work(request: Request) -> Response:
    org = common.org_of(request)
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    f = Filters(request.query_params)

    def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, list[str]]:
        # the replay id first: a change committed while the page is read is heard live
        replay = wakeup.newest_replay_id(org.store)
        records = org.query(who.session, soql(who.session, f), common.VERSION)["records"]
        return records, _cadences(org, who.session), replay, call_results(org, who.session)

    records, cadences, replay, dispositions = await run_in_threadpool(load)
    more = len(records) > PAGE_SIZE
    records = records[:PAGE_SIZE]
    next_url = ""
    if more:
        last = records[-1]
        after = f"{last['DueDateTime'] or ''}~{last['Id']}"
        next_url = "/app/work?" + f.query(after=after)
    # "today" is the org's (its clock may be the manual one), in the user's time zone
    groups = grouped(records, org.store.clock.now(), who.zone)
    return common.render(
        "work.html",
        groups=groups,
        f=f,
        self_url=str(request.url.path) + ("?" + request.url.query if request.url.query else ""),
        first_url="/app/work?" + f.query() if f.after is not None else "",
        next_url=next_url,
        cadences=cadences,
        replay=replay,
        step_types=MANUAL_STEPS,
        user_name=who.name,
        time_zone=who.session.time_zone,
        is_admin=who.session.is_admin,
        csrf=who.csrf,
        dispositions=dispositions,
        message=request.query_params.get("message", ""),
        error=request.query_params.get("error", ""),
    )


async def step_action(request: Request) -> Response:
    """POST /app/work/{step}/{action}: call | complete | skip | pause | resume | remove."""
    org = common.org_of(request)
    who, fields, answer = await common.posted(request)
    if who is None:
        assert answer is not None
        return answer
    form = {k: v[0] for k, v in fields.items()}
    action = request.path_params["action"]
    step = request.path_params["step"]
    back = form.get("back", "")
    try:
        message = await run_in_threadpool(_act, org, who.session, step, action, form)
    except errors.OpenCadenceError as exc:
        return _back(back, error=str(exc) or exc.__class__.__name__)
    return _back(back, message=message)


def safe_back(back: str) -> str:
    """``back`` if it is a page of this app (a path under /app/), else My Work: never another
    site, never a ``javascript:`` URL."""
    if (
        not back.startswith("/app/")
        or "//" in back
        or "\\" in back
        or any(c in back for c in "\r\n\t")
    ):
        return "/app/work"
    return back


def _back(back: str, **params: str) -> Response:
    """Back to the page the form was on (a My Work or target page), with the outcome."""
    path, _, query = safe_back(back).partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith(("message=", "error="))]
    query = "&".join(kept + [urlencode(params)])
    return RedirectResponse(f"{path}?{query}", status_code=303)


def visible_step(org: Org, session: accounts.Session, step: str) -> dict[str, Any]:
    """The step tracker as this user may see it: one they cannot see does not exist."""
    try:
        step_id = ids.parse_for_object(
            step, org.registry.prefix("ActionCadenceStepTracker"), "ActionCadenceStepTracker"
        )
    except (errors.OpenCadenceError, ValueError):
        raise errors.NotFound(NOT_FOUND) from None
    found = org.query(
        session,
        "SELECT Id, TargetId, Target.Name, StepType, StepTitle, State, ActionCadenceName, "
        "ActionCadenceTrackerId "
        f"FROM ActionCadenceStepTracker WHERE Id = '{step_id}'",
        common.VERSION,
    )["records"]
    if not found:
        raise errors.NotFound(NOT_FOUND)
    record: dict[str, Any] = found[0]
    return record


def _act(org: Org, session: accounts.Session, step: str, action: str, form: dict[str, str]) -> str:
    record = visible_step(org, session, step)
    step_id = record["Id"]
    target = (record.get("Target") or {}).get("Name") or record["TargetId"]
    if action == "call":
        return _log_call(org, session, record, form, target)
    if action in TRACKER_ACTIONS:
        name, done = TRACKER_ACTIONS[action]
        inp: dict[str, Any] = {"targetId": record["TargetId"]}
        if action == "remove":
            inp = {
                "actionCadenceTrackerId": record["ActionCadenceTrackerId"],
                "completionReasonCode": "ManuallyRemoved",
            }
        _invoke(org, session, name, inp)
        return f"{done}: {target}"
    event = {"complete": "ManualComplete", "skip": "Skip"}.get(action)
    if event is None:
        raise errors.NotFound("Unknown action.")
    _invoke(org, session, "sendSalesCadenceEvent", {"recordId": step_id, "eventType": event})
    return f"{'Completed' if action == 'complete' else 'Skipped'}: {target}"


def _invoke(org: Org, session: accounts.Session, name: str, inp: dict[str, Any]) -> None:
    (result,) = org.invoke_action(session, name, [inp])
    if not result.get("isSuccess"):
        raise errors.InvalidOperation(result["errors"][0]["message"])


def _log_call(
    org: Org, session: accounts.Session, record: dict[str, Any], form: dict[str, str], target: str
) -> str:
    if record["StepType"] != "MakeACall":
        raise errors.InvalidOperation("Only a call step is completed by logging a call.")
    disposition = form.get("disposition", "")
    if disposition not in call_results(org, session):
        raise errors.InvalidOperation("Choose a call result.")
    body = {
        "Subject": "Call",
        "TaskSubtype": "Call",
        "Status": "Completed",
        "WhoId": record["TargetId"],
        "CallDisposition": disposition,
        "Description": form.get("comments", "")[:32_000] or None,
    }
    org.create(session, "Task", body, common.VERSION, api="web")
    return f"Call logged: {target} ({disposition})"


# --- Send Email -----------------------------------------------------------------------------


async def email_page(request: Request) -> Response:
    """GET /app/work/{step}/email: the composer, pre-filled with the step's template rendered
    for the target."""
    org = common.org_of(request)
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    step = request.path_params["step"]

    def load() -> tuple[dict[str, Any], Any]:
        record = visible_step(org, who.session, step)
        return record, org.email_draft(who.session, record["Id"])

    try:
        record, draft = await run_in_threadpool(load)
    except errors.OpenCadenceError as exc:
        return _back("/app/work", error=exc.message or NOT_FOUND)
    return common.render(
        "email.html",
        record=record,
        target=(record.get("Target") or {}).get("Name") or record["TargetId"],
        draft=draft,
        subject=draft.subject,
        body=draft.body,
        error=draft.problem or "",
        back=safe_back(request.query_params.get("back", "/app/work")),
        user_name=who.name,
        time_zone=who.session.time_zone,
        is_admin=who.session.is_admin,
        csrf=who.csrf,
    )


async def send_email(request: Request) -> Response:
    """POST /app/work/{step}/email: send the (edited) email and complete the step."""
    org = common.org_of(request)
    who, fields, answer = await common.posted(request, common.EMAIL_FORM_MAX)
    if who is None:
        assert answer is not None
        return answer
    form = {k: v[0] for k, v in fields.items()}
    step = request.path_params["step"]
    subject, body = form.get("subject", "").strip(), form.get("body", "")
    html = form.get("format") == "html"
    back = safe_back(form.get("back", "/app/work"))

    def send() -> dict[str, Any]:
        record = visible_step(org, who.session, step)
        org.send_step_email(who.session, record["Id"], subject, body, html=html)
        return record

    try:
        record = await run_in_threadpool(send)
    except errors.OpenCadenceError as exc:
        try:
            record = await run_in_threadpool(visible_step, org, who.session, step)
        except errors.OpenCadenceError:
            return _back(back, error=exc.message or NOT_FOUND)
        draft = await run_in_threadpool(org.email_draft, who.session, record["Id"])
        return common.render(
            "email.html",
            400,
            record=record,
            target=(record.get("Target") or {}).get("Name") or record["TargetId"],
            draft=draft,
            subject=subject,
            body=body,
            error=exc.message or exc.__class__.__name__,
            back=back,
            user_name=who.name,
            time_zone=who.session.time_zone,
            is_admin=who.session.is_admin,
            csrf=who.csrf,
        )
    target = (record.get("Target") or {}).get("Name") or record["TargetId"]
    return _back(back, message=f"Email sent: {target}")
