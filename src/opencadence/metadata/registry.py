"""The object registry: case-insensitive lookup of ObjectDefs by name and key prefix."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from opencadence import errors
from opencadence.metadata import loader, model


class Registry:
    """All objects of the org, validated together (prefixes unique, references resolvable)."""

    def __init__(self, objects: list[model.ObjectDef]) -> None:
        self._by_name: dict[str, model.ObjectDef] = {}
        self._by_prefix: dict[str, model.ObjectDef] = {}
        for obj in objects:
            self._add(obj)
        self._children = self._child_relationships()

    def _add(self, obj: model.ObjectDef) -> None:
        if obj.name.lower() in self._by_name:
            raise errors.InvalidDefinition(f"object {obj.name} declared twice")
        if obj.key_prefix in self._by_prefix:
            other = self._by_prefix[obj.key_prefix].name
            raise errors.InvalidDefinition(
                f"{obj.name}: key prefix {obj.key_prefix} used by {other}"
            )
        self._by_name[obj.name.lower()] = obj
        self._by_prefix[obj.key_prefix] = obj

    def _child_relationships(self) -> dict[str, tuple[model.ChildRelationship, ...]]:
        children: dict[str, list[model.ChildRelationship]] = {}
        for obj in self:
            for f in obj.fields:
                if f.type != "reference" or not f.child_relationship:
                    continue
                for parent in f.reference_to:
                    children.setdefault(parent.lower(), []).append(
                        model.ChildRelationship(
                            relationship_name=f.child_relationship,
                            child_object=obj.name,
                            field=f.name,
                            cascade_delete=f.cascade_delete,
                            since=f.since,
                        )
                    )
        return {k: tuple(v) for k, v in children.items()}

    def __iter__(self) -> Iterator[model.ObjectDef]:
        return iter(sorted(self._by_name.values(), key=lambda o: o.name))

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._by_name

    def get(self, name: str) -> model.ObjectDef | None:
        return self._by_name.get(name.lower())

    def object(self, name: str) -> model.ObjectDef:
        """The ObjectDef named ``name`` (any case), or INVALID_TYPE."""
        obj = self._by_name.get(name.lower())
        if obj is None:
            raise errors.InvalidType(
                f"sObject type '{name}' is not supported. If you are attempting to use a custom "
                "object, be sure to append the '__c' after the entity name. Please reference your "
                "WSDL or the describe call for the appropriate names."
            )
        return obj

    def prefix(self, name: str) -> str:
        """The key prefix of object ``name``: the first three characters of its Ids."""
        return self.object(name).key_prefix

    def is_id_of(self, record_id: str | None, name: str) -> bool:
        """Whether ``record_id`` carries the key prefix of object ``name``."""
        return record_id is not None and record_id[:3] == self.prefix(name)

    def by_prefix(self, prefix: str) -> model.ObjectDef | None:
        return self._by_prefix.get(prefix)

    def object_of_id(self, record_id: str) -> model.ObjectDef | None:
        """The object an ID belongs to, by its key prefix."""
        return self._by_prefix.get(record_id[:3])

    def child_relationships(self, name: str) -> tuple[model.ChildRelationship, ...]:
        return self._children.get(name.lower(), ())

    def child_relationship(self, parent: str, relationship: str) -> model.ChildRelationship | None:
        rel = relationship.lower()
        return next(
            (c for c in self.child_relationships(parent) if c.relationship_name.lower() == rel),
            None,
        )

    def relationship_field(self, obj: model.ObjectDef, relationship: str) -> model.FieldDef | None:
        """The reference field of ``obj`` whose relationshipName is ``relationship``."""
        rel = relationship.lower()
        return next(
            (f for f in obj.fields if f.relationship_name and f.relationship_name.lower() == rel),
            None,
        )


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of every object opencadence ships (loaded once per process)."""
    return Registry(loader.load_package_objects())
