"""Start and due dates in the assignee's time zone (the documented formula)."""

from __future__ import annotations

from datetime import datetime

import pytest

from opencadence.cadence import graph, schedule


def step(type_: str = "MakeACall", **kw: int) -> graph.Step:
    return graph.Step(
        id="0cS", name="s", type=type_, title=None, parent_name="root", graph_state="Included", **kw
    )  # type: ignore[arg-type]


ENTERED = datetime(2026, 1, 5, 15, 30)  # 10:30 in New York


def test_no_schedule_starts_now_and_is_due_end_of_local_day() -> None:
    t = schedule.timing(step(), ENTERED, "America/New_York")
    assert t.start == ENTERED
    assert t.due == datetime(2026, 1, 6, 4, 59, 59)  # 23:59:59 EST


def test_days_until_start_keeps_wall_time_or_uses_time_of_day() -> None:
    assert schedule.start_of(step(days_until_start=2), ENTERED, "America/New_York") == datetime(
        2026, 1, 7, 15, 30
    )
    at_nine = step(days_until_start=1, start_time_minutes=9 * 60)
    assert schedule.start_of(at_nine, ENTERED, "America/New_York") == datetime(2026, 1, 6, 14, 0)


def test_time_of_day_today_or_tomorrow() -> None:
    later = step(start_time_minutes=12 * 60)
    assert schedule.start_of(later, ENTERED, "America/New_York") == datetime(2026, 1, 5, 17, 0)
    earlier = step(start_time_minutes=8 * 60)
    assert schedule.start_of(earlier, ENTERED, "America/New_York") == datetime(2026, 1, 6, 13, 0)


def test_delay_minutes_and_not_before() -> None:
    s = step(start_delay_minutes=45)
    assert schedule.start_of(s, ENTERED, "GMT") == datetime(2026, 1, 5, 16, 15)
    assert schedule.start_of(s, ENTERED, "GMT", datetime(2026, 1, 9)) == datetime(2026, 1, 9)


def test_dst_keeps_the_wall_time() -> None:
    # 2026-03-08: New York springs forward; 09:00 local is 14:00 UTC before, 13:00 after
    s = step(days_until_start=1, start_time_minutes=9 * 60)
    assert schedule.start_of(s, datetime(2026, 3, 7, 15), "America/New_York") == datetime(
        2026, 3, 8, 13, 0
    )


def test_days_until_due_and_automated_steps() -> None:
    t = schedule.timing(step(days_until_due=3), ENTERED, "Europe/Paris")
    assert t.due == datetime(2026, 1, 8, 22, 59, 59)
    assert schedule.timing(step("AutoSendAnEmail"), ENTERED, "GMT").due is None


@pytest.mark.parametrize("tz", [None, "", "Not/AZone"])
def test_unknown_time_zone_is_gmt(tz: str | None) -> None:
    assert schedule.due_of(step(), ENTERED, tz) == datetime(2026, 1, 5, 23, 59, 59)


def test_milliseconds() -> None:
    assert schedule.ms(datetime(2026, 1, 1, 0, 0, 0, 123456)).microsecond == 123000
