"""A change event from the log as the Pub/Sub API sends it: Avro binary with the entity's schema.

Every field of the schema is present; fields the event does not carry are null (for an UPDATE,
the unchanged ones), as Salesforce sends them; a compound Name is the record of its parts.
changedFields and nulledFields become bitmaps (``metadata/event_schema.py``), diffFields is
empty (no field is sent as a diff). Datetimes go as epoch milliseconds, dates as days since
1970-01-01.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import fastavro

from opencadence.metadata import event_schema, model

_PARSED: dict[str, Any] = {}
_EPOCH = date(1970, 1, 1)
#: object name -> (the definition, its Name parts, (field name, converter) in schema order)
_PLANS: dict[str, tuple[model.ObjectDef, tuple[str, ...], tuple[tuple[str, Any], ...]]] = {}


def parsed_schema(obj: model.ObjectDef) -> Any:
    key = event_schema.schema_id(obj)
    found = _PARSED.get(key)
    if found is None:
        found = fastavro.parse_schema(event_schema.avro_schema(obj))
        _PARSED[key] = found
    return found


def record(obj: model.ObjectDef, payload: dict[str, Any]) -> dict[str, Any]:
    """The Avro record of one event (``payload`` as ``storage.events.decode`` gives it)."""
    header = dict(payload["ChangeEventHeader"])
    header["changedFields"] = event_schema.bitmap(obj, list(header.get("changedFields") or []))
    header["nulledFields"] = event_schema.bitmap(obj, list(header.get("nulledFields") or []))
    header["diffFields"] = []
    out: dict[str, Any] = {"ChangeEventHeader": header}
    parts, plan = _plan(obj)
    for name, convert in plan:
        if convert is None:  # the compound Name
            compound = {p: payload.get(p) for p in parts}
            out[name] = compound if any(v is not None for v in compound.values()) else None
        else:
            value = payload.get(name)
            out[name] = None if value is None else convert(value)
    return out


def _plan(obj: model.ObjectDef) -> tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """(Name parts, (field, converter or None for the compound Name) in schema order), once
    per object definition: an event is then a loop without look-ups."""
    found = _PLANS.get(obj.name)
    if found is None or found[0] is not obj:
        parts = event_schema.name_parts(obj)
        plan = tuple(
            (f.name, None if f.name == "Name" and parts else _converter(f))
            for f in event_schema.event_fields(obj)
        )
        found = (obj, parts, plan)
        _PLANS[obj.name] = found
    return found[1], found[2]


def _datetime(value: Any) -> int:
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(when.timestamp() * 1000)


def _date(value: Any) -> int:
    return (date.fromisoformat(str(value)[:10]) - _EPOCH).days


def _converter(f: model.FieldDef) -> Any:
    """The function turning a non-null value of ``f`` into its Avro value."""
    if f.type == "datetime":
        return _datetime
    if f.type == "date":
        return _date
    kind = event_schema.avro_type(f)
    if kind == "double":
        return float
    if kind == "int":
        return int
    if kind == "boolean":
        return bool
    return str


def encode(obj: model.ObjectDef, payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(obj), record(obj, payload))
    return buf.getvalue()


def decode(obj: model.ObjectDef, data: bytes) -> dict[str, Any]:
    """The inverse of ``encode`` (for tests and tools)."""
    found = fastavro.schemaless_reader(io.BytesIO(data), parsed_schema(obj), None)
    assert isinstance(found, dict)
    return found
