"""Calculated fields: how each ``formula`` named in the registry is derived from a row.

Values are computed when read, never stored, so they are never stale. The SOQL compiler has
SQL twins of these functions so calculated fields filter and sort in the database.

SecondsOverdue (opencadence's reading of the seed's definition):
- no DueDateTime → null;
- the action was taken → seconds from DueDateTime to ActionTakenDateTime, 0 if on time;
- the step closed without action (skipped, exited) → seconds from DueDateTime to
  CompletionDate, 0 if on time;
- still open → seconds from DueDateTime to now when the due date has passed, else null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Mapping

Row = Mapping[str, Any]
Formula = Callable[[Row, datetime], Any]

_CALL_OUTCOMES = (
    "AllCallsCallBackLaterCount",
    "AllCallsLeftVoicemailCount",
    "AllCallsMeaningfulConnectCount",
    "AllCallsNotInterestedCount",
    "AllCallsUncategorizedCount",
    "AllCallsUnqualifiedCount",
)


def _seconds(later: datetime, earlier: datetime) -> int:
    return int((later - earlier).total_seconds())


def seconds_overdue(row: Row, now: datetime) -> int | None:
    due = row.get("DueDateTime")
    if due is None:
        return None
    end = row.get("ActionTakenDateTime") or row.get("CompletionDate")
    if end is not None:
        return max(0, _seconds(end, due))
    return _seconds(now, due) if now > due else None


def is_action_taken(row: Row, now: datetime) -> bool:
    return row.get("ActionTakenDateTime") is not None


def is_orphan(row: Row, now: datetime) -> bool:
    return row.get("GraphState") == "Orphaned"


def all_total_calls_count(row: Row, now: datetime) -> int:
    return sum(row.get(name) or 0 for name in _CALL_OUTCOMES)


def all_emails_bounced_count(row: Row, now: datetime) -> int:
    return (row.get("AllEmailsHardBouncedCount") or 0) + (row.get("AllEmailsSoftBouncedCount") or 0)


def all_emails_delivered_count(row: Row, now: datetime) -> int:
    sent = row.get("AllEmailsSentCount") or 0
    return max(0, sent - all_emails_bounced_count(row, now))


#: formula name (as written in the declarations) -> Python implementation
FORMULAS: dict[str, Formula] = {
    "seconds_overdue": seconds_overdue,
    "is_action_taken": is_action_taken,
    "is_orphan": is_orphan,
    "all_total_calls_count": all_total_calls_count,
    "all_emails_bounced_count": all_emails_bounced_count,
    "all_emails_delivered_count": all_emails_delivered_count,
}


def evaluate(name: str, row: Row, now: datetime) -> Any:
    """The value of formula ``name`` for ``row`` at ``now`` (naive UTC)."""
    return FORMULAS[name](row, now)
