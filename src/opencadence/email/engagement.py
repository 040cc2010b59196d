"""Engagement records: each send, open, click, reply and bounce of a cadence email, fed to the
cadence runtime (listener branches, global exit rules) and counted into step metrics.

Events are rows of ``oc_email_event`` naming the outbox row (the step tracker Id), so the
counts per ActionCadenceStep are a join away (``step_metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opencadence import errors
from opencadence.cadence import runtime
from opencadence.metadata.sales_engagement import TARGET_OBJECTS
from opencadence.storage import mail, records

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
        write_step_metrics(tx, {row.get("step_id") or ""})
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


METRICS = {
    "AllEmailsOpenedCount": ("open",),
    "AllEmailsLinkClickedCount": ("click",),
    "AllEmailsRepliedCount": ("reply",),
    "AllEmailsOutOfOfficeCount": ("out_of_office",),
    "AllEmailsHardBouncedCount": ("hard_bounce",),
    "AllEmailsSoftBouncedCount": ("soft_bounce",),
    "AllEmailsBouncedCount": ("hard_bounce", "soft_bounce"),
}


def step_metrics(store: records.Store, step_id: str) -> dict[str, int]:
    """The email metric fields of one ActionCadenceStep, counted from the records: each
    counts emails (a message opened twice counts once)."""
    with store.reading() as conn:
        return _metrics(conn, store, step_id)


def write_step_metrics(tx: records.Tx, step_ids: set[str]) -> None:
    """Store the counts on the ActionCadenceStep records, in the transaction that recorded the
    send or engagement, so the step's metric fields are always true. Calculated metric
    fields (AllEmailsBouncedCount, AllEmailsDeliveredCount) derive from these."""
    step_obj = tx.store.registry.object("ActionCadenceStep")
    for step_id in sorted(s for s in step_ids if s):
        counts = _metrics(tx.conn, tx.store, step_id)
        stored = {
            k: v
            for k, v in counts.items()
            if (f := step_obj.field(k)) is not None and not f.calculated
        }
        if tx.get("ActionCadenceStep", step_id) is not None:
            tx.update("ActionCadenceStep", step_id, stored, system=True)


def _metrics(conn: mail.Connection, store: records.Store, step_id: str) -> dict[str, int]:
    rows = mail.event_log(store.meta).of_step(conn, step_id)
    keys: dict[str, set[str]] = {}
    tracked: set[str] = set()
    for kind, detail, key in rows:
        keys.setdefault(kind, set()).add(key)
        if kind == "send" and detail == "tracked":
            tracked.add(key)
    sent = keys.get("send", set())
    out = {
        name: len(set().union(*(keys.get(k, set()) for k in kinds)))
        for name, kinds in METRICS.items()
    }
    out["AllEmailsSentCount"] = len(sent)
    out["AllEmailsDeliveredCount"] = len(
        sent - keys.get("hard_bounce", set()) - keys.get("soft_bounce", set())
    )
    out["AllEmailsTrackedSentCount"] = len(tracked)
    out["AllEmailsUntrackedSentCount"] = len(sent - tracked)
    return out
