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
from opencadence.api.soap.envelope import sub
from opencadence.metadata import model
from opencadence.metadata.registry import Registry

#: (element name, type reference) of one object type's extension, in order.
Elements = tuple[tuple[str, str], ...]
#: Writes a child QueryResult into a node: (node, page) -> None.
PageWriter = Callable[[ET.Element, dict[str, Any]], None]


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


def write_record(
    registry: Registry,
    parent: ET.Element,
    tag: str,
    record: dict[str, Any],
    version: str,
    write_page: PageWriter,
) -> None:
    kind = record.get("attributes", {}).get("type", "")
    node = sub(parent, tag, xsi_type=f"sf:{kind}")
    rest = {k: v for k, v in record.items() if k != "attributes"}
    if registry.get(kind) is None:  # AggregateResult: its own aliases, in select order
        envelope.nil(node, "sf:Id")
        for key, value in rest.items():
            _value(registry, node, key, "xsd:string", value, version, write_page)
        return
    order = _order(registry, kind, version)
    value = rest.pop("Id", None)  # always written, nil when not selected (the type requires it)
    if value is None:
        envelope.nil(node, "sf:Id")
    else:
        sub(node, "sf:Id", str(value))
    placed = [(order.get(k.lower(), (len(order), k, "xsd:string")), v) for k, v in rest.items()]
    for (_, name, type_ref), value in sorted(placed, key=lambda item: item[0][0]):
        _value(registry, node, name, type_ref, value, version, write_page)


def _value(
    registry: Registry,
    node: ET.Element,
    name: str,
    type_ref: str,
    value: Any,
    version: str,
    write_page: PageWriter,
) -> None:
    tag = f"sf:{name}"
    if value is None:
        envelope.nil(node, tag)
    elif isinstance(value, dict) and "records" in value:
        write_page(sub(node, tag, xsi_type="QueryResult"), value)
    elif isinstance(value, dict):
        write_record(registry, node, tag, value, version, write_page)
    else:
        sub(node, tag, envelope.scalar_text(type_ref, value))


def sobject_type(node: ET.Element) -> str:
    """The object an incoming enterprise sObject names by its xsi:type (``ens:Contact``)."""
    given = node.get(f"{{{schema.XSI_NS}}}type", "")
    return given.rsplit(":", 1)[-1]
