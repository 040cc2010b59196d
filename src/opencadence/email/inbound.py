"""The inbound SMTP listener: replies and bounces of cadence emails come back here.

Point the reply/bounce route of the domain (an MX, or a forwarding rule of the relay) at
``--inbound-smtp-port``. Every message is accepted (250) — telling a sender which messages
we know would leak them — and then classified:

- a DSN (multipart/report; report-type=delivery-status, RFC 3464) names the original message
  in its returned headers. ``Action: failed`` with a 5.x.x ``Status`` is a hard bounce (the
  target's EmailBouncedDate is set); 4.x.x, or ``Action: delayed``, a soft bounce.
- otherwise a message whose In-Reply-To / References name a cadence email's Message-ID is a
  reply to it; an automatic answer (``Auto-Submitted`` other than "no", RFC 3834) counts as
  out of office and feeds no EmailReply to the runtime.

A message matching no cadence email is dropped (logged). The same inbound message delivered
twice (its Message-ID) is recorded once.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from opencadence.email import engagement
from opencadence.storage import records

log = logging.getLogger(__name__)

_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class Match:
    key: str
    kind: str  # reply | out_of_office | hard_bounce | soft_bounce
    reason: str | None = None


def classify(store: records.Store, raw: bytes) -> Match | None:
    """Which cadence email ``raw`` answers or bounces, and how; None if none."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if (
        msg.get_content_type() == "multipart/report"
        and msg.get_param("report-type", "", header="content-type") == "delivery-status"
    ):
        return _bounce(store, msg)
    refs = _MSGID.findall(str(msg.get("In-Reply-To", ""))) + list(
        reversed(_MSGID.findall(str(msg.get("References", ""))))
    )
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    with store.reading() as conn:
        for mid in refs:  # In-Reply-To first, then the latest reference
            row = engagement.sent_row(conn, store, message_id=mid)
            if row is not None:
                return Match(str(row["key"]), "reply" if auto == "no" else "out_of_office")
    return None


def _bounce(store: records.Store, msg: email.message.Message) -> Match | None:
    status_text, original = "", ""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            status_text += (
                "\n".join(_as_text(p) for p in part.get_payload())
                if part.is_multipart()
                else _as_text(part.get_payload())
            )
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            original += _as_text(part.get_payload())
    mids = re.findall(r"(?im)^message-id:\s*(<[^<>\s]+>)", original)
    action = re.search(r"(?im)^action:\s*(\w+)", status_text)
    status = re.search(r"(?im)^status:\s*([245])\.\d{1,3}\.\d{1,3}", status_text)
    diag = re.search(r"(?im)^diagnostic-code:\s*(.+)$", status_text)
    hard = (
        action is not None
        and action.group(1).lower() == "failed"
        and status is not None
        and status.group(1) == "5"
    )
    reason = diag.group(1).strip() if diag else (status.group(0) if status else "bounce")
    with store.reading() as conn:
        for mid in mids:
            row = engagement.sent_row(conn, store, message_id=mid)
            if row is not None:
                return Match(str(row["key"]), "hard_bounce" if hard else "soft_bounce", reason)
    return None


def _as_text(payload: Any) -> str:
    if isinstance(payload, list):
        return "\n".join(_as_text(p) for p in payload)
    if isinstance(payload, email.message.Message):
        return payload.as_string()
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return str(payload)


def process(store: records.Store, raw: bytes) -> Match | None:
    """Classify one inbound message and record it (events, EmailBouncedDate, the runtime)."""
    match = classify(store, raw)
    if match is None:
        log.info("inbound message matches no cadence email; dropped")
        return None
    inbound_id = (
        str(
            email.message_from_bytes(raw, policy=email.policy.default).get("Message-ID", "")
        ).strip()
        or None
    )
    engagement.record(
        store, match.key, match.kind, inbound_id, dedupe=inbound_id is not None, reason=match.reason
    )
    return match


class Handler:
    """aiosmtpd handler: accept, then process off the event loop (database work blocks)."""

    def __init__(self, store: records.Store) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            await asyncio.get_running_loop().run_in_executor(None, process, self.store, raw)
        except Exception:  # never refuse mail for our own failure: the sender would retry it
            log.exception("inbound message could not be processed")
        return "250 OK"


class InboundListener:
    """The listener of ``--inbound-smtp-port``: start() / stop()."""

    def __init__(self, store: records.Store, host: str = "0.0.0.0", port: int = 2525) -> None:
        self.controller = Controller(Handler(store), hostname=host, port=port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
