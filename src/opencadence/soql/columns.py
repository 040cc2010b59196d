"""The columns of a SOQL query, as ``GET /query?q=…&columns=true`` answers (``columnMetadata``).

The sf CLI's ``data query`` asks for them to lay out its table and CSV: a parent path
(``Account.Name``) is a column with ``joinColumns``, a child subquery an ``aggregate`` column
with the subquery's columns as ``joinColumns``, a function an ``aggregate`` column without
them. The query is parsed and checked against the registry (an unknown field is INVALID_FIELD),
not run. Salesforce does not document this resource; the keys are those its answers carry.
"""

from __future__ import annotations

from typing import Any

from opencadence import errors
from opencadence.metadata import model
from opencadence.metadata.registry import Registry
from opencadence.soql import nodes
from opencadence.soql.parser import parse

#: The apexType of a field type (the Apex primitive its values are).
_APEX_TYPES = {
    "id": "Id",
    "reference": "Id",
    "boolean": "Boolean",
    "int": "Integer",
    "double": "Double",
    "currency": "Double",
    "percent": "Double",
    "date": "Date",
    "datetime": "Datetime",
    "time": "Time",
}
_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})


def describe(soql: str, registry: Registry) -> dict[str, Any]:
    """The ``columns=true`` answer for ``soql``."""
    query = parse(soql)
    obj = _object(registry, query.sobject.parts[-1])
    columns = _columns(query, obj, registry)
    return {
        "columnMetadata": columns,
        "entityName": obj.name,
        "groupBy": query.group_by is not None,
        "idSelected": any(c["columnName"] == "Id" for c in columns),
        "keyPrefix": obj.key_prefix,
    }


def _object(registry: Registry, name: str) -> model.ObjectDef:
    obj = registry.get(name)
    if obj is None:
        raise errors.InvalidType(
            f"sObject type '{name}' is not supported. If you are attempting to use a custom "
            "object, be sure to append the '__c' after the entity name."
        )
    return obj


def _columns(query: nodes.Query, obj: model.ObjectDef, registry: Registry) -> list[dict[str, Any]]:
    prefixes = {p.lower() for p in (obj.name, query.alias) if p}
    out: list[dict[str, Any]] = []
    expr = 0
    for item in query.select:
        if isinstance(item, nodes.FieldPath):
            parts = list(item.parts)
            if len(parts) > 1 and parts[0].lower() in prefixes:
                parts = parts[1:]
            out.append(_path(parts, obj, registry))
        elif isinstance(item, nodes.Subquery):
            out.append(_subquery(item.query, obj, registry))
        elif isinstance(item, nodes.Function | nodes.CountStar):
            name = item.alias or f"expr{expr}"
            if item.alias is None:
                expr += 1
            display = (
                "COUNT()"
                if isinstance(item, nodes.CountStar)
                else f"{item.name.upper()}({_arg(item)})"
            )
            out.append(_column(name, display, aggregate=True))
        elif isinstance(item, nodes.Fields):
            out.extend(_field_column(f) for f in obj.fields)
        elif isinstance(item, nodes.TypeOf):
            out.append(_column(item.field.parts[-1], item.field.parts[-1]))
    return out


def _arg(func: nodes.Function) -> str:
    first = func.args[0] if func.args else None
    return ".".join(first.parts) if isinstance(first, nodes.FieldPath) else ""


def _path(parts: list[str], obj: model.ObjectDef, registry: Registry) -> dict[str, Any]:
    if len(parts) == 1:
        found = obj.field(parts[0])
        if found is None:
            raise errors.InvalidField(
                f"No such column '{parts[0]}' on entity '{obj.name}'. If you are attempting to "
                "use a custom field, be sure to append the '__c' after the custom field name."
            )
        return _field_column(found)
    ref = registry.relationship_field(obj, parts[0])
    if ref is None or not ref.reference_to:
        raise errors.InvalidField(
            f"Didn't understand relationship '{parts[0]}' in field path. If you are attempting "
            "to use a custom relationship, be sure to append the '__r' after the custom "
            "relationship name."
        )
    parent = _object(registry, ref.reference_to[0])
    column = _column(ref.relationship_name or parts[0], ref.relationship_name or parts[0])
    column["foreignKeyName"] = ref.name
    column["joinColumns"] = [_path(parts[1:], parent, registry)]
    return column


def _subquery(query: nodes.Query, parent: model.ObjectDef, registry: Registry) -> dict[str, Any]:
    name = query.sobject.parts[-1]
    child = registry.child_relationship(parent.name, name)
    if child is None:
        raise errors.InvalidType(
            f"Didn't understand relationship '{name}' in FROM part of query call. If you are "
            "attempting to use a custom relationship, be sure to append the '__r' after the "
            "custom relationship name."
        )
    column = _column(child.relationship_name, child.relationship_name, aggregate=True)
    column["joinColumns"] = _columns(query, _object(registry, child.child_object), registry)
    return column


def _field_column(f: model.FieldDef) -> dict[str, Any]:
    column = _column(f.name, f.name)
    column.update(
        apexType=_APEX_TYPES.get(f.type, "String"),
        booleanType=f.type == "boolean",
        custom=f.name.endswith("__c"),
        insertable=f.createable,
        numberType=f.type in _NUMBER_TYPES,
        textType=_APEX_TYPES.get(f.type) is None,
        updatable=f.updateable,
    )
    return column


def _column(name: str, display: str, *, aggregate: bool = False) -> dict[str, Any]:
    return {
        "aggregate": aggregate,
        "apexType": None,
        "booleanType": False,
        "columnName": name,
        "custom": False,
        "displayName": display,
        "foreignKeyName": None,
        "insertable": False,
        "joinColumns": [],
        "numberType": False,
        "textType": False,
        "updatable": False,
    }
