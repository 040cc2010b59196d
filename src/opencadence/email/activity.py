"""The activity a sent cadence email leaves behind, as Salesforce logs an email it sent: an
EmailMessage (Status 3 Sent, not incoming) and the Task it is linked to (ActivityId; TaskSubtype
Email, Completed, WhoId the target, Subject "Email: <subject>").

Written in the transaction that records the send (the outbox row marked sent, or the send
itself when no relay is configured), through the one write path, so the records and their
change events commit with the send or not at all. The Task is written with ``Tx.insert``,
not through ``Org``'s write hooks: a logged email is not a logged call and moves no step.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.utils
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opencadence.email import checks, message
from opencadence.storage import mail, records

#: Task.Subject is 255 characters; Salesforce prefixes an email's subject with "Email: ".
_TASK_SUBJECT = 255
_DESCRIPTION = 32_000
_BODY = 131_072


@dataclass(frozen=True, slots=True)
class SentEmail:
    """One cadence email that went out (or, without a relay, was recorded as sent)."""

    key: str  # the step tracker Id
    tracker_id: str | None
    owner_id: str  # the assignee it went out as
    target_id: str
    from_address: str
    from_name: str | None
    to_address: str
    subject: str
    html: str | None
    text: str | None
    message_id: str | None = None
    thread_id: str | None = None
    headers: str | None = None
    tracked: bool = False


def from_outbox(row: Mapping[str, Any]) -> SentEmail:
    """The email of an outbox row, read back from the MIME text that went to the relay."""
    msg = email.message_from_string(row["mime"] or "")
    name, _ = email.utils.parseaddr(_header(msg, "From"))
    parts = message.Parts(
        subject=_header(msg, "Subject"),
        from_name=name or None,
        html=_part(msg, "text/html"),
        text=_part(msg, "text/plain"),
        references=tuple(_header(msg, "References").split()),
    )
    return from_parts(row, parts, message_id=_header(msg, "Message-ID") or None)


def from_parts(
    row: Mapping[str, Any], parts: message.Parts, *, message_id: str | None = None
) -> SentEmail:
    """The email of an outbox row from what composing its MIME gave (``message.Parts``):
    equal to ``from_outbox(row)``, without parsing the MIME back. ``message_id``: the MIME's
    own, for a row that does not hold one."""
    message_id = row.get("message_id") or message_id
    head, _, _ = (row["mime"] or "").partition("\n\n")
    return SentEmail(
        key=row["key"],
        tracker_id=row.get("tracker_id"),
        owner_id=row["owner_id"],
        target_id=row["target_id"],
        from_address=row["sender"],
        from_name=parts.from_name,
        to_address=row["recipient"],
        subject=parts.subject,
        html=parts.html,
        text=parts.text,
        message_id=message_id,
        thread_id=parts.references[0] if parts.references else message_id,
        headers=head.replace("\r\n", "\n") or None,
        tracked=bool(row.get("tracked")),
    )


def log_sent(tx: records.Tx, sent: Sequence[SentEmail], now: datetime) -> list[str]:
    """Write the Task and EmailMessage of each sent email; returns the EmailMessage Ids."""
    if not sent:
        return []
    targets = _targets(tx, {s.target_id for s in sent})
    found = mail.time_zones(tx.conn, tx.store.meta, {s.owner_id for s in sent})
    zones = {s.owner_id: str(found.get(s.owner_id) or "GMT") for s in sent}
    task_ids = tx.insert_many(
        "Task",
        [_task(s, targets[s.target_id], _local_date(now, zones[s.owner_id]), now) for s in sent],
        system=True,
    )
    return tx.insert_many(
        "EmailMessage",
        [
            _email_message(s, targets[s.target_id], task_id, now)
            for s, task_id in zip(sent, task_ids, strict=True)
        ],
        system=True,
    )


def _task(s: SentEmail, target: Mapping[str, Any], day: date, now: datetime) -> dict[str, Any]:
    context = f"Sales cadence email (step tracker {s.key}, cadence tracker {s.tracker_id})"
    body = s.text if s.text is not None else s.html or ""
    return {
        "Subject": f"Email: {s.subject}"[:_TASK_SUBJECT],
        "WhoId": s.target_id,
        "WhatId": target.get("AccountId"),
        "OwnerId": s.owner_id,
        "Status": "Completed",
        "CompletedDateTime": now,
        "TaskSubtype": "Email",
        "ActivityDate": day,
        "Description": f"{context}\n\n{body}"[:_DESCRIPTION],
    }


def _email_message(
    s: SentEmail, target: Mapping[str, Any], task_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "Subject": s.subject[:3000],
        "HtmlBody": None if s.html is None else s.html[:_BODY],
        "TextBody": None if s.text is None else s.text[:_BODY],
        "FromAddress": s.from_address,
        "FromName": s.from_name,
        "ToAddress": s.to_address,
        "MessageDate": now,
        "MessageIdentifier": s.message_id,
        "ThreadIdentifier": s.thread_id,
        "Headers": None if s.headers is None else s.headers[:32_000],
        "Status": "3",  # Sent
        "Incoming": False,
        "RelatedToId": target.get("AccountId"),
        "ActivityId": task_id,
        "IsTracked": s.tracked,
    }


def _targets(tx: records.Tx, target_ids: set[str]) -> dict[str, Mapping[str, Any]]:
    """The targets as the records need them (a Contact's account is what the email relates
    to; deleted contacts too), in one statement for the chunk of sends recorded together."""
    contacts = [t for t in target_ids if tx.store.registry.is_id_of(t, "Contact")]
    accounts = mail.contact_accounts(tx.conn, tx.store.meta, contacts)
    return {t: ({"AccountId": accounts[t]} if t in accounts else {}) for t in target_ids}


def _local_date(now: datetime, zone: str) -> date:
    """The send's date for the assignee (Task.ActivityDate is a date in the owner's calendar)."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return now.date()
    return now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz).date()


def _header(msg: email.message.Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    return str(email.header.make_header(email.header.decode_header(str(value))))


def _part(msg: email.message.Message, content_type: str) -> str | None:
    for part in msg.walk():
        if part.get_content_type() == content_type and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return None


def from_prepared(
    p: checks.Prepared, *, key: str, tracker_id: str | None, owner_id: str, target_id: str
) -> SentEmail:
    """The email of a send that passed the checks and was rendered (no MIME was made)."""
    return SentEmail(
        key=key,
        tracker_id=tracker_id,
        owner_id=owner_id,
        target_id=target_id,
        from_address=p.sender,
        from_name=p.sender_name,
        to_address=p.recipient,
        subject=p.rendered.subject,
        html=p.rendered.html,
        text=p.rendered.text,
    )
