"""Sending windows: the days and hours automated cadence emails may go out.

A window is three integer email settings (``email.settings``), per cadence (scope = the
ActionCadence Id) or org-wide (scope "org", the default for every cadence):
``window_days`` (bit 0 = Monday … bit 6 = Sunday; 127 = every day), ``window_start_minute`` and
``window_end_minute`` (minutes after local midnight; 0 and 1440 = all day). Local time is the
assignee's User.TimeZoneSidKey — Contact and Lead carry no time zone of their own. A send that
falls outside waits (State stays Queued, no ErrorCode) for the next opening; the steps after it
are scheduled from its send time, so they shift with it (no catch-up burst).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

ALL_DAYS = 0b1111111


@dataclass(frozen=True, slots=True)
class Window:
    days: int = ALL_DAYS
    start_minute: int = 0
    end_minute: int = 1440

    @property
    def always(self) -> bool:
        return self.days == ALL_DAYS and self.start_minute <= 0 and self.end_minute >= 1440

    def _open_on(self, day: datetime) -> bool:
        return bool(self.days & (1 << day.weekday())) and self.start_minute < self.end_minute


def next_open(now: datetime, window: Window, tz: str) -> datetime | None:
    """None when ``now`` (naive UTC) is inside the window, else the next opening (naive UTC)."""
    if window.always:
        return None
    zone = ZoneInfo(tz or "GMT")
    local = now.replace(tzinfo=UTC).astimezone(zone)
    minute = local.hour * 60 + local.minute
    if window._open_on(local) and window.start_minute <= minute < window.end_minute:
        return None
    for ahead in range(0, 8):
        day = (local + timedelta(days=ahead)).date()
        if not window._open_on(datetime.combine(day, time())):
            continue
        start = datetime.combine(day, time()) + timedelta(minutes=window.start_minute)
        opening = start.replace(tzinfo=zone)  # wall time in the zone (DST-correct via zoneinfo)
        if opening > local:
            return opening.astimezone(UTC).replace(tzinfo=None)
    return None  # no open day at all: never wait forever, send now
