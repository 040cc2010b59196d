"""SOQL date literals (TODAY, LAST_N_DAYS:n, THIS_FISCAL_QUARTER, …) as local-date ranges.

Every literal is a half-open range ``[start, end)`` of dates in the running user's time zone
(soql.md A.6); ``local_midnight_utc`` turns a bound into the naive UTC instant the database
stores, so a dateTime field is compared against ``[midnight(start), midnight(end))``.

Periods other than days are "whole periods": LAST_N_WEEKS:2 is the two weeks before the
current one, NEXT_N_MONTHS:3 the three months after the current one, N_QUARTERS_AGO:1 the
single quarter before the current one. Days follow Salesforce's own rules instead:
LAST_N_DAYS:n is today plus the n previous days (LAST_90_DAYS = 91 days), NEXT_N_DAYS:n starts
tomorrow, N_DAYS_AGO:n is the one day n days back.

Pure functions: stdlib and zoneinfo only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DateRange = tuple[date, date]


@lru_cache(maxsize=64)
def zone(tz: str) -> ZoneInfo:
    """The zone of an IANA name or Salesforce TimeZoneSidKey ('GMT', 'America/Los_Angeles').

    Salesforce's TimeZoneSidKey values are IANA names, so zoneinfo resolves them directly.
    """
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {tz!r}") from exc


def local_today(now: datetime, tz: str) -> date:
    """The user's current local date; ``now`` is aware (or naive UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(zone(tz)).date()


def local_midnight_utc(d: date, tz: str) -> datetime:
    """Naive UTC instant at which local date ``d`` begins in ``tz``.

    zoneinfo resolves a midnight skipped by a DST jump (fold=0 uses the offset before the
    jump) to the jump instant itself, and a repeated midnight to its first occurrence: in both
    cases the first instant of the local day.
    """
    local = datetime(d.year, d.month, d.day, tzinfo=zone(tz))
    return local.astimezone(UTC).replace(tzinfo=None)


def datetime_range(days: DateRange, tz: str) -> tuple[datetime, datetime]:
    """A local-date range as a half-open naive UTC dateTime range."""
    return local_midnight_utc(days[0], tz), local_midnight_utc(days[1], tz)


# --- periods -------------------------------------------------------------------------------


def _add_months(d: date, months: int) -> date:
    """The first of the month ``months`` after ``d``'s month (d is always a 1st here)."""
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class _Period:
    """A calendar period: where the one containing a date starts, and how to step by k."""

    start: Callable[[date], date]
    shift: Callable[[date, int], date]


def _month_start(d: date, first_month: int, length: int) -> date:
    """Start of the ``length``-month period containing d, periods aligned on first_month."""
    back = (d.month - first_month) % length
    return _add_months(date(d.year, d.month, 1), -back)


def _periods(week_start: int, fiscal_start_month: int) -> dict[str, _Period]:
    def months(first: int, length: int) -> _Period:
        return _Period(
            start=lambda d: _month_start(d, first, length),
            shift=lambda d, k: _add_months(d, k * length),
        )

    week = _Period(
        start=lambda d: d - timedelta(days=(d.weekday() - week_start) % 7),
        shift=lambda d, k: d + timedelta(weeks=k),
    )
    return {
        "WEEK": week,
        "MONTH": months(1, 1),
        "QUARTER": months(1, 3),
        "YEAR": months(1, 12),
        "FISCAL_QUARTER": months(fiscal_start_month, 3),
        "FISCAL_YEAR": months(fiscal_start_month, 12),
    }


#: Plural spelling of each period in the parametric literals (LAST_N_WEEKS, N_FISCAL_YEARS_AGO).
_PLURALS = {
    "WEEKS": "WEEK",
    "MONTHS": "MONTH",
    "QUARTERS": "QUARTER",
    "YEARS": "YEAR",
    "FISCAL_QUARTERS": "FISCAL_QUARTER",
    "FISCAL_YEARS": "FISCAL_YEAR",
}


def _period_range(kind: str, n: int, today: date, period: _Period) -> DateRange:
    """THIS/LAST/NEXT (n=1) and LAST_N/NEXT_N/N_AGO ranges of whole periods."""
    this = period.start(today)
    if kind == "THIS":
        return this, period.shift(this, 1)
    if kind == "LAST":
        return period.shift(this, -n), this
    if kind == "NEXT":
        return period.shift(this, 1), period.shift(this, n + 1)
    # AGO: the one whole period n back
    return period.shift(this, -n), period.shift(this, 1 - n)


def _day_range(name: str, n: int | None, today: date) -> DateRange | None:
    one = timedelta(days=1)
    fixed = {"YESTERDAY": -1, "TODAY": 0, "TOMORROW": 1}
    if name in fixed:
        _no_n(name, n)
        start = today + fixed[name] * one
        return start, start + one
    if name in ("LAST_90_DAYS", "NEXT_90_DAYS"):
        _no_n(name, n)
        return _day_range(name.replace("90", "N"), 90, today)
    if name == "LAST_N_DAYS":
        return today - _need_n(name, n) * one, today + one
    if name == "NEXT_N_DAYS":
        return today + one, today + (_need_n(name, n) + 1) * one
    if name == "N_DAYS_AGO":
        start = today - _need_n(name, n) * one
        return start, start + one
    return None


def _parse_period_name(name: str) -> tuple[str, str, bool] | None:
    """(kind, unit, parametric) of a period literal name, e.g. LAST_N_WEEKS → LAST, WEEK, True."""
    if name.startswith("N_") and name.endswith("_AGO"):
        unit = _PLURALS.get(name[2:-4])
        return ("AGO", unit, True) if unit else None
    kind, _, rest = name.partition("_")
    if kind not in ("THIS", "LAST", "NEXT"):
        return None
    if rest.startswith("N_"):
        unit = _PLURALS.get(rest[2:])
        return (kind, unit, True) if unit and kind != "THIS" else None
    units = set(_PLURALS.values())
    return (kind, rest, False) if rest in units else None


def _need_n(name: str, n: int | None) -> int:
    if n is None:
        raise ValueError(f"date literal {name} needs :n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"date literal {name}: n must be a non-negative integer, got {n!r}")
    return n


def _no_n(name: str, n: int | None) -> None:
    if n is not None:
        raise ValueError(f"date literal {name} takes no :n")


def literal_range(
    name: str,
    n: int | None,
    now: datetime,
    tz: str,
    *,
    fiscal_start_month: int = 1,
    week_start: int = 6,
) -> DateRange:
    """Half-open local-date range ``[start, end)`` of SOQL date literal ``name`` (``:n`` = n).

    ``now`` is an aware instant (naive is read as UTC); ``tz`` the user's time zone;
    ``week_start`` 0=Monday … 6=Sunday (Salesforce en_US weeks start on Sunday);
    ``fiscal_start_month`` 1–12 for the standard fiscal year. Raises ValueError for an unknown
    name or a missing/extra ``n``.
    """
    if not 1 <= fiscal_start_month <= 12 or not 0 <= week_start <= 6:
        raise ValueError("fiscal_start_month must be 1..12 and week_start 0..6")
    key = name.upper()
    today = local_today(now, tz)
    days = _day_range(key, n, today)
    if days is not None:
        return days
    parsed = _parse_period_name(key)
    if parsed is None:
        raise ValueError(f"unknown date literal: {name}")
    kind, unit, parametric = parsed
    if parametric:
        count = _need_n(key, n)
    else:
        _no_n(key, n)
        count = 1
    period = _periods(week_start, fiscal_start_month)[unit]
    return _period_range(kind, count, today, period)


#: Every date literal name; True when it takes ``:n``.
LITERALS: dict[str, bool] = {
    **{name: False for name in ("YESTERDAY", "TODAY", "TOMORROW", "LAST_90_DAYS", "NEXT_90_DAYS")},
    **{name: True for name in ("LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO")},
    **{f"{k}_{u}": False for k in ("LAST", "THIS", "NEXT") for u in _PLURALS.values()},
    **{f"{k}_N_{p}": True for k in ("LAST", "NEXT") for p in _PLURALS},
    **{f"N_{p}_AGO": True for p in _PLURALS},
}
