"""A restarted manual-clock org starts where the last run left its clock, not at wall time."""

from __future__ import annotations

from datetime import timedelta

from opencadence import system
from opencadence.clock import SystemClock


def test_a_restarted_manual_clock_never_goes_behind_the_last_run(db_url: str) -> None:
    settings = system.Settings(database_url=db_url, clock="manual", worker=False)
    with system.build(settings) as first:
        assert first.manual_clock is not None
        advanced = first.manual_clock.advance(days=5)
    with system.build(settings) as second:
        assert second.manual_clock is not None
        assert second.clock.now() >= advanced
        later = second.manual_clock.set(advanced + timedelta(days=1))
    with system.build(settings) as third:
        assert third.clock.now() >= later


def test_a_manual_clock_behind_wall_time_starts_at_wall_time(db_url: str) -> None:
    settings = system.Settings(database_url=db_url, clock="manual", worker=False)
    with system.build(settings):
        pass  # never moved: nothing ahead of wall time to keep
    before = SystemClock().now()
    with system.build(settings) as again:
        assert again.clock.now() >= before
