from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from opencadence.clock import ManualClock, SystemClock, as_utc


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.advance(days=2) == datetime(2026, 1, 3, tzinfo=UTC)
    assert clock.advance(timedelta(minutes=5)).minute == 5
    with pytest.raises(ValueError):
        clock.advance(seconds=-1)
    with pytest.raises(ValueError):
        clock.set(datetime(2025, 1, 1, tzinfo=UTC))
    assert clock.set(datetime(2027, 1, 1)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_system_clock_is_utc_aware() -> None:
    assert SystemClock().now().tzinfo == UTC


def test_as_utc_converts_offsets() -> None:
    paris = timezone(timedelta(hours=1))
    assert as_utc(datetime(2026, 1, 1, 10, tzinfo=paris)).hour == 9
