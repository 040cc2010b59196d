"""The cadence builder: the cadences list, a cadence's graph as a diagram with its step, rule,
variant and exit-rule forms, Activate / Deactivate, and import / export of the definition file.

Only users allowed to build cadences (administrators, the SalesEngagementCadenceCreator
permission set) see it; anyone else gets the 403 page and nothing changes. Reads are SOQL
through ``Org.query``; every change is an ``Org.create`` / ``update`` / ``delete`` of the
builder records (ActionCadence, ActionCadenceStep, ActionCadenceRule,
ActionCadenceRuleCondition, ActionCadenceStepVariant) for the signed-in session, so the
permission checks, the activation checks of an active cadence's edit and the change events
are the API's. Activation errors name their step ("Step call: ..."): the page shows them in
that step's box."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from opencadence import errors, ids
from opencadence.cadence import definition_file, graph
from opencadence.org import Org
from opencadence.storage import accounts
from opencadence.web import common

#: the definition file pasted or uploaded into the import form
IMPORT_FORM_MAX = 512 * 1024
#: the step types the builder adds, with the labels it shows (every type the runtime runs)
STEP_TYPES = (
    ("MakeACall", "Call"),
    ("SendAnEmail", "Manual email"),
    ("AutoSendAnEmail", "Automated email"),
    ("CreateTask", "Task"),
    ("LinkedInConnection", "LinkedIn: connect"),
    ("LinkedInMail", "LinkedIn: message"),
    ("Wait", "Wait"),
    ("Branch", "Branch on call result"),
    ("ListenerBranch", "Listen for email engagement"),
    ("PlatformScreenFlow", "Screen flow"),
    ("DaisyChain", "Daisy chain to another cadence"),
)
LABEL = dict(STEP_TYPES) | {"Root": "Start", "SubRoot": "Track"}
#: the labels of the values rules and exit rules name
OUTCOME_LABEL = {
    "CallMeaningfulConnect": "Meaningful connect",
    "CallUnqualified": "Unqualified",
    "CallLeftVoicemail": "Left voicemail",
    "CallNotInterested": "Not interested",
    "CallCallBackLater": "Call back later",
    "EmailOpen": "Email opened",
    "EmailLinkClick": "Link clicked",
    "EmailReply": "Email replied",
    "EmailHardBounce": "Email hard bounce",
    "EmailSoftBounce": "Email soft bounce",
}
UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
#: the activation error's step ("Step call: ...", validate.Problem)
_STEP_ERROR = re.compile(r"^Step (.+?): ")
_NAME_CHARS = re.compile(r"[^a-z0-9]+")
GONE = ("Retired", "Orphaned")

STEP_FIELDS = (
    "Id, StepName, StepTitle, Type, ParentStepName, BranchDefaultStepName, GoToStepName, "
    "WaitTimeInSeconds, TemplateId, ScheduledDaysUntilDue, ScheduledDaysUntilStart, "
    "StepComments, GraphState, ChainedCadenceId, ScreenFlowReference, CreatedDate"
)


class FormError(errors.OpenCadenceError):
    """A form filled in wrong: its message is shown as it is (nothing was changed)."""

    error_code = ""


def may_build(who: common.Signed) -> bool:
    return who.session.can_manage_cadences


def duration(seconds: int | None) -> str:
    """A wait's length as people say it: "2 days", "3 hours", "90 minutes"."""
    if not seconds:
        return "no duration"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} seconds"


def _where_in(
    org: Org, session: accounts.Session, soql: str, values: list[str]
) -> list[dict[str, Any]]:
    """The records of ``soql`` with its ``IN ({})`` filled with ``values`` (none: no query)."""
    if not values:
        return []
    quoted = ", ".join(f"'{v}'" for v in values)
    found: list[dict[str, Any]] = org.query(session, soql.format(quoted), common.VERSION)["records"]
    return found


# --- the cadences list -----------------------------------------------------------------------

CADENCES_SOQL = (
    "SELECT Id, Name, Type, State, ActiveTargets, TotalTargets, TotalSteps, Owner.Name, "
    "LastModifiedDate FROM ActionCadence WHERE State != 'Deleting' ORDER BY Name, Id LIMIT 500"
)


async def cadences(request: Request) -> Response:
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    if not may_build(who):
        return common.forbidden(who)
    return await _list_page(request, who)


async def _list_page(
    request: Request,
    who: common.Signed,
    error: str | None = None,
    definition: str = "",
    name: str = "",
    status: int = 200,
) -> Response:
    org = common.org_of(request)
    rows = await run_in_threadpool(
        lambda: org.query(who.session, CADENCES_SOQL, common.VERSION)["records"]
    )
    return common.render(
        "builder_list.html",
        status,
        cadences=rows,
        error=error,
        definition=definition,
        cadence_name=name,
        user_name=who.name,
        time_zone=who.session.time_zone,
        csrf=who.csrf,
    )


async def create_cadence(request: Request) -> Response:
    """POST /app/cadences: a new Draft cadence with its Start (Root) step."""
    org = common.org_of(request)
    who, fields, answer = await common.posted(request)
    if who is None:
        return answer or common.to_login()
    if not may_build(who):
        return common.forbidden(who)
    name = _one(fields, "name").strip()
    description = _one(fields, "description").strip()
    if not name:
        return await _list_page(request, who, "Enter a name for the cadence.", status=400)

    def run() -> str:
        session = who.session
        with org.transaction(session, common.VERSION, api="web") as tx:
            # in the org-wide folder, as the definition-file import puts it
            body: dict[str, Any] = {
                "Name": name,
                "Type": "Standard",
                "FolderId": definition_file.ORG_FOLDER,
            }
            if description:
                body["Description"] = description
            cadence_id = org.create(session, "ActionCadence", body, common.VERSION, tx=tx)
            org.create(
                session,
                "ActionCadenceStep",
                {
                    "ActionCadenceId": cadence_id,
                    "StepName": "start",
                    "StepTitle": "Start",
                    "Type": "Root",
                },
                common.VERSION,
                tx=tx,
            )
        return cadence_id

    try:
        cadence_id = await run_in_threadpool(run)
    except errors.OpenCadenceError as exc:
        return await _list_page(request, who, _message(exc), name=name, status=400)
    return RedirectResponse(f"/app/cadences/{cadence_id}", status_code=303)


async def import_cadence(request: Request) -> Response:
    """POST /app/cadences/import: a cadence from a definition file (YAML or JSON)."""
    org = common.org_of(request)
    who, fields, answer = await common.posted(request, IMPORT_FORM_MAX)
    if who is None:
        return answer or common.to_login()
    if not may_build(who):
        return common.forbidden(who)
    text = _one(fields, "definition")
    try:
        data = definition_file.load_text(text)
    except (yaml.YAMLError, errors.OpenCadenceError) as exc:
        problem = f"INVALID_DEFINITION: the file is not YAML or JSON ({exc})"
        if isinstance(exc, errors.OpenCadenceError):
            problem = _message(exc)
        return await _list_page(request, who, problem, definition=text, status=400)
    try:
        cadence_id = await run_in_threadpool(org.import_cadence, who.session, data)
    except errors.OpenCadenceError as exc:
        return await _list_page(request, who, _message(exc), definition=text, status=400)
    return RedirectResponse(f"/app/cadences/{cadence_id}", status_code=303)


async def export_cadence(request: Request) -> Response:
    """GET /app/cadences/{id}/export: the definition file (YAML, or JSON with ?format=json)."""
    org = common.org_of(request)
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    if not may_build(who):
        return common.forbidden(who)
    as_json = request.query_params.get("format") == "json"
    try:
        data = await run_in_threadpool(
            org.export_cadence, who.session, request.path_params["cadence"]
        )
    except errors.OpenCadenceError:
        return common.forbidden(who)
    text = definition_file.dump(data, as_json=as_json)
    slug = _NAME_CHARS.sub("-", str(data["cadence"].get("Name", "cadence")).lower()).strip("-")
    ext = "json" if as_json else "yaml"
    return Response(
        text,
        media_type="application/json" if as_json else "application/yaml",
        headers={
            "content-disposition": f'attachment; filename="{slug or "cadence"}.{ext}"',
            "cache-control": "no-store",
        },
    )


# --- one cadence: the diagram and its forms ---------------------------------------------------


@dataclass
class Node:
    step: dict[str, Any]
    #: how a target gets here from the parent: "If Meaningful connect", "Otherwise", "Track"
    edge: str = ""
    kids: list[Node] = field(default_factory=list)


def _load(org: Org, session: accounts.Session, cadence_id: str) -> dict[str, Any] | None:
    found = org.query(
        session,
        "SELECT Id, Name, Description, Type, State, ErrorMessage, ActiveTargets, TotalTargets, "
        f"TotalSteps, ActivatedDate FROM ActionCadence WHERE Id = '{cadence_id}'",
        common.VERSION,
    )["records"]
    if not found:
        return None
    head = found[0]
    steps = org.query(
        session,
        f"SELECT {STEP_FIELDS} FROM ActionCadenceStep WHERE ActionCadenceId = '{cadence_id}' "
        "ORDER BY CreatedDate, Id",
        common.VERSION,
    )["records"]
    # a Retired step's next steps now follow the step before it (its GoToStepName leads past)
    retired = {s["StepName"]: s["ParentStepName"] for s in steps if s["GraphState"] == "Retired"}
    steps = [s for s in steps if s["GraphState"] not in GONE]
    for s in steps:
        parent, seen = s["ParentStepName"], set()
        while parent in retired and parent not in seen:
            seen.add(parent)
            parent = retired[parent]
        s["parent"] = parent
    step_ids = [s["Id"] for s in steps]
    rules = _where_in(
        org,
        session,
        "SELECT Id, ActionCadenceStepId, RuleName, RuleType, GlobalEventType, "
        "OutcomeNextStepName, GraphState, CreatedDate FROM ActionCadenceRule "
        "WHERE ActionCadenceStepId IN ({}) ORDER BY CreatedDate, Id",
        step_ids,
    )
    rules = [r for r in rules if r["GraphState"] not in GONE]
    conditions = _where_in(
        org,
        session,
        "SELECT Id, ActionCadenceRuleId, Resource, Operator, Value FROM "
        "ActionCadenceRuleCondition WHERE ActionCadenceRuleId IN ({}) ORDER BY Id",
        [r["Id"] for r in rules],
    )
    variants = _where_in(
        org,
        session,
        "SELECT Id, ActionCadenceStepId, TemplateId, SplitPercentage FROM "
        "ActionCadenceStepVariant WHERE ActionCadenceStepId IN ({}) ORDER BY CreatedDate, Id",
        step_ids,
    )
    email_templates = org.query(
        session,
        "SELECT Id, Name, IsActive FROM EmailTemplate ORDER BY Name, Id LIMIT 500",
        common.VERSION,
    )["records"]
    scripts = org.query(
        session, "SELECT Id, Name FROM CallTemplate ORDER BY Name, Id LIMIT 500", common.VERSION
    )["records"]
    others = org.query(
        session,
        f"SELECT Id, Name FROM ActionCadence WHERE Id != '{cadence_id}' AND State != 'Deleting' "
        "ORDER BY Name LIMIT 500",
        common.VERSION,
    )["records"]
    names = {t["Id"]: t["Name"] for t in email_templates + scripts}
    names |= {c["Id"]: c["Name"] for c in others}
    conds_of: dict[str, list[dict[str, Any]]] = {}
    for c in conditions:
        conds_of.setdefault(c["ActionCadenceRuleId"], []).append(c)
    for s in steps:
        s["rules"] = []
        s["variants"] = []
        s["label"] = LABEL.get(s["Type"], s["Type"])
        s["template_name"] = names.get(s["TemplateId"] or "", s["TemplateId"] or "")
        s["chained_name"] = names.get(s["ChainedCadenceId"] or "", "")
        s["wait"] = duration(s["WaitTimeInSeconds"])
    by_id = {s["Id"]: s for s in steps}
    exit_rules = []
    for r in rules:
        r["conditions"] = conds_of.get(r["Id"], [])
        r["values"] = [OUTCOME_LABEL.get(c["Value"], c["Value"]) for c in r["conditions"]]
        owner = by_id.get(r["ActionCadenceStepId"])
        if owner is None:
            continue
        if r["RuleType"] == graph.EXIT_RULE:
            r["event"] = OUTCOME_LABEL.get(r["GlobalEventType"] or "", r["GlobalEventType"])
            exit_rules.append(r)
        else:
            owner["rules"].append(r)
    for v in variants:
        owner = by_id.get(v["ActionCadenceStepId"])
        if owner is not None:
            v["template_name"] = names.get(v["TemplateId"] or "", v["TemplateId"] or "")
            owner["variants"].append(v)
    titles = {s["StepName"]: s["StepTitle"] or s["StepName"] for s in steps if s["StepName"]}
    for s in steps:  # where a branch leads beyond its own next steps (a jump ahead), or a loop
        kids = {k["StepName"] for k in steps if k["parent"] == s["StepName"]}
        ways = [
            (f"If {' and '.join(r['values']) or r['RuleName']}", r["OutcomeNextStepName"])
            for r in s["rules"]
        ]
        if s["Type"] in graph.BRANCH_TYPES:
            ways.append(("Otherwise", s["BranchDefaultStepName"]))
        if s["GoToStepName"]:
            ways.append(("Then", s["GoToStepName"]))
        s["jumps"] = [
            {"label": label, "name": to, "title": titles.get(to, to)}
            for label, to in ways
            if to and to not in kids
        ]
    tree, loose = _tree(steps)
    return {
        "cadence": head,
        "steps": steps,
        "tree": tree,
        "loose": loose,
        "exit_rules": exit_rules,
        "email_templates": email_templates,
        "scripts": scripts,
        "others": others,
    }


def _tree(steps: list[dict[str, Any]]) -> tuple[list[Node], list[dict[str, Any]]]:
    """The steps as trees from each Root down (a branch's children labelled by the rules
    leading to them), and the steps no Root reaches (a parent that names no step)."""
    kids: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        if s["Type"] != "Root" and s["parent"]:
            kids.setdefault(s["parent"], []).append(s)
    placed: set[str] = set()

    def node(step: dict[str, Any], edge: str) -> Node:
        placed.add(step["Id"])
        out = Node(step, edge)
        for kid in kids.get(step["StepName"] or "", []):
            if kid["Id"] not in placed:
                out.kids.append(node(kid, _edge(step, kid)))
        return out

    roots = [node(s, "") for s in steps if s["Type"] == "Root"]
    return roots, [s for s in steps if s["Id"] not in placed]


def _edge(parent: dict[str, Any], kid: dict[str, Any]) -> str:
    if kid["Type"] == graph.SUBROOT:
        return "Track"
    if parent["Type"] not in graph.BRANCH_TYPES:
        return ""
    labels = [
        " and ".join(r["values"]) or r["RuleName"]
        for r in parent["rules"]
        if r["OutcomeNextStepName"] == kid["StepName"]
    ]
    if labels:
        return "If " + " or ".join(labels)
    if parent["BranchDefaultStepName"] == kid["StepName"]:
        return "Otherwise"
    return "Not yet routed"


async def cadence_page(request: Request) -> Response:
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    if not may_build(who):
        return common.forbidden(who)
    return await _cadence_page(request, who)


async def _cadence_page(
    request: Request,
    who: common.Signed,
    error: str | None = None,
    message: str | None = None,
    status: int = 200,
) -> Response:
    org = common.org_of(request)
    cadence_id = _cadence_id(org, request.path_params["cadence"])
    page = None
    if cadence_id is not None:
        page = await run_in_threadpool(_load, org, who.session, cadence_id)
    if page is None:
        return common.forbidden(who)
    head = page["cadence"]
    # the failed activation's message (the cadence's ErrorMessage while it is in Error)
    shown = error or (head["ErrorMessage"] if head["State"] == "Error" else None)
    error_step = None
    if shown and (m := _STEP_ERROR.match(shown)):
        error_step = m.group(1)
    selected = request.query_params.get("step") or ""
    return common.render(
        "builder.html",
        status,
        **page,
        error=shown,
        error_step=error_step,
        message=message,
        selected=selected,
        step_types=STEP_TYPES,
        call_outcomes=[(v, OUTCOME_LABEL[v]) for v in graph.CALL_OUTCOMES],
        engagement=[(v, OUTCOME_LABEL[v]) for v in graph.EMAIL_ENGAGEMENT],
        exit_events=[(v, OUTCOME_LABEL[v]) for v in graph.GLOBAL_EVENTS],
        branch_types=graph.BRANCH_TYPES,
        variant_types=graph.VARIANT_TYPES,
        manual_types=graph.MANUAL_TYPES,
        user_name=who.name,
        time_zone=who.session.time_zone,
        csrf=who.csrf,
    )


def _cadence_id(org: Org, text: str) -> str | None:
    try:
        return ids.parse_for_object(text, org.registry.prefix("ActionCadence"), "ActionCadence")
    except (errors.OpenCadenceError, ValueError):
        return None


def _one(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0]


def _message(exc: errors.OpenCadenceError) -> str:
    code = getattr(exc, "error_code", "")
    text = str(exc)
    if isinstance(exc, errors.FieldCustomValidation) and _STEP_ERROR.match(text):
        return text  # "Step X: ..." is shown at the step
    return f"{code}: {text}" if code else text


def _int(text: str, what: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise FormError(f"{what}: enter a whole number") from None


def _seconds(fields: dict[str, list[str]]) -> int | None:
    amount = _int(_one(fields, "wait_amount"), "Duration")
    if amount is None:
        return None
    return amount * UNITS.get(_one(fields, "wait_unit"), 86400)


def _step_name(title: str, taken: set[str]) -> str:
    base = _NAME_CHARS.sub("-", title.lower()).strip("-")[:60] or "step"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


#: the builder's actions: POST /app/cadences/{id}/{action}
ACTIONS = (
    "activate",
    "deactivate",
    "add-step",
    "edit-step",
    "delete-step",
    "add-rule",
    "delete-rule",
    "add-variant",
    "delete-variant",
    "add-exit",
)


async def cadence_action(request: Request) -> Response:
    org = common.org_of(request)
    who, fields, answer = await common.posted(request)
    if who is None:
        return answer or common.to_login()
    action = request.path_params["action"]
    cadence_id = _cadence_id(org, request.path_params["cadence"])
    if not may_build(who) or action not in ACTIONS or cadence_id is None:
        return common.forbidden(who)
    session = who.session

    def run() -> tuple[str, str]:
        page = _load(org, session, cadence_id)
        if page is None:
            raise errors.NotFound("The requested resource does not exist")
        return _apply(org, session, cadence_id, page, action, fields)

    try:
        message, step = await run_in_threadpool(run)
    except errors.NotFound:
        return common.forbidden(who)
    except errors.OpenCadenceError as exc:
        return await _cadence_page(request, who, error=_message(exc), status=400)
    where = f"/app/cadences/{cadence_id}?done={action}"
    if step:
        where += f"&step={step}#edit"
    return RedirectResponse(where, status_code=303)


def _apply(
    org: Org,
    session: accounts.Session,
    cadence_id: str,
    page: dict[str, Any],
    action: str,
    fields: dict[str, list[str]],
) -> tuple[str, str]:
    """Run one builder action; (what was done, the step to show selected)."""
    v = common.VERSION
    steps: list[dict[str, Any]] = page["steps"]
    by_id = {s["Id"]: s for s in steps}
    by_name = {s["StepName"]: s for s in steps if s["StepName"]}
    if action == "activate":
        org.update(session, "ActionCadence", cadence_id, {"State": "Active"}, v)
        return "Activated", ""
    if action == "deactivate":
        org.update(session, "ActionCadence", cadence_id, {"State": "Inactive"}, v)
        return "Deactivated", ""
    if action == "add-step":
        return _add_step(org, session, cadence_id, steps, by_name, fields)
    if action == "add-exit":
        root = next((s for s in steps if s["Type"] == "Root"), None)
        event = _one(fields, "event")
        if root is None or event not in graph.GLOBAL_EVENTS:
            raise FormError("Choose the event that takes a target out.")
        taken = {r["RuleName"] for r in page["exit_rules"]}
        body = {
            "ActionCadenceStepId": root["Id"],
            "RuleName": _step_name("exit-" + event, taken),
            "RuleType": graph.EXIT_RULE,
            "GlobalEventType": event,
            "ConditionLogic": "AND",
        }
        org.create(session, "ActionCadenceRule", body, v)
        return "Exit rule added", ""
    # the rest act on one step (or one of its rules or variants)
    step = (
        by_id.get(ids.parse(_one(fields, "step"))) if ids.is_valid(_one(fields, "step")) else None
    )
    if step is None:
        raise errors.NotFound("no such step")
    if action == "edit-step":
        _edit_step(org, session, step, fields)
        return "Step saved", step["Id"]
    if action == "delete-step":
        _delete_step(org, session, step, steps, page["cadence"]["ActivatedDate"] is None)
        return "Step deleted", ""
    if action == "add-rule":
        _add_rule(org, session, step, by_name, fields)
        return "Rule added", step["Id"]
    if action == "delete-rule":
        rule = next(
            (r for r in step["rules"] + page["exit_rules"] if r["Id"] == _one(fields, "rule")), None
        )
        if rule is None:
            raise errors.NotFound("no such rule")
        org.delete(session, "ActionCadenceRule", rule["Id"], v)
        return "Rule deleted", step["Id"]
    if action == "add-variant":
        split = _one(fields, "split").strip()
        try:
            percentage = float(split)
        except ValueError:
            raise FormError("Split %: enter a number from 0 to 100") from None
        body = {
            "ActionCadenceStepId": step["Id"],
            "TemplateId": _one(fields, "template") or None,
            "SplitPercentage": percentage,
            "Type": step["Type"],
        }
        org.create(session, "ActionCadenceStepVariant", body, v)
        return "Variant added", step["Id"]
    # delete-variant
    variant = next((x for x in step["variants"] if x["Id"] == _one(fields, "variant")), None)
    if variant is None:
        raise errors.NotFound("no such variant")
    org.delete(session, "ActionCadenceStepVariant", variant["Id"], v)
    return "Variant deleted", step["Id"]


def _step_body(step_type: str, fields: dict[str, list[str]]) -> dict[str, Any]:
    """The fields of the step form that apply to ``step_type``."""
    body: dict[str, Any] = {"StepTitle": _one(fields, "title").strip() or LABEL.get(step_type)}
    comments = _one(fields, "comments").strip()
    body["StepComments"] = comments or None
    if step_type in graph.MANUAL_TYPES:
        body["ScheduledDaysUntilDue"] = _int(_one(fields, "due_days"), "Days until due")
    if step_type in ("MakeACall", "SendAnEmail", "AutoSendAnEmail"):
        key = "script" if step_type == "MakeACall" else "template"
        body["TemplateId"] = _one(fields, key) or None
    if step_type in ("Wait", "ListenerBranch"):
        body["WaitTimeInSeconds"] = _seconds(fields)
    if step_type == "DaisyChain":
        body["ChainedCadenceId"] = _one(fields, "chained") or None
    if step_type == "PlatformScreenFlow":
        body["ScreenFlowReference"] = _one(fields, "flow").strip() or None
    return body


def _add_step(
    org: Org,
    session: accounts.Session,
    cadence_id: str,
    steps: list[dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    fields: dict[str, list[str]],
) -> tuple[str, str]:
    """A new step after the chosen one. After a plain step that already has a next step, the
    new step goes in between (that next step now follows it), in one transaction."""
    step_type = _one(fields, "type")
    if step_type not in dict(STEP_TYPES):
        raise FormError("Choose a step type.")
    parent = by_name.get(_one(fields, "after"))
    if parent is None:
        raise FormError("Choose the step this one comes after.")
    body = _step_body(step_type, fields)
    body = {k: val for k, val in body.items() if val is not None}
    name = _step_name(body["StepTitle"], set(by_name))
    body |= {
        "ActionCadenceId": cadence_id,
        "Type": step_type,
        "StepName": name,
        "ParentStepName": parent["StepName"],
    }
    moved = []
    if parent["Type"] not in graph.BRANCH_TYPES:
        moved = [
            s
            for s in steps
            if s["parent"] == parent["StepName"] and s["Type"] not in ("Root", graph.SUBROOT)
        ]
    with org.transaction(session, common.VERSION, api="web") as tx:
        step_id = org.create(session, "ActionCadenceStep", body, common.VERSION, tx=tx)
        for s in moved:
            org.update(
                session,
                "ActionCadenceStep",
                s["Id"],
                {"ParentStepName": name},
                common.VERSION,
                tx=tx,
            )
    return "Step added", step_id


def _edit_step(
    org: Org, session: accounts.Session, step: dict[str, Any], fields: dict[str, list[str]]
) -> None:
    body = _step_body(step["Type"], fields)
    if step["Type"] in graph.BRANCH_TYPES:
        body["BranchDefaultStepName"] = _one(fields, "default") or None
    if step["Type"] == "Root":
        body.pop("StepComments", None)
    org.update(session, "ActionCadenceStep", step["Id"], body, common.VERSION)


def _delete_step(
    org: Org,
    session: accounts.Session,
    step: dict[str, Any],
    steps: list[dict[str, Any]],
    never_activated: bool,
) -> None:
    """Delete a step; its one next step (if any) now follows the step before it. Once the
    cadence has been activated the runtime does that itself (the step is Retired, its
    parent's GoToStepName leads past it, its targets exit: ``runtime.delete_step``)."""
    if step["Type"] == "Root":
        raise FormError("The Start step cannot be deleted.")
    if not never_activated:
        org.delete(session, "ActionCadenceStep", step["Id"], common.VERSION)
        return
    kids = [s for s in steps if s["parent"] == step["StepName"]]
    if len(kids) > 1:
        raise FormError(f"Step {step['StepName']}: delete the steps after this branch first")
    for kid in kids:
        org.update(
            session,
            "ActionCadenceStep",
            kid["Id"],
            {"ParentStepName": step["ParentStepName"]},
            common.VERSION,
        )
    org.delete(session, "ActionCadenceStep", step["Id"], common.VERSION)


def _add_rule(
    org: Org,
    session: accounts.Session,
    step: dict[str, Any],
    by_name: dict[str, dict[str, Any]],
    fields: dict[str, list[str]],
) -> None:
    """A branch rule: when the call result (Branch) or the email engagement (ListenerBranch,
    within its window) is the chosen value, the target goes to the chosen next step."""
    if step["Type"] not in graph.BRANCH_TYPES:
        raise FormError(f"Step {step['StepName']}: only branch steps have rules")
    resource = graph.RESOURCE_OF[step["Type"]]
    value = _one(fields, "value")
    if value not in graph.VALUES_OF[resource]:
        raise FormError("Choose what the rule waits for.")
    target = _one(fields, "next")
    if target and target not in by_name:
        raise FormError("Choose the step the rule leads to.")
    taken = {r["RuleName"] for r in step["rules"]}
    rule: dict[str, Any] = {
        "RuleName": _step_name(value, taken),
        "RuleType": graph.BRANCH_RULE,
        "ConditionLogic": "AND",
        "conditions": [
            {"RuleConditionName": "c1", "Resource": resource, "Operator": "Equal", "Value": value}
        ],
    }
    if target:
        rule["OutcomeNextStepName"] = target
    org.add_cadence_rule(session, step["Id"], rule)
