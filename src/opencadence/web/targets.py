"""Targets: the Contacts and Leads lists (search, Add to Cadence) and a target's page (its
cadence history and email engagement). Reads through ``Org.query`` with the signed-in user's
visibility; enrolment through ``Org.invoke_action`` (assignTargetToSalesCadence, as the REST
API runs it). A target the user may not see answers the 403 page, whether it exists or not."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opencadence import errors, ids
from opencadence.org import Org
from opencadence.storage import accounts
from opencadence.web import common

#: rows on one list page
LIST_SIZE = 50
#: what each list shows beside the name
LISTS = {
    "Contact": ("Contacts", "Account.Name", "Account"),
    "Lead": ("Leads", "Company", "Company"),
}
#: engagement kinds shown, in order (the engagement log's names -> column headings)
ENGAGEMENT = (
    ("send", "Sent"),
    ("open", "Opened"),
    ("click", "Clicked"),
    ("reply", "Replied"),
    ("hard_bounce", "Bounced"),
    ("soft_bounce", "Soft bounce"),
)


def list_soql(obj: str, search: str) -> str:
    _, extra, _ = LISTS[obj]
    where = ""
    if search:
        like = common.soql_string(search.replace("%", "").replace("_", ""))
        where = f"WHERE (Name LIKE '%{like}%' OR Email LIKE '%{like}%') "
    return (
        f"SELECT Id, Name, Email, {extra}, Owner.Name FROM {obj} {where}"
        f"ORDER BY Name, Id LIMIT {LIST_SIZE}"
    )


def _value(record: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(part)  # type: ignore[assignment]
    return record


def _rows(org: Org, session: accounts.Session, obj: str, search: str) -> list[dict[str, Any]]:
    _, extra, _ = LISTS[obj]
    found = org.query(session, list_soql(obj, search), common.VERSION)["records"]
    return [
        {
            "id": r["Id"],
            "name": r["Name"],
            "email": r["Email"] or "",
            "extra": _value(r, extra) or "",
            "owner": (r.get("Owner") or {}).get("Name", ""),
        }
        for r in found
    ]


def _choices(org: Org, session: accounts.Session) -> tuple[list[Any], list[Any]]:
    """Active cadences, and the users the signed-in user may assign targets to (themselves
    and the users they see; the action refuses anyone they do not manage)."""
    cadences = org.query(
        session,
        "SELECT Id, Name FROM ActionCadence WHERE State = 'Active' ORDER BY Name LIMIT 200",
        common.VERSION,
    )["records"]
    users = org.query(
        session,
        "SELECT Id, Name FROM User WHERE IsActive = true ORDER BY Name LIMIT 200",
        common.VERSION,
    )["records"]
    return cadences, users


async def contacts(request: Request) -> Response:
    return await _list(request, "Contact")


async def leads(request: Request) -> Response:
    return await _list(request, "Lead")


async def _list(
    request: Request,
    obj: str,
    results: list[dict[str, Any]] | None = None,
    who: common.Signed | None = None,
    search: str | None = None,
) -> Response:
    org = common.org_of(request)
    who = who or await common.signed_in(request)
    if who is None:
        return common.to_login()
    if search is None:
        search = (request.query_params.get("q") or "").strip()[:80]
    session = who.session

    def load() -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
        return _rows(org, session, obj, search), *_choices(org, session)

    rows, cadences, users = await run_in_threadpool(load)
    title, _, extra_label = LISTS[obj]
    return common.render(
        "targets.html",
        title=title,
        obj=obj,
        path="/app/" + title.lower(),
        extra_label=extra_label,
        rows=rows,
        q=search,
        cadences=cadences,
        users=users,
        me=session.user_id,
        results=results,
        user_name=who.name,
        time_zone=session.time_zone,
        csrf=who.csrf,
    )


async def enroll(request: Request) -> Response:
    """POST /app/targets/enroll: Add to Cadence for each selected target; the list again with
    a result per target."""
    org = common.org_of(request)
    who, fields, answer = await common.posted(request)
    if who is None:
        assert answer is not None
        return answer
    obj = "Lead" if (fields.get("object") or [""])[0] == "Lead" else "Contact"
    chosen = [t for t in fields.get("target", []) if ids.is_valid(t)][:200]
    cadence = (fields.get("cadence") or [""])[0]
    assignee = (fields.get("assignee") or [""])[0] or who.session.user_id
    search = (fields.get("q") or [""])[0]

    def run() -> list[dict[str, Any]]:
        return add_to_cadence(org, who.session, chosen, cadence, assignee)

    if not chosen:
        results = [{"name": "", "ok": False, "text": "Select at least one target."}]
    elif not cadence:
        results = [{"name": "", "ok": False, "text": "Choose a cadence."}]
    else:
        results = await run_in_threadpool(run)
    return await _list(request, obj, results, who, search)


def add_to_cadence(
    org: Org, session: accounts.Session, targets: list[str], cadence: str, assignee: str
) -> list[dict[str, Any]]:
    """assignTargetToSalesCadence for each target (one invocation), a result line per target:
    enrolled (with a warning when the target has no email address), or why not."""
    known: dict[str, dict[str, Any]] = {}
    for obj in LISTS:
        prefix = org.registry.prefix(obj)
        of_obj = [ids.parse(t) for t in targets if ids.parse(t).startswith(prefix)]
        if of_obj:
            quoted = ", ".join(f"'{t}'" for t in of_obj)
            for r in org.query(
                session, f"SELECT Id, Name, Email FROM {obj} WHERE Id IN ({quoted})", "62.0"
            )["records"]:
                known[r["Id"]] = r
    inputs = [
        {"salesCadenceNameOrId": cadence, "targetId": ids.parse(t), "userId": assignee}
        for t in targets
    ]
    results = org.invoke_action(session, "assignTargetToSalesCadence", inputs)
    out = []
    for t, result in zip(targets, results):
        record = known.get(ids.parse(t)) or {}
        name = record.get("Name") or ids.parse(t)
        if result.get("isSuccess"):
            text = "Added to the cadence"
            if not record.get("Email"):
                text += " (no email address: its email steps will fail)"
            out.append({"name": name, "ok": True, "text": text})
        else:
            error = result["errors"][0]
            out.append({"name": name, "ok": False, "text": error["message"]})
    return out


# --- the target page ------------------------------------------------------------------------


def _target(org: Org, session: accounts.Session, target: str) -> tuple[str, dict[str, Any]]:
    """(object, record) of a target the user may see; NotFound otherwise."""
    try:
        canonical = ids.parse(target)
    except errors.OpenCadenceError:
        raise errors.NotFound("no such target") from None
    for obj in LISTS:
        if org.registry.is_id_of(canonical, obj):
            _, extra, _ = LISTS[obj]
            found = org.query(
                session,
                f"SELECT Id, Name, Email, Phone, {extra}, Owner.Name FROM {obj} "
                f"WHERE Id = '{canonical}'",
                common.VERSION,
            )["records"]
            if found:
                return obj, found[0]
    raise errors.NotFound("no such target")


def history_soql(target_id: str) -> tuple[str, str]:
    trackers = (
        "SELECT Id, ActionCadence.Name, State, CompletionReason, CompletionDisposition, "
        "Owner.Name, CreatedDate, LastModifiedDate FROM ActionCadenceTracker "
        f"WHERE TargetId = '{target_id}' ORDER BY CreatedDate, Id"
    )
    steps = (
        "SELECT Id, ActionCadenceTrackerId, StepTitle, StepType, State, CompletionReason, "
        "CompletedBy.Name, CompletionDate, ActionTakenDateTime, DueDateTime, CreatedDate "
        f"FROM ActionCadenceStepTracker WHERE TargetId = '{target_id}' ORDER BY CreatedDate, Id"
    )
    return trackers, steps


async def target_page(request: Request) -> Response:
    org = common.org_of(request)
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    session, zone = who.session, who.zone

    def load() -> dict[str, Any] | None:
        try:
            obj, record = _target(org, session, request.path_params["target"])
        except errors.NotFound:
            return None
        tq, sq = history_soql(record["Id"])
        trackers = org.query(session, tq, common.VERSION)["records"]
        steps = org.query(session, sq, common.VERSION)["records"]
        by_tracker: dict[str, list[dict[str, Any]]] = {t["Id"]: [] for t in trackers}
        for s in steps:
            by_tracker.setdefault(s["ActionCadenceTrackerId"], []).append(
                {
                    "title": s["StepTitle"] or s["StepType"],
                    "type": s["StepType"],
                    "state": s["State"],
                    "reason": s["CompletionReason"] or "",
                    "who": (s.get("CompletedBy") or {}).get("Name", ""),
                    "when": common.local(s["CompletionDate"] or s["ActionTakenDateTime"], zone),
                    "started": common.local(s["CreatedDate"], zone),
                    "due": common.local(s["DueDateTime"], zone),
                }
            )
        history = [
            {
                "cadence": (t.get("ActionCadence") or {}).get("Name", ""),
                "state": t["State"],
                "reason": t["CompletionReason"] or "",
                "disposition": t["CompletionDisposition"] or "",
                "owner": (t.get("Owner") or {}).get("Name", ""),
                "since": common.local(t["CreatedDate"], zone),
                "steps": by_tracker.get(t["Id"], []),
            }
            for t in trackers
        ]
        emails = [
            {
                "title": e["StepTitle"] or e["StepType"],
                "cadence": e["ActionCadenceName"],
                "at": {kind: common.local(e["events"].get(kind), zone) for kind, _ in ENGAGEMENT},
            }
            for e in org.email_engagement(session, record["Id"])
        ]
        _, extra, extra_label = LISTS[obj]
        return {
            "obj": obj,
            "record": record,
            "extra_label": extra_label,
            "extra": _value(record, extra) or "",
            "history": history,
            "emails": emails,
        }

    page = await run_in_threadpool(load)
    if page is None:
        return common.forbidden(who)
    return common.render(
        "target.html",
        **page,
        engagement=ENGAGEMENT,
        user_name=who.name,
        time_zone=session.time_zone,
        csrf=who.csrf,
    )
