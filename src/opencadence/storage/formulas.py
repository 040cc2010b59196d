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

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

Row = Mapping[str, Any]
Formula = Callable[[Row, datetime], Any]

_CALL_OUTCOMES = (
    "AllCallsCallBackLater",
    "AllCallsLeftVoicemail",
    "AllCallsMeaningfulConnect",
    "AllCallsNotInterested",
    "AllCallsUncategorized",
    "AllCallsUnqualified",
)

#: Rate formulas of the monthly metrics: (numerator field, denominator field). A rate is a
#: percentage with 2 decimals, null when the denominator is empty or zero.
_RATES: dict[str, tuple[str, str]] = {
    "trackable_recipient_send_hrd_bnc_rt": (
        "RecipientsHardBounced",
        "HrdBncTrackableRecipientSends",
    ),
    "trackable_recipient_send_ooo_rate": ("RecipientsOutOfOffice", "OooTrackableRecipientSends"),
    "trackable_recipient_send_reply_rt": ("RecipientReplies", "ReplyTrackableRecipientSends"),
    "trackable_recipient_send_sft_bnc_rt": (
        "RecipientsSoftBounced",
        "SftBncTrackableRecipientSends",
    ),
    "trackable_send_hard_bounce_rate": ("AllEmailsHardBouncedCount", "HardBounceTrackableSends"),
    "trackable_send_link_click_rate": ("AllEmailsLinkClickedCount", "LinkClickTrackableSends"),
    "trackable_send_open_rate": ("AllEmailsOpenedCount", "OpenTrackableSends"),
    "trackable_send_out_of_office_rate": ("AllEmailsOutOfOfficeCount", "OutOfOfficeTrackableSends"),
    "trackable_send_reply_rate": ("AllEmailsRepliedCount", "ReplyTrackableSends"),
    "trackable_send_soft_bounce_rate": ("AllEmailsSoftBouncedCount", "SoftBounceTrackableSends"),
}


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


def all_emails_sent_count(row: Row, now: datetime) -> int:
    """Monthly metrics: tracked plus untracked sends."""
    return (row.get("AllEmailsTrackedSentCount") or 0) + (
        row.get("AllEmailsUntrackedSentCount") or 0
    )


def _sent(row: Row, now: datetime) -> int:
    # AllEmailsSentCount is stored on ActionCadenceStep but derived on the monthly metric.
    if "AllEmailsSentCount" in row:
        return int(row["AllEmailsSentCount"] or 0)
    return all_emails_sent_count(row, now)


def all_emails_delivered_count(row: Row, now: datetime) -> int:
    return max(0, _sent(row, now) - all_emails_bounced_count(row, now))


def delivered_recipient_count(row: Row, now: datetime) -> int:
    bounced = (row.get("RecipientsHardBounced") or 0) + (row.get("RecipientsSoftBounced") or 0)
    return max(0, (row.get("RecipientSends") or 0) - bounced)


def _percent(numerator: float, denominator: float | None) -> float | None:
    if not denominator:
        return None
    return round(100.0 * numerator / denominator, 2)


def delivered_recipient_rate(row: Row, now: datetime) -> float | None:
    return _percent(delivered_recipient_count(row, now), row.get("RecipientSends"))


def some_emails_delivered_count(row: Row, now: datetime) -> int:
    """Sends of which at least part was delivered: sent minus not delivered."""
    return max(0, _sent(row, now) - (row.get("AllEmailsNotDeliveredCount") or 0))


def some_emails_delivered_rate(row: Row, now: datetime) -> float | None:
    return _percent(some_emails_delivered_count(row, now), _sent(row, now))


def _rate(numerator: str, denominator: str) -> Formula:
    def formula(row: Row, now: datetime) -> float | None:
        return _percent(row.get(numerator) or 0, row.get(denominator))

    return formula


#: formula name (as written in the declarations) -> Python implementation
FORMULAS: dict[str, Formula] = {
    "seconds_overdue": seconds_overdue,
    "is_action_taken": is_action_taken,
    "is_orphan": is_orphan,
    "all_total_calls_count": all_total_calls_count,
    "all_emails_bounced_count": all_emails_bounced_count,
    "all_emails_delivered_count": all_emails_delivered_count,
    "all_emails_sent_count": all_emails_sent_count,
    "delivered_recipient_count": delivered_recipient_count,
    "delivered_recipient_rate": delivered_recipient_rate,
    "some_emails_delivered_count": some_emails_delivered_count,
    "some_emails_delivered_rate": some_emails_delivered_rate,
    **{name: _rate(num, den) for name, (num, den) in _RATES.items()},
}


def evaluate(name: str, row: Row, now: datetime) -> Any:
    """The value of formula ``name`` for ``row`` at ``now`` (naive UTC)."""
    return FORMULAS[name](row, now)
