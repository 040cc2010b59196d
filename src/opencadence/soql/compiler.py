"""Compile a BoundQuery to one SQLAlchemy Core SELECT.

Parent paths become LEFT OUTER JOINs (one per distinct path; one per target object for a
polymorphic relationship), calculated fields their SQL twins, date literals ranges, text
comparisons case-insensitive. Every scalar of the record is one labelled column ``cN``; the
sort keys are hidden columns ``kN`` (or the record column of the same expression: the Id is
fetched once) so a page can resume after its last row (keyset paging). Aggregate queries
with ROLLUP/CUBE become a UNION ALL of grouping sets, identically on SQLite and PostgreSQL.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from opencadence.metadata import model
from opencadence.metadata.registry import Registry
from opencadence.soql import bound, constructs
from opencadence.storage import formulas, visibility

Col = ColumnElement[Any]


@dataclass(slots=True)
class Compiled:
    """A compiled query: the statement and what the shaper and pager need."""

    bq: bound.BoundQuery
    select: sa.Select[Any]  # record columns + hidden keys, WHERE applied, not yet paged
    order_exprs: list[tuple[Col, bool, bool]]  # (expression, descending, nulls_first)
    #: where each sort key's value is in a row (a page resumes after the last row's keys)
    key_index: list[int]
    #: where the root record's Id is in a row (None: aggregate and count queries)
    id_index: int | None
    count: sa.Select[Any]
    plan: Any = None  # the ShapePlan, built on first use and reused with the compiled query
    viewer: str | None = None  # whose visibility applies (child subqueries reuse it)
    unfiltered: bool = False  # matches every live row (totalSize from storage.counts)
    #: driver-ready statements of the fast path (storage.fastread), by page size; None when
    #: this compiled query is not reused (time-dependent) and so not worth preparing
    fast: dict[Any, Any] | None = None


class Compiler:
    """Compiles one BoundQuery against the tables of a registry."""

    def __init__(
        self,
        registry: Registry,
        meta: sa.MetaData,
        now: datetime,
        viewer: str | None = None,
    ) -> None:
        self.registry = registry
        #: the user whose visibility limits the rows (None: sees everything)
        self.viewer = viewer
        self.meta = meta
        self.now = now.replace(tzinfo=None) if now.tzinfo else now
        self.tables: dict[int, dict[str, sa.FromClause]] = {}  # id(hop) -> object -> alias
        self.root: sa.FromClause = sa.table("x")
        self.null_keys: set[tuple[object, ...]] = set()
        #: semi-joins compiled so far; numbers their aliases so the SQL text is stable per query
        self.semi_joins = 0
        self.prefix = ""  # the alias prefix of this query's tables (set by _from)

    # --- tables and columns ----------------------------------------------------------------

    def _from(self, bq: bound.BoundQuery, prefix: str) -> sa.FromClause:
        self.prefix = prefix
        self.root = self.meta.tables[bq.obj.name].alias(f"{prefix}0")
        joined: sa.FromClause = self.root
        for n, hop in enumerate(bq.hops, start=1):
            source = self._source_column(hop)
            aliases: dict[str, sa.FromClause] = {}
            for k, target in enumerate(hop.targets):
                alias = self.meta.tables[target.name].alias(f"{prefix}{n}_{k}")
                on = sa.and_(alias.c.Id == source, alias.c.IsDeleted == sa.false())
                # a parent the viewer cannot see joins as no row: its fields read null
                seen = visibility.predicate(target.name, alias, self.meta, self.viewer)
                if seen is not None:
                    on = sa.and_(on, seen)
                joined = joined.outerjoin(alias, on)
                aliases[target.name] = alias
            self.tables[id(hop)] = aliases
        return joined

    def _source_column(self, hop: bound.Hop) -> Col:
        """The reference column a hop starts from (on the root or the parent hop's table)."""
        if hop.parent is None:
            return self.root.c[hop.field.name]
        parent_tables = self.tables[id(hop.parent)]
        owner = hop.via.name if hop.via is not None else hop.parent.targets[0].name
        return parent_tables[owner].c[hop.field.name]

    def column(self, col: bound.Col) -> Col:
        """The SQL expression of a column (calculated fields included)."""
        if col.hop is None:
            return self._field(self.root, col.field)
        tables = self.tables[id(col.hop)]
        if col.is_type:
            return self._type_of(col.hop)
        if col.target is not None:
            return self._field(tables[col.target.name], col.field)
        if len(tables) == 1:
            return self._field(next(iter(tables.values())), col.field)
        return sa.func.coalesce(*(self._field(t, col.field) for t in tables.values()))

    def _field(self, table: sa.FromClause, f: model.FieldDef) -> Col:
        if f.calculated and f.formula:
            return formulas.sql_expression(f.formula, lambda name: table.c[name], self.now)
        return table.c[f.name]

    def _type_of(self, hop: bound.Hop) -> Col:
        """``Target.Type``: the object name behind a polymorphic id, from its key prefix."""
        source = self._source_column(hop)
        whens = [
            (sa.func.substr(source, 1, 3) == t.key_prefix, sa.literal(t.name)) for t in hop.targets
        ]
        return sa.case(*whens, else_=sa.null())

    def reference_id(self, hop: bound.Hop) -> Col:
        """The id that says whether a parent object is shaped (null: the parent is null).

        For a viewer limited by visibility and a parent that can be private, the joined
        parent's own Id: a parent the viewer cannot see is joined as no row, so it reads
        null, as in Salesforce, rather than as an object of null fields."""
        source = self._source_column(hop)
        if self.viewer is None or not any(t.name in visibility.PRIVATE for t in hop.targets):
            return source
        joined = [t.c.Id for t in self.tables[id(hop)].values()]
        return joined[0] if len(joined) == 1 else sa.func.coalesce(*joined)

    # --- expressions -----------------------------------------------------------------------

    def expr(self, e: bound.Expr) -> Col:
        if self.null_keys and bound_key(e) in self.null_keys:
            return sa.null()  # a grouped column outside the current grouping set
        if isinstance(e, bound.Col):
            return self.column(e)
        return self.function(e)

    def function(self, fn: bound.Func) -> Col:
        name = fn.name
        if name == "COUNT" and fn.arg is None:
            return sa.func.count()
        assert fn.arg is not None
        arg = self.expr(fn.arg)
        if name == "COUNT":
            return sa.func.count(arg)
        if name == "COUNT_DISTINCT":
            return sa.func.count(sa.distinct(arg))
        if name in ("SUM", "AVG", "MIN", "MAX"):
            aggregate: Col = getattr(sa.func, name.lower())(arg)
            return aggregate
        if name in ("toLabel", "FORMAT", "convertCurrency", "convertTimezone"):
            return arg  # values are mapped after the query (labels, formatting)
        ftype = _arg_type(fn.arg)
        return constructs.date_function(name, arg, ftype, fn.tz)

    # --- conditions ------------------------------------------------------------------------

    def cond(self, c: bound.Cond) -> Col:
        method: Callable[[Any], Col] = getattr(self, f"_cond_{type(c).__name__}")
        return method(c)

    def _cond_BoolOp(self, c: bound.BoolOp) -> Col:
        terms = [self.cond(t) for t in c.terms]
        return sa.and_(*terms) if c.op == "AND" else sa.or_(*terms)

    def _cond_NotCond(self, c: bound.NotCond) -> Col:
        return sa.not_(self.cond(c.term))

    def _is_text(self, e: bound.Expr) -> bool:
        """Whether comparisons on ``e`` must fold case. Restricted picklists hold only their
        canonical values and the binder canonicalises literals, so they compare exactly (and
        can use their indexes)."""
        if isinstance(e, bound.Col) and e.field.restricted_picklist:
            return False
        return _arg_type(e) in _TEXT and not (
            isinstance(e, bound.Func) and e.is_aggregate and e.name in ("COUNT", "COUNT_DISTINCT")
        )

    def _cond_Compare(self, c: bound.Compare) -> Col:
        col = self.expr(c.expr)
        if c.value is None:
            return col.is_(None) if c.op == "=" else col.is_not(None)
        if self._is_text(c.expr):
            return constructs.ci_compare(col, c.op, str(c.value))
        return _compare(col, c.op, c.value)

    def _cond_InRange(self, c: bound.InRange) -> Col:
        col = self.expr(c.expr)
        inside = sa.and_(col >= c.start, col < c.end)
        return {
            "=": inside,
            "!=": sa.or_(sa.not_(inside), col.is_(None)),
            "<": col < c.start,
            "<=": col < c.end,
            ">": col >= c.end,
            ">=": col >= c.start,
        }[c.op]

    def _cond_InList(self, c: bound.InList) -> Col:
        col = self.expr(c.expr)
        values = [v for v in c.values if v is not None]
        has_null = len(values) != len(c.values)
        parts: list[Col] = []
        if values:
            parts.append(
                constructs.ci_in(col, [str(v) for v in values], False)
                if self._is_text(c.expr)
                else col.in_(values)
            )
        parts += [sa.and_(col >= start, col < end) for start, end in c.ranges]
        if has_null:
            parts.append(col.is_(None))
        matched = sa.or_(*parts) if parts else sa.false()
        if not c.negated:
            return matched
        # NOT IN keeps rows whose value is null unless null was listed (Salesforce semantics)
        return sa.or_(sa.not_(matched), col.is_(None)) if not has_null else sa.not_(matched)

    def _cond_LikeCond(self, c: bound.LikeCond) -> Col:
        return constructs.like(self.expr(c.expr), c.pattern)

    def _cond_IncludesCond(self, c: bound.IncludesCond) -> Col:
        col = self.expr(c.expr)
        wrapped = sa.literal(";") + col + sa.literal(";")
        anys = [
            sa.and_(*(constructs.like(wrapped, "%;" + _escape(v) + ";%") for v in group))
            for group in c.values
        ]
        found = sa.or_(*anys)
        return sa.or_(sa.not_(found), col.is_(None)) if c.negated else found

    def _cond_SemiJoin(self, c: bound.SemiJoin) -> Col:
        inner = Compiler(self.registry, self.meta, self.now, self.viewer)
        self.semi_joins += 1
        # under the enclosing root's alias, so a semi-join's tables never collide with ours
        joined = inner._from(c.query, prefix=f"{self.prefix}s{self.semi_joins}_")
        out = c.query.fields()[0].expr
        assert isinstance(out, bound.Col)
        selected = inner.column(out)
        conds = [inner.root.c.IsDeleted == sa.false(), selected.is_not(None)]
        visible = visibility.predicate(c.query.obj.name, inner.root, self.meta, self.viewer)
        if visible is not None:
            conds.append(visible)
        if c.query.where is not None:
            conds.append(inner.cond(c.query.where))
        sub = sa.select(selected).select_from(joined).where(*conds)
        left = self.expr(c.expr)
        if c.negated:
            return sa.or_(left.is_(None), left.not_in(sub))
        return left.in_(sub)

    # --- whole query -----------------------------------------------------------------------

    def compile(self, bq: bound.BoundQuery, prefix: str = "t") -> Compiled:
        joined = self._from(bq, prefix)
        where = self._where(bq)
        if bq.aggregate or bq.count_only:
            return self._compile_aggregate(bq, joined, where)
        labels: list[Col] = []
        for n, out in enumerate(bq.fields()):
            out.index = n
            labels.append(
                constructs.api_value(self.expr(out.expr), _out_type(out.expr)).label(f"c{n}")
            )
        _number_objects(self, bq.items, labels)
        id_index = _hidden(labels, self.root.c.Id, f"c{len(labels)}")
        order = self._order(bq)
        key_index = [_hidden(labels, e, f"k{n}") for n, (e, _d, _nf) in enumerate(order)]
        select = sa.select(*labels).select_from(joined).where(*where)
        count = sa.select(sa.func.count()).select_from(joined).where(*where)
        unfiltered = (
            bq.where is None
            and not bq.scope_owner
            and not bq.include_deleted
            and visibility.predicate(bq.obj.name, self.root, self.meta, self.viewer) is None
        )
        return Compiled(
            bq,
            select,
            order,
            key_index,
            id_index,
            count,
            viewer=self.viewer,
            unfiltered=unfiltered,
        )

    def _where(self, bq: bound.BoundQuery) -> list[Col]:
        where: list[Col] = []
        if not bq.include_deleted:
            where.append(self.root.c.IsDeleted == sa.false())
        if bq.scope_owner:
            where.append(self.root.c.OwnerId == bq.scope_owner)
        visible = visibility.predicate(bq.obj.name, self.root, self.meta, self.viewer)
        if visible is not None:
            where.append(visible)
        if bq.where is not None:
            where.append(self.cond(bq.where))
        return where

    def _order(self, bq: bound.BoundQuery) -> list[tuple[Col, bool, bool]]:
        order = []
        for o in bq.order:
            e = self.expr(o.expr)
            if (
                isinstance(o.expr, bound.Col)
                and o.expr.field.type == "picklist"
                and o.expr.field.picklist
            ):
                e = _picklist_rank(e, o.expr.field)  # picklists sort in their declared order
            elif self._is_text(o.expr):
                e = constructs.ci_sort_key(e)
            order.append((e, o.descending, o.nulls_first))
        order.append((self.root.c.Id, False, False))  # a total order, so pages never overlap
        return order

    def _compile_aggregate(
        self, bq: bound.BoundQuery, joined: sa.FromClause, where: list[Col]
    ) -> Compiled:
        if bq.count_only:
            count = sa.select(sa.func.count()).select_from(joined).where(*where)
            return Compiled(bq, count, [], [], None, count)
        outs = bq.fields()
        for n, out in enumerate(outs):
            out.index = n
        sets = _grouping_sets(bq)
        group_exprs = [self.expr(g) for g in bq.group_by]
        branches = [self._grouping_branch(bq, joined, where, outs, group_exprs, s) for s in sets]
        union = branches[0] if len(branches) == 1 else sa.union_all(*branches)
        sub = union.subquery("agg")
        select = sa.select(*sub.c)
        for n, o in enumerate(bq.order):  # each sort key is the hidden column o<n> of every branch
            key = f"o{n}"
            ordered = sub.c[key].desc() if o.descending else sub.c[key].asc()
            select = select.order_by(
                ordered.nulls_first() if o.nulls_first else ordered.nulls_last()
            )
        if bq.limit is not None:
            select = select.limit(bq.limit)
        if bq.offset:
            select = select.offset(bq.offset)
        count = sa.select(sa.func.count()).select_from(select.subquery("aggcount"))
        return Compiled(bq, select, [], [], None, count)

    def _grouping_branch(
        self,
        bq: bound.BoundQuery,
        joined: sa.FromClause,
        where: list[Col],
        outs: Sequence[bound.OutField],
        group_exprs: list[Col],
        active: frozenset[int],
    ) -> sa.Select[Any]:
        """One grouping set: grouped columns outside the set are null, GROUPING() is 1."""
        keys = [bound_key(g) for g in bq.group_by]
        labels = []
        for out in outs:
            labels.append(
                self._agg_output(out.expr, keys, active, group_exprs).label(f"c{out.index}")
            )
        hidden = [
            self._agg_output(o.expr, keys, active, group_exprs).label(f"o{n}")
            for n, o in enumerate(bq.order)
        ]
        stmt = sa.select(*labels, *hidden).select_from(joined).where(*where)
        grouped = [group_exprs[i] for i in sorted(active)]
        if grouped:
            stmt = stmt.group_by(*grouped)
        if bq.having is not None:
            stmt = stmt.having(self._having(bq.having, keys, active, group_exprs))
        return stmt

    def _agg_output(
        self,
        e: bound.Expr,
        keys: list[tuple[object, ...]],
        active: frozenset[int],
        group_exprs: list[Col],
    ) -> Col:
        if isinstance(e, bound.Func) and e.name == "GROUPING":
            assert e.arg is not None
            idx = keys.index(bound_key(e.arg)) if bound_key(e.arg) in keys else -1
            return sa.literal(0 if idx in active else 1)
        if (
            isinstance(e, bound.Func)
            and e.name in ("FORMAT", "toLabel", "convertCurrency")
            and e.arg is not None
        ):
            return self._agg_output(e.arg, keys, active, group_exprs)
        k = bound_key(e)
        if k in keys:
            idx = keys.index(k)
            if idx not in active:
                return sa.null()
            return constructs.api_value(group_exprs[idx], _out_type(e))
        return constructs.api_value(self.expr(e), _out_type(e))

    def _having(
        self,
        c: bound.Cond,
        keys: list[tuple[object, ...]],
        active: frozenset[int],
        group_exprs: list[Col],
    ) -> Col:
        self.null_keys = {k for i, k in enumerate(keys) if i not in active}
        try:
            return self.cond(c)
        finally:
            self.null_keys = set()


_TEXT = ("string", "picklist", "multipicklist", "textarea", "email", "phone", "url")


def _picklist_rank(e: Col, f: model.FieldDef) -> Col:
    whens = [(e == p.value, sa.literal(n)) for n, p in enumerate(f.picklist)]
    return sa.case(*whens, else_=sa.literal(len(f.picklist)))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _compare(col: Col, op: str, value: Any) -> Col:
    if op == "!=":
        return sa.or_(col != value, col.is_(None))  # Salesforce's != also matches nulls
    ops: dict[str, Callable[[Any, Any], Col]] = {
        "=": operator.eq,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }
    return ops[op](col, value)


def _arg_type(e: bound.Expr | None) -> str:
    if e is None:
        return "int"
    if isinstance(e, bound.Col):
        return e.field.type
    if e.name in ("COUNT", "COUNT_DISTINCT", "GROUPING"):
        return "int"
    if e.name == "DAY_ONLY":
        return "date"
    if e.name in _INT_FUNCS:
        return "int"
    if e.name == "AVG":
        return "double"
    return _arg_type(e.arg)


_INT_FUNCS = frozenset(
    "CALENDAR_MONTH CALENDAR_QUARTER CALENDAR_YEAR DAY_IN_MONTH DAY_IN_WEEK DAY_IN_YEAR "
    "FISCAL_MONTH FISCAL_QUARTER FISCAL_YEAR HOUR_IN_DAY WEEK_IN_MONTH WEEK_IN_YEAR".split()
)


def _out_type(e: bound.Expr) -> str:
    return _arg_type(e)


def bound_key(e: bound.Expr) -> tuple[object, ...]:
    if isinstance(e, bound.Col):
        return ("col", id(e.hop), e.field.name, id(e.target))
    return ("fn", e.name, bound_key(e.arg) if e.arg is not None else None, e.tz)


def _grouping_sets(bq: bound.BoundQuery) -> list[frozenset[int]]:
    n = len(bq.group_by)
    full = frozenset(range(n))
    if bq.group_kind == "ROLLUP":
        return [frozenset(range(k)) for k in range(n, -1, -1)]
    if bq.group_kind == "CUBE":
        subsets = [frozenset(i for i in range(n) if mask & (1 << i)) for mask in range(2**n)]
        return sorted(subsets, key=lambda s: (-len(s), sorted(s)))
    return [full]


def _hidden(labels: list[Col], expr: Col, label: str) -> int:
    """The position of a column the records do not show as a field (a parent's id, the root
    Id, a sort key): an earlier column of the very same expression when there is one (``SELECT
    Id ...`` fetches the Id once, not as field, URL and sort key), else a new column."""
    for n, known in enumerate(labels):
        if getattr(known, "element", None) is expr:
            return n
    labels.append(expr.label(label))
    return len(labels) - 1


def _number_objects(c: Compiler, items: list[bound.Out], labels: list[Col]) -> None:
    """Give every nested parent object a column holding its id (null parent -> null)."""
    for item in items:
        if isinstance(item, (bound.OutObject, bound.OutTypeOf)):
            item.id_index = _hidden(labels, c.reference_id(item.hop), f"c{len(labels)}")
            nested = (
                item.items
                if isinstance(item, bound.OutObject)
                else [i for branch in item.branches.values() for i in branch]
                + (item.else_items or [])
            )
            _number_objects(c, nested, labels)
