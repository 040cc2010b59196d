"""SQL building blocks of the SOQL compiler that give the same results on SQLite and PostgreSQL.

Text comparison (soql.md A.5, A.9)
    Salesforce compares text case-insensitively. Both sides go through the database's
    lowercase function: ``lower()`` on PostgreSQL (Unicode-aware in any UTF-8 locale such as
    C.UTF-8 or en_US.UTF-8; a database created with LC_CTYPE=C would only fold ASCII) and
    ``oc_lower()`` on SQLite, a deterministic Python function registered on every connection
    (``storage.sqlite_functions``) because SQLite's own ``lower()`` folds ASCII only. ``oc_lower``
    maps one character at a time, like PostgreSQL's libc ``lower()`` (so no final-sigma rule,
    and 'İ' → 'i'), which keeps the two databases in agreement. Ordering comparisons and sort
    keys compare the lowered text by code point on both (``COLLATE "C"`` on PostgreSQL; SQLite's
    BINARY collation is code-point order already).

Null semantics
    Salesforce treats '' and null as the same text value. So ``= ''`` (and ``= null``) match
    null and '' rows; ``!= 'a'`` also matches null rows (as Salesforce returns them);
    ``NOT IN ('a')`` keeps null rows unless null/'' is in the list; ordering comparisons
    (< <= > >=) never match an empty value; a LIKE pattern that matches '' (only ``%``) matches
    null rows too.

Date functions (A.6)
    WEEK_IN_MONTH = (day - 1) / 7 + 1 and WEEK_IN_YEAR = (day_in_year - 1) / 7 + 1, as the
    Salesforce docs describe them ("the first week is from the first through the seventh day"),
    not calendar weeks. DAY_IN_WEEK is 1 = Sunday … 7 = Saturday. dateTime values are naive
    UTC and evaluated in UTC unless a time zone is given (convertTimezone); SQLite has no time
    zone database, so the conversion is the registered Python function ``oc_to_local``.
    FISCAL_YEAR is named after the calendar year in which the fiscal year ends, Salesforce's
    default ("Fiscal Year is Based On: The Ending Month"); pass ``fiscal_name_from_start`` for
    the other setting.

Constants are rendered inline, never as bound parameters, so that an expression in SELECT and
the same expression in GROUP BY compile to identical SQL (PostgreSQL compares them as text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from opencadence.soql import dates

# The twins are generated from the Python formulas' own field lists so the two cannot drift.
from opencadence.storage import sqlite_functions
from opencadence.storage.formulas import _CALL_OUTCOMES, _RATES, FORMULAS

Col = sa.ColumnElement[Any]
ColumnLookup = Callable[[str], Col]

# --- SQLite functions ----------------------------------------------------------------------


# The SQLite functions these constructs emit (oc_lower, oc_to_local) live in storage, which
# registers them on every new connection.
simple_lower = sqlite_functions.simple_lower


# --- small helpers -------------------------------------------------------------------------


def _int(n: int) -> Col:
    """An inline integer constant (see the module docstring on GROUP BY)."""
    return sa.literal_column(str(int(n)), sa.Integer())


def _dbl(n: int) -> Col:
    return sa.cast(_int(n), sa.Double())


class _IntDiv(FunctionElement[int]):
    """Integer division truncating toward zero (both databases divide integers that way)."""

    type = sa.BigInteger()
    name = "int_div"
    inherit_cache = True


@compiles(_IntDiv)
def _int_div(element: _IntDiv, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy's // turns into FLOOR(a / b) unless it knows both sides are integers
    numerator, denominator = _args(element, compiler, **kw)
    return f"(({numerator}) / ({denominator}))"


def _div(numerator: Col, denominator: Col) -> Col:
    """``numerator / denominator`` on integer operands."""
    return _IntDiv(numerator, denominator)


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


# --- case-insensitive text -----------------------------------------------------------------


class _CiLower(FunctionElement[str]):
    """Unicode lowercase of a text expression (the key of case-insensitive equality)."""

    type = sa.String()
    name = "ci_lower"
    inherit_cache = True


@compiles(_CiLower)
def _ci_lower_pg(element: _CiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return "lower(%s)" % compiler.process(element.clauses, **kw)


@compiles(_CiLower, "sqlite")
def _ci_lower_sqlite(element: _CiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return "oc_lower(%s)" % compiler.process(element.clauses, **kw)


class _CiSortKey(FunctionElement[str]):
    """Lowercase text that orders by code point on both databases."""

    type = sa.String()
    name = "ci_sort_key"
    inherit_cache = True


@compiles(_CiSortKey)
def _ci_sort_key_pg(element: _CiSortKey, compiler: SQLCompiler, **kw: Any) -> str:
    return 'lower(%s) COLLATE "C"' % compiler.process(element.clauses, **kw)


@compiles(_CiSortKey, "sqlite")
def _ci_sort_key_sqlite(element: _CiSortKey, compiler: SQLCompiler, **kw: Any) -> str:
    return "oc_lower(%s)" % compiler.process(element.clauses, **kw)


def ci_lower(expr: Col) -> Col:
    return _CiLower(expr)


def ci_sort_key(expr: Col) -> Col:
    """ORDER BY key of a text expression: case-insensitive, code-point order."""
    return _CiSortKey(expr)


def _text(value: str) -> Col:
    return sa.literal(value, sa.String())


def _is_empty(expr: Col) -> Col:
    return sa.or_(expr.is_(None), expr == "")


def _not_empty(expr: Col) -> Col:
    return sa.and_(expr.is_not(None), expr != "")


_ORDERING: dict[str, Callable[[Col, Col], Col]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _compare_empty(expr: Col, op: str) -> Col:
    """``expr op ''`` (or null), '' and null being the same value."""
    if op == "=":
        return _is_empty(expr)
    if op in ("!=", ">", ">="):
        return _not_empty(expr)  # every non-empty text sorts after ''
    return sa.false()  # < and <=: empty values never match an ordering comparison


def ci_compare(expr: Col, op: str, value: str | None) -> Col:
    """Case-insensitive ``expr op value`` for op in = != <> < <= > >= (Salesforce semantics)."""
    op = "!=" if op == "<>" else op
    if op not in ("=", "!=", *_ORDERING):
        raise ValueError(f"unknown comparison operator: {op}")
    if value is None or value == "":
        return _compare_empty(expr, op)
    if op == "=":
        return _ci_equal(expr, [value])
    if op == "!=":
        return sa.or_(expr.is_(None), sa.not_(_ci_equal(expr, [value])))
    ordered = _ORDERING[op](ci_sort_key(expr), ci_sort_key(_text(value)))
    return sa.and_(expr != "", ordered)


def _ci_equal(expr: Col, values: Sequence[str]) -> Col:
    """``expr`` equals one of ``values`` ignoring case.

    Lowercasing is per character on both databases (it never changes a text's length), so a
    length test, which SQLite evaluates in C, rules out most rows before the Python oc_lower()
    runs; the literals are folded here, once, instead of per row.
    """
    lengths = sorted({len(v) for v in values})
    folded = sorted({simple_lower(v) for v in values})
    length_ok = (
        sa.func.length(expr) == lengths[0]
        if len(lengths) == 1
        else sa.func.length(expr).in_(lengths)
    )
    match = (
        ci_lower(expr) == _text(folded[0])
        if len(folded) == 1
        else ci_lower(expr).in_([_text(v) for v in folded])
    )
    return sa.and_(length_ok, match)


def ci_in(expr: Col, values: Sequence[str | None], negated: bool) -> Col:
    """Case-insensitive ``expr [NOT] IN (values)``; null or '' in the list matches empty rows."""
    present = [v for v in values if v is not None and v != ""]
    has_empty = len(present) != len(values)
    parts: list[Col] = []
    if present:
        parts.append(_ci_equal(expr, present))
    if has_empty:
        parts.append(_is_empty(expr))
    matched = sa.or_(*parts) if parts else sa.false()
    if not negated:
        return matched
    # NOT IN keeps empty rows unless the list names null/'' (as != does)
    return sa.not_(matched) if has_empty else sa.or_(_is_empty(expr), sa.not_(matched))


# --- LIKE ----------------------------------------------------------------------------------


def like_pattern(pattern: str) -> tuple[str, bool]:
    """A pattern-form LIKE pattern as SQL (escape character ``\\``), and whether it matches ''.

    Pattern form: bare ``%`` and ``_`` are wildcards and a backslash makes the next character
    literal. Re-emitting every literal keeps the SQL identical on both databases whatever the
    input escapes (``\\a`` is just 'a'; a trailing lone backslash is a literal backslash).
    """
    out: list[str] = []
    matches_empty = True
    chars = iter(pattern)
    for ch in chars:
        if ch in "%_":
            out.append(ch)
            matches_empty = matches_empty and ch == "%"
            continue
        if ch == "\\":
            ch = next(chars, "\\")
        out.append("\\" + ch if ch in "%_\\" else ch)
        matches_empty = False
    return "".join(out), matches_empty


def like(expr: Col, pattern: str) -> Col:
    """Case-insensitive ``expr LIKE pattern`` (pattern form, see ``like_pattern``)."""
    sql_pattern, matches_empty = like_pattern(pattern)
    match = ci_lower(expr).like(ci_lower(_text(sql_pattern)), escape="\\")
    return sa.or_(match, expr.is_(None)) if matches_empty else match


# --- date functions ------------------------------------------------------------------------

_TZ_NAME = re.compile(r"^[A-Za-z0-9/_+\-]+$")


class _ToLocal(FunctionElement[datetime]):
    """A naive-UTC dateTime as naive local time; arguments: expr, inline quoted zone name."""

    type = sa.DateTime()
    name = "to_local"
    inherit_cache = True


@compiles(_ToLocal)
def _to_local_pg(element: _ToLocal, compiler: SQLCompiler, **kw: Any) -> str:
    value, tz = _args(element, compiler, **kw)
    return f"timezone({tz}, timezone('UTC', {value}))"


@compiles(_ToLocal, "sqlite")
def _to_local_sqlite(element: _ToLocal, compiler: SQLCompiler, **kw: Any) -> str:
    value, tz = _args(element, compiler, **kw)
    return f"oc_to_local({value}, {tz})"


def to_local(expr: Col, tz: str) -> Col:
    """dateTime ``expr`` (naive UTC) as naive local time in ``tz`` (convertTimezone)."""
    dates.zone(tz)  # ValueError for an unknown zone
    if not _TZ_NAME.match(tz):
        raise ValueError(f"unsupported time zone name: {tz!r}")
    # inline, not a bound parameter: part of the cache key and identical in GROUP BY
    return _ToLocal(expr, sa.literal_column(f"'{tz}'"))


class _DayOnly(FunctionElement[date]):
    type = sa.Date()
    name = "day_only"
    inherit_cache = True


@compiles(_DayOnly)
def _day_only_pg(element: _DayOnly, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(%s AS DATE)" % compiler.process(element.clauses, **kw)


@compiles(_DayOnly, "sqlite")
def _day_only_sqlite(element: _DayOnly, compiler: SQLCompiler, **kw: Any) -> str:
    return "date(%s)" % _sqlite_whole_seconds(compiler.process(element.clauses, **kw))


class _Part(FunctionElement[int]):
    """An integer field of a date/dateTime; arguments: expr, inline field name."""

    type = sa.Integer()
    name = "date_part"
    inherit_cache = True


#: strftime formats of the fields _Part extracts (dow: 0 = Sunday, as in PostgreSQL)
_STRFTIME = {"year": "%Y", "month": "%m", "day": "%d", "dow": "%w", "doy": "%j", "hour": "%H"}


@compiles(_Part)
def _part_pg(element: _Part, compiler: SQLCompiler, **kw: Any) -> str:
    value, field = _args(element, compiler, **kw)
    return f"CAST(EXTRACT({field} FROM {value}) AS INTEGER)"


@compiles(_Part, "sqlite")
def _part_sqlite(element: _Part, compiler: SQLCompiler, **kw: Any) -> str:
    value, field = _args(element, compiler, **kw)
    return f"CAST(strftime('{_STRFTIME[field]}', {_sqlite_whole_seconds(value)}) AS INTEGER)"


def _sqlite_whole_seconds(value: str) -> str:
    # SQLite rounds fractional seconds to milliseconds before computing a date, so
    # 23:59:59.9999 would count as the next day; SQLAlchemy's stored text without the
    # fraction ('YYYY-MM-DD HH:MM:SS', or a whole 'YYYY-MM-DD' date) has no such rounding.
    return f"substr({value}, 1, 19)"


def _part(field: str, expr: Col) -> Col:
    return _Part(expr, sa.literal_column(field))


def _fiscal_month(month: Col, start: int) -> Col:
    return (month + _int(12 - start)) % _int(12) + _int(1)


def _fiscal_year(expr: Col, start: int, name_from_start: bool) -> Col:
    year, month = _part("year", expr), _part("month", expr)
    if start == 1:
        return year
    if name_from_start:
        return year - sa.case((month < _int(start), _int(1)), else_=_int(0))
    return year + sa.case((month >= _int(start), _int(1)), else_=_int(0))


def _week_of(day_number: Col) -> Col:
    return _div(day_number - _int(1), _int(7)) + _int(1)


def _date_part(name: str, local: Col, fiscal_start_month: int, name_from_start: bool) -> Col:
    month = _part("month", local)
    builders: dict[str, Callable[[], Col]] = {
        "CALENDAR_MONTH": lambda: month,
        "CALENDAR_QUARTER": lambda: _div(month - _int(1), _int(3)) + _int(1),
        "CALENDAR_YEAR": lambda: _part("year", local),
        "DAY_IN_MONTH": lambda: _part("day", local),
        "DAY_IN_WEEK": lambda: _part("dow", local) + _int(1),  # dow: 0 = Sunday on both
        "DAY_IN_YEAR": lambda: _part("doy", local),
        "DAY_ONLY": lambda: _DayOnly(local),
        "FISCAL_MONTH": lambda: _fiscal_month(month, fiscal_start_month),
        "FISCAL_QUARTER": lambda: (
            _div(_fiscal_month(month, fiscal_start_month) - _int(1), _int(3)) + _int(1)
        ),
        "FISCAL_YEAR": lambda: _fiscal_year(local, fiscal_start_month, name_from_start),
        "HOUR_IN_DAY": lambda: _part("hour", local),
        "WEEK_IN_MONTH": lambda: _week_of(_part("day", local)),
        "WEEK_IN_YEAR": lambda: _week_of(_part("doy", local)),
    }
    if name not in builders:
        raise ValueError(f"unknown date function: {name}")
    return builders[name]()


def date_function(
    name: str,
    expr: Col,
    field_type: str,
    tz: str | None = None,
    *,
    fiscal_start_month: int = 1,
    fiscal_name_from_start: bool = False,
) -> Col:
    """SOQL date function ``name`` of a date or dateTime expression.

    ``field_type`` is 'date' or 'datetime'; ``tz`` (convertTimezone) evaluates a dateTime in
    that zone instead of UTC and is ignored for dates, which have no zone.
    """
    key = name.upper()
    if field_type not in ("date", "datetime"):
        raise ValueError(f"date functions apply to date and dateTime values, not {field_type}")
    if field_type == "date" and key in ("HOUR_IN_DAY", "DAY_ONLY"):
        raise ValueError(f"{key} applies to dateTime values only")
    if not 1 <= fiscal_start_month <= 12:
        raise ValueError("fiscal_start_month must be 1..12")
    local = to_local(expr, tz) if tz and field_type == "datetime" else expr
    return _date_part(key, local, fiscal_start_month, fiscal_name_from_start)


# --- seconds between two dateTimes ---------------------------------------------------------


class _SecondsBetween(FunctionElement[int]):
    type = sa.BigInteger()
    name = "seconds_between"
    inherit_cache = True


@compiles(_SecondsBetween)
def _seconds_between_pg(element: _SecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = _args(element, compiler, **kw)
    # whole microseconds first, then integer division truncates toward zero like int()
    return f"(CAST(EXTRACT(EPOCH FROM ({later}) - ({earlier})) * 1000000 AS BIGINT) / 1000000)"


def _sqlite_micros(value: Col, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff'; julianday() is a double too coarse for
    # exact microseconds, so whole seconds come from strftime('%s') of the text without the
    # fraction and the microseconds from characters 21-26 (a value without them yields 0).
    # The value is compiled once per use so a bound parameter gets a placeholder each time.
    seconds = _sqlite_whole_seconds(compiler.process(value, **kw))
    return (
        f"(CAST(strftime('%s', {seconds}) AS INTEGER) * 1000000"
        f" + CAST(substr({compiler.process(value, **kw)}, 21, 6) AS INTEGER))"
    )


@compiles(_SecondsBetween, "sqlite")
def _seconds_between_sqlite(element: _SecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = element.clauses
    micros = [_sqlite_micros(v, compiler, **kw) for v in (later, earlier)]
    return f"(({micros[0]} - {micros[1]}) / 1000000)"


def seconds_between(later: Col, earlier: Col) -> Col:
    """Whole seconds from ``earlier`` to ``later`` (naive UTC), truncated toward zero."""
    return _SecondsBetween(later, earlier)


# --- formulas ------------------------------------------------------------------------------


def _zero_if_null(col: ColumnLookup, name: str) -> Col:
    """``row.get(name) or 0``."""
    return sa.func.coalesce(col(name), _int(0), type_=sa.Integer())


def _max0(value: Col) -> Col:
    return sa.case((value > _int(0), value), else_=_int(0))


def _sum(values: Sequence[Col]) -> Col:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _seconds_overdue(col: ColumnLookup, now: datetime) -> Col:
    due = col("DueDateTime")
    end = sa.func.coalesce(col("ActionTakenDateTime"), col("CompletionDate"), type_=sa.DateTime())
    at = sa.literal(now, sa.DateTime())
    result = sa.case(
        (due.is_(None), sa.null()),
        (end.is_not(None), _max0(seconds_between(end, due))),
        (at > due, seconds_between(at, due)),
        else_=sa.null(),
    )
    return sa.type_coerce(result, sa.Integer())


def _bool(condition: Col) -> Col:
    """A condition as a never-null boolean value (Python returns False, not None)."""
    return sa.type_coerce(sa.case((condition, sa.true()), else_=sa.false()), sa.Boolean())


def _bounced(col: ColumnLookup) -> Col:
    return _zero_if_null(col, "AllEmailsHardBouncedCount") + _zero_if_null(
        col, "AllEmailsSoftBouncedCount"
    )


def _sent_count(col: ColumnLookup) -> Col:
    return _zero_if_null(col, "AllEmailsTrackedSentCount") + _zero_if_null(
        col, "AllEmailsUntrackedSentCount"
    )


def _sent(col: ColumnLookup) -> Col:
    """AllEmailsSentCount: stored on ActionCadenceStep, derived on the monthly metric.

    ``col`` raises LookupError (KeyError) for a field without a column, as the Python twin
    checks ``"AllEmailsSentCount" in row``.
    """
    try:
        stored = col("AllEmailsSentCount")
    except LookupError:
        return _sent_count(col)
    return sa.func.coalesce(stored, _int(0), type_=sa.Integer())


def _delivered_recipients(col: ColumnLookup) -> Col:
    bounced = _zero_if_null(col, "RecipientsHardBounced") + _zero_if_null(
        col, "RecipientsSoftBounced"
    )
    return _max0(_zero_if_null(col, "RecipientSends") - bounced)


def _some_delivered(col: ColumnLookup) -> Col:
    return _max0(_sent(col) - _zero_if_null(col, "AllEmailsNotDeliveredCount"))


def _cents(numerator: Col, denominator: Col) -> Col:
    """round(100 * n / d, 2) * 100 exactly as Python computes it, for n >= 0 and d > 0.

    Python rounds the double v = 100.0 * n / d half-to-even by its exact binary value; doing
    that on doubles in SQL would differ near ties, so the rounding is done on integers:
    q = floor(20000 n / d) is twice the exact cents. Off a tie the nearest integer is the
    answer (v's error is far smaller than the distance to a tie for any realistic n). At a
    tie (q odd, no remainder) v is exactly the tie when 25 divides q (half-to-even), else v
    lies just above or below it: err = q - 200 v is computed exactly in double arithmetic,
    every subtraction being exact by Sterbenz's lemma (each pair is within a factor of 2).
    """
    scaled = sa.cast(numerator, sa.BigInteger()) * _int(20000)
    q = _div(scaled, denominator)
    k = _div(q, _int(2))
    v = sa.cast(q, sa.Double()) / _dbl(200)
    err: Col = ((sa.cast(q, sa.Double()) - _dbl(128) * v) - _dbl(64) * v) - _dbl(8) * v
    return sa.case(
        (
            sa.or_(scaled % denominator != _int(0), q % _int(2) == _int(0)),
            _div(scaled + denominator, _int(2) * denominator),
        ),
        (q % _int(25) == _int(0), k + k % _int(2)),
        (err < _dbl(0), k + _int(1)),
        else_=k,
    )


def _percent(numerator: Col, denominator: Col) -> Col:
    """SQL twin of formulas._percent: null when the denominator is null or 0."""
    negative = sa.or_(
        sa.and_(numerator < _int(0), denominator > _int(0)),
        sa.and_(numerator > _int(0), denominator < _int(0)),
    )
    sign = sa.case((negative, _int(-1)), else_=_int(1))
    magnitude = sa.func.abs(numerator, type_=sa.BigInteger())
    cents = _cents(magnitude, sa.func.abs(denominator, type_=sa.BigInteger()))
    value = sa.cast(sign * cents, sa.Double()) / _dbl(100)
    empty = sa.or_(denominator.is_(None), denominator == _int(0))
    return sa.type_coerce(sa.case((empty, sa.null()), else_=value), sa.Double())


def _rate_sql(numerator: str, denominator: str) -> Callable[[ColumnLookup, datetime], Col]:
    return lambda col, now: _percent(_zero_if_null(col, numerator), col(denominator))


_FORMULA_SQL: dict[str, Callable[[ColumnLookup, datetime], Col]] = {
    "seconds_overdue": _seconds_overdue,
    "is_action_taken": lambda col, now: col("ActionTakenDateTime").is_not(None),
    "is_orphan": lambda col, now: _bool(col("GraphState") == "Orphaned"),
    "all_total_calls_count": lambda col, now: _sum([_zero_if_null(col, n) for n in _CALL_OUTCOMES]),
    "all_emails_bounced_count": lambda col, now: _bounced(col),
    "all_emails_delivered_count": lambda col, now: _max0(_sent(col) - _bounced(col)),
    "all_emails_sent_count": lambda col, now: _sent_count(col),
    "delivered_recipient_count": lambda col, now: _delivered_recipients(col),
    "delivered_recipient_rate": lambda col, now: _percent(
        _delivered_recipients(col), col("RecipientSends")
    ),
    "some_emails_delivered_count": lambda col, now: _some_delivered(col),
    "some_emails_delivered_rate": lambda col, now: _percent(_some_delivered(col), _sent(col)),
    **{name: _rate_sql(num, den) for name, (num, den) in _RATES.items()},
}

assert _FORMULA_SQL.keys() == FORMULAS.keys(), "every Python formula needs its SQL twin"


def formula_sql(name: str, col: ColumnLookup, now: datetime) -> Col:
    """SQL twin of calculated-field formula ``name`` (storage/formulas.py).

    ``col(field)`` is the column of a field of the row's table and raises LookupError for a
    field without a column; ``now`` is the query's instant (naive UTC, or aware).
    """
    if name not in _FORMULA_SQL:
        raise ValueError(f"unknown formula: {name}")
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return _FORMULA_SQL[name](col, now)
