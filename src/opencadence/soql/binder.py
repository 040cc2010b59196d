"""Bind a parsed query to the registry, with Salesforce's semantic errors.

Resolves the object, field paths (up to 5 parent hops), polymorphic relationships, TYPEOF,
FIELDS(), functions, child subqueries and aliases; checks the clause rules (filterable,
sortable, groupable, grouping/aggregation, OFFSET range, FIELDS() limits, API-version
visibility). Conditions are bound in ``binder_where``, which sees this binder only through
the ``binder_where.Scope`` protocol (so it never imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

from opencadence import errors
from opencadence.metadata import model
from opencadence.metadata.registry import Registry
from opencadence.soql import binder_where, bound, nodes
from opencadence.soql.cursor import format_error
from opencadence.soql.tokens import AGGREGATES

MAX_HOPS = 5
#: The largest LIMIT (Apex and SOQL integers are 32-bit).
MAX_LIMIT = 2**31 - 1
MAX_OFFSET = 2000
MAX_FIELDS_LIMIT = 200
_NUMERIC = ("int", "double", "percent", "currency")
_SCOPES = {"everything", "mine"}


@dataclass(slots=True)
class Context:
    """Who runs the query, when, at which API version."""

    registry: Registry
    version: str | None = None
    user_id: str = ""
    time_zone: str = "GMT"
    now: datetime = field(default_factory=lambda: datetime(2000, 1, 1))
    text: str = ""


class Binder:
    """Binds one query (and, recursively, its subqueries)."""

    def __init__(self, ctx: Context, query: nodes.Query, obj: model.ObjectDef) -> None:
        self.ctx = ctx
        self.q = query
        self.obj = obj
        self.hops: dict[tuple[int, str, int], bound.Hop] = {}  # (parent, field, via) -> Hop
        self.hop_list: list[bound.Hop] = []
        self.aliases = self._aliases()
        #: the query's meaning depends on "now" (date literals, SecondsOverdue)
        self.time_dependent = False

    # --- what condition binding uses (binder_where.Scope) ---------------------------------------

    @property
    def registry(self) -> Registry:
        return self.ctx.registry

    @property
    def time_zone(self) -> str:
        return self.ctx.time_zone

    @property
    def now(self) -> datetime:
        return self.ctx.now

    def bind_subquery(self, query: nodes.Query, obj: model.ObjectDef) -> bound.BoundQuery:
        """A semi-join's inner query, bound in this query's context."""
        inner = Binder(self.ctx, query, obj)
        bq = inner.bind()
        self.time_dependent |= inner.time_dependent
        return bq

    # --- errors -----------------------------------------------------------------------------

    def fail(self, cls: type[errors.OpenCadenceError], pos: nodes.Pos, message: str) -> NoReturn:
        """Raise ``cls`` with Salesforce's layout: excerpt, caret, row/column, message."""
        line, column = pos
        text = self.ctx.text
        if text and line:
            excerpt = format_error(text, line, column, "", None).rsplit("\n", 1)[0]
            message = f"{excerpt}\n{message}"
        raise cls(message)

    # --- names ------------------------------------------------------------------------------

    def _aliases(self) -> dict[str, str]:
        """Lower-cased names that may prefix a path: the object name and its alias."""
        names = {self.obj.name.lower(): ""}
        if self.q.alias:
            names[self.q.alias.lower()] = ""
        return names

    def visible(self, f: model.FieldDef | None) -> model.FieldDef | None:
        return f if f is not None and f.visible_in(self.ctx.version) else None

    def no_such_column(self, name: str, obj: model.ObjectDef, pos: nodes.Pos) -> NoReturn:
        self.fail(
            errors.InvalidField,
            pos,
            f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        )

    def bad_relationship(self, name: str, pos: nodes.Pos) -> NoReturn:
        self.fail(
            errors.InvalidField,
            pos,
            f"Didn't understand relationship '{name}' in field path. If you are attempting to "
            "use a custom relationship, be sure to append the '__r' after the custom "
            "relationship name. Please reference your WSDL or the describe call for the "
            "appropriate names.",
        )

    def hop(
        self, parent: bound.Hop | None, f: model.FieldDef, via: model.ObjectDef | None = None
    ) -> bound.Hop:
        key = (id(parent), f.name, id(via))
        found = self.hops.get(key)
        if found is None:
            targets = tuple(
                o for name in f.reference_to if (o := self.ctx.registry.get(name)) is not None
            )
            found = bound.Hop(parent=parent, field=f, targets=targets, via=via)
            self.hops[key] = found
            self.hop_list.append(found)
        return found

    def resolve(
        self,
        path: nodes.FieldPath,
        *,
        start: bound.Hop | None = None,
        start_obj: model.ObjectDef | None = None,
    ) -> bound.Col:
        """A field path to a column: optional object/alias prefix, relationship hops, field.

        ``start``/``start_obj`` resolve relative to one target of a polymorphic hop (TYPEOF).
        """
        parts = list(path.parts)
        if start is None and len(parts) > 1 and parts[0].lower() in self.aliases:
            parts = parts[1:]
        depth = (start.depth if start else 0) + len(parts) - 1
        if depth > MAX_HOPS:
            self.fail(errors.InvalidField, path.pos, "Relationship path too deep: at most 5 levels")
        hop = start
        via = start_obj
        objs: tuple[model.ObjectDef, ...] = (start_obj or self.obj,)
        for name in parts[:-1]:
            ref = self._relationship(objs, name)
            if ref is None:
                self.bad_relationship(name, path.pos)
            hop = self.hop(hop, ref, via)
            via = None
            objs = hop.targets
            if not objs:
                self.bad_relationship(name, path.pos)
        col = self._column(hop, objs, parts[-1], path.pos)
        if via is not None:  # a direct field of the TYPEOF target
            return bound.Col(hop, col.field, via)
        return col

    def _relationship(self, objs: tuple[model.ObjectDef, ...], name: str) -> model.FieldDef | None:
        if len(objs) != 1:
            return None  # through a polymorphic relationship only its own fields are reachable
        ref = self.ctx.registry.relationship_field(objs[0], name)
        return self.visible(ref)

    def _column(
        self, hop: bound.Hop | None, objs: tuple[model.ObjectDef, ...], name: str, pos: nodes.Pos
    ) -> bound.Col:
        if len(objs) == 1:
            f = self.visible(objs[0].field(name))
            if f is None:
                self.no_such_column(name, objs[0], pos)
            if f.formula == "seconds_overdue":
                self.time_dependent = True
            return bound.Col(hop, f)
        # Polymorphic parent (Target, Owner): Type, or a field every target object has.
        if name.lower() == "type":
            return bound.Col(hop, bound.TYPE_FIELD)
        found = [self.visible(o.field(name)) for o in objs]
        if any(f is None for f in found):
            label = hop.relationship if hop else self.obj.name
            self.no_such_column(name, model_name(label), pos)
        first = found[0]
        assert first is not None
        return bound.Col(hop, first)

    # --- select list -------------------------------------------------------------------------

    def bind(self) -> bound.BoundQuery:
        q = self.q
        self._check_tail()
        result = bound.BoundQuery(obj=self.obj, items=[], text=self.ctx.text)
        aggregate = _is_aggregate_query(q)
        result.aggregate = aggregate
        if len(q.select) == 1 and isinstance(q.select[0], nodes.CountStar):
            result.count_only = True
            self._check_count_only(q)
        else:
            self._bind_select(result, aggregate)
        result.where = binder_where.bind_condition(self, q.where, "WHERE") if q.where else None
        self._bind_grouping(result, aggregate)
        result.order = [self._bind_order(o, aggregate) for o in q.order_by]
        self._bind_limits(result)
        result.scope_owner = self._bind_scope()
        result.hops = self.hop_list
        return result

    def _check_tail(self) -> None:
        q = self.q
        for w in q.with_:
            if isinstance(w, nodes.WithMode):
                self.fail(
                    errors.MalformedQuery, w.pos, f"WITH {w.name} is only allowed in Apex code"
                )
            what = (
                "WITH DATA CATEGORY"
                if isinstance(w, nodes.WithDataCategory)
                else f"WITH {getattr(w, 'name', '')}"
            )
            self.fail(
                errors.MalformedQuery,
                w.pos,
                f"{what} is not supported for entity '{self.obj.name}'",
            )
        if "UPDATE" in q.for_:
            self.fail(
                errors.MalformedQuery,
                q.clause_pos.get("FOR", q.pos),
                "FOR UPDATE is only allowed in Apex code",
            )
        if q.update:
            self.fail(
                errors.MalformedQuery,
                q.clause_pos.get("UPDATE", q.pos),
                f"UPDATE {q.update[0]} is only supported for Knowledge articles",
            )
        if q.bind or q.options:
            self.fail(errors.MalformedQuery, q.pos, "BIND and SET OPTIONS are not supported")

    def _check_count_only(self, q: nodes.Query) -> None:
        if q.order_by:
            self.fail(
                errors.MalformedQuery,
                q.clause_pos.get("ORDER BY", q.pos),
                "COUNT() and ORDER BY may not be used together",
            )
        if q.group_by:
            self.fail(
                errors.MalformedQuery,
                q.clause_pos.get("GROUP BY", q.pos),
                "COUNT() and GROUP BY may not be used together",
            )

    def _bind_select(self, result: bound.BoundQuery, aggregate: bool) -> None:
        seen: set[str] = set()
        expr_n = 0
        for item in self.q.select:
            if isinstance(item, nodes.FieldPath):
                if item.alias and not aggregate:
                    self.fail(
                        errors.MalformedQuery,
                        item.pos,
                        "only aggregate expressions use field aliasing",
                    )
                self._add_path(result.items, item, seen, aggregate)
            elif isinstance(item, nodes.Function):
                fn = self.function(item, "SELECT")
                key = item.alias
                if key is None and (fn.is_aggregate or isinstance(_unwrap(fn), bound.Func)):
                    # un-aliased aggregates and date functions are named expr0, expr1, ...
                    key, expr_n = f"expr{expr_n}", expr_n + 1
                result.items.append(bound.OutField(key or _default_key(fn), fn, format=_post(fn)))
            elif isinstance(item, nodes.Fields):
                self._add_fields(result.items, item, seen)
            elif isinstance(item, nodes.TypeOf):
                result.items.append(self._bind_typeof(item))
            elif isinstance(item, nodes.Subquery):
                if aggregate:
                    self.fail(
                        errors.MalformedQuery,
                        item.pos,
                        "a GROUP BY query cannot contain child relationship subqueries",
                    )
                result.items.append(self._bind_children(item))
            else:  # CountStar among other items: the parser prevents it
                self.fail(errors.MalformedQuery, item.pos, "COUNT() must be the only select item")

    def _add_path(
        self, items: list[bound.Out], path: nodes.FieldPath, seen: set[str], aggregate: bool
    ) -> None:
        col = self.resolve(path)
        dotted = _dotted(col)
        if dotted.lower() in seen:
            self.fail(errors.InvalidField, path.pos, f"duplicate field selected: {dotted}")
        seen.add(dotted.lower())
        if aggregate:
            items.append(bound.OutField(path.alias or col.field.name, col))
            return
        _place(items, col, bound.OutField(col.field.name, col))

    def _add_fields(self, items: list[bound.Out], item: nodes.Fields, seen: set[str]) -> None:
        if item.kind in ("ALL", "CUSTOM") and (
            self.q.limit is None or self.q.limit > MAX_FIELDS_LIMIT
        ):
            self.fail(
                errors.MalformedQuery,
                item.pos,
                f"The SOQL FIELDS function must have a LIMIT of at most {MAX_FIELDS_LIMIT}",
            )
        if item.kind == "CUSTOM":
            return  # opencadence objects have no custom fields
        for f in self.obj.fields_at(self.ctx.version):
            if f.name.lower() in seen:
                self.fail(errors.InvalidField, item.pos, f"duplicate field selected: {f.name}")
            seen.add(f.name.lower())
            items.append(bound.OutField(f.name, bound.Col(None, f)))

    def _bind_typeof(self, item: nodes.TypeOf) -> bound.OutTypeOf:
        ref = (
            self._relationship((self.obj,), item.field.parts[-1])
            if len(item.field.parts) == 1
            else None
        )
        if ref is None or not ref.polymorphic:
            self.fail(
                errors.InvalidField,
                item.pos,
                f"TYPEOF requires a polymorphic relationship: {item.field.dotted}",
            )
        hop = self.hop(None, ref)
        branches: dict[str, list[bound.Out]] = {}
        for when in item.whens:
            target = next(
                (o for o in hop.targets if o.name.lower() == when.type_name.lower()), None
            )
            if target is None:
                self.fail(
                    errors.InvalidField,
                    when.pos,
                    f"{when.type_name} is not a type of {hop.relationship}",
                )
            branches[target.name] = self._typeof_items(hop, target, when.fields)
        else_items: list[bound.Out] | None = None
        if item.else_fields:
            else_items = [
                bound.OutField(c.field.name, c)
                for c in (
                    self._column(hop, hop.targets, p.parts[-1], p.pos) for p in item.else_fields
                )
            ]
        return bound.OutTypeOf(hop.relationship, hop, branches, else_items)

    def _typeof_items(
        self, hop: bound.Hop, target: model.ObjectDef, paths: tuple[nodes.FieldPath, ...]
    ) -> list[bound.Out]:
        items: list[bound.Out] = []
        for p in paths:
            col = self.resolve(p, start=hop, start_obj=target)
            _place(items, col, bound.OutField(col.field.name, col), base=hop)
        return items

    def _bind_children(self, item: nodes.Subquery) -> bound.OutChildren:
        sub = item.query
        name = sub.sobject.dotted
        rel = self.ctx.registry.child_relationship(self.obj.name, name)
        if rel is None or not rel.visible_in(self.ctx.version):
            self.bad_relationship(name, sub.sobject.pos)
        child_obj = self.ctx.registry.object(rel.child_object)
        if sub.offset is not None and self.q.limit != 1:
            self.fail(
                errors.MalformedQuery,
                sub.pos,
                "OFFSET in a subquery requires LIMIT 1 on the outer query",
            )
        child = Binder(self.ctx, sub, child_obj)
        child.aliases = {name.lower(): "", child_obj.name.lower(): ""}
        if sub.alias:
            child.aliases[sub.alias.lower()] = ""
        bq = child.bind()
        self.time_dependent |= child.time_dependent
        fk = child_obj.field(rel.field)
        assert fk is not None
        return bound.OutChildren(rel.relationship_name, bq, fk)

    # --- functions ---------------------------------------------------------------------------

    def function(self, fn: nodes.Function, clause: str) -> bound.Func:
        """Bind a function call (aggregates, date functions, wrappers)."""
        name = fn.name
        if name in ("DISTANCE", "GEOLOCATION"):
            self.fail(
                errors.InvalidField,
                fn.pos,
                "DISTANCE needs a geolocation field; this object has none",
            )
        if name == "FORMULA":
            self.fail(errors.MalformedQuery, fn.pos, "FORMULA() is not supported")
        if name == "COUNT" and not fn.args:
            return bound.Func("COUNT", None)
        if len(fn.args) != 1:
            self.fail(errors.MalformedQuery, fn.pos, f"{name} takes exactly one argument")
        arg = fn.args[0]
        if isinstance(arg, nodes.Function):
            inner = self.function(arg, clause)
            return self._check_function(bound.Func(name, inner), fn.pos)
        if not isinstance(arg, nodes.FieldPath):
            self.fail(errors.MalformedQuery, fn.pos, f"{name} needs a field argument")
        return self._check_function(bound.Func(name, self.resolve(arg)), fn.pos)

    def _check_function(self, fn: bound.Func, pos: nodes.Pos) -> bound.Func:
        col = fn.arg
        if fn.name == "convertTimezone":
            return bound.Func("convertTimezone", col, tz=self.ctx.time_zone)
        if isinstance(col, bound.Func) and col.name == "convertTimezone":
            return bound.Func(fn.name, col.arg, tz=self.ctx.time_zone)
        if not isinstance(col, bound.Col):
            return fn
        ftype = col.field.type
        if fn.name in ("SUM", "AVG") and ftype not in _NUMERIC:
            self.fail(
                errors.MalformedQuery,
                pos,
                f"field {col.field.name} does not support aggregate operator {fn.name}",
            )
        if (
            fn.name in ("MIN", "MAX", "COUNT", "COUNT_DISTINCT")
            and ftype == "textarea"
            and col.field.length > 255
        ):
            self.fail(
                errors.MalformedQuery,
                pos,
                f"field {col.field.name} does not support aggregate operator {fn.name}",
            )
        if fn.name == "COUNT_DISTINCT" and ftype == "boolean":
            self.fail(
                errors.MalformedQuery,
                pos,
                f"field {col.field.name} does not support aggregate operator {fn.name}",
            )
        if fn.name in _DATE_FUNCS and ftype not in ("date", "datetime"):
            self.fail(
                errors.MalformedQuery,
                pos,
                f"{fn.name} requires a date or dateTime field: {col.field.name}",
            )
        if fn.name == "HOUR_IN_DAY" and ftype != "datetime":
            self.fail(
                errors.MalformedQuery,
                pos,
                f"HOUR_IN_DAY requires a dateTime field: {col.field.name}",
            )
        if fn.name == "toLabel" and ftype not in ("picklist", "multipicklist"):
            self.fail(
                errors.MalformedQuery, pos, f"toLabel requires a picklist field: {col.field.name}"
            )
        if fn.name == "convertCurrency" and ftype != "currency":
            self.fail(
                errors.InvalidField,
                pos,
                f"convertCurrency requires a currency field: {col.field.name}",
            )
        return fn

    # --- grouping, order, limits -----------------------------------------------------------

    def _bind_grouping(self, result: bound.BoundQuery, aggregate: bool) -> None:
        q = self.q
        if q.group_by:
            result.group_kind = q.group_by.kind
            if q.group_by.kind != "PLAIN" and len(q.group_by.items) > 3:
                self.fail(
                    errors.MalformedQuery,
                    q.group_by.pos,
                    f"{q.group_by.kind} allows at most 3 fields",
                )
            result.group_by = [self._group_item(i) for i in q.group_by.items]
        if aggregate:
            self._check_grouped(result)
        if q.having is not None:
            result.having = binder_where.bind_condition(self, q.having, "HAVING")

    def _group_item(self, item: nodes.FieldPath | nodes.Function) -> bound.Expr:
        if isinstance(item, nodes.Function):
            return self.function(item, "GROUP BY")
        col = self.resolve(item)
        if not col.field.groupable:
            self.fail(
                errors.InvalidField,
                item.pos,
                f"field '{col.field.name}' can not be grouped in a query call",
            )
        return col

    def _check_grouped(self, result: bound.BoundQuery) -> None:
        grouped = {_expr_key(e) for e in result.group_by}
        for out in result.items:
            if (
                isinstance(out, bound.OutField)
                and not _aggregated(out.expr)
                and _expr_key(_unwrap(out.expr)) not in grouped
            ):
                name = out.expr.field.name if isinstance(out.expr, bound.Col) else out.key
                self.fail(
                    errors.MalformedQuery,
                    self.q.pos,
                    f"Field must be grouped or aggregated: {name}",
                )

    def _bind_order(self, item: nodes.OrderItem, aggregate: bool) -> bound.Order:
        if isinstance(item.expr, nodes.Function):
            expr: bound.Expr = self.function(item.expr, "ORDER BY")
        else:
            col = self.resolve(item.expr)
            if not col.field.sortable:
                self.fail(
                    errors.InvalidField,
                    item.expr.pos,
                    f"field '{col.field.name}' can not be sorted in a query call",
                )
            expr = col
        # Salesforce: nulls sort first ascending, last descending, unless NULLS says otherwise.
        nulls_first = item.nulls == "FIRST" if item.nulls else not item.descending
        return bound.Order(expr, item.descending, nulls_first)

    def _bind_limits(self, result: bound.BoundQuery) -> None:
        q = self.q
        if q.offset is not None and q.offset > MAX_OFFSET:
            self.fail(
                errors.NumberOutsideValidRange,
                q.clause_pos.get("OFFSET", q.pos),
                f"Maximum SOQL offset allowed is {MAX_OFFSET}",
            )
        if q.limit is not None and q.limit > MAX_LIMIT:  # SOQL's LIMIT is a 32-bit integer
            self.fail(
                errors.NumberOutsideValidRange,
                q.clause_pos.get("LIMIT", q.pos),
                f"Maximum SOQL limit allowed is {MAX_LIMIT}",
            )
        result.limit, result.offset = q.limit, q.offset

    def _bind_scope(self) -> str | None:
        scope = self.q.using_scope
        if scope is None or scope.lower() == "everything":
            return None
        if scope.lower() not in _SCOPES:
            self.fail(
                errors.MalformedQuery,
                self.q.clause_pos.get("USING", self.q.pos),
                f"Scope {scope} is not supported for entity '{self.obj.name}'",
            )
        if self.obj.field("OwnerId") is None:
            self.fail(
                errors.MalformedQuery,
                self.q.clause_pos.get("USING", self.q.pos),
                f"Scope mine is not supported for entity '{self.obj.name}'",
            )
        return self.ctx.user_id


_DATE_FUNCS = frozenset(
    "CALENDAR_MONTH CALENDAR_QUARTER CALENDAR_YEAR DAY_IN_MONTH DAY_IN_WEEK DAY_IN_YEAR DAY_ONLY "
    "FISCAL_MONTH FISCAL_QUARTER FISCAL_YEAR HOUR_IN_DAY WEEK_IN_MONTH WEEK_IN_YEAR".split()
)


def model_name(label: str) -> model.ObjectDef:
    """A stand-in ObjectDef carrying a relationship's name, for error messages."""
    return model.ObjectDef(
        name=label,
        label=label,
        label_plural=label,
        key_prefix="000",
        since="0.0",
        calls=frozenset(),
    )


def _is_aggregate_query(q: nodes.Query) -> bool:
    if q.group_by is not None:
        return True
    return any(isinstance(i, nodes.Function) and _has_aggregate(i) for i in q.select)


def _has_aggregate(fn: nodes.Function) -> bool:
    return fn.name in AGGREGATES or any(
        isinstance(a, nodes.Function) and _has_aggregate(a) for a in fn.args
    )


def _aggregated(expr: bound.Expr) -> bool:
    return isinstance(expr, bound.Func) and (expr.is_aggregate or expr.name == "GROUPING")


def _unwrap(expr: bound.Expr) -> bound.Expr:
    """FORMAT/toLabel/convertCurrency wrap a grouped expression without changing it."""
    while (
        isinstance(expr, bound.Func)
        and expr.name in ("FORMAT", "toLabel", "convertCurrency")
        and expr.arg is not None
    ):
        expr = expr.arg
    return expr


def _expr_key(expr: bound.Expr) -> tuple[object, ...]:
    if isinstance(expr, bound.Col):
        return ("col", id(expr.hop), expr.field.name, id(expr.target))
    return ("fn", expr.name, _expr_key(expr.arg) if expr.arg is not None else None, expr.tz)


def _dotted(col: bound.Col) -> str:
    parts = [col.field.name]
    hop = col.hop
    while hop is not None:
        parts.append(hop.relationship)
        hop = hop.parent
    return ".".join(reversed(parts))


def _default_key(fn: bound.Func) -> str:
    inner = _unwrap(fn)
    if isinstance(inner, bound.Col):
        return inner.field.name
    return fn.name


def _post(fn: bound.Func) -> str | None:
    return fn.name if fn.name in ("FORMAT", "toLabel") else None


def _place(
    items: list[bound.Out], col: bound.Col, out: bound.OutField, base: bound.Hop | None = None
) -> None:
    """Put a field in the record, nesting it under its relationship objects."""
    chain: list[bound.Hop] = []
    hop = col.hop
    while hop is not None and hop is not base:
        chain.append(hop)
        hop = hop.parent
    target = items
    for h in reversed(chain):
        nested = next((i for i in target if isinstance(i, bound.OutObject) and i.hop is h), None)
        if nested is None:
            nested = bound.OutObject(h.relationship, h)
            target.append(nested)
        target = nested.items
    target.append(out)
