"""The MIME message of one cadence email: headers, threading, tracking.

Threading (the step's IsThreaded, "Send Email as Reply All"): the message answers the
tracker's previous cadence email that reached the relay — In-Reply-To its Message-ID,
References every earlier one of the tracker in order, Subject "Re: " + its subject — so the
target's mail client shows one conversation.
"""

from __future__ import annotations

import email.header
import email.message
import email.parser
import email.policy
import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from opencadence.email import checks, tracking


@dataclass(frozen=True, slots=True)
class Tracking:
    secret: bytes
    public_url: str


def compose(
    cache: checks.Cache,
    p: checks.Prepared,
    *,
    key: str,
    message_id: str,
    tracker_id: str | None,
    step_id: str | None,
    now: datetime,
    track: Tracking | None,
) -> str:
    # the compat32 classes: the modern EmailMessage header machinery cost more than the
    # whole database work of a send
    html = p.rendered.html
    if html is not None and track is not None:
        html = tracking.rewrite_html(html, track.secret, track.public_url, key)
    msg: email.message.Message
    if p.rendered.text is not None and html is not None:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(p.rendered.text, "plain", "utf-8"))
        msg.attach(MIMEText(html, "html", "utf-8"))
    elif p.rendered.text is not None:
        msg = MIMEText(p.rendered.text, "plain", "utf-8")
    else:
        msg = MIMEText(html or "", "html", "utf-8")
    msg["From"] = email.utils.formataddr((p.sender_name or "", p.sender), charset="utf-8")
    msg["To"] = p.recipient
    subject = p.rendered.subject
    previous = _thread(cache, tracker_id, step_id, key)
    if previous:
        last = email.parser.HeaderParser(policy=email.policy.default).parsestr(previous[-1][1])
        prior = str(last["Subject"] or subject)
        subject = prior if prior.lower().startswith("re:") else f"Re: {prior}"
        msg["In-Reply-To"] = previous[-1][0]
        msg["References"] = " ".join(mid for mid, _ in previous)
    msg["Subject"] = (
        subject if subject.isascii() else email.header.Header(subject, "utf-8").encode()
    )
    msg["Date"] = email.utils.format_datetime(now.replace(tzinfo=UTC))
    msg["Message-ID"] = message_id
    return msg.as_string()


def _thread(
    cache: checks.Cache, tracker_id: str | None, step_id: str | None, key: str
) -> list[tuple[str, str]]:
    """(Message-ID, MIME) of the tracker's earlier emails that reached the relay, oldest first,
    when the step is threaded; else []."""
    if tracker_id is None or step_id is None:
        return []
    step = cache.record("ActionCadenceStep", step_id)
    if step is None or not step.get("IsThreaded"):
        return []
    return cache.outbox.thread(cache.conn, tracker_id, key)
