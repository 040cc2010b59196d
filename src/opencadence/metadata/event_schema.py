"""The Avro schema of a change event entity (``<Object>ChangeEvent``), generated from metadata.

Shaped as Salesforce's Change Data Capture schemas are: a record named after the event in the
``com.sforce.eventbus`` namespace whose first field is the ``ChangeEventHeader`` record (the
header fields in Salesforce's order; ``changeType`` an enum), then every field a change event
carries as an optional union ``["null", <type>]`` with default null. Datetimes are ``long``
epoch milliseconds and dates ``int`` days since the epoch (Pub/Sub sends dates as epoch
numbers); each field's ``doc`` is ``Data:<type>`` as Salesforce writes it.

A person name is compound, as Salesforce sends it: on objects whose ``Name`` is filled from
``FirstName`` + ``LastName`` (Contact, Lead, User) the event has no top-level Salutation,
FirstName or LastName; ``Name`` is the record ``Switchable_PersonName`` of those parts, and a
change to a part is the bitmap entry ``"<position of Name>-0x<bits of the parts>"``.

The schema id is the fingerprint of the schema's JSON (22 characters, base64url of 16 bytes of
its SHA-256), so it changes exactly when the object's event fields change. The position of a
field in ``fields`` is its bit in the changedFields/nulledFields bitmaps.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from opencadence.metadata import describe as describing
from opencadence.metadata import model
from opencadence.metadata.registry import Registry

NAMESPACE = "com.sforce.eventbus"
SUFFIX = "ChangeEvent"
#: Fields no change event carries: the record id (in recordIds) and two system fields.
NOT_IN_EVENTS = frozenset({"Id", "IsDeleted", "SystemModstamp"})

CHANGE_TYPES = (
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
)

_STRINGS = {"type": "array", "items": "string"}

HEADER: dict[str, Any] = {
    "type": "record",
    "name": "ChangeEventHeader",
    "namespace": NAMESPACE,
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": _STRINGS},
        {
            "name": "changeType",
            "type": {
                "type": "enum",
                "name": "ChangeType",
                "namespace": NAMESPACE,
                "symbols": list(CHANGE_TYPES),
            },
        },
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": _STRINGS},
        {"name": "diffFields", "type": _STRINGS},
        {"name": "changedFields", "type": _STRINGS},
    ],
}

#: field type -> (Avro type, the Salesforce data type named in ``doc``)
_TYPES: dict[str, tuple[str, str]] = {
    "id": ("string", "EntityId"),
    "reference": ("string", "EntityId"),
    "string": ("string", "Text"),
    "picklist": ("string", "DynamicEnum"),
    "multipicklist": ("string", "MultiEnum"),
    "textarea": ("string", "MultiLineText"),
    "email": ("string", "Email"),
    "phone": ("string", "Phone"),
    "url": ("string", "Url"),
    "boolean": ("boolean", "Boolean"),
    "int": ("int", "Integer"),
    "double": ("double", "Double"),
    "percent": ("double", "Percent"),
    "currency": ("double", "Currency"),
    "date": ("int", "DateOnly"),
    "datetime": ("long", "DateTime"),
}


#: The parts of a compound person name, in Salesforce's order (those an object has are used).
NAME_PARTS = ("Salutation", "FirstName", "MiddleName", "LastName", "Suffix")
NAME_RECORD = "Switchable_PersonName"


def name_parts(obj: model.ObjectDef) -> tuple[str, ...]:
    """The parts of ``obj``'s compound Name (empty when its Name is a plain string)."""
    stored = {f.name for f in obj.stored_fields}
    if "Name" not in stored or not {"FirstName", "LastName"} <= stored:
        return ()
    return tuple(p for p in NAME_PARTS if p in stored)


def event_name(obj: model.ObjectDef) -> str:
    return f"{obj.name}{SUFFIX}"


#: object name -> (the definition, its event fields, their positions), per definition
_FIELDS: dict[str, tuple[model.ObjectDef, tuple[model.FieldDef, ...], dict[str, int]]] = {}


def _fields(obj: model.ObjectDef) -> tuple[tuple[model.FieldDef, ...], dict[str, int]]:
    """(event fields, name -> schema position) of ``obj``, computed once per definition
    (every event sent over the Pub/Sub API needs them)."""
    found = _FIELDS.get(obj.name)
    if found is None or found[0] is not obj:
        parts = set(name_parts(obj))
        fields = tuple(
            f for f in obj.stored_fields if f.name not in NOT_IN_EVENTS and f.name not in parts
        )
        found = (obj, fields, {f.name: i for i, f in enumerate(fields, start=1)})
        _FIELDS[obj.name] = found
    return found[1], found[2]


def event_fields(obj: model.ObjectDef) -> tuple[model.FieldDef, ...]:
    """The top-level record fields of ``obj``'s change event, in schema order (after the
    header); the parts of a compound Name are inside ``Name``."""
    return _fields(obj)[0]


def avro_type(f: model.FieldDef) -> str:
    return _TYPES.get(f.type, ("string", "Text"))[0]


def avro_schema(obj: model.ObjectDef) -> dict[str, Any]:
    fields: list[dict[str, Any]] = [
        {"name": "ChangeEventHeader", "type": HEADER, "doc": "Data:ChangeEventHeader"}
    ]
    parts = name_parts(obj)
    for f in event_fields(obj):
        if f.name == "Name" and parts:
            fields.append(_person_name(parts))
            continue
        kind, doc = _TYPES.get(f.type, ("string", "Text"))
        fields.append(
            {"name": f.name, "type": ["null", kind], "doc": f"Data:{doc}", "default": None}
        )
    return {"type": "record", "name": event_name(obj), "namespace": NAMESPACE, "fields": fields}


def _person_name(parts: tuple[str, ...]) -> dict[str, Any]:
    record = {
        "type": "record",
        "name": NAME_RECORD,
        "namespace": NAMESPACE,
        "fields": [
            {"name": p, "type": ["null", "string"], "doc": "Data:Text", "default": None}
            for p in parts
        ],
    }
    return {"name": "Name", "type": ["null", record], "doc": f"Data:{NAME_RECORD}", "default": None}


_CACHE: dict[str, tuple[model.ObjectDef, str, str]] = {}


def _cached(obj: model.ObjectDef) -> tuple[str, str]:
    """(schema JSON, schema id) of ``obj``, computed once per object definition."""
    found = _CACHE.get(obj.name)
    if found is None or found[0] is not obj:
        text = json.dumps(avro_schema(obj), separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).digest()[:16]
        found = (obj, text, base64.urlsafe_b64encode(digest).decode().rstrip("="))
        _CACHE[obj.name] = found
    return found[1], found[2]


def schema_json(obj: model.ObjectDef) -> str:
    """The schema as JSON text (compact, the same text every time)."""
    return _cached(obj)[0]


def schema_id(obj: model.ObjectDef) -> str:
    return _cached(obj)[1]


def field_positions(obj: model.ObjectDef) -> dict[str, int]:
    """Field name -> its position in the schema (0 is ChangeEventHeader): its bitmap bit
    (the same dict every time: do not change it)."""
    return _fields(obj)[1]


def bitmap(obj: model.ObjectDef, names: list[str]) -> list[str]:
    """Field names as Salesforce's bitmap strings: ``"0x..."`` with bit N set for the field at
    schema position N (upper-case hex), then for a compound Name whose parts are named
    ``"<position of Name>-0x..."`` with bit M set for its M-th part; ``[]`` for no field. The
    top-level entry is always first when there is any (``"0x0"`` if only parts changed), as
    clients expect. Unknown names are left out."""
    positions = field_positions(obj)
    parts = name_parts(obj)
    bits = nested = 0
    for name in names:
        if name in parts:
            nested |= 1 << parts.index(name)
        elif name in positions:
            bits |= 1 << positions[name]
    if not bits and not nested:
        return []
    out = [f"0x{bits:X}"]
    if nested:
        out.append(f"{positions['Name']}-0x{nested:X}")
    return out


def entities(registry: Registry) -> list[model.ObjectDef]:
    """The objects that publish change events."""
    return [o for o in registry if o.change_events]


def by_schema_id(registry: Registry, wanted: str) -> model.ObjectDef | None:
    for obj in entities(registry):
        if schema_id(obj) == wanted:
            return obj
    return None


def by_event_name(registry: Registry, name: str) -> model.ObjectDef | None:
    """The object of a change event entity name such as ``ContactChangeEvent`` (exact case)."""
    if not name.endswith(SUFFIX):
        return None
    obj = registry.get(name[: -len(SUFFIX)])
    if obj is None or not obj.change_events or event_name(obj) != name:
        return None
    return obj


def describe(obj: model.ObjectDef, version: str) -> dict[str, Any]:
    """describeSObjects of ``<Object>ChangeEvent``: not a real sObject (no CRUD, no query;
    describeSObjects is its one call), so every capability is false; its fields are the event's
    Id and ReplayId, the ChangeEventHeader, and the fields its events carry, read-only."""
    name = event_name(obj)
    result = describing.object_summary(obj, version)
    flags = (
        "createable",
        "deletable",
        "layoutable",
        "queryable",
        "replicateable",
        "retrieveable",
        "searchable",
        "undeletable",
        "updateable",
    )
    result.update({flag: False for flag in flags})
    base = f"/services/data/v{version}/sobjects/{name}"
    result.update(
        {
            "name": name,
            "label": f"{obj.label} Change Event",
            "labelPlural": f"{obj.label} Change Events",
            "keyPrefix": None,
            "triggerable": True,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "eventSchema": f"{base}/eventSchema",
            },
            "actionOverrides": [],
            "childRelationships": [],
            "compactLayoutable": False,
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [],
            "searchLayoutable": False,
            "supportedScopes": [],
            "sobjectDescribeOption": "FULL",
        }
    )
    own = [
        model.FieldDef(name="Id", label=f"{obj.label} Change Event ID", type="id", length=18),
        model.FieldDef(
            name="ReplayId", label="Replay ID", type="string", length=255, nillable=True
        ),
        model.FieldDef(name="ChangeEventHeader", label="Header", type="string"),
    ]
    fields = [describing.field_describe(f, version) for f in own]
    header = fields[2]
    header.update({"type": "complexvalue", "soapType": "tns:ChangeEventHeader", "length": 0})
    header["byteLength"] = 0
    carried = {f.name for f in obj.stored_fields if f.name not in NOT_IN_EVENTS}
    for f in obj.fields_at(version):
        if f.name in carried:
            entry = describing.field_describe(f, version)
            entry.update({"createable": False, "updateable": False, "nillable": True})
            entry.update({"filterable": False, "groupable": False, "sortable": False})
            entry.update({"relationshipName": None, "defaultedOnCreate": False})
            fields.append(entry)
    result["fields"] = fields
    return result
