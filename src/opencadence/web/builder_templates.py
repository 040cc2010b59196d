"""Email templates in the builder: the list, a template's editor with a merge-field picker, and
its preview rendered for a chosen target (``email/templates.py``'s ``render``, with the
signed-in user as ``{!User.…}``). Same rule as the cadence builder: only users allowed to
build cadences (EmailTemplate is a cadence-definition object) see it. Reads through
``Org.query``, writes through ``Org.create`` / ``Org.update`` (which check merge fields when a
template is saved, as the API does)."""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from opencadence import errors, ids
from opencadence.cadence import definition_file
from opencadence.email import templates
from opencadence.org import Org
from opencadence.storage import accounts
from opencadence.web import builder, common

#: the fields the picker offers per object (those the registry has)
PICKER = {
    "Contact": (
        "FirstName",
        "LastName",
        "Name",
        "Salutation",
        "Title",
        "Email",
        "Phone",
        "MobilePhone",
        "Department",
        "MailingCity",
    ),
    "Lead": ("FirstName", "LastName", "Name", "Title", "Company", "Email", "Phone", "City"),
    "User": (
        "FirstName",
        "LastName",
        "Name",
        "Title",
        "Email",
        "Phone",
        "CompanyName",
        "Signature",
    ),
}
#: a preview is for reading: a template body up to the email size limit is rendered
PREVIEW_MAX_BYTES = 10 * 1024 * 1024
TEMPLATE_FIELDS = "Id, Name, DeveloperName, Subject, Body, HtmlValue, IsActive, Description"
_DEV = re.compile(r"[^A-Za-z0-9]+")


def picker(org: Org) -> list[tuple[str, list[tuple[str, str]]]]:
    out = []
    for obj, names in PICKER.items():
        known = {f.name for f in org.registry.object(obj).fields}
        out.append((obj, [(f"{{!{obj}.{n}}}", f"{obj} {n}") for n in names if n in known]))
    return out


def _template_id(org: Org, text: str) -> str | None:
    try:
        return ids.parse_for_object(text, org.registry.prefix("EmailTemplate"), "EmailTemplate")
    except (errors.OpenCadenceError, ValueError):
        return None


async def template_list(request: Request) -> Response:
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    if not builder.may_build(who):
        return common.forbidden(who)
    return await _list(request, who)


async def _list(
    request: Request, who: common.Signed, error: str | None = None, status: int = 200
) -> Response:
    org = common.org_of(request)
    rows = await run_in_threadpool(
        lambda: org.query(
            who.session,
            "SELECT Id, Name, Subject, IsActive, Owner.Name, LastModifiedDate FROM EmailTemplate "
            "ORDER BY Name, Id LIMIT 500",
            common.VERSION,
        )["records"]
    )
    return common.render(
        "builder_templates.html",
        status,
        templates=rows,
        error=error,
        user_name=who.name,
        time_zone=who.session.time_zone,
        csrf=who.csrf,
    )


async def create_template(request: Request) -> Response:
    """POST /app/templates: a new (inactive) text template, then its editor."""
    org = common.org_of(request)
    who, fields, answer = await common.posted(request)
    if who is None:
        return answer or common.to_login()
    if not builder.may_build(who):
        return common.forbidden(who)
    name = (fields.get("name") or [""])[0].strip()
    if not name:
        return await _list(request, who, "Enter a name for the template.", 400)

    def run() -> str:
        developer = _DEV.sub("_", name).strip("_") or "Template"
        if developer[0].isdigit():
            developer = "T_" + developer
        body = {
            "Name": name,
            "DeveloperName": f"{developer[:60]}_{ids.parse(who.session.user_id)[-6:]}"
            f"_{org.store.clock.now().strftime('%H%M%S')}",
            "TemplateType": "text",
            # the org-wide folder: every assignee of a cadence may send it
            "FolderId": definition_file.ORG_FOLDER,
            "Subject": name,
            "Body": "",
            "IsActive": False,
        }
        return org.create(who.session, "EmailTemplate", body, common.VERSION)

    try:
        template_id = await run_in_threadpool(run)
    except errors.OpenCadenceError as exc:
        return await _list(request, who, builder._message(exc), 400)
    return RedirectResponse(f"/app/templates/{template_id}", status_code=303)


def _preview(
    org: Org, session: accounts.Session, template: dict[str, Any], target_id: str
) -> dict[str, Any]:
    """The template rendered for the target (as the signed-in user sends it)."""
    try:
        canonical = ids.parse(target_id)
    except errors.OpenCadenceError:
        return {"problem": "Choose a target."}
    obj = next((o for o in ("Contact", "Lead") if org.registry.is_id_of(canonical, o)), None)
    if obj is None:
        return {"problem": "Choose a target."}
    try:
        wanted: dict[str, set[str]] = {"Contact": set(), "Lead": set(), "User": set()}
        for part in ("Subject", "Body", "HtmlValue"):
            for mf in templates.merge_fields(template.get(part), org.registry):
                wanted[mf.obj].add(mf.field)
    except templates.TemplateError as exc:
        return {"problem": f"{exc.code}: {exc}"}

    def read(o: str, record_id: str) -> dict[str, Any] | None:
        names = ", ".join(sorted(wanted[o] | {"Id", "Name"}))
        found = org.query(
            session, f"SELECT {names} FROM {o} WHERE Id = '{record_id}'", common.VERSION
        )["records"]
        return found[0] if found else None

    target = read(obj, canonical)
    if target is None:
        return {"problem": "That target does not exist or you cannot see it."}
    user = read("User", session.user_id) or {}
    try:
        rendered = templates.render(
            template, org.registry, {obj: target, "User": user}, PREVIEW_MAX_BYTES
        )
    except templates.TemplateError as exc:
        return {"problem": f"{exc.code}: {exc}", "target": target["Name"]}
    return {
        "problem": None,
        "target": target["Name"],
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
    }


async def template_page(request: Request) -> Response:
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    if not builder.may_build(who):
        return common.forbidden(who)
    return await _page(request, who)


async def _page(
    request: Request,
    who: common.Signed,
    error: str | None = None,
    edited: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    org = common.org_of(request)
    template_id = _template_id(org, request.path_params["template"])
    target = request.query_params.get("target") or ""
    session = who.session

    def load() -> dict[str, Any] | None:
        if template_id is None:
            return None
        found = org.query(
            session,
            f"SELECT {TEMPLATE_FIELDS} FROM EmailTemplate WHERE Id = '{template_id}'",
            common.VERSION,
        )["records"]
        if not found:
            return None
        targets = []
        for obj, extra in (("Contact", ""), ("Lead", " WHERE IsConverted = false")):
            targets += [
                {"id": r["Id"], "name": r["Name"], "obj": obj}
                for r in org.query(
                    session,
                    f"SELECT Id, Name FROM {obj}{extra} ORDER BY Name, Id LIMIT 100",
                    common.VERSION,
                )["records"]
            ]
        preview = _preview(org, session, found[0], target) if target else None
        return {"template": found[0], "targets": targets, "preview": preview}

    page = await run_in_threadpool(load)
    if page is None:
        return common.forbidden(who)
    if edited is not None:  # a refused save: the page shows what was typed
        page["template"] = {**page["template"], **edited}
    return common.render(
        "builder_template.html",
        status,
        **page,
        target=target,
        picker=picker(org),
        error=error,
        saved=request.query_params.get("saved") == "1",
        user_name=who.name,
        time_zone=session.time_zone,
        csrf=who.csrf,
    )


async def save_template(request: Request) -> Response:
    """POST /app/templates/{id}: save the editor (merge fields checked on save)."""
    org = common.org_of(request)
    who, fields, answer = await common.posted(request, common.EMAIL_FORM_MAX)
    if who is None:
        return answer or common.to_login()
    if not builder.may_build(who):
        return common.forbidden(who)
    template_id = _template_id(org, request.path_params["template"])
    if template_id is None:
        return common.forbidden(who)

    def one(name: str) -> str:
        return (fields.get(name) or [""])[0]

    body: dict[str, Any] = {
        "Name": one("name").strip(),
        "Subject": one("subject"),
        "Body": one("body") or None,
        "HtmlValue": one("html") or None,
        "IsActive": one("active") == "on",
    }
    try:
        await run_in_threadpool(
            org.update, who.session, "EmailTemplate", template_id, body, common.VERSION
        )
    except errors.NotFound:
        return common.forbidden(who)
    except errors.OpenCadenceError as exc:
        return await _page(request, who, builder._message(exc), body, 400)
    target = one("target")
    where = f"/app/templates/{template_id}?saved=1"
    if target and ids.is_valid(target):
        where += f"&target={ids.parse(target)}"
    return RedirectResponse(where, status_code=303)
