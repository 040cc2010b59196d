"""Read the object declarations (YAML, one file per object) into ObjectDef values.

Declaration format (see ``objects/ActionCadenceStepTracker.yaml``)::

    name: ActionCadenceStepTracker
    label: Cadence Step Tracker
    labelPlural: Cadence Step Trackers
    keyPrefix: 0cT
    prefixIsOurs: true          # Salesforce's prefix is unpublished; ours is documented
    since: "48.0"
    calls: [describeSObjects, getDeleted, getUpdated, query, retrieve]
    changeEvents: true
    fields:
      - {name: ActionCadenceId, label: Cadence ID, type: reference, props: FGNS,
         referenceTo: [ActionCadence], relationshipName: ActionCadence}

``props`` uses the reference's letters: C Create, U Update, F Filter, G Group, N Nillable,
S Sort, R Restricted picklist, D Defaulted on create, K calculated, L idLookup.
Every problem is reported as InvalidDefinition naming the object and field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

import yaml

from opencadence import errors
from opencadence.metadata import model, system

#: libyaml's loader when present (10x faster start-up), else the pure-Python one.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_package_objects() -> list[model.ObjectDef]:
    """Load every declaration shipped in ``opencadence/metadata/objects``."""
    folder = resources.files("opencadence.metadata") / "objects"
    texts = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )
    return [load_object(yaml.load(text, Loader=_YamlLoader), source=name) for name, text in texts]


def load_object(data: dict[str, Any], *, source: str = "<data>") -> model.ObjectDef:
    """Build one ObjectDef from its parsed declaration, adding the system fields."""
    name = _require(data, "name", source)
    where = f"{source}: {name}"
    calls = frozenset(data.get("calls", ()))
    unknown = calls - model.KNOWN_CALLS
    if unknown:
        raise errors.InvalidDefinition(f"{where}: unknown calls {sorted(unknown)}")
    since = str(data.get("since", "45.0"))
    declared = [_load_field(f, since, f"{where}.{f.get('name', '?')}") for f in data["fields"]]
    fields = _with_system_fields(declared, since)
    by_name: dict[str, model.FieldDef] = {}
    for f in fields:
        if f.name.lower() in by_name:
            raise errors.InvalidDefinition(f"{where}: field {f.name} declared twice")
        by_name[f.name.lower()] = f
    return model.ObjectDef(
        name=name,
        label=_require(data, "label", where),
        label_plural=_require(data, "labelPlural", where),
        key_prefix=_check_prefix(_require(data, "keyPrefix", where), where),
        prefix_is_ours=bool(data.get("prefixIsOurs", False)),
        since=since,
        calls=calls,
        change_events=bool(data.get("changeEvents", False)),
        description=str(data.get("description", "")),
        fields=tuple(fields),
    )


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if data.get(key) in (None, ""):
        raise errors.InvalidDefinition(f"{where}: missing '{key}'")
    return data[key]


def _check_prefix(prefix: str, where: str) -> str:
    if len(prefix) != 3 or not prefix.isalnum():
        raise errors.InvalidDefinition(f"{where}: key prefix must be 3 alphanumerics: {prefix!r}")
    return prefix


def _load_field(data: dict[str, Any], object_since: str, where: str) -> model.FieldDef:
    ftype = _require(data, "type", where)
    if ftype not in model.SOAP_TYPES:
        raise errors.InvalidDefinition(f"{where}: unknown type {ftype!r}")
    flags = _flags(str(data.get("props", "")), where)
    picklist = tuple(_picklist_value(v, where) for v in data.get("values", ()))
    if picklist and ftype not in ("picklist", "multipicklist"):
        raise errors.InvalidDefinition(f"{where}: values given for a {ftype} field")
    reference_to = tuple(data.get("referenceTo", ()))
    if ftype == "reference" and not reference_to:
        raise errors.InvalidDefinition(f"{where}: reference field without referenceTo")
    if flags.get("calculated") and not data.get("formula"):
        raise errors.InvalidDefinition(f"{where}: calculated field without formula")
    return model.FieldDef(
        name=_require(data, "name", where),
        label=_require(data, "label", where),
        type=ftype,
        length=int(data.get("length", model.DEFAULT_LENGTH.get(ftype, 0))),
        precision=int(
            data.get("precision", 18 if ftype in ("double", "percent", "currency") else 0)
        ),
        scale=int(data.get("scale", 0)),
        digits=int(data.get("digits", 9 if ftype == "int" else 0)),
        unique=bool(data.get("unique", False)),
        name_field=bool(data.get("nameField", False)),
        default_value=data.get("default"),
        picklist=picklist,
        reference_to=reference_to,
        relationship_name=data.get("relationshipName"),
        child_relationship=data.get("childRelationship"),
        cascade_delete=bool(data.get("cascadeDelete", False)),
        since=str(data.get("since", object_since)),
        description=str(data.get("description", "")),
        formula=data.get("formula"),
        **flags,
    )


def _flags(letters: str, where: str) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for letter in letters.replace(" ", ""):
        if letter not in model.PROPERTY_LETTERS:
            raise errors.InvalidDefinition(f"{where}: unknown property letter {letter!r}")
        flags[model.PROPERTY_LETTERS[letter]] = True
    return flags


def _picklist_value(entry: Any, where: str) -> model.PicklistValue:
    if isinstance(entry, str):
        return model.PicklistValue(value=entry, label=entry)
    if not isinstance(entry, dict) or "value" not in entry:
        raise errors.InvalidDefinition(f"{where}: bad picklist entry {entry!r}")
    return model.PicklistValue(
        value=str(entry["value"]),
        label=str(entry.get("label", entry["value"])),
        active=bool(entry.get("active", True)),
        default=bool(entry.get("default", False)),
        since=str(entry["since"]) if entry.get("since") else None,
    )


def _with_system_fields(declared: Iterable[model.FieldDef], since: str) -> list[model.FieldDef]:
    """Prepend Id and append the audit fields, unless the declaration overrides them."""
    declared = list(declared)
    names = {f.name for f in declared}
    head = [f for f in system.system_fields(since) if f.name == "Id" and f.name not in names]
    tail = [f for f in system.system_fields(since) if f.name != "Id" and f.name not in names]
    return head + declared + tail
