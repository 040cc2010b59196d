"""SOQL's semantics as SQL expressions, built on the portable primitives of storage.dialect.

Text comparison (soql.md A.5, A.9)
    Salesforce compares text case-insensitively: both sides go through ``dialect.ci_lower``
    (per-character Unicode lowercase, the same on both databases) and ordering comparisons
    and sort keys compare the lowered text by code point (``dialect.ci_sort_key``).

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
    UTC and evaluated in UTC unless a time zone is given (convertTimezone).
    FISCAL_YEAR is named after the calendar year in which the fiscal year ends, Salesforce's
    default ("Fiscal Year is Based On: The Ending Month"); pass ``fiscal_name_from_start`` for
    the other setting.

Constants are rendered inline (``dialect.inline_int``), never as bound parameters, so that an
expression in SELECT and the same expression in GROUP BY compile to identical SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from opencadence.soql import dates
from opencadence.storage import dialect

Col = sa.ColumnElement[Any]

_int = dialect.inline_int
_div = dialect.int_div
_part = dialect.date_part


# --- case-insensitive text -----------------------------------------------------------------


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


def ci_sort_key(expr: Col) -> Col:
    """ORDER BY key of a text value: case-insensitive (as Salesforce sorts), code-point order."""
    return dialect.ci_sort_key(expr)


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
    ordered = _ORDERING[op](dialect.ci_sort_key(expr), dialect.ci_sort_key(_text(value)))
    return sa.and_(expr != "", ordered)


def _ci_equal(expr: Col, values: Sequence[str]) -> Col:
    """``expr`` equals one of ``values`` ignoring case.

    Lowercasing is per character on both databases (it never changes a text's length), so a
    length test, which SQLite evaluates in C, rules out most rows before the Python oc_lower()
    runs; the literals are folded here, once, instead of per row.
    """
    lengths = sorted({len(v) for v in values})
    folded = sorted({dialect.simple_lower(v) for v in values})
    length_ok = (
        sa.func.length(expr) == lengths[0]
        if len(lengths) == 1
        else sa.func.length(expr).in_(lengths)
    )
    match = (
        dialect.ci_lower(expr) == _text(folded[0])
        if len(folded) == 1
        else dialect.ci_lower(expr).in_([_text(v) for v in folded])
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
    match = dialect.ci_lower(expr).like(dialect.ci_lower(_text(sql_pattern)), escape="\\")
    return sa.or_(match, expr.is_(None)) if matches_empty else match


# --- date functions ------------------------------------------------------------------------


def to_local(expr: Col, tz: str) -> Col:
    """dateTime ``expr`` (naive UTC) as naive local time in ``tz`` (convertTimezone)."""
    dates.zone(tz)  # ValueError for an unknown zone
    return dialect.to_local(expr, tz)


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
        "DAY_ONLY": lambda: dialect.day_only(local),
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


# --- values as the API returns them -------------------------------------------------------


def api_value(expr: Col, field_type: str) -> Col:
    """``expr`` as the JSON-ready value the API returns for a field of ``field_type``."""
    if field_type == "datetime":
        return dialect.api_datetime(expr)
    if field_type == "date":
        return dialect.api_date(expr)
    if field_type == "boolean":
        return sa.type_coerce(expr, sa.Boolean())
    if field_type in ("double", "percent", "currency"):
        return sa.cast(expr, sa.Double())
    return expr
