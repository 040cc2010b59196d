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
    parts = event_schema.name_parts(obj)
    for f in event_schema.event_fields(obj):
        if f.name == "Name" and parts:
            name = {p: payload.get(p) for p in parts}
            out["Name"] = name if any(v is not None for v in name.values()) else None
        else:
            out[f.name] = _value(f, payload.get(f.name))
    return out


def _value(f: model.FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if f.type == "datetime":
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return int(when.timestamp() * 1000)
    if f.type == "date":
        return (date.fromisoformat(str(value)[:10]) - _EPOCH).days
    kind = event_schema.avro_type(f)
    if kind == "double":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "boolean":
        return bool(value)
    return str(value)


def encode(obj: model.ObjectDef, payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(obj), record(obj, payload))
    return buf.getvalue()


def decode(obj: model.ObjectDef, data: bytes) -> dict[str, Any]:
    """The inverse of ``encode`` (for tests and tools)."""
    found = fastavro.schemaless_reader(io.BytesIO(data), parsed_schema(obj), None)
    assert isinstance(found, dict)
    return found
