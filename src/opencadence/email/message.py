"""The MIME message of one cadence email: headers, threading, tracking.

Threading (the step's IsThreaded, "Send Email as Reply All"): the message answers the
tracker's previous cadence email that reached the relay — In-Reply-To its Message-ID,
References every earlier one of the tracker in order, Subject "Re: " + its subject — so the
target's mail client shows one conversation.

``compose_parts`` also returns what the activity records take from the message (``Parts``:
the Subject and From name as a reader decodes them, the bodies, the References) when they are
known to equal what parsing the MIME back gives (``activity.from_outbox``): plain ASCII
header values, which ``as_string`` writes unfolded and unencoded. Otherwise it returns None
and the records are read back from the MIME, as before.
"""

from __future__ import annotations

import email.header
import email.message
import email.parser
import email.policy
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from opencadence.email import checks, tracking


@dataclass(frozen=True, slots=True)
class Tracking:
    secret: bytes
    public_url: str


#: a header value written as is and read back unchanged: printable ASCII, no leading blank,
#: no encoded word
_PLAIN = re.compile(r"(?!=*[ \t])(?:(?!=\?)[\x20-\x7e])*")
#: a From display name that ``formataddr`` writes bare and ``parseaddr`` reads back unchanged
_NAME = re.compile(r"[A-Za-z0-9'_-]+(?: [A-Za-z0-9'_-]+)*")


@dataclass(frozen=True, slots=True)
class Parts:
    """What the EmailMessage and Task of a composed message take from it (see the module)."""

    subject: str
    from_name: str | None
    html: str | None
    text: str | None
    references: tuple[str, ...]


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
    """The MIME text of the email."""
    return compose_parts(
        cache,
        p,
        key=key,
        message_id=message_id,
        tracker_id=tracker_id,
        step_id=step_id,
        now=now,
        track=track,
    )[0]


def compose_parts(
    cache: checks.Cache,
    p: checks.Prepared,
    *,
    key: str,
    message_id: str,
    tracker_id: str | None,
    step_id: str | None,
    now: datetime,
    track: Tracking | None,
) -> tuple[str, Parts | None]:
    """The MIME text of the email, and its ``Parts`` when they are known without parsing it
    back (else None)."""
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
    references: tuple[str, ...] = ()
    if previous:
        last = email.parser.HeaderParser(policy=email.policy.default).parsestr(previous[-1][1])
        prior = str(last["Subject"] or subject)
        subject = prior if prior.lower().startswith("re:") else f"Re: {prior}"
        msg["In-Reply-To"] = previous[-1][0]
        msg["References"] = " ".join(mid for mid, _ in previous)
        references = tuple(msg["References"].split())
    msg["Subject"] = (
        subject if subject.isascii() else email.header.Header(subject, "utf-8").encode()
    )
    msg["Date"] = email.utils.format_datetime(now.replace(tzinfo=UTC))
    msg["Message-ID"] = message_id
    mime = msg.as_string()
    name = p.sender_name or None
    if not _PLAIN.fullmatch(subject) or not (name is None or _NAME.fullmatch(name)):
        return mime, None
    text = p.rendered.text
    body = html if html is not None or text is not None else ""  # the empty html part
    return mime, Parts(subject, name, body, text, references)


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
