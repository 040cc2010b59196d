"""The SOQL syntax tree.

Every node is a frozen, slotted dataclass. ``pos`` is the 1-based ``(line, column)`` of the
node's first token; it is excluded from equality and hashing, so two parses of equivalent
text compare equal. Names (fields, objects, aliases) keep their original spelling; SOQL
compares them case-insensitively, which is the binder's job. Keywords and function names
are stored in their canonical form (``"DESC"``, ``"COUNT"``, ``"toLabel"``).

Sequences are tuples, so trees are hashable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Pos = tuple[int, int]


def _pos() -> Any:
    return field(default=(0, 0), compare=False, repr=False, kw_only=True)


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class String:
    """A string literal, escapes decoded.

    In a LIKE pattern (``Like.pattern``) the value is in *pattern form*: bare ``%`` and
    ``_`` are wildcards, and a backslash always escapes the next character (``\\%``,
    ``\\_``, ``\\\\`` are a literal percent, underscore, backslash).
    """

    value: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric literal: the text as written (sign included) and its value."""

    text: str
    value: int | Decimal
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Null:
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Date:
    value: dt.date
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class DateTime:
    """A dateTime literal; ``value`` is timezone-aware (sub-microsecond digits dropped)."""

    value: dt.datetime
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Time:
    """A time literal (``hh:mm:ss[.fff]Z``); ``value`` is naive and means UTC."""

    value: dt.time
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class DateLiteral:
    """``TODAY``, ``LAST_N_DAYS:7``...: canonical upper-case ``name``, ``n`` or None."""

    name: str
    n: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency literal such as ``USD5000``: ISO ``code`` (as written) and amount."""

    code: str
    amount: Number
    pos: Pos = _pos()


Value = String | Number | Boolean | Null | Date | DateTime | Time | DateLiteral | Currency


# --- select items and expressions -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldPath:
    """``Rel.Rel.Field`` as written (``parts``), with the select-list alias if any."""

    parts: tuple[str, ...]
    alias: str | None = None
    pos: Pos = _pos()

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Function:
    """A function call: aggregates, toLabel, FORMAT, convertCurrency, convertTimezone,
    GROUPING, date functions, DISTANCE, GEOLOCATION, FORMULA.

    ``name`` is canonical (see tokens.FUNCTION_NAMES). ``args`` hold FieldPath, nested
    Function, Number (GEOLOCATION) or String (DISTANCE unit, FORMULA text).
    """

    name: str
    args: tuple[Expr, ...]
    alias: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class CountStar:
    """``SELECT COUNT() [alias]`` -- the only item of its select list."""

    alias: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Fields:
    """``FIELDS(ALL|STANDARD|CUSTOM)``; ``kind`` is upper-case."""

    kind: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class TypeOfWhen:
    """``WHEN type_name THEN f1, f2``."""

    type_name: str
    fields: tuple[FieldPath, ...]
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class TypeOf:
    """``TYPEOF field WHEN ... [ELSE f1, f2] END``."""

    field: FieldPath
    whens: tuple[TypeOfWhen, ...]
    else_fields: tuple[FieldPath, ...] = ()
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Subquery:
    """A child-relationship query in the select list: ``(SELECT ... FROM Contacts)``."""

    query: Query
    pos: Pos = _pos()


Expr = FieldPath | Function | Number | String
SelectItem = FieldPath | Function | CountStar | Fields | TypeOf | Subquery


# --- conditions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Condition, ...]
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Condition, ...]
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Not:
    term: Condition
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Comparison:
    """``operand op value``; ``op`` is one of = != <> < <= > >=, as written."""

    operand: FieldPath | Function
    op: str
    value: Value
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Like:
    operand: FieldPath | Function
    pattern: String  # pattern form, see String
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class In:
    """``operand [NOT] IN (values)`` or, with ``query`` set, a semi-/anti-join."""

    operand: FieldPath | Function
    values: tuple[Value, ...] = ()
    query: Query | None = None
    negated: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Includes:
    """``operand INCLUDES (...)``, or EXCLUDES when ``negated``."""

    operand: FieldPath | Function
    values: tuple[String, ...]
    negated: bool = False
    pos: Pos = _pos()


Condition = And | Or | Not | Comparison | Like | In | Includes


# --- clauses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FromItem:
    """The queried object (or child relationship path) and its alias."""

    path: FieldPath
    alias: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class KeyValue:
    """``key = value`` inside WITH ctx(...), BIND and SET OPTIONS."""

    key: str
    value: Value
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class CategoryFilter:
    """``group AT|ABOVE|BELOW|ABOVE_OR_BELOW cat`` or ``(cat1, cat2)``."""

    group: str
    selector: str
    categories: tuple[str, ...]
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class WithDataCategory:
    filters: tuple[CategoryFilter, ...]
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class WithMode:
    """``WITH SECURITY_ENFORCED | USER_MODE | SYSTEM_MODE`` (Apex-only; binder rejects)."""

    name: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class WithFilter:
    """``WITH UserId = '005...'`` / ``WITH Network = ...``."""

    name: str
    value: Value
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class WithContext:
    """``WITH RecordVisibilityContext (k=v, ...)``."""

    name: str
    options: tuple[KeyValue, ...]
    pos: Pos = _pos()


WithClause = WithDataCategory | WithMode | WithFilter | WithContext


@dataclass(frozen=True, slots=True)
class GroupBy:
    """``kind`` is ``"PLAIN"``, ``"ROLLUP"`` or ``"CUBE"``."""

    kind: str
    items: tuple[FieldPath | Function, ...]
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class OrderItem:
    expr: FieldPath | Function
    descending: bool = False
    nulls: str | None = None  # "FIRST", "LAST" or None (not written)
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Query:
    """A whole query, a child subquery or a semi-join subquery.

    ``from_items[0]`` is the queried object; further items are the legacy alias
    notation (``FROM Contact c, c.Account a``). ``for_`` holds the FOR words (VIEW,
    REFERENCE, UPDATE) and ``update`` the UPDATE words (TRACKING, VIEWSTAT), in order.
    ``clause_pos`` maps a clause keyword ("WHERE", "LIMIT", ...) to its position.
    """

    select: tuple[SelectItem, ...]
    from_items: tuple[FromItem, ...]
    using_scope: str | None = None
    where: Condition | None = None
    with_: tuple[WithClause, ...] = ()
    group_by: GroupBy | None = None
    having: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    bind: tuple[KeyValue, ...] = ()
    for_: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    options: tuple[KeyValue, ...] = ()
    clause_pos: dict[str, Pos] = field(default_factory=dict, compare=False, repr=False)
    pos: Pos = _pos()

    @property
    def sobject(self) -> FieldPath:
        """The queried object (a relationship path in a child subquery)."""
        return self.from_items[0].path

    @property
    def alias(self) -> str | None:
        return self.from_items[0].alias
