"""The bound query: a parsed query resolved against the registry.

The binder turns names into FieldDefs and relationship hops and checks Salesforce's semantic
rules; the compiler turns a BoundQuery into SQL and the shaper turns rows into records. Nothing
here touches SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from opencadence.metadata import model


@dataclass(frozen=True, slots=True, eq=False)
class Hop:
    """One child-to-parent step: ``field`` (a reference on the previous object) to its targets.

    Identity matters: each distinct path in a query is one Hop object (and one join).
    """

    parent: Hop | None
    field: model.FieldDef
    targets: tuple[model.ObjectDef, ...]
    #: when ``parent`` is polymorphic: the one of its targets that ``field`` belongs to
    via: model.ObjectDef | None = None

    @property
    def relationship(self) -> str:
        return self.field.relationship_name or self.field.name

    @property
    def polymorphic(self) -> bool:
        return len(self.targets) > 1

    @property
    def depth(self) -> int:
        return 1 + (self.parent.depth if self.parent else 0)


#: The pseudo-field ``Type`` of a polymorphic relationship (``Target.Type``).
TYPE_FIELD = model.FieldDef(
    name="Type",
    label="Type",
    type="picklist",
    length=40,
    filterable=True,
    groupable=True,
    sortable=True,
    nillable=True,
)


@dataclass(frozen=True, slots=True, eq=False)
class Col:
    """A field reached from the queried object through ``hop`` (None: the object itself).

    ``target`` narrows a polymorphic hop to one of its objects (TYPEOF branches); with
    ``target`` None on a polymorphic hop the value is taken from whichever target matches.
    """

    hop: Hop | None
    field: model.FieldDef
    target: model.ObjectDef | None = None

    @property
    def is_type(self) -> bool:
        return self.field is TYPE_FIELD


@dataclass(frozen=True, slots=True, eq=False)
class Func:
    """A function over a column: date functions, toLabel, FORMAT, convertCurrency,
    convertTimezone (inside a date function), and aggregates (arg None = COUNT())."""

    name: str
    arg: Col | Func | None
    tz: str | None = None  # convertTimezone: evaluate in the running user's time zone

    @property
    def is_aggregate(self) -> bool:
        return self.name in AGGREGATES or (isinstance(self.arg, Func) and self.arg.is_aggregate)


AGGREGATES = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})

Expr = Col | Func


# --- output shape ---------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class OutField:
    """A scalar in the record: ``key`` as Salesforce names it, the expression behind it."""

    key: str
    expr: Expr
    format: str | None = None  # "FORMAT" / "toLabel" post-processing
    index: int = -1  # column position in the compiled SELECT, set by the compiler


@dataclass(slots=True, eq=False)
class OutObject:
    """A parent object nested in the record (``"Account": {"attributes": ..., "Name": ...}``).

    ``when`` restricts the branch to one concrete type (TYPEOF); ``type_col`` gives the
    record's type for polymorphic hops.
    """

    key: str
    hop: Hop
    items: list[Out] = field(default_factory=list)
    when: model.ObjectDef | None = None
    id_index: int = -1  # the reference column: null means the parent is null


@dataclass(slots=True, eq=False)
class OutTypeOf:
    """TYPEOF: a polymorphic parent whose fields depend on its concrete type."""

    key: str
    hop: Hop
    branches: dict[str, list[Out]]  # object name -> items
    else_items: list[Out] | None = None
    id_index: int = -1


@dataclass(slots=True, eq=False)
class OutChildren:
    """A child-relationship subquery: ``{"totalSize", "done", "records"}``."""

    key: str
    query: BoundQuery
    fk: model.FieldDef  # the child's reference to the parent


Out = OutField | OutObject | OutTypeOf | OutChildren


# --- conditions -----------------------------------------------------------------------------

Literal = str | int | float | bool | None | date | datetime


@dataclass(frozen=True, slots=True, eq=False)
class Compare:
    expr: Expr
    op: str  # = != < <= > >=
    value: Literal


@dataclass(frozen=True, slots=True, eq=False)
class InRange:
    """A date literal: ``op`` against the half-open range [start, end)."""

    expr: Expr
    op: str
    start: Literal
    end: Literal


@dataclass(frozen=True, slots=True, eq=False)
class InList:
    expr: Expr
    values: tuple[Literal, ...]
    ranges: tuple[tuple[Literal, Literal], ...] = ()  # date literals inside IN
    negated: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class LikeCond:
    expr: Expr
    pattern: str  # pattern form: bare % and _ are wildcards, backslash escapes


@dataclass(frozen=True, slots=True, eq=False)
class SemiJoin:
    expr: Expr
    query: BoundQuery
    negated: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class IncludesCond:
    expr: Expr
    values: tuple[tuple[str, ...], ...]  # each item: all of these (A;B) must be selected
    negated: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class BoolOp:
    op: str  # AND / OR
    terms: tuple[Cond, ...]


@dataclass(frozen=True, slots=True, eq=False)
class NotCond:
    term: Cond


Cond = Compare | InRange | InList | LikeCond | SemiJoin | IncludesCond | BoolOp | NotCond


@dataclass(frozen=True, slots=True, eq=False)
class Order:
    expr: Expr
    descending: bool
    nulls_first: bool


@dataclass(slots=True, eq=False)
class BoundQuery:
    """Everything the compiler and shaper need."""

    obj: model.ObjectDef
    items: list[Out]
    where: Cond | None = None
    group_by: list[Expr] = field(default_factory=list)
    group_kind: str = "PLAIN"  # PLAIN / ROLLUP / CUBE
    having: Cond | None = None
    order: list[Order] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    count_only: bool = False
    aggregate: bool = False
    include_deleted: bool = False
    scope_owner: str | None = None  # USING SCOPE mine: OwnerId of the running user
    hops: list[Hop] = field(default_factory=list)  # every join, parents before children
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> list[OutField]:
        """Every scalar output, depth first (the compiler numbers them in this order)."""
        found: list[OutField] = []
        _collect(self.items, found)
        return found


def _collect(items: list[Out], found: list[OutField]) -> None:
    for item in items:
        if isinstance(item, OutField):
            found.append(item)
        elif isinstance(item, OutObject):
            _collect(item.items, found)
        elif isinstance(item, OutTypeOf):
            for branch in item.branches.values():
                _collect(branch, found)
            if item.else_items:
                _collect(item.else_items, found)
