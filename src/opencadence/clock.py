"""The one injectable clock. Only this module reads the wall clock.

Time inside opencadence is always a timezone-aware UTC ``datetime``; storage keeps naive UTC.
Tests and ``--clock manual`` servers use ManualClock to move through days of cadence at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; never goes backwards.

    ``on_move(now)`` runs after each move, in order (system.build saves the position there)."""

    def __init__(
        self,
        start: datetime | None = None,
        on_move: Callable[[datetime], None] | None = None,
    ) -> None:
        start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._now = as_utc(start)
        self._lock = threading.Lock()
        self.on_move = on_move

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**kwargs)``; returns the new time."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("a ManualClock never goes backwards")
        with self._lock:
            self._now += step
            self._moved()
            return self._now

    def set(self, when: datetime) -> datetime:
        when = as_utc(when)
        with self._lock:
            if when < self._now:
                raise ValueError("a ManualClock never goes backwards")
            self._now = when
            self._moved()
            return self._now

    def _moved(self) -> None:  # under the lock: moves are reported in the order they happen
        if self.on_move is not None:
            self.on_move(self._now)


def as_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime; naive values are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
