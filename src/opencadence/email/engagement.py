"""Engagement records: each send, open, click, reply and bounce of a cadence email, fed to the
cadence runtime (listener branches, global exit rules) and counted into the step's metrics.

Events are rows of ``oc_email_event`` naming the outbox row (the step tracker Id); each
engagement event is counted on its ActionCadenceStep and ActionCdncStpMonthlyMetric row in the
transaction that records it (``count_event``; sends are counted when their step completes, by
the cadence runtime). ``step_metrics`` recomputes a step's email counters from the records.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opencadence import errors
from opencadence.cadence import runtime
from opencadence.metadata.sales_engagement import TARGET_OBJECTS
from opencadence.storage import mail, metrics, records

log = logging.getLogger(__name__)

#: event kind -> the runtime's engagement event (sends and out-of-office replies feed none)
RUNTIME_EVENTS = {
    "open": "EmailOpen",
    "click": "EmailLinkClick",
    "reply": "EmailReply",
    "hard_bounce": "EmailHardBounce",
    "soft_bounce": "EmailSoftBounce",
}


def record_event(
    conn: mail.Connection,
    store: records.Store,
    key: str,
    kind: str,
    at: datetime,
    detail: str | None = None,
) -> None:
    mail.event_log(store.meta).record(conn, key, kind, at, detail)


def mark_bounced(tx: records.Tx, target_id: str, reason: str, now: datetime) -> None:
    """A hard bounce: the target's EmailBouncedDate (so later sends fail TARGET_EMAIL_BOUNCED)."""
    obj = TARGET_OBJECTS.get(target_id[:3])
    if obj is not None and tx.get(obj, target_id) is not None:
        tx.update(
            obj,
            target_id,
            {"EmailBouncedDate": now, "EmailBouncedReason": reason[:255]},
            system=True,
        )


def sent_row(
    conn: mail.Connection,
    store: records.Store,
    *,
    key: str | None = None,
    message_id: str | None = None,
) -> Mapping[str, Any] | None:
    """The outbox row of a message that reached the relay, by key or Message-ID."""
    outbox = mail.outbox(store.meta)
    row = outbox.row(conn, key) if key is not None else outbox.by_message_id(conn, message_id)
    if row is None or (row["sent_at"] is None and row["status"] not in mail.REACHED_RELAY):
        return None
    return row


def record(
    store: records.Store,
    key: str,
    kind: str,
    detail: str | None = None,
    *,
    dedupe: bool = False,
    reason: str | None = None,
) -> bool:
    """Record engagement ``kind`` of the sent message ``key`` and tell the runtime. With
    ``dedupe`` an event already recorded with the same ``detail`` (e.g. the inbound
    Message-ID of a reply delivered twice) is ignored. Returns whether it was recorded."""
    now = store.clock.now().replace(tzinfo=None)
    with store.transaction() as tx:
        row = sent_row(tx.conn, store, key=key)
        if row is None:
            return False
        if dedupe and mail.event_log(store.meta).seen(tx.conn, key, kind, detail):
            return False
        record_event(tx.conn, store, key, kind, now, detail)
        if kind == "hard_bounce":
            mark_bounced(tx, row["target_id"], reason or detail or "hard bounce", now)
        count_event(tx, key, kind, now)
        target_id = str(row["target_id"])
    event = RUNTIME_EVENTS.get(kind)
    if event is not None:
        for attempt in (1, 2):  # a concurrent transition of the same tracker: once more
            try:
                runtime.engagement(store, target_id, event, key)
                break
            except errors.StaleTransition:
                if attempt == 2:
                    log.warning("engagement %s of %s not applied: tracker busy", event, key)
    return True


#: the email metric fields of ActionCadenceStep ``step_metrics`` returns
METRICS = (
    "AllEmailsSentCount",
    "AllEmailsTrackedSentCount",
    "AllEmailsUntrackedSentCount",
    "AllEmailsOpenedCount",
    "UniqueEmailsOpenedCount",
    "AllEmailsLinkClickedCount",
    "UniqueEmailsLinkClickedCount",
    "AllEmailsRepliedCount",
    "UniqueEmailsRepliedCount",
    "AllEmailsOutOfOfficeCount",
    "AllEmailsHardBouncedCount",
    "AllEmailsSoftBouncedCount",
)


def count_event(tx: records.Tx, key: str, kind: str, at: datetime) -> None:
    """Count an engagement event of the email ``key`` (already recorded in ``tx``) on its step
    and monthly metric row, in ``tx``."""
    store = tx.store
    if not store.count_metrics or kind not in metrics.ENGAGEMENT_KINDS:
        return
    counts = metrics.Counts()
    tz = metrics.org_time_zone(tx.conn, store.meta)
    metrics.count_engagement(tx.conn, store.meta, counts, key, kind, at, tz)
    metrics.write_tx(tx, counts)


def step_metrics(store: records.Store, step_id: str) -> dict[str, int]:
    """The email metric fields of one ActionCadenceStep, recomputed from the records (with
    the calculated AllEmailsBouncedCount and AllEmailsDeliveredCount)."""
    with store.reading() as conn:
        tz = metrics.org_time_zone(conn, store.meta)
        counted = metrics.expected(conn, store.meta, tz).steps.get(step_id) or Counter()
    out = {name: int(counted.get(name, 0)) for name in METRICS}
    bounced = out["AllEmailsHardBouncedCount"] + out["AllEmailsSoftBouncedCount"]
    out["AllEmailsBouncedCount"] = bounced
    out["AllEmailsDeliveredCount"] = max(0, out["AllEmailsSentCount"] - bounced)
    return out
