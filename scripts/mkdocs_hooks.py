"""MkDocs hooks: the reference pages' tables, generated from the code when the site is built.

A page asks for a table with a marker line (``<!-- generate: objects -->``, ``actions``,
``cli``, ``definition`` or ``http``); the marker is replaced by Markdown built from the object
registry, the action declarations (``metadata/actions.py``), the ``opencadence`` argparse
parser, the definition-file module and the server's route tables (``api/``, ``web/``).
"""

from __future__ import annotations

import argparse
import os
import re
import types
from typing import Any

from opencadence.cadence import definition_file, graph
from opencadence.cli import parser as cli_parser
from opencadence.metadata.actions import ACTIONS, Param
from opencadence.metadata.model import FieldDef
from opencadence.metadata.registry import default_registry

MARKER = re.compile(r"^<!-- generate: (\w+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _field_type(f: FieldDef) -> str:
    if f.type == "reference":
        return "reference → " + ", ".join(f.reference_to)
    if f.type in ("string", "textarea", "email", "phone", "url") and f.length:
        return f"{f.type}({f.length})"
    return f.type


def _access(f: FieldDef) -> str:
    marks = [m for m, on in (("create", f.createable), ("update", f.updateable)) if on]
    if f.calculated:
        marks.append("calculated")
    return ", ".join(marks) or "read-only"


def objects() -> str:
    out = []
    for obj in default_registry():
        calls = ", ".join(sorted(obj.calls))
        out += [
            f"## {obj.name}",
            "",
            f"{obj.label} · key prefix `{obj.key_prefix}` · since API {obj.since} · "
            f"change events: {'yes' if obj.change_events else 'no'}",
            "",
            f"Calls: {calls}.",
            "",
            "| Field | Type | Access | Since | Values |",
            "|---|---|---|---|---|",
        ]
        for f in obj.fields:
            out.append(
                f"| `{f.name}` | {_cell(_field_type(f))} | {_access(f)} | {f.since} "
                f"| {_cell(_values(f))} |"
            )
        out.append("")
    return "\n".join(out)


def _params(params: tuple[Param, ...], inputs: bool) -> list[str]:
    if not params:
        return ["None.", ""]
    head = "| Name | Type | Required | Description |" if inputs else "| Name | Type | Description |"
    rows = [head, "|---|---|---|---|" if inputs else "|---|---|---|"]
    for p in params:
        text = p.description + (f" One of: {', '.join(p.values)}." if p.values else "")
        if p.picklist_of:
            text += f" Values of {p.picklist_of[0]}.{p.picklist_of[1]}."
        req = f" {'yes' if p.required else 'no'} |" if inputs else ""
        rows.append(f"| `{p.name}` | {p.type} |{req} {_cell(text)} |")
    return rows + [""]


def actions() -> str:
    out = []
    for spec in ACTIONS.values():
        out += [
            f"## {spec.name}",
            "",
            f"{spec.label} (since API {spec.since}). {spec.description}",
            "",
            f"`POST /services/data/vXX.X/actions/standard/{spec.name}` with "
            '`{"inputs": [{...}, ...]}`.',
            "",
            "**Inputs**",
            "",
            *_params(spec.inputs, True),
            "**Outputs**",
            "",
            *_params(spec.outputs, False),
        ]
    return "\n".join(out)


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse has no public way to list a parser's subcommands
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli() -> str:
    # argparse wraps help to the terminal's width: fix it so every build prints the same page
    os.environ["COLUMNS"] = "100"
    top = cli_parser()
    out = ["## opencadence", "", "```", top.format_help().rstrip(), "```", ""]

    def walk(prefix: str, p: argparse.ArgumentParser) -> None:
        for name, sub in _subparsers(p).items():
            out.extend([f"## {prefix} {name}", "", "```", sub.format_help().rstrip(), "```", ""])
            walk(f"{prefix} {name}", sub)

    walk("opencadence", top)
    return "\n".join(out)


#: where each object's keys live in a definition file
_LEVELS = (
    ("ActionCadenceStep", "an item of `steps`", "also `rules`, `variants`, `ChainedCadence`"),
    ("ActionCadenceRule", "an item of a step's `rules`", "also `conditions`"),
    ("ActionCadenceRuleCondition", "an item of a rule's `conditions`", ""),
    ("ActionCadenceStepVariant", "an item of a step's `variants`", ""),
)


def definition() -> str:
    """The keys a definition file accepts at each level: the createable fields of the object,
    less the ones the import fills in (``definition_file.SKIP``)."""
    registry = default_registry()
    head = registry.object("ActionCadence")
    out = ["### `cadence`", "", "| Key | Type | Values |", "|---|---|---|"]
    for name in definition_file.CADENCE_FIELDS:
        f = head.field(name)
        assert f is not None
        out.append(f"| `{name}` | {_field_type(f)} | {_cell(_values(f))} |")
    out.append("")
    for obj_name, where, extra in _LEVELS:
        obj = registry.object(obj_name)
        out += [f"### {where} ({obj_name})", ""]
        if extra:
            out += [f"Keys: the fields below; {extra}.", ""]
        out += ["| Key | Type | Values |", "|---|---|---|"]
        for f in obj.fields:
            if f.createable and f.name not in definition_file.SKIP and not f.system:
                out.append(f"| `{f.name}` | {_field_type(f)} | {_cell(_values(f))} |")
        out.append("")
    out += [
        "### Rule conditions and exit events",
        "",
        "| Where | Resource | Values |",
        "|---|---|---|",
    ]
    for step_type, resource in graph.RESOURCE_OF.items():
        out.append(f"| {step_type} rule | `{resource}` | {', '.join(graph.VALUES_OF[resource])} |")
    out.append(
        f"| Root rule (`RuleType: RootStep`) | `GlobalEventType` | {', '.join(graph.GLOBAL_EVENTS)} |"
    )
    return "\n".join(out + [""])


def _values(f: FieldDef) -> str:
    values = ", ".join(p.value for p in f.picklist)
    if f.default_value not in (None, ""):
        values += f" (default {f.default_value})"
    return values


_V = "/services/data/v{version}"
#: each group of routes: a title, a guide page and the paths it takes (the first group that
#: matches a path takes it; a path no group takes is listed under "Other", so none is missed)
_ROUTE_GROUPS: tuple[tuple[str, str, str], ...] = (
    (
        "REST: versions, resources, OpenAPI document",
        "",
        r"/services/data(/openapi\.json)?$|" + re.escape(_V) + "$",
    ),
    (
        "REST: change-event schemas",
        "../how-to/streaming.md",
        re.escape(_V) + r"/(sobjects/\{entity\}|event)/",
    ),
    ("REST: lead conversion (opencadence's own)", "../how-to/lead-conversion.md", r".*/convert$"),
    (
        "REST: records, describe, query, limits",
        "",
        re.escape(_V) + r"/(sobjects|query|queryAll|limits)\b",
    ),
    (
        "REST: sObject Collections",
        "../how-to/collections.md",
        re.escape(_V) + r"/composite/sobjects",
    ),
    ("REST: composite, batch, tree", "../how-to/collections.md", re.escape(_V) + r"/composite"),
    ("REST: invocable actions", "actions.md", re.escape(_V) + r"/actions"),
    (
        "REST: search (SOSL)",
        "../how-to/search.md",
        re.escape(_V) + r"/(search|parameterizedSearch)",
    ),
    (
        "Bulk API 2.0 (ingest and query jobs) and 1.0 (JSON jobs), run by the workers",
        "../bulk-decisions.md",
        re.escape(_V) + r"/jobs/|/services/async/",
    ),
    (
        "REST: email settings (opencadence's own, administrators)",
        "../how-to/email.md",
        re.escape(_V) + r"/opencadence/",
    ),
    (
        "SOAP: partner and enterprise APIs, WSDLs",
        "../how-to/clients.md",
        r"/services/Soap/|/soap/|/services/wsdl/",
    ),
    ("OAuth 2.0 and the identity URL", "../how-to/oauth.md", r"/services/oauth2/|/id/"),
    ("Streaming (CometD)", "../how-to/streaming.md", r"/cometd/"),
    ("Email tracking (open pixel, click redirect)", "../how-to/email.md", r"/email/"),
    (
        "Operations: health, the manual clock",
        "../how-to/postgresql.md#4-health-checks",
        r"/_opencadence/",
    ),
    ("Web app", "../tutorials/first-day-web.md", r"/app\b"),
)


def _route_rows(routes: list[Any], prefix: str = "") -> dict[str, set[str]]:
    """Each route's path and methods; a trailing-slash twin and HEAD left out."""
    from starlette.routing import Mount

    rows: dict[str, set[str]] = {}
    for r in routes:
        if isinstance(r, Mount):
            for path, methods in _route_rows(list(r.routes), prefix + r.path).items():
                rows.setdefault(path, set()).update(methods)
            continue
        path = (prefix + r.path).replace(":changeevent", "")
        rows.setdefault(path, set()).update(m for m in r.methods or () if m != "HEAD")
    # a trailing-slash twin of a listed path says nothing more
    return {p: m for p, m in rows.items() if not (p.endswith("/") and p.rstrip("/") in rows)}


def http() -> str:
    """Every HTTP route the server mounts, as ``api/app.py``'s ``build_app`` mounts them (with
    a stand-in org: only the route table is read), grouped by path; then the SOAP calls and
    headers from the SOAP schema's tables."""
    import sqlalchemy as sa

    from opencadence.api import app, versions
    from opencadence.api.soap import schema

    # an engine that is never connected to: build_app reads its dialect and pool only
    store = types.SimpleNamespace(engine=sa.create_engine("sqlite://"))
    stand_in: Any = types.SimpleNamespace(store=store)
    built = app.build_app(stand_in, manual_clock=stand_in, tracker=stand_in)
    groups: dict[str, list[str]] = {}
    for path, methods in _route_rows(list(built.routes)).items():
        title = next((g[0] for g in _ROUTE_GROUPS if re.match(g[2], path)), "Other")
        groups.setdefault(title, []).append(f"| `{path}` | {', '.join(sorted(methods))} |")
    out = [
        f"API versions served: `{versions.OLDEST}.0` to `{versions.NEWEST}.0`, REST and SOAP "
        "alike (`GET /services/data` lists them).",
        "",
    ]
    links = {title: link for title, link, _ in _ROUTE_GROUPS}
    for title in [g[0] for g in _ROUTE_GROUPS if g[0] in groups] + (
        ["Other"] if "Other" in groups else []
    ):
        out += [f"### {title}", ""]
        if links.get(title):
            out += [f"Guide: [{title}]({links[title]}).", ""]
        out += ["| Path | Methods |", "|---|---|", *groups[title], ""]
    calls = ", ".join(f"`{name}`" for name in sorted(schema.OPERATIONS))
    headers = ", ".join(f"`{name}`" for name in sorted(schema.HEADERS))
    out += ["### SOAP calls", "", f"Calls: {calls}.", "", f"Headers: {headers}.", ""]
    return "\n".join(out)


GENERATORS = {
    "objects": objects,
    "actions": actions,
    "cli": cli,
    "definition": definition,
    "http": http,
}
