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

A one-part message with plain header values is written directly (``_single_part``), byte for
byte as the email package writes it (``_email_package``, which writes every other message).
"""

from __future__ import annotations

import binascii
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
    html = p.rendered.html
    if html is not None and track is not None:
        html = tracking.rewrite_html(html, track.secret, track.public_url, key)
    text = p.rendered.text
    subject = p.rendered.subject
    previous = _thread(cache, tracker_id, step_id, key)
    headers = [
        ("From", email.utils.formataddr((p.sender_name or "", p.sender), charset="utf-8")),
        ("To", p.recipient),
    ]
    references: tuple[str, ...] = ()
    if previous:
        last = email.parser.HeaderParser(policy=email.policy.default).parsestr(previous[-1][1])
        prior = str(last["Subject"] or subject)
        subject = prior if prior.lower().startswith("re:") else f"Re: {prior}"
        joined = " ".join(mid for mid, _ in previous)
        headers += [("In-Reply-To", previous[-1][0]), ("References", joined)]
        references = tuple(joined.split())
    headers += [
        ("Subject", subject),
        ("Date", email.utils.format_datetime(now.replace(tzinfo=UTC))),
        ("Message-ID", message_id),
    ]
    mime = _single_part(text, html, headers)
    if mime is None:
        mime = _email_package(text, html, headers)
    name = p.sender_name or None
    if not _PLAIN.fullmatch(subject) or not (name is None or _NAME.fullmatch(name)):
        return mime, None
    body = html if html is not None or text is not None else ""  # the empty html part
    return mime, Parts(subject, name, body, text, references)


def _email_package(text: str | None, html: str | None, headers: list[tuple[str, str]]) -> str:
    """The MIME text as the email package writes it (the compat32 classes: the modern
    EmailMessage header machinery cost more than the whole database work of a send)."""
    msg: email.message.Message
    if text is not None and html is not None:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(text, "plain", "utf-8"))
        msg.attach(MIMEText(html, "html", "utf-8"))
    elif text is not None:
        msg = MIMEText(text, "plain", "utf-8")
    else:
        msg = MIMEText(html or "", "html", "utf-8")
    for name, value in headers:
        if name == "Subject" and not value.isascii():
            value = email.header.Header(value, "utf-8").encode()
        msg[name] = value
    return msg.as_string()


def _single_part(text: str | None, html: str | None, headers: list[tuple[str, str]]) -> str | None:
    """The bytes ``_email_package`` writes for a one-part message whose header values are
    plain (``_PLAIN``: ``as_string`` writes them as they are, unfolded), without its
    generic machinery; None for anything else (a multipart message, a value to encode)."""
    if text is not None and html is not None:
        return None
    if not all(_PLAIN.fullmatch(value) for _, value in headers):
        return None
    kind, body = ("plain", text) if text is not None else ("html", html or "")
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError:
        return None
    head = "".join(f"{name}: {value}\n" for name, value in headers)
    # email.base64mime.body_encode: 57 bytes (76 characters) a line
    lines = "".join(
        binascii.b2a_base64(data[i : i + 57]).decode("ascii") for i in range(0, len(data), 57)
    )
    return (
        f'Content-Type: text/{kind}; charset="utf-8"\nMIME-Version: 1.0\n'
        f"Content-Transfer-Encoding: base64\n{head}\n{lines}"
    )


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
