"""Immutable metadata definitions: one ObjectDef per sObject, one FieldDef per field.

These are the single source of truth from which the database schema, describe output, SOQL
validation, API serialization and change events are derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Salesforce field types opencadence knows, with their SOAP type for describe.
SOAP_TYPES: dict[str, str] = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "picklist": "xsd:string",
    "multipicklist": "xsd:string",
    "textarea": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "url": "xsd:string",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "percent": "xsd:double",
    "currency": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}

#: Types whose values are text, for length checks and case-insensitive comparison.
TEXT_TYPES = frozenset(
    {"id", "reference", "string", "picklist", "multipicklist", "textarea", "email", "phone", "url"}
)

#: Default length per type when a declaration gives none.
DEFAULT_LENGTH: dict[str, int] = {
    "id": 18,
    "reference": 18,
    "string": 255,
    "picklist": 255,
    "multipicklist": 4099,
    "textarea": 255,
    "email": 80,
    "phone": 40,
    "url": 255,
}

#: Letters used in declarations for field properties (as in the reference tables).
PROPERTY_LETTERS: dict[str, str] = {
    "C": "createable",
    "U": "updateable",
    "F": "filterable",
    "G": "groupable",
    "N": "nillable",
    "S": "sortable",
    "R": "restricted_picklist",
    "D": "defaulted_on_create",
    "K": "calculated",
    "L": "id_lookup",
}

#: API calls an object can support (describeSObjects names from the object reference).
KNOWN_CALLS = frozenset(
    {
        "create",
        "delete",
        "describeLayout",
        "describeSObjects",
        "getDeleted",
        "getUpdated",
        "query",
        "retrieve",
        "search",
        "undelete",
        "update",
        "upsert",
    }
)


def version_key(version: str) -> tuple[int, int]:
    """Sortable key of an API version string such as ``"58.0"``."""
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def exists_at(since: str | None, version: str | None) -> bool:
    """Whether something added in API version ``since`` exists at ``version``.

    The one rule for objects, fields, relationships and picklist values: ``since`` None means
    always there, ``version`` None means "every version" (the runtime's own view).
    """
    return since is None or version is None or version_key(since) <= version_key(version)


@dataclass(frozen=True, slots=True, kw_only=True)
class PicklistValue:
    """One picklist entry; ``since`` is the API version it appeared in."""

    value: str
    label: str
    active: bool = True
    default: bool = False
    since: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldDef:
    """One field of an sObject, with every property describe reports."""

    name: str
    label: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    createable: bool = False
    updateable: bool = False
    filterable: bool = False
    groupable: bool = False
    sortable: bool = False
    nillable: bool = False
    restricted_picklist: bool = False
    defaulted_on_create: bool = False
    calculated: bool = False
    id_lookup: bool = False
    unique: bool = False
    name_field: bool = False
    default_value: Any = None
    picklist: tuple[PicklistValue, ...] = ()
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    child_relationship: str | None = None
    cascade_delete: bool = False
    since: str = "0.0"
    description: str = ""
    #: for calculated fields: the name of the SQL/Python formula that derives the value
    formula: str | None = None
    #: True for system fields (Id, IsDeleted, CreatedDate, ...) maintained by storage
    system: bool = False

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    @property
    def polymorphic(self) -> bool:
        return len(self.reference_to) > 1

    @property
    def stored(self) -> bool:
        """Whether the field is a database column (calculated fields are derived)."""
        return not self.calculated

    def picklist_values(self, version: str | None = None) -> tuple[PicklistValue, ...]:
        """Picklist entries visible at an API version (all when version is None)."""
        if version is None:
            return self.picklist
        return tuple(p for p in self.picklist if exists_at(p.since, version))

    def visible_in(self, version: str | None) -> bool:
        return exists_at(self.since, version)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildRelationship:
    """A child relationship of a parent object (derived from the child's reference field)."""

    relationship_name: str
    child_object: str
    field: str
    cascade_delete: bool = False
    since: str = "0.0"

    def visible_in(self, version: str | None) -> bool:
        return exists_at(self.since, version)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectDef:
    """One sObject: its fields and object-level describe properties."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    since: str
    calls: frozenset[str]
    change_events: bool = False
    description: str = ""
    fields: tuple[FieldDef, ...] = ()
    #: lower-cased field name -> FieldDef, built by the loader
    by_name: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False)
    #: the prefix is opencadence's choice because Salesforce's is unpublished
    prefix_is_ours: bool = False
    #: the fields that are database columns (not calculated), derived from ``fields``
    stored_fields: tuple[FieldDef, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        # Derived lookups are built once here: they sit on the hot path of every write.
        object.__setattr__(self, "by_name", {f.name.lower(): f for f in self.fields})
        object.__setattr__(self, "stored_fields", tuple(f for f in self.fields if f.stored))

    def field(self, name: str) -> FieldDef | None:
        """Case-insensitive field lookup."""
        return self.by_name.get(name.lower())

    def visible_in(self, version: str | None) -> bool:
        return exists_at(self.since, version)

    def fields_at(self, version: str | None) -> tuple[FieldDef, ...]:
        """Fields visible at an API version (all when version is None)."""
        return tuple(f for f in self.fields if f.visible_in(version))

    def supports(self, call: str) -> bool:
        return call in self.calls

    @property
    def writable(self) -> bool:
        return bool(self.calls & {"create", "update", "delete", "upsert"})

    @property
    def name_field(self) -> FieldDef | None:
        return next((f for f in self.fields if f.name_field), None)
