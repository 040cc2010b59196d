"""The enterprise API's typed sObjects: one complex type per registry object, generated from the
metadata, and records written against it.

Each object's type extends ``ens:sObject`` (fieldsToNull, Id) with its fields and relationships
in alphabetical order, as Salesforce's enterprise WSDL lists them; a record's elements are
written in that same order (a typed client reads a sequence in its declared order). A parent
relationship is typed with its target object (``ens:sObject`` when it is polymorphic), a child
relationship is a ``QueryResult``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from opencadence.api.soap import envelope, schema
from opencadence.metadata import model
from opencadence.metadata.registry import Registry

#: (element name, type reference) of one object type's extension, in order.
Elements = tuple[tuple[str, str], ...]
#: Writes a child QueryResult's elements: (page, markup so far) -> None.
PageMarkup = Callable[[dict[str, Any], list[str]], None]


def elements(registry: Registry, obj: model.ObjectDef, version: str) -> Elements:
    out: dict[str, str] = {}
    for f in obj.fields_at(version):
        if f.name == "Id":
            continue
        out[f.name] = model.SOAP_TYPES[f.type]
        if f.relationship_name:
            targets = [t for t in f.reference_to if t in registry]
            single = len(targets) == 1 and registry.object(targets[0]).visible_in(version)
            out[f.relationship_name] = f"ens:{targets[0]}" if single else "ens:sObject"
    for child in registry.child_relationships(obj.name):
        if child.relationship_name and child.visible_in(version):
            out.setdefault(child.relationship_name, "tns:QueryResult")
    return tuple(sorted(out.items(), key=lambda item: item[0].lower()))


@lru_cache(maxsize=256)
def _order(registry: Registry, name: str, version: str) -> dict[str, tuple[int, str, str]]:
    """lower-case element name -> (position, declared name, type reference)."""
    obj = registry.object(name)
    return {n.lower(): (i, n, kind) for i, (n, kind) in enumerate(elements(registry, obj, version))}


#: Per element, in the order the type declares them: (key of the record, element name, type
#: reference, start tag, end tag, nil element).
Plan = tuple[tuple[str, str, str, str, str, str], ...]


@lru_cache(maxsize=1024)
def _plan(registry: Registry, kind: str, keys: tuple[str, ...], version: str) -> Plan:
    """The order a record of ``kind`` with these keys is written in (built once per shape):
    declared elements by position, anything else (aliases) after them in select order."""
    rest = [k for k in keys if k != "attributes"]
    if registry.get(kind) is None:  # AggregateResult: its own aliases, in select order
        named = [(k, k, "xsd:string") for k in rest]
    else:
        order = _order(registry, kind, version)
        placed = [
            (order.get(k.lower(), (len(order), k, "xsd:string")), k) for k in rest if k != "Id"
        ]
        named = [
            (key, name, type_ref)
            for (_, name, type_ref), key in sorted(placed, key=lambda item: item[0][0])
        ]
    return tuple(
        (key, name, type_ref, f"<sf:{name}>", f"</sf:{name}>", f'<sf:{name} xsi:nil="true"/>')
        for key, name, type_ref in named
    )


def record_markup(
    registry: Registry,
    tag: str,
    record: dict[str, Any],
    version: str,
    out: list[str],
    page_markup: PageMarkup,
) -> None:
    """A typed record as ``<tag xsi:type="sf:{Object}">``: Id (always, nil when not selected,
    as the type requires it), then its elements in declared order."""
    append, esc = out.append, envelope.escape_text
    kind = record.get("attributes", {}).get("type", "")
    append(f'<{tag} xsi:type="sf:{esc(kind)}">')
    record_id = None if registry.get(kind) is None else record.get("Id")
    append(
        '<sf:Id xsi:nil="true"/>' if record_id is None else f"<sf:Id>{esc(str(record_id))}</sf:Id>"
    )
    for key, name, type_ref, start, end, null in _plan(registry, kind, tuple(record), version):
        value = record[key]
        if value is None:
            append(null)
        elif value.__class__ is str and type_ref != "xsd:dateTime":
            append(start + esc(value) + end)
        elif isinstance(value, dict) and "records" in value:
            append(start[:-1] + ' xsi:type="QueryResult">')
            page_markup(value, out)
            append(end)
        elif isinstance(value, dict):
            record_markup(registry, f"sf:{name}", value, version, out, page_markup)
        else:
            append(start + esc(envelope.scalar_text(type_ref, value)) + end)
    append(f"</{tag}>")


def sobject_type(node: ET.Element) -> str:
    """The object an incoming enterprise sObject names by its xsi:type (``ens:Contact``)."""
    given = node.get(f"{{{schema.XSI_NS}}}type", "")
    return given.rsplit(":", 1)[-1]
