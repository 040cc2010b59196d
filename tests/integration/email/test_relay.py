"""ErrorCodes from the relay's replies, retries with backoff, crash recovery through the outbox
and the daily caps, against a real aiosmtpd relay on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import settings, smtp_sender
from opencadence.storage import records, schema
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_send import auto_step, outbox_rows


def _state(store: records.Store, target: str) -> tuple[str, str | None]:
    step = auto_step(store, target)
    return step["State"], step["ErrorCode"]


def test_relay_refusals(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    tid = template()
    cases = [
        (
            "mail_replies",
            "550 5.1.0 Sender address rejected: not owned by user",
            "SENDER_MAILBOX_NOT_FOUND",
        ),
        ("mail_replies", "501 5.1.7 Bad sender address syntax", "INVALID_USER_EMAIL"),
        ("rcpt_replies", "501 5.1.3 Bad recipient address syntax", "INVALID_TARGET_EMAIL"),
        ("data_replies", "554 5.7.1 Message rejected as spam", "UNKNOWN"),
        ("data_replies", "552 5.3.4 Message size exceeds fixed limit", "TEMPLATE_TOO_LARGE"),
    ]
    for queue, reply, code in cases:
        getattr(relay, queue).append(reply)
        target = enrol(tid)
        work.run_until_idle()
        assert _state(store, target) == ("Error", code), reply
    assert relay.received == []


def test_recipient_unknown_is_a_hard_bounce(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    relay.rcpt_replies.append("550 5.1.1 User unknown")
    target = enrol(template())
    work.run_until_idle()
    assert _state(store, target) == ("Error", "TARGET_EMAIL_BOUNCED")
    contact = store.get("Contact", target) or {}
    assert (
        contact["EmailBouncedDate"] is not None and "User unknown" in contact["EmailBouncedReason"]
    )


def test_auth_failure_is_fix_with_reconnect(
    store: records.Store, relay: Relay, template: Template, enrol: Enrol
) -> None:
    bad = smtp_sender.SmtpSender(
        store, smtp_sender.SmtpConfig(port=relay.port, user="rep", password="wrong", timeout=5)
    )
    target = enrol(template())
    worker.Worker(store, bad).run_until_idle()
    assert _state(store, target) == ("Error", "FIX_WITH_RECONNECT")
    good = smtp_sender.SmtpSender(
        store, smtp_sender.SmtpConfig(port=relay.port, user="rep", password="secret", timeout=5)
    )
    target = enrol(template())
    worker.Worker(store, good).run_until_idle()
    good.close()
    assert _state(store, target) == ("Completed", None) and len(relay.received) == 1


def test_transient_failures_retry_with_backoff(
    store: records.Store,
    clock: ManualClock,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
) -> None:
    relay.mail_replies += [
        "451 4.3.0 Temporary local problem",
        "450 4.7.0 Rate limit exceeded, slow down",
    ]
    target = enrol(template())
    work.run_until_idle()
    assert _state(store, target) == ("Queued", "RETRY_LATER")
    clock.advance(timedelta(seconds=59))
    work.run_until_idle()
    assert relay.received == []
    clock.advance(timedelta(seconds=2))
    work.run_until_idle()
    assert _state(store, target) == ("Queued", "MAIL_PROVIDER_RATE_LIMIT_REACHED")
    (row,) = outbox_rows(store)
    assert row["attempts"] == 2 and row["next_at"] - clock.now().replace(tzinfo=None) > timedelta(
        minutes=29
    )
    clock.advance(timedelta(minutes=31))
    work.run_until_idle()
    assert _state(store, target) == ("Completed", None) and len(relay.received) == 1


def test_retries_used_up(
    store: records.Store,
    clock: ManualClock,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
) -> None:
    relay.rcpt_replies += ["452 4.2.2 Mailbox busy"] * smtp_sender.MAX_ATTEMPTS
    target = enrol(template())
    for _ in range(smtp_sender.MAX_ATTEMPTS):
        work.run_until_idle()
        clock.advance(timedelta(hours=3))
    work.run_until_idle()
    assert _state(store, target) == ("Error", "RETRIES_MAX_EXCEEDED")
    assert relay.received == []


def test_relay_down_is_retry_later(store: records.Store, template: Template, enrol: Enrol) -> None:
    from tests.integration.email.conftest import free_port

    down = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=free_port(), timeout=2))
    target = enrol(template())
    worker.Worker(store, down).run_until_idle()
    assert _state(store, target) == ("Queued", "RETRY_LATER")


class _FailsAfterAccept(smtp_sender.SmtpSender):
    def after_accept(self, tx: records.Tx, row: Any, now: Any) -> None:
        raise RuntimeError("metrics store unavailable")


def test_post_send_exception_is_never_resent(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    s = _FailsAfterAccept(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    target = enrol(template())
    w = worker.Worker(store, s)
    w.run_until_idle()
    clock.advance(timedelta(hours=1))
    w.run_until_idle()
    s.close()
    assert _state(store, target) == ("Error", "POST_SEND_EXCEPTION")
    assert len(relay.received) == 1


class _DiesBeforeDelivery(smtp_sender.SmtpSender):
    def after_commit(self) -> None:  # the process is killed right after the worker's commit
        self._staged, self._tx = [], None


def test_crash_before_end_of_data_resends_once(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    worker.Worker(
        store, _DiesBeforeDelivery(store, smtp_sender.SmtpConfig(port=relay.port))
    ).run_until_idle()
    (row,) = outbox_rows(store)
    assert row["status"] == "pending" and relay.received == []
    restarted = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    w = worker.Worker(store, restarted)
    w.run_until_idle()
    assert relay.received == []  # the dead worker's lease still holds the row
    clock.advance(smtp_sender.LEASE + timedelta(seconds=1))
    assert restarted.reconcile() == 0
    w.run_until_idle()
    restarted.close()
    assert _state(store, target) == ("Completed", None)
    assert relay.message_ids() == [row["message_id"]]


def test_crash_after_acceptance_is_never_resent(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    worker.Worker(
        store, _DiesBeforeDelivery(store, smtp_sender.SmtpConfig(port=relay.port))
    ).run_until_idle()
    ob = store.meta.tables[schema.EMAIL_OUTBOX]
    with store.transaction() as tx:  # killed once the relay's 250 was recorded as accepted
        tx.conn.execute(sa.update(ob).values(status="accepted"))
    clock.advance(smtp_sender.LEASE + timedelta(seconds=1))
    restarted = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    assert restarted.reconcile() == 1
    worker.Worker(store, restarted).run_until_idle()
    assert _state(store, target) == ("Completed", None) and relay.received == []


def test_daily_caps_wait_oldest_enrolled_first(
    store: records.Store,
    clock: ManualClock,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    clock.set(clock.now().replace(hour=12, minute=0, second=0, microsecond=0))
    with store.transaction() as tx:
        settings.put(tx.conn, "user_daily_auto_cap", 1, scope=rep)
    tid = template()
    targets = []
    for _ in range(3):
        targets.append(enrol(tid))
        clock.advance(timedelta(seconds=1))
    work.run_until_idle()
    states = [_state(store, t) for t in targets]
    assert sorted(states) == [
        ("Completed", None),
        ("Queued", "AUTO_EMAIL_DAILY_LIMIT_REACHED"),
        ("Queued", "AUTO_EMAIL_DAILY_LIMIT_REACHED"),
    ]
    waiting = [t for t, s in zip(targets, states) if s[0] == "Queued"]
    clock.advance(timedelta(hours=12))
    work.run_until_idle()
    assert _state(store, waiting[0]) == ("Completed", None)
    assert _state(store, waiting[1]) == ("Queued", "AUTO_EMAIL_DAILY_LIMIT_REACHED")
    clock.advance(timedelta(days=1))
    work.run_until_idle()
    assert _state(store, waiting[1]) == ("Completed", None) and len(relay.received) == 3


def test_org_caps(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    tid = template()
    with store.transaction() as tx:
        settings.put(tx.conn, "org_daily_auto_cap", 1)
    enrol(tid)
    work.run_until_idle()
    t = enrol(tid)
    work.run_until_idle()
    assert _state(store, t) == ("Queued", "ORG_WIDE_AUTO_EMAIL_LIMIT_REACHED")
    with store.transaction() as tx:
        settings.put(tx.conn, "org_daily_auto_cap", 10)
        settings.put(tx.conn, "org_daily_email_cap", 1)
    t = enrol(tid)
    work.run_until_idle()
    assert _state(store, t) == ("Queued", "ORG_WIDE_DAILY_EMAIL_LIMIT_REACHED")
    assert len(relay.received) == 1
