"""SOQL date literal ranges (soql.md A.6), pinned at fixed instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from opencadence.soql import dates

UTC = UTC
LA = "America/Los_Angeles"

#: Sunday 2024-03-10, 05:00 PDT: the day US DST starts (02:00 → 03:00 local).
DST_SUNDAY = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
#: New Year in UTC, still 2023-12-31 21:00 in Los Angeles.
NEW_YEAR_UTC = datetime(2024, 1, 1, 5, 0, tzinfo=UTC)
#: Friday 2024-03-15 (fiscal Q4 of a fiscal year starting in April).
MID_MARCH = datetime(2024, 3, 15, 18, 0, tzinfo=UTC)
#: Monday 2024-04-01, first day of a fiscal year starting in April.
APRIL_FIRST = datetime(2024, 4, 1, 18, 0, tzinfo=UTC)
#: Wednesday 2024-01-31 (month-end stepping).
JAN_31 = datetime(2024, 1, 31, 18, 0, tzinfo=UTC)

D = date

# (name, n, now, tz, fiscal_start_month, expected start, expected end)
CASES = [
    # days
    ("TODAY", None, DST_SUNDAY, LA, 1, D(2024, 3, 10), D(2024, 3, 11)),
    ("YESTERDAY", None, DST_SUNDAY, LA, 1, D(2024, 3, 9), D(2024, 3, 10)),
    ("TOMORROW", None, DST_SUNDAY, LA, 1, D(2024, 3, 11), D(2024, 3, 12)),
    ("TODAY", None, NEW_YEAR_UTC, LA, 1, D(2023, 12, 31), D(2024, 1, 1)),
    ("TODAY", None, NEW_YEAR_UTC, "GMT", 1, D(2024, 1, 1), D(2024, 1, 2)),
    ("TODAY", None, NEW_YEAR_UTC, "Asia/Tokyo", 1, D(2024, 1, 1), D(2024, 1, 2)),
    ("LAST_N_DAYS", 0, DST_SUNDAY, LA, 1, D(2024, 3, 10), D(2024, 3, 11)),
    ("LAST_N_DAYS", 1, DST_SUNDAY, LA, 1, D(2024, 3, 9), D(2024, 3, 11)),
    ("LAST_N_DAYS", 7, DST_SUNDAY, LA, 1, D(2024, 3, 3), D(2024, 3, 11)),
    ("LAST_90_DAYS", None, DST_SUNDAY, LA, 1, D(2023, 12, 11), D(2024, 3, 11)),
    ("NEXT_N_DAYS", 0, DST_SUNDAY, LA, 1, D(2024, 3, 11), D(2024, 3, 11)),
    ("NEXT_N_DAYS", 3, DST_SUNDAY, LA, 1, D(2024, 3, 11), D(2024, 3, 14)),
    ("NEXT_90_DAYS", None, DST_SUNDAY, LA, 1, D(2024, 3, 11), D(2024, 6, 9)),
    ("N_DAYS_AGO", 0, DST_SUNDAY, LA, 1, D(2024, 3, 10), D(2024, 3, 11)),
    ("N_DAYS_AGO", 10, DST_SUNDAY, LA, 1, D(2024, 2, 29), D(2024, 3, 1)),
    ("LAST_N_DAYS", 1, NEW_YEAR_UTC, LA, 1, D(2023, 12, 30), D(2024, 1, 1)),
    # weeks (Sunday start): the DST week
    ("THIS_WEEK", None, DST_SUNDAY, LA, 1, D(2024, 3, 10), D(2024, 3, 17)),
    ("LAST_WEEK", None, DST_SUNDAY, LA, 1, D(2024, 3, 3), D(2024, 3, 10)),
    ("NEXT_WEEK", None, DST_SUNDAY, LA, 1, D(2024, 3, 17), D(2024, 3, 24)),
    ("THIS_WEEK", None, MID_MARCH, LA, 1, D(2024, 3, 10), D(2024, 3, 17)),
    ("LAST_N_WEEKS", 2, MID_MARCH, LA, 1, D(2024, 2, 25), D(2024, 3, 10)),
    ("NEXT_N_WEEKS", 2, MID_MARCH, LA, 1, D(2024, 3, 17), D(2024, 3, 31)),
    ("N_WEEKS_AGO", 1, MID_MARCH, LA, 1, D(2024, 3, 3), D(2024, 3, 10)),
    ("N_WEEKS_AGO", 0, MID_MARCH, LA, 1, D(2024, 3, 10), D(2024, 3, 17)),
    ("THIS_WEEK", None, NEW_YEAR_UTC, LA, 1, D(2023, 12, 31), D(2024, 1, 7)),
    # months
    ("THIS_MONTH", None, JAN_31, LA, 1, D(2024, 1, 1), D(2024, 2, 1)),
    ("NEXT_MONTH", None, JAN_31, LA, 1, D(2024, 2, 1), D(2024, 3, 1)),
    ("LAST_MONTH", None, JAN_31, LA, 1, D(2023, 12, 1), D(2024, 1, 1)),
    ("LAST_N_MONTHS", 13, JAN_31, LA, 1, D(2022, 12, 1), D(2024, 1, 1)),
    ("NEXT_N_MONTHS", 12, JAN_31, LA, 1, D(2024, 2, 1), D(2025, 2, 1)),
    ("N_MONTHS_AGO", 1, JAN_31, LA, 1, D(2023, 12, 1), D(2024, 1, 1)),
    ("THIS_MONTH", None, NEW_YEAR_UTC, LA, 1, D(2023, 12, 1), D(2024, 1, 1)),
    # quarters and years across the year boundary
    ("THIS_QUARTER", None, NEW_YEAR_UTC, LA, 1, D(2023, 10, 1), D(2024, 1, 1)),
    ("NEXT_QUARTER", None, NEW_YEAR_UTC, LA, 1, D(2024, 1, 1), D(2024, 4, 1)),
    ("THIS_QUARTER", None, NEW_YEAR_UTC, "GMT", 1, D(2024, 1, 1), D(2024, 4, 1)),
    ("LAST_QUARTER", None, NEW_YEAR_UTC, "GMT", 1, D(2023, 10, 1), D(2024, 1, 1)),
    ("LAST_N_QUARTERS", 2, MID_MARCH, LA, 1, D(2023, 7, 1), D(2024, 1, 1)),
    ("NEXT_N_QUARTERS", 4, MID_MARCH, LA, 1, D(2024, 4, 1), D(2025, 4, 1)),
    ("N_QUARTERS_AGO", 4, MID_MARCH, LA, 1, D(2023, 1, 1), D(2023, 4, 1)),
    ("THIS_YEAR", None, NEW_YEAR_UTC, LA, 1, D(2023, 1, 1), D(2024, 1, 1)),
    ("THIS_YEAR", None, NEW_YEAR_UTC, "GMT", 1, D(2024, 1, 1), D(2025, 1, 1)),
    ("LAST_YEAR", None, MID_MARCH, LA, 1, D(2023, 1, 1), D(2024, 1, 1)),
    ("NEXT_YEAR", None, MID_MARCH, LA, 1, D(2025, 1, 1), D(2026, 1, 1)),
    ("LAST_N_YEARS", 2, MID_MARCH, LA, 1, D(2022, 1, 1), D(2024, 1, 1)),
    ("NEXT_N_YEARS", 1, MID_MARCH, LA, 1, D(2025, 1, 1), D(2026, 1, 1)),
    ("N_YEARS_AGO", 1, MID_MARCH, LA, 1, D(2023, 1, 1), D(2024, 1, 1)),
    # fiscal = calendar by default
    ("THIS_FISCAL_QUARTER", None, MID_MARCH, LA, 1, D(2024, 1, 1), D(2024, 4, 1)),
    ("THIS_FISCAL_YEAR", None, MID_MARCH, LA, 1, D(2024, 1, 1), D(2025, 1, 1)),
    # fiscal years starting in April
    ("THIS_FISCAL_YEAR", None, MID_MARCH, LA, 4, D(2023, 4, 1), D(2024, 4, 1)),
    ("LAST_FISCAL_YEAR", None, MID_MARCH, LA, 4, D(2022, 4, 1), D(2023, 4, 1)),
    ("NEXT_FISCAL_YEAR", None, MID_MARCH, LA, 4, D(2024, 4, 1), D(2025, 4, 1)),
    ("THIS_FISCAL_QUARTER", None, MID_MARCH, LA, 4, D(2024, 1, 1), D(2024, 4, 1)),
    ("NEXT_FISCAL_QUARTER", None, MID_MARCH, LA, 4, D(2024, 4, 1), D(2024, 7, 1)),
    ("LAST_FISCAL_QUARTER", None, MID_MARCH, LA, 4, D(2023, 10, 1), D(2024, 1, 1)),
    ("LAST_N_FISCAL_QUARTERS", 2, MID_MARCH, LA, 4, D(2023, 7, 1), D(2024, 1, 1)),
    ("NEXT_N_FISCAL_QUARTERS", 2, MID_MARCH, LA, 4, D(2024, 4, 1), D(2024, 10, 1)),
    ("N_FISCAL_QUARTERS_AGO", 1, MID_MARCH, LA, 4, D(2023, 10, 1), D(2024, 1, 1)),
    ("LAST_N_FISCAL_YEARS", 2, MID_MARCH, LA, 4, D(2021, 4, 1), D(2023, 4, 1)),
    ("NEXT_N_FISCAL_YEARS", 2, MID_MARCH, LA, 4, D(2024, 4, 1), D(2026, 4, 1)),
    ("N_FISCAL_YEARS_AGO", 2, MID_MARCH, LA, 4, D(2021, 4, 1), D(2022, 4, 1)),
    ("THIS_FISCAL_YEAR", None, APRIL_FIRST, LA, 4, D(2024, 4, 1), D(2025, 4, 1)),
    ("THIS_FISCAL_QUARTER", None, APRIL_FIRST, LA, 4, D(2024, 4, 1), D(2024, 7, 1)),
    ("LAST_FISCAL_QUARTER", None, APRIL_FIRST, LA, 4, D(2024, 1, 1), D(2024, 4, 1)),
    # a fiscal year starting in April, seen from late March local time but April in UTC
    (
        "THIS_FISCAL_YEAR",
        None,
        datetime(2024, 4, 1, 3, tzinfo=UTC),
        LA,
        4,
        D(2023, 4, 1),
        D(2024, 4, 1),
    ),
    # fiscal years starting in November: quarters cross the calendar year
    ("THIS_FISCAL_QUARTER", None, JAN_31, LA, 11, D(2023, 11, 1), D(2024, 2, 1)),
    ("THIS_FISCAL_YEAR", None, JAN_31, LA, 11, D(2023, 11, 1), D(2024, 11, 1)),
]


@pytest.mark.parametrize(("name", "n", "now", "tz", "fiscal", "start", "end"), CASES)
def test_literal_range(
    name: str, n: int | None, now: datetime, tz: str, fiscal: int, start: date, end: date
) -> None:
    assert dates.literal_range(name, n, now, tz, fiscal_start_month=fiscal) == (start, end)


def test_week_start_monday() -> None:
    got = dates.literal_range("THIS_WEEK", None, DST_SUNDAY, LA, week_start=0)
    assert got == (D(2024, 3, 4), D(2024, 3, 11))
    got = dates.literal_range("LAST_N_WEEKS", 1, MID_MARCH, LA, week_start=0)
    assert got == (D(2024, 3, 4), D(2024, 3, 11))


def test_names_are_case_insensitive() -> None:
    assert dates.literal_range("last_n_days", 2, DST_SUNDAY, LA) == (D(2024, 3, 8), D(2024, 3, 11))


def test_naive_now_is_utc() -> None:
    naive = NEW_YEAR_UTC.replace(tzinfo=None)
    assert dates.literal_range("TODAY", None, naive, LA) == (D(2023, 12, 31), D(2024, 1, 1))


@pytest.mark.parametrize("name", sorted(dates.LITERALS))
def test_every_literal_is_a_range_of_whole_days(name: str) -> None:
    n = 3 if dates.LITERALS[name] else None
    for now in (DST_SUNDAY, NEW_YEAR_UTC, MID_MARCH, APRIL_FIRST, JAN_31):
        start, end = dates.literal_range(name, n, now, LA, fiscal_start_month=4)
        assert start < end


@pytest.mark.parametrize(
    ("name", "n"),
    [
        ("LAST_N_DAYS", None),  # missing n
        ("TODAY", 1),  # extra n
        ("THIS_WEEK", 2),
        ("LAST_N_WEEKS", -1),
        ("LAST_N_WEEKS", True),
        ("THIS_N_WEEKS", 2),  # no such literal
        ("LAST_N_FORTNIGHTS", 2),
        ("N_DAYS", 2),
        ("LAST_WEEKS", None),
        ("NOW", None),
        ("", None),
    ],
)
def test_invalid_literals(name: str, n: int | None) -> None:
    with pytest.raises(ValueError):
        dates.literal_range(name, n, DST_SUNDAY, LA)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        dates.literal_range("TODAY", None, DST_SUNDAY, "Mars/Olympus_Mons")
    with pytest.raises(ValueError):
        dates.literal_range("TODAY", None, DST_SUNDAY, LA, fiscal_start_month=13)
    with pytest.raises(ValueError):
        dates.literal_range("TODAY", None, DST_SUNDAY, LA, week_start=7)


# --- local midnight ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "tz", "expected"),
    [
        (D(2024, 3, 10), LA, datetime(2024, 3, 10, 8)),  # PST, the day DST starts
        (D(2024, 3, 11), LA, datetime(2024, 3, 11, 7)),  # PDT
        (D(2024, 11, 3), LA, datetime(2024, 11, 3, 7)),  # PDT, the day DST ends
        (D(2024, 11, 4), LA, datetime(2024, 11, 4, 8)),  # PST
        (D(2024, 1, 1), "GMT", datetime(2024, 1, 1)),
        (D(2024, 1, 1), "Asia/Kolkata", datetime(2023, 12, 31, 18, 30)),
        # Chile starts DST at midnight: the day begins at 01:00 local = 04:00 UTC
        (D(2024, 9, 8), "America/Santiago", datetime(2024, 9, 8, 4)),
    ],
)
def test_local_midnight_utc(day: date, tz: str, expected: datetime) -> None:
    assert dates.local_midnight_utc(day, tz) == expected


def test_dst_day_ranges() -> None:
    """TODAY on the DST-start day is 23 hours long as a dateTime range; on DST-end, 25."""
    start, end = dates.datetime_range(dates.literal_range("TODAY", None, DST_SUNDAY, LA), LA)
    assert end - start == timedelta(hours=23)
    fall = datetime(2024, 11, 3, 20, tzinfo=UTC)
    start, end = dates.datetime_range(dates.literal_range("TODAY", None, fall, LA), LA)
    assert end - start == timedelta(hours=25)


@pytest.mark.parametrize(
    "tz", [LA, "America/Santiago", "Asia/Beirut", "Australia/Lord_Howe", "GMT"]
)
def test_local_midnight_is_first_instant_of_the_day(tz: str) -> None:
    zone = dates.zone(tz)
    day = D(2024, 1, 1)
    while day < D(2025, 1, 1):
        instant = dates.local_midnight_utc(day, tz).replace(tzinfo=UTC)
        assert instant.astimezone(zone).date() == day
        assert (instant - timedelta(microseconds=1)).astimezone(zone).date() < day
        day += timedelta(days=1)
