"""Turn result rows into records shaped as Salesforce's REST API returns them.

``{"attributes": {"type", "url"}, "Field": value, "Parent": {"attributes": ..., ...} | None,
"Children": {"totalSize", "done", "records"}}``; aggregate rows are typed ``AggregateResult``.
A shaping plan is built once per query, so a page costs one small loop per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from opencadence.metadata.registry import Registry
from opencadence.soql import bound

Row = Sequence[Any]


def _post_processor(out: bound.OutField) -> Callable[[Any], Any] | None:
    """toLabel maps values to labels; FORMAT renders numbers and dates (en_US)."""
    inner = out.expr
    while (
        isinstance(inner, bound.Func)
        and inner.arg is not None
        and inner.name in ("FORMAT", "toLabel", "convertCurrency")
    ):
        inner = inner.arg
    if out.format == "toLabel" and isinstance(inner, bound.Col):
        labels = {p.value: p.label for p in inner.field.picklist}
        return lambda v: labels.get(v, v) if v is not None else None
    if out.format == "FORMAT":
        return _format_value
    return None


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, str) and len(value) >= 19 and value[10] == "T":
        moment = datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
        return (
            f"{moment.month}/{moment.day}/{moment.year}, {moment.strftime('%I:%M %p').lstrip('0')}"
        )
    if isinstance(value, str) and len(value) == 10 and value[4] == "-":
        d = date.fromisoformat(value)
        return f"{d.month}/{d.day}/{d.year}"
    return value


class ShapePlan:
    """How to build the records of one bound query from its rows."""

    def __init__(
        self, bq: bound.BoundQuery, registry: Registry, version: str, id_index: int | None
    ) -> None:
        self.bq = bq
        self.registry = registry
        self.base = f"/services/data/v{version}/sobjects/"
        self.id_index = id_index
        self.root_type = bq.obj.name
        self.shape_items = self._compile_items(bq.items)
        # Flat records (plain fields only, in column order) take a fast path: one zip per row.
        outs = bq.items
        self.flat_keys: tuple[str, ...] | None = None
        self._flat: Callable[[Sequence[Row], str, str], list[dict[str, Any]]] | None = None
        if all(isinstance(o, bound.OutField) and _post_processor(o) is None for o in outs) and [
            o.index for o in outs if isinstance(o, bound.OutField)
        ] == list(range(len(outs))):
            self.flat_keys = tuple(o.key for o in outs if isinstance(o, bound.OutField))

    def _compile_items(self, items: list[bound.Out]) -> list[Callable[[Row, dict[str, Any]], None]]:
        steps: list[Callable[[Row, dict[str, Any]], None]] = []
        for item in items:
            steps.append(self._compile_item(item))
        return steps

    def _compile_item(self, item: bound.Out) -> Callable[[Row, dict[str, Any]], None]:
        if isinstance(item, bound.OutField):
            key, index, post = item.key, item.index, _post_processor(item)
            if post is None:
                return lambda row, rec: rec.__setitem__(key, row[index])
            return lambda row, rec: rec.__setitem__(key, post(row[index]))
        if isinstance(item, bound.OutObject):
            return self._compile_object(item)
        if isinstance(item, bound.OutTypeOf):
            return self._compile_typeof(item)
        key = item.key
        return lambda row, rec: rec.__setitem__(key, None)  # children are filled in later

    def _type_of(self, hop: bound.Hop) -> Callable[[str], str]:
        if not hop.polymorphic and hop.targets:
            name = hop.targets[0].name
            return lambda _id: name
        registry = self.registry

        def by_prefix(record_id: str) -> str:
            obj = registry.object_of_id(record_id)
            return obj.name if obj else "Name"

        return by_prefix

    def _compile_object(self, item: bound.OutObject) -> Callable[[Row, dict[str, Any]], None]:
        steps = self._compile_items(item.items)
        return self._nested(item.key, item.id_index, self._type_of(item.hop), lambda _kind: steps)

    def _compile_typeof(self, item: bound.OutTypeOf) -> Callable[[Row, dict[str, Any]], None]:
        branches = {name: self._compile_items(items) for name, items in item.branches.items()}
        fallback = self._compile_items(item.else_items) if item.else_items else []
        return self._nested(
            item.key,
            item.id_index,
            self._type_of(item.hop),
            lambda kind: branches.get(kind, fallback),
        )

    def _nested(
        self,
        key: str,
        index: int,
        type_of: Callable[[str], str],
        steps_for: Callable[[str], list[Callable[[Row, dict[str, Any]], None]]],
    ) -> Callable[[Row, dict[str, Any]], None]:
        """A parent object in the record: null when the reference is, else typed by its id."""
        base = self.base

        def shape(row: Row, rec: dict[str, Any]) -> None:
            parent_id = row[index]
            if parent_id is None:
                rec[key] = None
                return
            kind = type_of(parent_id)
            nested: dict[str, Any] = {
                "attributes": {"type": kind, "url": f"{base}{kind}/{parent_id}"}
            }
            for step in steps_for(kind):
                step(row, nested)
            rec[key] = nested

        return shape

    def record(self, row: Row) -> dict[str, Any]:
        rec: dict[str, Any] = {"attributes": {"type": self.root_type}}
        if self.id_index is not None:
            rec["attributes"]["url"] = f"{self.base}{self.root_type}/{row[self.id_index]}"
        if self.flat_keys is not None:
            rec.update(zip(self.flat_keys, row))
            return rec
        for step in self.shape_items:
            step(row, rec)
        return rec

    def records(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """Shape a page; the flat case is one list comprehension of dict displays."""
        if self.flat_keys is None or self.id_index is None:
            return [self.record(r) for r in rows]
        if self._flat is None:
            self._flat = _flat_builder(self.flat_keys, self.id_index)
        return self._flat(rows, self.root_type, f"{self.base}{self.root_type}/")

    def aggregate_record(self, row: Row) -> dict[str, Any]:
        rec: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
        for step in self.shape_items:
            step(row, rec)
        return rec


def _flat_builder(
    keys: tuple[str, ...], id_index: int
) -> Callable[[Sequence[Row], str, str], list[dict[str, Any]]]:
    """A function shaping flat rows with one dict display per record: half the time of
    building each record from a zip (a 2,000-record page in ~0.4 ms). Generated once per
    query from its field names (``repr``: string literals, whatever they hold) and column
    numbers; the records are the same dicts, keys in the same order, as ``record`` makes."""
    fields = ", ".join(f"{key!r}: r[{i}]" for i, key in enumerate(keys))
    source = (
        "lambda rows, kind, prefix: [{'attributes': {'type': kind, 'url': prefix + "
        f"r[{int(id_index)}]}}, {fields}}} for r in rows]"
    )
    built: Callable[[Sequence[Row], str, str], list[dict[str, Any]]] = eval(  # noqa: S307
        compile(source, "<soql shape>", "eval"), {"__builtins__": {}}
    )
    return built
