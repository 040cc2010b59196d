"""A Sender that delivers AutoSendAnEmail steps over real SMTP through an outbox.

Two phases, so that the outbox row is durable before any byte reaches the relay:

1. In the worker's transaction (``begin``, ``prefetch`` of the batch's rows, ``send``) the
   checks run; a send that passes is rendered and written as an outbox row (status
   ``pending``, its Message-ID, the full MIME text) and the step stays Queued, due at once.
   Nothing is sent yet.
2. After that commit (``after_commit``) each staged row is delivered: the row is marked
   ``sending`` (one statement, committed on a connection held for the run), then MAIL,
   RCPT, DATA, the body and the final "." that makes the relay accept the message go out.
   A refusal marks it ``retry`` or ``failed`` (the step's next wake-up applies that). The
   acceptances of a chunk are recorded in one commit (``sent``, EmailMessage and Task) that
   also completes their steps through the worker's batch path (``Worker.complete_sent``):
   one transition per sent email. A step that commit cannot take is woken instead.

A crash before the ``sending`` mark leaves ``pending``: the message was never accepted, it is
sent again with the same Message-ID. The relay's 250 for a message is recorded (``accepted``)
in the transaction of the next message's ``sending`` mark (or the chunk's final commit), so
at any moment at most one row per worker is ``sending``, and only it is in doubt after a
crash: the "." may not have left (the relay discarded the message) or may have been accepted
(only between its "." and the next commit: marking before MAIL keeps that window to the
relay's reply, not the next message's whole exchange).
That row becomes ``unknown`` (an ``unknown`` engagement event reports it, with its
Message-ID in the log) and is sent again with the same Message-ID and body, so no email is
lost; a relay or mailbox that keeps one copy per Message-ID shows it once, one that does not
may show it twice. ``SmtpConfig.resend_unknown=False`` reports it instead (never twice, and
possibly lost). ``accepted`` rows of a dead worker are sent, never resent. The mark is a
guarded update from ``pending``, so two workers can never both reach the "." for one row.

A step the recording commit could not complete (another worker rescheduled it to the lease's
end: it saw the row leased) is made due at once, so it completes as soon as its email is
accepted.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opencadence import errors
from opencadence.cadence import runtime
from opencadence.cadence import sender as senders
from opencadence.cadence.decision import SendResult
from opencadence.email import activity, checks, engagement, message, settings, templates, windows
from opencadence.metadata.sales_engagement import TARGET_OBJECTS
from opencadence.storage import mail, records
from opencadence.storage.runs import RunStore

log = logging.getLogger(__name__)

#: How long a staged or in-flight row belongs to the worker that staged it.
LEASE = timedelta(minutes=2)
#: Delays before retrying a transient failure (attempt 1, 2, ...), and the rate-limit ones.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
RATE_BACKOFF = (
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
)
#: Acceptances recorded per commit during delivery.
FINALIZE_EVERY = 200
#: SMTP attempts before RETRIES_MAX_EXCEEDED.
MAX_ATTEMPTS = 5
_RATE = re.compile(r"rate.?limit|too many|throttl|exceeded|slow down", re.I)


class DeliveryError(errors.OpenCadenceError):
    """One SMTP delivery attempt failed; ``code`` is the ErrorCode, ``transient`` asks a retry."""

    def __init__(self, message: str, code: str, transient: bool) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    tls: str = "none"  # starttls | tls | none
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = None
    #: open/click tracking, on when both are set (links point at ``public_url``)
    public_url: str | None = None
    tracking_secret: bytes | None = None
    #: a send a crash left ``unknown`` is sent again with its Message-ID (False: reported only)
    resend_unknown: bool = True
    #: how long a staged or in-flight row belongs to its worker (a dead worker's rows wait
    #: this long before another takes them over); $OPENCADENCE_SMTP_LEASE_SECONDS
    lease: timedelta = LEASE


def config_from_options(
    relay: str,
    *,
    user: str | None = None,
    password: str | None = None,
    tls: str = "starttls",
    public_url: str | None = None,
    tracking_secret: bytes | None = None,
    environ: Mapping[str, str] | None = None,
) -> SmtpConfig:
    """The relay of ``--smtp-relay HOST:PORT`` and friends; the credentials fall back to
    $OPENCADENCE_SMTP_USER / $OPENCADENCE_SMTP_PASSWORD (kept off the command line), the
    lease to $OPENCADENCE_SMTP_LEASE_SECONDS."""
    env = os.environ if environ is None else environ
    host, _, port = relay.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--smtp-relay must be HOST:PORT, not {relay!r}")
    if tls not in ("starttls", "tls", "none"):
        raise ValueError(f"--smtp-tls must be starttls, tls or none, not {tls!r}")
    lease = env.get("OPENCADENCE_SMTP_LEASE_SECONDS")
    return SmtpConfig(
        lease=timedelta(seconds=float(lease)) if lease else LEASE,
        host=host.strip("[]"),
        port=int(port),
        tls=tls,
        user=user or env.get("OPENCADENCE_SMTP_USER") or None,
        password=password or env.get("OPENCADENCE_SMTP_PASSWORD") or None,
        public_url=public_url,
        tracking_secret=tracking_secret,
    )


def classify(stage: str, code: int, text: str) -> DeliveryError:
    """The ErrorCode of a relay reply ``code`` at ``stage`` (connect, auth, mail, rcpt, data, dot)."""
    msg = f"{stage}: {code} {text}"
    if 400 <= code < 500:
        if code == 421 and stage == "connect" or _RATE.search(text):
            return DeliveryError(msg, "MAIL_PROVIDER_RATE_LIMIT_REACHED", True)
        return DeliveryError(msg, "RETRY_LATER", True)
    if stage == "auth" or code in (530, 535, 534, 538):
        return DeliveryError(msg, "FIX_WITH_RECONNECT", False)
    if stage == "mail":
        return DeliveryError(
            msg, "INVALID_USER_EMAIL" if code == 501 else "SENDER_MAILBOX_NOT_FOUND", False
        )
    if stage == "rcpt":
        return DeliveryError(
            msg, "INVALID_TARGET_EMAIL" if code == 501 else "TARGET_EMAIL_BOUNCED", False
        )
    if code == 552:  # message size exceeds the relay's limit
        return DeliveryError(msg, "TEMPLATE_TOO_LARGE", False)
    log.error("relay refused a cadence email: %s", msg)
    return DeliveryError(msg, "UNKNOWN", False)


@dataclass
class SmtpSender:
    """The real Sender (see the module docstring). One instance per worker process."""

    store: records.Store
    config: SmtpConfig
    _staged: list[str] = field(default_factory=list)
    _completed: set[str] = field(default_factory=set)
    _tx: records.Tx | None = None
    _cache: checks.Cache | None = None
    _smtp: smtplib.SMTP | None = None
    #: keys the relay accepted since the last ``sending`` mark (marked ``accepted`` with it)
    _unmarked: list[str] = field(default_factory=list)
    #: the worker whose steps a delivered email completes (``bind_worker``), if any
    _worker: Any = None
    #: keys marked sent in the transaction completing their steps (``send`` reports them sent)
    _just_sent: set[str] = field(default_factory=set)
    #: the connection the per-message marks of one delivery run commit on
    _held: records.Held | None = None
    #: whether the delivery under way is of the runtime's emails (not of reps' own)
    _complete_steps: bool = True
    #: what ``prefetch`` read for the batch's sends: outbox rows (None: no row yet) and
    #: enrolments (tracker, step, enrolled, cadence) by key
    _rows: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    _enrolments: dict[str, tuple[str | None, str | None, datetime | None, str | None]] = field(
        default_factory=dict
    )
    #: the batch's new ``pending`` rows, written together by ``flush`` (before its commit)
    _inserts: list[dict[str, Any]] = field(default_factory=list)
    #: what composing each staged email gave its records (``message.Parts``), with its MIME
    _parts: dict[str, tuple[str, message.Parts]] = field(default_factory=dict)

    def bind_worker(self, worker: Any) -> None:
        """The worker (``cadence.worker.Worker``) this sender delivers for: a delivered email
        completes its step through ``worker.complete_sent`` in the commit recording it."""
        self._worker = worker

    @property
    def outbox(self) -> mail.Outbox:
        return mail.outbox(self.store.meta)

    def _now(self) -> datetime:
        return self.store.clock.now().replace(tzinfo=None)

    # -- phase 1: in the worker's transaction ---------------------------------------------------

    def begin(self, tx: records.Tx) -> None:
        self._tx, self._staged, self._completed = tx, [], set()
        self._cache = checks.Cache(self.store, tx.conn)
        self._rows, self._enrolments, self._parts, self._inserts = {}, {}, {}, []

    def prefetch(self, emails: list[senders.OutgoingEmail], now: datetime) -> None:
        """The worker's batch is about to ``send`` these: read their outbox rows, step
        trackers and targets in a few statements for the whole batch instead of several
        per email (in the batch's transaction; only each email's own ``send`` writes what
        was read, so nothing read here goes stale before it is used)."""
        if self._tx is None or self._cache is None:
            return
        conn = self._tx.conn
        keys = [e.key for e in emails]
        if not keys:
            return
        rows = self.outbox.rows(conn, keys)
        self._rows = {k: rows.get(k) for k in keys}
        new = [k for k in keys if rows.get(k) is None or rows[k]["status"] == "waiting"]
        if not new:
            return
        self._enrolments = mail.enrolments(conn, self.store.meta, new)
        targets: dict[str, list[str]] = {}
        for e in emails:
            obj = TARGET_OBJECTS.get(e.target_id[:3])
            if e.key in new and obj is not None:
                targets.setdefault(obj, []).append(e.target_id)
        for obj, target_ids in targets.items():
            self._cache.prefetch(obj, target_ids)

    def flush(self) -> None:
        """Write the batch's new ``pending`` rows (one executemany statement); the worker
        calls it once the batch's sends are done, before its commit. Until then nothing
        reads them: the caps count this batch's admissions in memory (``Cache.admitted``)
        and the other reads (waiting rows, a tracker's earlier emails, the row of another
        step) never concern a row this batch adds."""
        if self._inserts and self._tx is not None:
            self.outbox.insert_many(self._tx.conn, self._inserts)
        self._inserts = []

    def send(self, email: senders.OutgoingEmail, now: datetime) -> SendResult:
        try:
            return self._send(email, now)
        except (mail.DatabaseError, errors.StaleTransition):
            raise  # the worker's transaction is broken: it rolls back and retries
        except Exception:  # a bug must not wedge the batch: this step fails, visibly
            log.exception("unexpected failure preparing the email of %s", email.key)
            return SendResult(False, "UNKNOWN")

    def _send(self, email: senders.OutgoingEmail, now: datetime) -> SendResult:
        if self._tx is None:
            raise RuntimeError("SmtpSender.send outside a worker transaction (begin not called)")
        if self._just_sent:  # ``complete_sent``: the transaction recording these sends
            if email.key in self._just_sent:
                self._completed.add(email.key)
                return SendResult(True)
            return SendResult(False, None, now)  # not delivered here: the next batch sends it
        conn, outbox = self._tx.conn, self.outbox
        row = self._rows.pop(email.key) if email.key in self._rows else outbox.row(conn, email.key)
        if row is None:
            return self._admit(conn, email, now, None)
        status = row["status"]
        lease = row["lease_until"]
        if status == "sent":
            self._completed.add(email.key)
            return SendResult(True)
        if status == "failed":
            return SendResult(False, row["error_code"] or "UNKNOWN")
        if status in ("sending", "accepted"):
            if lease is not None and lease > now:
                return SendResult(False, None, lease)  # its worker records it and wakes us
            if status == "accepted":
                self._reconcile_one(self._tx, email.key, now)
                return SendResult(True)
            self._unknown(conn, email.key, row.get("message_id"), now)
            status = "unknown"
        if status == "unknown":
            if not self.config.resend_unknown:
                return SendResult(True)  # reported (the event), counted as sent
            return self._stage(conn, email.key, now)  # same Message-ID and body
        if status == "waiting":
            return self._admit(conn, email, now, row)
        if status == "retry" and row["next_at"] is not None and row["next_at"] > now:
            return SendResult(False, row["error_code"], row["next_at"])
        if status == "pending" and lease is not None and lease > now:
            return SendResult(False, None, lease)  # another worker is delivering it
        # pending whose worker died before the final "." or a retry now due: stage again
        return self._stage(conn, email.key, now)

    def send_composed(
        self, email: senders.OutgoingEmail, composed: templates.Rendered, now: datetime
    ) -> None:
        """Phase 1 of a rep's own email on a manual SendAnEmail step (in the caller's
        transaction, after ``begin``): the same checks (but no template, no caps and no
        sending window: the rep sends now), an outbox row ``pending`` with the MIME text,
        delivered by ``after_commit`` as the runtime's emails. SendRefused if a check fails
        (the caller's transaction rolls back: nothing is written)."""
        if self._tx is None:
            raise RuntimeError("SmtpSender.send_composed outside a transaction (begin not called)")
        conn = self._tx.conn
        if self.outbox.row(conn, email.key) is not None:
            raise checks.SendRefused("This step's email was sent already", "INVALID_DRAFT")
        self._admit(conn, email, now, None, composed)

    def deliver_manual(self, now: datetime | None = None, limit: int = 50) -> int:
        """Deliver again the reps' own emails a crash or a transient relay failure left
        undelivered (``Outbox.due_manual``), with their Message-ID and body; returns how
        many were taken. The worker calls it when it is idle (``Worker.loop``)."""
        now = now or self._now()
        with self.store.reading() as conn:  # an idle worker looks without taking a write lock
            found = self.outbox.due_manual(
                conn, self.store.meta, now, limit, unknown=self.config.resend_unknown
            )
        if not found:
            return 0
        with self.store.transaction() as tx:
            keys = self.outbox.due_manual(
                tx.conn, self.store.meta, now, limit, unknown=self.config.resend_unknown
            )
            self._tx, self._staged, self._completed = tx, [], set()
            for key in keys:
                self._stage(tx.conn, key, now)
        self._deliver(complete=False)  # a rep's step completed when it was sent
        return len(keys)

    def _stage(self, conn: mail.Connection, key: str, now: datetime) -> SendResult:
        """Take the row over for delivery after this commit. The update is guarded: a worker
        still delivering the row (it reached the row after its lease ran out) keeps it, and
        its recorded send wakes the step."""
        lease = now + self.config.lease
        if not self.outbox.stage(conn, key, lease, now):
            return SendResult(False, None, lease)
        self._staged.append(key)
        return SendResult(False, None, now)

    def _admit(
        self,
        conn: mail.Connection,
        email: senders.OutgoingEmail,
        now: datetime,
        row: Mapping[str, Any] | None,
        composed: templates.Rendered | None = None,
    ) -> SendResult:
        known = self._enrolments.pop(email.key, None)
        if known is None:
            tracker_id, step_id, enrolled = mail.enrolment(conn, self.store.meta, email.key)
            cadence_id = (
                mail.cadence_of(conn, self.store.meta, email.key) if composed is None else None
            )
        else:
            tracker_id, step_id, enrolled, cadence_id = known
        base = {
            "owner_id": email.owner_id,
            "target_id": email.target_id,
            "template_id": email.template_id,
            "tracker_id": tracker_id,
            "step_id": step_id,
            "enrolled_at": enrolled,
        }
        cache = self._cache or checks.Cache(self.store, conn)
        wait = None if composed is not None else _window_wait(cache, email, now, cadence_id)
        if wait is not None:  # outside the sending window: stays Queued, no ErrorCode
            return SendResult(False, None, wait)
        try:
            prepared = checks.prepare(
                cache,
                auto=composed is None,
                template_id=email.template_id,
                owner_id=email.owner_id,
                target_id=email.target_id,
                composed=composed,
            )
            if composed is None:
                checks.check_caps(cache, now, email.owner_id, email.key, enrolled)
        except checks.SendRefused as exc:
            if composed is not None:
                raise
            status = "waiting" if exc.retry_at is not None else "failed"
            self._put(
                conn,
                email.key,
                row,
                {**base, "status": status, "error_code": exc.code, "detail": exc.message},
            )
            return SendResult(False, exc.code, exc.retry_at)
        # short enough never to be folded; the key makes a reply traceable to its step
        message_id = f"<{email.key}.{uuid.uuid4().hex[:16]}@{prepared.sender.split('@')[1]}>"
        track = (
            message.Tracking(self.config.tracking_secret, self.config.public_url)
            if self.config.tracking_secret and self.config.public_url
            else None
        )
        mime, parts = message.compose_parts(
            cache,
            prepared,
            key=email.key,
            message_id=message_id,
            tracker_id=tracker_id,
            step_id=step_id,
            now=now,
            track=track,
        )
        self._put(
            conn,
            email.key,
            row,
            {
                **base,
                "status": "pending",
                "error_code": None,
                "detail": None,
                "message_id": message_id,
                "cap_day": checks.day_of(now),
                "sender": prepared.sender,
                "recipient": prepared.recipient,
                "mime": mime,
                "lease_until": now + self.config.lease,
                "tracked": track is not None and prepared.rendered.html is not None,
            },
            buffered=composed is None,  # a worker's batch: written by ``flush``
        )
        if parts is not None:
            self._parts[email.key] = (mime, parts)
        self._staged.append(email.key)
        return SendResult(False, None, now)

    def _put(
        self,
        conn: mail.Connection,
        key: str,
        row: Mapping[str, Any] | None,
        values: dict[str, Any],
        buffered: bool = False,
    ) -> None:
        """Insert or update the row of ``key``; a new row ``buffered`` waits for ``flush``."""
        if row is None:
            new = {"key": key, "attempts": 0, "created_at": self._now(), **values}
            if buffered:
                self._inserts.append(new)
            else:
                self.flush()
                self.outbox.insert(conn, new)
        else:
            self.flush()
            self.outbox.update(conn, key, values)

    def cancel(self, key: str) -> None:
        if key in self._completed:  # the runtime unsends every step it closes, sent ones too
            self._completed.discard(key)
            return
        with self.store.transaction() as tx:
            self.outbox.cancel(tx.conn, key)

    # -- phase 2: after the commit --------------------------------------------------------------

    def after_commit(self) -> None:
        self._deliver(complete=True)

    def _deliver(self, complete: bool) -> None:
        if self._inserts:  # never flushed (a caller without ``flush``): not written
            log.error(
                "%d staged emails were never written; sent at their next wake", len(self._inserts)
            )
            unwritten = {r["key"] for r in self._inserts}
            self._staged = [k for k in self._staged if k not in unwritten]
            self._inserts = []
        staged, self._staged, self._tx, self._cache = self._staged, [], None, None
        if not staged:
            return
        with self.store.held() as held:
            self._held, self._complete_steps = held, complete
            try:
                self._deliver_chunks(staged)
            finally:
                self._held, self._complete_steps = None, True

    def _deliver_chunks(self, staged: list[str]) -> None:
        for i in range(0, len(staged), FINALIZE_EVERY):
            with self.store.reading() as conn:
                rows = self.outbox.rows(conn, staged[i : i + FINALIZE_EVERY])
            accepted: list[dict[str, Any]] = []
            self._unmarked = []  # accepted by the relay, not yet marked in the database
            for key in staged[i : i + FINALIZE_EVERY]:
                row = rows.get(key)
                if row is None or row["status"] != "pending":
                    continue
                try:
                    if self._transmit(row):
                        accepted.append(row)
                        self._unmarked.append(row["key"])
                except DeliveryError as exc:
                    self._failed(row, exc)
                except (mail.DatabaseError, errors.UnableToLockRow):
                    # the database, not the email: without its "." the relay discards the
                    # message; the row stays leased and is delivered again (the worker backs off)
                    self._drop()
                    self._save_unmarked()
                    raise
                except Exception as exc:  # a bug: fail this email visibly, deliver the rest
                    log.exception("unexpected failure delivering %s", key)
                    self._drop()
                    self._failed(row, DeliveryError(f"unexpected: {exc!r}", "UNKNOWN", False))
            # recording the acceptances together costs one commit per chunk, not one per
            # message; only the last one (still ``sending``) is in doubt if we die first.
            # That commit completes their steps too (``complete_sent``); a step it could not
            # take (another worker holds or rescheduled it) is woken for the next batch.
            self._record_unmarked()
            done = (self._accepted(accepted) or set()) if accepted else set()
            self._wake([r for r in accepted if r["key"] not in done])

    def _transmit(self, row: dict[str, Any]) -> bool:
        """One SMTP transaction; False if another worker took the row first.

        The row is marked ``sending`` before its MAIL command (in the commit that records the
        previous message's acceptance), so a crash anywhere before its "." leaves a
        ``sending`` row the relay discarded, and the only message both in doubt and possibly
        accepted is one whose reply had not been recorded yet."""
        if not self._mark_sending(row["key"]):
            return False
        for reused in (True, False):
            smtp = self._connection()
            try:
                code, text = smtp.mail(row["sender"])
                break
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if not reused:
                    raise DeliveryError("relay closed the connection", "RETRY_LATER", True) from exc
        try:
            if code != 250:
                raise classify("mail", code, _s(text))
            code, text = smtp.rcpt(row["recipient"])
            if code not in (250, 251):
                raise classify("rcpt", code, _s(text))
            smtp.putcmd("data")
            code, text = smtp.getreply()
            if code != 354:
                raise classify("data", code, _s(text))
            # the body and its final "." in one write: if it fails, the relay never saw the
            # whole terminator (its last bytes) and discards the message
            self._end_data(smtp, _dot_stuffed(row["mime"]) + b".\r\n")
        except DeliveryError:
            self._reset()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise DeliveryError(f"relay connection failed: {exc}", "RETRY_LATER", True) from exc
        try:
            code, text = smtp.getreply()
            self._replied(row["key"], code)
        except (OSError, smtplib.SMTPException) as exc:
            # the "." may have been accepted: never resend (the row stays ``sending``)
            self._drop()
            log.warning(
                "reply to the end of data lost for %s: %s; treated as accepted", row["key"], exc
            )
            return True
        if code != 250:
            raise classify("dot", code, _s(text))
        return True

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        c = self.config
        # smtplib's own default context verifies nothing: always check the relay's certificate
        context = c.ssl_context or ssl.create_default_context()
        try:
            if c.tls == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
            smtp.ehlo()
            if c.tls == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
        except smtplib.SMTPConnectError as exc:
            raise classify("connect", exc.smtp_code, _s(exc.smtp_error)) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"cannot reach the relay: {exc}", "RETRY_LATER", True) from exc
        if smtp.sock is not None:
            # small writes that each wait for a reply (a command, a body whose last segment is
            # short): without TCP_NODELAY, Nagle can hold one for the relay's delayed ACK
            # (~40 ms a message)
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if c.user:
            try:
                smtp.login(c.user, c.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                smtp.close()
                raise classify("auth", exc.smtp_code, _s(exc.smtp_error)) from exc
            except smtplib.SMTPNotSupportedError as exc:
                smtp.close()
                raise DeliveryError(
                    f"relay offers no authentication: {exc}", "FIX_WITH_RECONNECT", False
                ) from exc
        self._smtp = smtp
        return smtp

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
        self._drop()

    def _mark_sending(self, key: str) -> bool:
        """Commit ``sending`` (and ``accepted`` for the messages the relay accepted since the
        last mark) before any byte of this message goes out: one statement and one commit on
        the connection held for the delivery run. A crash before its "." leaves this one row
        ``sending``: ``unknown`` once its lease ends, then resent (see the module); the relay
        never accepted it."""
        lease = self._now() + self.config.lease
        if self._held is None:
            with self.store.held() as held:
                with held.commit() as conn:
                    ok = self.outbox.mark_next(conn, key, lease, self._unmarked)
        else:
            with self._held.commit() as conn:
                ok = self.outbox.mark_next(conn, key, lease, self._unmarked)
        self._unmarked = []
        return ok

    def _end_data(self, smtp: smtplib.SMTP, data: bytes) -> None:
        """Write the dot-stuffed body and the final "." (tests crash here, before it)."""
        smtp.send(data)

    def _replied(self, key: str, code: int) -> None:
        """A hook once the relay replied to the end of data (tests crash here)."""

    def _record_unmarked(self) -> None:
        """The chunk's last acceptance recorded at once (one UPDATE, one commit), so the
        message in doubt at a crash during the longer commit that records the chunk and
        completes its steps is none, not the chunk's last one. A failure is left to that
        commit, which marks ``sending`` rows sent as well."""
        if not self._unmarked or self._held is None:
            return
        try:
            with self._held.commit() as conn:
                self.outbox.mark_accepted(conn, self._unmarked)
            self._unmarked = []
        except (mail.DatabaseError, errors.UnableToLockRow):
            log.debug("acceptances not recorded ahead of the chunk's commit", exc_info=True)

    def _save_unmarked(self) -> None:
        """Best effort after a database failure: record what the relay accepted, so only the
        message in flight is in doubt."""
        try:
            with self.store.transaction() as tx:
                self.outbox.mark_accepted(tx.conn, self._unmarked)
            self._unmarked = []
        except Exception:
            log.warning("could not record %d accepted sends", len(self._unmarked))

    def _wake(self, rows: list[dict[str, Any]]) -> None:
        """After the sends are recorded, in a transaction of its own (it may wait for another
        worker's batch, holding nothing that batch needs): steps another worker rescheduled
        to the lease's end are due now. Best effort: the lease's end wakes them anyway."""
        steps = {(r.get("tracker_id") or "", r["key"]) for r in rows}
        if not steps:
            return
        try:
            with self.store.transaction() as tx:
                RunStore(self.store).wake(tx.conn, steps, self._now())
        except (mail.DatabaseError, errors.OpenCadenceError):
            log.warning("could not wake %d sent steps; they wake at their lease's end", len(steps))

    def _accepted(self, rows: list[dict[str, Any]]) -> set[str] | None:
        """Record the chunk's acceptances (``_finish``) and, for the runtime's emails and a
        bound worker, complete their steps in the same commit; returns the keys whose steps that
        commit completed. If the steps cannot be completed there (a concurrent change), the
        sends are recorded alone and the steps are left to the next batch."""
        if not rows:
            return set()
        now = self._now()
        if self._complete_steps and self._worker is not None:
            try:
                return self._finish_and_complete(rows, now)
            except errors.StaleTransition:
                log.info("steps of %d sent emails changed concurrently; woken instead", len(rows))
            except Exception:  # recorded alone below, where each failure has its handling
                log.debug("recording %d sends with their steps failed", len(rows), exc_info=True)
        try:
            with self.store.transaction() as tx:
                self._finish(tx, rows, now)
        except (mail.DatabaseError, errors.UnableToLockRow):
            # the database failed, not the email: every row stays ``accepted`` (sent once its
            # lease ends), never resent and never failed
            self._save_unmarked()
            raise
        except Exception:  # find the one that fails: each alone
            for row in rows:
                try:
                    with self.store.transaction() as tx:
                        self._finish(tx, [row], now)
                except Exception as exc:  # the relay has it: record why, never resend
                    log.exception("post-send failure for %s", row["key"])
                    with self.store.transaction() as tx:
                        # ``accepted`` (recorded by a later mark) or still ``sending``
                        self.outbox.update_if(
                            tx.conn,
                            row["key"],
                            ("sending", "accepted"),
                            {
                                "status": "failed",
                                "sent_at": now,
                                "error_code": "POST_SEND_EXCEPTION",
                                "detail": str(exc)[:2000],
                                "lease_until": None,
                            },
                        )
        return set()

    def _finish_and_complete(self, rows: list[dict[str, Any]], now: datetime) -> set[str]:
        """One transaction: the sends recorded (``_finish``; their events first, as when
        they were two commits) and the steps of those it moved completed by the worker's
        own batch path. A failure rolls both back; ``_accepted`` then records the sends
        alone, with its handling of each failure, and the steps wake for the next batch."""
        cancels: list[str] = []
        done: set[str] = set()
        with self.store.transaction() as tx:
            moved = self._finish(tx, rows, now)
            tx.flush_events()  # the EmailMessage and Task events before the steps' events
            sent = {
                str(r["tracker_id"]): r["key"]
                for r in rows
                if r["key"] in moved and r.get("tracker_id")
            }
            self._tx, self._just_sent, self._completed = tx, set(sent.values()), set()
            try:
                trackers, cancels = self._worker.complete_sent(tx, sent, naive_ms(now))
            finally:
                self._tx, self._just_sent = None, set()
            done = {sent[t] for t in trackers}
        for key in cancels:  # as the worker does: only once the batch is committed
            self.cancel(key)
        return done

    def _finish(self, tx: records.Tx, rows: list[dict[str, Any]], now: datetime) -> set[str]:
        """Mark ``rows`` sent and record the sends (two executemany statements); their
        trackers are woken once this commits (``_wake``). Only the rows this call moved are
        recorded: one a restarted worker already reconciled (this worker's lease ran out
        before it recorded the acceptance) has its EmailMessage and Task already."""
        moved = self.outbox.mark_sent(tx.conn, [r["key"] for r in rows], now)
        rows = [r for r in rows if r["key"] in moved]
        mail.event_log(self.store.meta).record_many(
            tx.conn,
            "send",
            now,
            [(r["key"], "tracked" if r.get("tracked") else None) for r in rows],
        )
        self._log_sent(tx, rows, now)
        for row in rows:
            self.after_accept(tx, row, now)
        # the sends are counted on their steps when the steps complete (the runtime's batch)
        return moved

    def _log_sent(self, tx: records.Tx, rows: list[dict[str, Any]], now: datetime) -> None:
        """The EmailMessage and Task of each sent row, in the transaction marking it sent."""
        activity.log_sent(tx, [self._sent_email(r) for r in rows], now)

    def _sent_email(self, row: Mapping[str, Any]) -> activity.SentEmail:
        """The email of a sent row: from what composing it gave, when this worker composed
        exactly that MIME (``activity.from_parts``), else read back from the MIME."""
        composed = self._parts.pop(row["key"], None)
        if composed is not None and row.get("message_id") and composed[0] == row["mime"]:
            return activity.from_parts(row, composed[1])
        return activity.from_outbox(row)

    def after_accept(self, tx: records.Tx, row: Mapping[str, Any], now: datetime) -> None:
        """A hook once the relay accepted a message (in the transaction recording it)."""

    def _failed(self, row: dict[str, Any], exc: DeliveryError) -> None:
        now = self._now()
        attempts = int(row["attempts"]) + 1
        with self.store.transaction() as tx:
            if exc.transient and attempts < MAX_ATTEMPTS:
                delays = RATE_BACKOFF if exc.code == "MAIL_PROVIDER_RATE_LIMIT_REACHED" else BACKOFF
                self._set(
                    tx.conn,
                    row["key"],
                    "pending",
                    status="retry",
                    error_code=exc.code,
                    detail=exc.message[:2000],
                    attempts=attempts,
                    lease_until=None,
                    next_at=now + delays[min(attempts, len(delays)) - 1],
                )
                return
            code = "RETRIES_MAX_EXCEEDED" if exc.transient else exc.code
            self._set(
                tx.conn,
                row["key"],
                "pending",
                status="failed",
                error_code=code,
                detail=exc.message[:2000],
                attempts=attempts,
                lease_until=None,
            )
            bounced = exc.code == "TARGET_EMAIL_BOUNCED"
            if bounced:  # refused at RCPT: a hard bounce, reported at once
                engagement.mark_bounced(tx, row["target_id"], exc.message, now)
                engagement.record_event(
                    tx.conn, self.store, row["key"], "hard_bounce", now, exc.message[:2000]
                )
                engagement.count_event(tx, row["key"], "hard_bounce", now)
        if bounced:
            try:
                runtime.engagement(self.store, row["target_id"], "EmailHardBounce", row["key"])
            except errors.StaleTransition:
                log.warning("hard bounce of %s not applied: tracker busy", row["key"])

    def _set(self, conn: mail.Connection, key: str, expect: str, **values: Any) -> None:
        # a refusal of the "." finds the row ``sending``: it was not accepted, record it
        allowed = ("pending", "sending") if expect == "pending" else (expect,)
        self.outbox.update_if(conn, key, allowed, values)

    # -- restart ---------------------------------------------------------------------------------

    def _reconcile_one(self, tx: records.Tx, key: str, now: datetime) -> None:
        """Record the send of a row its worker left ``accepted`` (lease over) — only if this
        transaction moved it: a worker slow rather than dead may have recorded it (its "send"
        event, EmailMessage and Task) while this one waited for the row, and a second record
        would double them."""
        if not self.outbox.reconcile_sent(tx.conn, key, now):
            return
        engagement.record_event(tx.conn, self.store, key, "send", now)
        row = self.outbox.row(tx.conn, key)
        self._log_sent(tx, [row] if row is not None else [], now)

    def _unknown(
        self, conn: mail.Connection, key: str, message_id: str | None, now: datetime
    ) -> None:
        """A row its dead worker left ``sending``: ``unknown``, reported by an event."""
        if self.outbox.mark_unknown(conn, key):
            engagement.record_event(conn, self.store, key, mail.UNKNOWN_EVENT, now, message_id)
            log.warning(
                "send of %s (Message-ID %s) interrupted by a crash: outcome unknown, %s",
                key,
                message_id,
                "resent with the same Message-ID" if self.config.resend_unknown else "not resent",
            )

    def reconcile(self) -> int:
        """On start: rows a dead worker left ``accepted`` are sent (the relay said 250); the
        one it left ``sending`` is ``unknown`` (resent by its step, now due). Rows left
        ``pending`` are resent by the step's next wake-up. Returns rows reconciled."""
        now = self._now()
        with self.store.transaction() as tx:
            found = self.outbox.abandoned(tx.conn, now)
            for key, status in found:
                if status == "accepted":
                    self._reconcile_one(tx, key, now)
                else:
                    row = self.outbox.row(tx.conn, key) or {}
                    self._unknown(tx.conn, key, row.get("message_id"), now)
            rows = list(self.outbox.rows(tx.conn, [k for k, _ in found]).values())
        self._wake(rows)
        return len(found)


def naive_ms(now: datetime) -> datetime:
    """``now`` as the worker's batches take it (naive UTC, whole milliseconds)."""
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _window_wait(
    cache: checks.Cache, email: senders.OutgoingEmail, now: datetime, cadence_id: str | None
) -> datetime | None:
    """When the cadence (``cadence_id``) of the step's sending window next opens, if ``now``
    is outside it."""
    snap = cache.settings
    window = windows.Window(
        *(
            snap.user(cadence_id or settings.ORG, name)
            for name in ("window_days", "window_start_minute", "window_end_minute")
        )
    )
    if window.always:
        return None
    owner = cache.record("User", email.owner_id) or {}
    return windows.next_open(now, window, owner.get("TimeZoneSidKey") or "GMT")


def _s(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _dot_stuffed(mime: str) -> bytes:
    data = re.sub(r"\r?\n", "\r\n", mime).encode("utf-8")
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"
