"""When a step starts and when it is due, in the assignee's time zone.

Salesforce documents the step fields but not the formula (objects.md §4.3, §7). opencadence's
formula, for a step entered at ``entered`` (UTC) by a target whose assignee lives in time
zone ``tz`` (User.TimeZoneSidKey; GMT when unknown):

1. ``earliest = entered + ScheduledStartDelayInMinutes`` (a hard sub-day delay; default 0).
2. Start:
   - ScheduledDaysUntilStart = d ≥ 1: the local calendar day ``d`` days after ``entered``, at
     ScheduledStartTimeInMinutes past local midnight, or at ``entered``'s local wall time when
     that is not set; never before ``earliest``.
   - otherwise, ScheduledStartTimeInMinutes = t set: the first local time t at or after
     ``earliest``;
   - otherwise ``earliest``.
   Additionally never before ``not_before`` (a GoTo interval or a pause).
3. Due (manual steps only): the end of the local day (23:59:59) that is
   ScheduledDaysUntilDue (default 0) days after the start day. Automated steps have no due
   date.

Local times are built with zoneinfo, so DST changes move the UTC instant, not the wall time.
All results are naive UTC with millisecond precision (how storage keeps dateTimes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opencadence.cadence import graph

#: Time zone used when the assignee has none (or is a queue).
DEFAULT_TZ = "GMT"


@dataclass(frozen=True, slots=True)
class Timing:
    start: datetime
    due: datetime | None


@lru_cache(maxsize=256)
def zone(name: str | None) -> ZoneInfo:
    """The ZoneInfo of a TimeZoneSidKey, GMT when missing or unknown."""
    try:
        return ZoneInfo(name or DEFAULT_TZ)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TZ)


def ms(value: datetime) -> datetime:
    """Naive UTC truncated to milliseconds."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _local(naive_utc: datetime, tz: ZoneInfo) -> datetime:
    return naive_utc.replace(tzinfo=UTC).astimezone(tz)


def _at(day: datetime, minutes: int, tz: ZoneInfo) -> datetime:
    """Local ``minutes`` past midnight on ``day``'s date, as naive UTC."""
    wall = datetime.combine(day.date(), time()) + timedelta(minutes=minutes)
    return ms(wall.replace(tzinfo=tz))


def start_of(
    step: graph.Step, entered: datetime, tz_name: str | None, not_before: datetime | None = None
) -> datetime:
    """The step's ScheduledStartDateTime (naive UTC)."""
    tz = zone(tz_name)
    earliest = entered + timedelta(minutes=step.start_delay_minutes or 0)
    days, at = step.days_until_start or 0, step.start_time_minutes
    if days >= 1:
        local = _local(entered, tz)
        day = local + timedelta(days=days)
        if at is None:
            wall = datetime.combine(day.date(), local.time().replace(tzinfo=None))
            start = ms(wall.replace(tzinfo=tz))
        else:
            start = _at(day, at, tz)
        start = max(start, earliest)
    elif at is not None:
        local = _local(earliest, tz)
        start = _at(local, at, tz)
        if start < earliest:
            start = _at(local + timedelta(days=1), at, tz)
    else:
        start = earliest
    if not_before is not None:
        start = max(start, not_before)
    return ms(start)


def due_of(step: graph.Step, start: datetime, tz_name: str | None) -> datetime | None:
    """The step's DueDateTime (naive UTC), or None for automated steps."""
    if step.type not in graph.MANUAL_TYPES:
        return None
    tz = zone(tz_name)
    day = _local(start, tz) + timedelta(days=step.days_until_due or 0)
    wall = datetime.combine(day.date(), time(23, 59, 59))
    return ms(wall.replace(tzinfo=tz))


def timing(
    step: graph.Step, entered: datetime, tz_name: str | None, not_before: datetime | None = None
) -> Timing:
    """Start and due of ``step`` entered at ``entered``."""
    start = start_of(step, entered, tz_name, not_before)
    return Timing(start, due_of(step, start, tz_name))
