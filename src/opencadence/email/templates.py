"""Email templates: Salesforce merge fields, validation against the registry, rendering.

Merge fields are ``{!Object.Field}`` or ``{!Object.Field, default}``: Object is Contact or Lead
(the target) or User (the sending assignee). A target field of the other target type renders
as its default (a Lead template line mentioning ``{!Contact.FirstName}`` stays usable), as does
an empty value. Validation happens when a template is saved (``validate``) and again at send
time, since a field may have left the registry or the template been written around the API.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opencadence import errors
from opencadence.metadata import model
from opencadence.metadata.registry import Registry

#: Objects a merge field may name.
MERGE_OBJECTS = ("Contact", "Lead", "User")
_FIELD = re.compile(r"\{!\s*([^}]*?)\s*\}")
_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)$")
#: Field types that have no text form in an email.
_UNMERGEABLE = frozenset({"base64", "address", "location"})


class TemplateError(errors.FieldCustomValidation):
    """The email template cannot be used; ``code`` is the step's ErrorCode."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class MergeField:
    text: str  # as written, braces included
    obj: str
    field: str
    default: str


def merge_fields(text: str | None, registry: Registry) -> list[MergeField]:
    """Every merge field of ``text``; TemplateError(TEMPLATE_HAS_INVALID_MERGE_FIELD) if one
    names an unknown object or field, or a ``{!`` is never closed."""
    if not text:
        return []
    out: list[MergeField] = []
    for m in _FIELD.finditer(text):
        inner, _, default = m.group(1).partition(",")
        name = _NAME.match(inner.strip())
        if name is None or name.group(1) not in MERGE_OBJECTS:
            raise TemplateError(
                f"Invalid merge field {m.group(0)}", "TEMPLATE_HAS_INVALID_MERGE_FIELD"
            )
        obj = registry.object(name.group(1))
        f = _field(obj, name.group(2))
        if f is None or f.type in _UNMERGEABLE:
            raise TemplateError(
                f"Invalid merge field {m.group(0)}: no field {name.group(2)} on {obj.name}",
                "TEMPLATE_HAS_INVALID_MERGE_FIELD",
            )
        out.append(MergeField(m.group(0), obj.name, f.name, default.strip()))
    # a "{!" left open would otherwise go out verbatim to the target
    if "{!" in _FIELD.sub("", text):
        raise TemplateError("Unclosed merge field", "TEMPLATE_HAS_INVALID_MERGE_FIELD")
    return out


def _field(obj: model.ObjectDef, name: str) -> model.FieldDef | None:
    for f in obj.fields:
        if f.name.lower() == name.lower():
            return f
    return None


def validate(record: Mapping[str, Any], registry: Registry) -> None:
    """Check a template being saved: its merge fields exist (the API calls this on insert and
    update of EmailTemplate)."""
    for part in ("Subject", "HtmlValue", "Body"):
        value = record.get(part)
        if isinstance(value, str):  # another type is the write's to refuse (or convert: 5)
            merge_fields(value, registry)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str | None
    html: str | None


def render(
    template: Mapping[str, Any],
    registry: Registry,
    values: Mapping[str, Mapping[str, Any]],
    max_body_bytes: int,
    *,
    merge: bool = True,
) -> Rendered:
    """Render a template for a send. ``values`` maps Contact/Lead/User to the record (only the
    target's type and User are present). Raises TemplateError with the step's ErrorCode.
    ``merge=False``: the text is final (a rep's edited email), checked but not merged."""
    subject = (template.get("Subject") or "").strip()
    html_value, body = template.get("HtmlValue"), template.get("Body")
    if not subject or not ((html_value or "").strip() or (body or "").strip()):
        raise TemplateError("The email subject or body is missing", "TEMPLATE_EMPTY")
    encoding = template.get("Encoding") or "UTF-8"
    if merge:
        out = Rendered(
            _merge(subject, registry, values, False).replace("\r", " ").replace("\n", " "),
            _merge(body, registry, values, False) if body else None,
            _merge(html_value, registry, values, True) if html_value else None,
        )
    else:
        out = Rendered(subject.replace("\r", " ").replace("\n", " "), body, html_value)
    for part in (out.subject, out.text, out.html):
        if part is None:
            continue
        try:
            part.encode(encoding)
        except (UnicodeEncodeError, LookupError) as exc:
            raise TemplateError(
                f"A merged value cannot be written in {encoding}: {exc}",
                "TEMPLATE_MERGE_FIELD_RENDERING_ERROR",
            ) from exc
    size = sum(len((p or "").encode("utf-8")) for p in (out.text, out.html))
    if size > max_body_bytes:
        raise TemplateError(
            f"The email body is {size} bytes, over the {max_body_bytes} limit", "TEMPLATE_TOO_LARGE"
        )
    return out


def _merge(
    text: str, registry: Registry, values: Mapping[str, Mapping[str, Any]], escape: bool
) -> str:
    fields = {mf.text: mf for mf in merge_fields(text, registry)}

    def one(m: re.Match[str]) -> str:
        mf = fields[m.group(0)]
        record = values.get(mf.obj)
        value = None if record is None else record.get(mf.field)
        shown = mf.default if value is None or value == "" else _text(value)
        return html.escape(shown) if escape else shown

    return _FIELD.sub(one, text)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
