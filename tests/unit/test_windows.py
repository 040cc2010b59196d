from __future__ import annotations

from datetime import datetime

from opencadence.email.windows import Window, next_open

WEEKDAYS = 0b0011111  # Monday..Friday
NINE_TO_FIVE = Window(WEEKDAYS, 9 * 60, 17 * 60)


def test_always_open_by_default() -> None:
    assert next_open(datetime(2026, 3, 7, 3, 0), Window(), "America/New_York") is None


def test_inside_the_window_sends_now() -> None:
    # Tuesday 2026-03-10 15:00 UTC = 11:00 in New York (EDT)
    assert next_open(datetime(2026, 3, 10, 15, 0), NINE_TO_FIVE, "America/New_York") is None


def test_before_opening_waits_until_nine_local() -> None:
    # Tuesday 11:00 UTC = 07:00 EDT -> opens 09:00 EDT = 13:00 UTC
    assert next_open(datetime(2026, 3, 10, 11, 0), NINE_TO_FIVE, "America/New_York") == datetime(
        2026, 3, 10, 13, 0
    )


def test_friday_evening_waits_for_monday_across_dst() -> None:
    # Friday 2026-03-06 23:00 UTC = 18:00 EST; Monday 2026-03-09 09:00 is EDT (DST began Sunday)
    assert next_open(datetime(2026, 3, 6, 23, 0), NINE_TO_FIVE, "America/New_York") == datetime(
        2026, 3, 9, 13, 0
    )


def test_no_open_day_never_blocks() -> None:
    assert next_open(datetime(2026, 3, 6, 23, 0), Window(0, 540, 1020), "GMT") is None
