"""Bind WHERE and HAVING conditions: operands, literal types, date literals, semi-joins."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NoReturn, Protocol

from opencadence import errors, ids
from opencadence.metadata import model
from opencadence.metadata.registry import Registry
from opencadence.soql import bound, dates, nodes

_TEXT = ("string", "picklist", "multipicklist", "textarea", "email", "phone", "url")
_NUMERIC = ("int", "double", "percent", "currency")
_ORDERING = ("<", "<=", ">", ">=")
_MAX_SEMI_JOINS = 2


class Scope(Protocol):
    """What binding a condition needs from the query's binder (``soql.binder.Binder``)."""

    obj: model.ObjectDef
    #: set when the condition's meaning depends on "now" (date literals)
    time_dependent: bool

    @property
    def registry(self) -> Registry: ...

    @property
    def time_zone(self) -> str: ...

    @property
    def now(self) -> datetime: ...

    def fail(self, cls: type[errors.OpenCadenceError], pos: nodes.Pos, message: str) -> NoReturn:
        """Raise ``cls`` with Salesforce's error layout."""
        ...

    def function(self, fn: nodes.Function, clause: str) -> bound.Func: ...

    def resolve(self, path: nodes.FieldPath) -> bound.Col: ...

    def bind_subquery(self, query: nodes.Query, obj: model.ObjectDef) -> bound.BoundQuery:
        """Bind a semi-join's inner query (its time dependence becomes this query's)."""
        ...


class _State:
    """Per-clause bookkeeping: how many semi-joins, and whether we are under OR/NOT."""

    def __init__(self, clause: str) -> None:
        self.clause = clause
        self.semi_joins = 0


def bind_condition(b: Scope, cond: nodes.Condition, clause: str) -> bound.Cond:
    return _bind(b, cond, _State(clause), top=True)


def _bind(b: Scope, cond: nodes.Condition, st: _State, top: bool) -> bound.Cond:
    if isinstance(cond, nodes.And):
        return bound.BoolOp("AND", tuple(_bind(b, t, st, top) for t in cond.terms))
    if isinstance(cond, nodes.Or):
        return bound.BoolOp("OR", tuple(_bind(b, t, st, False) for t in cond.terms))
    if isinstance(cond, nodes.Not):
        return bound.NotCond(_bind(b, cond.term, st, False))
    if isinstance(cond, nodes.Comparison):
        return _comparison(b, cond, st)
    if isinstance(cond, nodes.Like):
        return _like(b, cond, st)
    if isinstance(cond, nodes.In):
        if cond.query is not None:
            return _semi_join(b, cond, st, top)
        return _in_list(b, cond, st)
    return _includes(b, cond, st)


# --- operands ---------------------------------------------------------------------------


def _operand(b: Scope, operand: nodes.FieldPath | nodes.Function, st: _State) -> bound.Expr:
    if isinstance(operand, nodes.Function):
        fn = b.function(operand, st.clause)
        if fn.is_aggregate and st.clause == "WHERE":
            b.fail(
                errors.MalformedQuery, operand.pos, "Aggregate functions are not allowed in WHERE"
            )
        return fn
    col = b.resolve(operand)
    if not col.field.filterable:
        b.fail(
            errors.InvalidField,
            operand.pos,
            f"field '{col.field.name}' can not be filtered in query call",
        )
    return col


def _value_type(expr: bound.Expr) -> str:
    """The type a literal compared with ``expr`` must have."""
    if isinstance(expr, bound.Col):
        return expr.field.type
    if expr.name in ("COUNT", "COUNT_DISTINCT") or expr.name in _INT_FUNCS:
        return "int"
    if expr.name == "DAY_ONLY":
        return "date"
    if expr.name in ("toLabel", "FORMAT"):
        return "string"
    return _value_type(expr.arg) if expr.arg is not None else "int"


_INT_FUNCS = frozenset(
    "CALENDAR_MONTH CALENDAR_QUARTER CALENDAR_YEAR DAY_IN_MONTH DAY_IN_WEEK DAY_IN_YEAR "
    "FISCAL_MONTH FISCAL_QUARTER FISCAL_YEAR HOUR_IN_DAY WEEK_IN_MONTH WEEK_IN_YEAR GROUPING".split()
)


def _field_name(expr: bound.Expr) -> str:
    if isinstance(expr, bound.Col):
        return expr.field.name
    return _field_name(expr.arg) if expr.arg is not None else expr.name


# --- literals ---------------------------------------------------------------------------


def _literal(b: Scope, expr: bound.Expr, value: nodes.Value, op: str) -> Any:
    """A literal converted to what the column stores; a DateLiteral becomes a (start, end)."""
    if isinstance(value, nodes.Null):
        if op in _ORDERING:
            b.fail(errors.MalformedQuery, value.pos, f"invalid operator {op} with null")
        return None
    ftype = _value_type(expr)
    name = _field_name(expr)
    if ftype in ("id", "reference"):
        return _id_literal(b, expr, value)
    if ftype in _TEXT:
        if not isinstance(value, nodes.String):
            _type_error(b, value, name, "string", quoted=True)
        text = value.value if value.value != "" else None
        if text is not None and isinstance(expr, bound.Col) and expr.field.restricted_picklist:
            # stored values are always canonical: match the literal case-insensitively here
            canonical = {p.value.lower(): p.value for p in expr.field.picklist}
            return canonical.get(text.lower(), text)
        return text
    if ftype == "boolean":
        if not isinstance(value, nodes.Boolean):
            _type_error(b, value, name, "boolean", quoted=False)
        if op in _ORDERING:
            b.fail(
                errors.InvalidQueryFilterOperator,
                value.pos,
                f"invalid operator on boolean field: {name}",
            )
        return value.value
    if ftype in _NUMERIC:
        number = value.amount if isinstance(value, nodes.Currency) else value
        if not isinstance(number, nodes.Number):
            _type_error(b, value, name, "double" if ftype != "int" else "int", quoted=False)
        converted = _number(number.value, ftype)
        if converted is None:
            b.fail(
                errors.NumberOutsideValidRange,
                value.pos,
                f"number outside the valid range: {number.text[:40]}",
            )
        return converted
    if ftype == "datetime":
        return _datetime_literal(b, value, name)
    if ftype == "date":
        return _date_literal(b, value, name)
    b.fail(errors.InvalidField, value.pos, f"field '{name}' can not be filtered in query call")


#: The range of a 64-bit integer column (SQLite INTEGER, PostgreSQL BIGINT).
_INT64 = 2**63 - 1


def _number(value: int | Decimal, ftype: str) -> int | float | None:
    """The literal as the column compares it; None when no column could hold it (an integer
    past 64 bits, a number past a double's range), which the database would refuse."""
    if isinstance(value, int) and (ftype == "int" or abs(value) <= _INT64):
        return value if abs(value) <= _INT64 else None
    try:
        converted = float(value)
    except OverflowError:
        return None
    return converted if math.isfinite(converted) else None


def _type_error(
    b: Scope, value: nodes.Value, name: str, type_name: str, *, quoted: bool
) -> NoReturn:
    quotes = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
    b.fail(
        errors.InvalidField,
        value.pos,
        f"value of filter criterion for field '{name}' must be of type {type_name} and {quotes}",
    )


def _id_literal(b: Scope, expr: bound.Expr, value: nodes.Value) -> str:
    if not isinstance(value, nodes.String):
        _type_error(b, value, _field_name(expr), "id", quoted=True)
    try:
        return ids.parse(value.value)
    except errors.MalformedId:
        b.fail(errors.InvalidQueryFilterOperator, value.pos, f"invalid ID field: {value.value}")


def _datetime_literal(b: Scope, value: nodes.Value, name: str) -> Any:
    if isinstance(value, nodes.DateTime):
        return value.value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, nodes.DateLiteral):
        start, end = _literal_dates(b, value)
        try:
            return (
                dates.local_midnight_utc(start, b.time_zone),
                dates.local_midnight_utc(end, b.time_zone),
            )
        except OverflowError:  # a range at year 1 or 9999 that the time zone moves outside
            b.fail(errors.MalformedQuery, value.pos, f"Invalid date literal {value.name}")
    _type_error(b, value, name, "dateTime", quoted=False)


def _date_literal(b: Scope, value: nodes.Value, name: str) -> Any:
    if isinstance(value, nodes.Date):
        return value.value
    if isinstance(value, nodes.DateLiteral):
        return _literal_dates(b, value)
    _type_error(b, value, name, "date", quoted=False)


def _literal_dates(b: Scope, value: nodes.DateLiteral) -> tuple[date, date]:
    b.time_dependent = True
    now = b.now if b.now.tzinfo else b.now.replace(tzinfo=UTC)
    try:
        return dates.literal_range(value.name, value.n, now, b.time_zone)
    except OverflowError:  # n so large the range leaves years 1-9999
        b.fail(errors.MalformedQuery, value.pos, f"Invalid date literal {value.name}:{value.n}")
    except ValueError as exc:
        b.fail(errors.MalformedQuery, value.pos, str(exc))


# --- predicates -------------------------------------------------------------------------


def _comparison(b: Scope, cond: nodes.Comparison, st: _State) -> bound.Cond:
    expr = _operand(b, cond.operand, st)
    op = "!=" if cond.op == "<>" else cond.op
    if isinstance(expr, bound.Func) and expr.name == "toLabel":
        return _to_label(b, expr, op, (cond.value,), cond.pos)
    literal = _literal(b, expr, cond.value, op)
    if isinstance(literal, tuple):
        return bound.InRange(expr, op, literal[0], literal[1])
    return bound.Compare(expr, op, literal)


def _to_label(
    b: Scope, fn: bound.Func, op: str, values: tuple[nodes.Value, ...], pos: nodes.Pos
) -> bound.Cond:
    """toLabel(f) = 'Label': compare the stored values whose label matches."""
    col = fn.arg
    assert isinstance(col, bound.Col)
    wanted: list[str | None] = []
    for v in values:
        if isinstance(v, nodes.Null):
            wanted.append(None)
            continue
        if not isinstance(v, nodes.String):
            _type_error(b, v, col.field.name, "string", quoted=True)
            continue
        label = v.value.lower()
        wanted += [p.value for p in col.field.picklist if p.label.lower() == label] or [v.value]
    if op in ("=", "!="):
        return bound.InList(col, tuple(wanted), negated=op == "!=")
    b.fail(errors.InvalidQueryFilterOperator, pos, "toLabel only supports =, != and IN")


def _like(b: Scope, cond: nodes.Like, st: _State) -> bound.Cond:
    expr = _operand(b, cond.operand, st)
    ftype = _value_type(expr)
    if ftype in ("id", "reference"):
        b.fail(errors.InvalidQueryFilterOperator, cond.pos, "invalid operator on id field")
    if ftype == "multipicklist":
        b.fail(
            errors.InvalidQueryFilterOperator, cond.pos, "invalid operator on multipicklist field"
        )
    if ftype not in _TEXT:
        b.fail(
            errors.InvalidQueryFilterOperator, cond.pos, f"invalid operator on {ftype} field: LIKE"
        )
    return bound.LikeCond(expr, cond.pattern.value)


def _in_list(b: Scope, cond: nodes.In, st: _State) -> bound.Cond:
    expr = _operand(b, cond.operand, st)
    if isinstance(expr, bound.Func) and expr.name == "toLabel":
        inner = _to_label(b, expr, "=", cond.values, cond.pos)
        assert isinstance(inner, bound.InList)
        return bound.InList(inner.expr, inner.values, negated=cond.negated)
    values: list[Any] = []
    ranges: list[tuple[Any, Any]] = []
    for v in cond.values:
        literal = _literal(b, expr, v, "=")
        (ranges.append(literal) if isinstance(literal, tuple) else values.append(literal))
    return bound.InList(expr, tuple(values), tuple(ranges), negated=cond.negated)


def _includes(b: Scope, cond: nodes.Includes, st: _State) -> bound.Cond:
    expr = _operand(b, cond.operand, st)
    if _value_type(expr) != "multipicklist":
        b.fail(
            errors.InvalidQueryFilterOperator,
            cond.pos,
            "includes or excludes operator only valid on multipicklist field",
        )
    items = tuple(tuple(p.strip() for p in v.value.split(";") if p.strip()) for v in cond.values)
    return bound.IncludesCond(expr, items, negated=cond.negated)


def _semi_join(b: Scope, cond: nodes.In, st: _State, top: bool) -> bound.Cond:
    sub = cond.query
    assert sub is not None
    if st.clause != "WHERE" or not top:
        b.fail(
            errors.MalformedQuery,
            cond.pos,
            "Semi join sub-selects are only allowed at the top "
            "level WHERE expressions and not in nested WHERE expressions",
        )
    st.semi_joins += 1
    if st.semi_joins > _MAX_SEMI_JOINS:
        b.fail(errors.MalformedQuery, cond.pos, "Maximum of 2 semi join sub-selects are allowed")
    left = _operand(b, cond.operand, st)
    if (
        not isinstance(left, bound.Col)
        or left.hop is not None
        or left.field.type not in ("id", "reference")
    ):
        b.fail(
            errors.MalformedQuery,
            cond.pos,
            "The left operand of a semi join must be an Id or reference field of the queried object",
        )
    obj = b.registry.get(sub.sobject.dotted)
    if obj is None:
        b.registry.object(sub.sobject.dotted)  # INVALID_TYPE
        raise AssertionError
    if obj.name == b.obj.name:
        b.fail(
            errors.MalformedQuery,
            sub.pos,
            "The inner and outer selects should not be on the same object type",
        )
    if sub.order_by or sub.limit is not None or sub.offset is not None:
        b.fail(
            errors.MalformedQuery,
            sub.pos,
            "Semi join sub-selects do not support ORDER BY, LIMIT or OFFSET",
        )
    bq = b.bind_subquery(sub, obj)
    fields = bq.fields()
    if (
        len(bq.items) != 1
        or len(fields) != 1
        or not isinstance(fields[0].expr, bound.Col)
        or fields[0].expr.hop is not None
        or fields[0].expr.field.type not in ("id", "reference")
    ):
        b.fail(
            errors.MalformedQuery,
            sub.pos,
            "Semi join sub-selects must select exactly one Id or reference field",
        )
    if bq.where is not None and _has_semi_join(bq.where):
        b.fail(errors.MalformedQuery, sub.pos, "Semi join sub-selects may not be nested")
    return bound.SemiJoin(left, bq, negated=cond.negated)


def _has_semi_join(cond: bound.Cond) -> bool:
    if isinstance(cond, bound.SemiJoin):
        return True
    if isinstance(cond, bound.BoolOp):
        return any(_has_semi_join(t) for t in cond.terms)
    if isinstance(cond, bound.NotCond):
        return _has_semi_join(cond.term)
    return False
