"""Engagement coming back: replies and bounces through the inbound SMTP listener, opens and
clicks through signed tokens, threading, and per-step metrics, on SQLite and PostgreSQL."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage

import pytest

from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import engagement, inbound, smtp_sender, tracking
from opencadence.storage import records
from tests.integration.cadence.helpers import step_trackers, tracker_of
from tests.integration.email.conftest import Enrol, Relay, Template, free_port
from tests.integration.email.test_send import outbox_rows

SECRET = b"test-secret"
LISTEN = [
    {
        "StepName": "listen",
        "Type": "ListenerBranch",
        "WaitTimeInSeconds": 86400,
        "IsImmediateWakeUp": True,
        "BranchDefaultStepName": "nope",
        "rules": [
            {
                "RuleName": "hit",
                "OutcomeNextStepName": "yes",
                "conditions": [
                    {
                        "RuleConditionName": "c1",
                        "Resource": "EmailEngagement",
                        "Operator": "Equal",
                        "Value": "EmailLinkClick",
                    }
                ],
            }
        ],
    },
    {"StepName": "yes", "Type": "MakeACall", "ParentStepName": "listen"},
    {"StepName": "nope", "Type": "CreateTask", "ParentStepName": "listen"},
]


@pytest.fixture
def listener(store: records.Store) -> Iterator[int]:
    port = free_port()
    lst = inbound.InboundListener(store, "127.0.0.1", port)
    lst.start()
    yield port
    lst.stop()


def _deliver(port: int, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        s.send_message(msg)


def _reply(to_id: str, auto: bool = False, mid: str = "<r1@example.com>") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "c@example.com", "rep@example.com", "Re: Hello"
    msg["Message-ID"] = mid
    msg["In-Reply-To"] = to_id
    msg["References"] = to_id
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Thanks!")
    return msg


def _dsn(original_id: str, status: str, action: str) -> bytes:
    """A DSN as an MTA writes it (RFC 3464)."""
    return (
        "From: MAILER-DAEMON@example.net\r\nTo: rep@example.com\r\n"
        f"Subject: Undelivered Mail\r\nMessage-ID: <dsn-{status}@example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; c@example.com\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} user unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_id}\r\nSubject: Hello\r\n"
        "--B--\r\n"
    ).encode()


def _deliver_raw(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        s.sendmail("", ["rep@example.com"], raw)


def test_reply_exits_the_tracker(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    listener: int,
) -> None:
    target = enrol(
        template(), then=[{"StepName": "task", "Type": "CreateTask"}], exit_rules=["EmailReply"]
    )
    work.run_until_idle()
    (row,) = outbox_rows(store)
    _deliver(listener, _reply("<unknown@example.com>"))  # matches nothing: dropped
    assert tracker_of(store, target)["State"] == "Running"
    _deliver(listener, _reply(row["message_id"]))
    _deliver(listener, _reply(row["message_id"]))  # the same message twice counts once
    tr = tracker_of(store, target)
    assert tr["State"] == "Complete" and tr["CompletionReason"] == "AutomaticallyExited"
    metrics = engagement.step_metrics(store, row["step_id"])
    assert metrics["AllEmailsRepliedCount"] == 1 and metrics["AllEmailsSentCount"] == 1
    step = store.get("ActionCadenceStep", row["step_id"])  # the counts are on the step record
    assert (
        step is not None and step["AllEmailsRepliedCount"] == 1 and step["AllEmailsSentCount"] == 1
    )
    assert step["AllEmailsDeliveredCount"] == 1 and step["AllEmailsBouncedCount"] == 0


def test_out_of_office_is_no_reply(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    listener: int,
) -> None:
    target = enrol(
        template(), then=[{"StepName": "task", "Type": "CreateTask"}], exit_rules=["EmailReply"]
    )
    work.run_until_idle()
    (row,) = outbox_rows(store)
    _deliver(listener, _reply(row["message_id"], auto=True))
    assert tracker_of(store, target)["State"] == "Running"
    assert engagement.step_metrics(store, row["step_id"])["AllEmailsOutOfOfficeCount"] == 1


def test_bounces(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    listener: int,
) -> None:
    tid = template()
    soft = enrol(
        tid, then=[{"StepName": "task", "Type": "CreateTask"}], exit_rules=["EmailHardBounce"]
    )
    hard = enrol(
        tid, then=[{"StepName": "task", "Type": "CreateTask"}], exit_rules=["EmailHardBounce"]
    )
    work.run_until_idle()
    by_target = {r["target_id"]: r for r in outbox_rows(store)}
    _deliver_raw(listener, _dsn(by_target[soft]["message_id"], "4.2.2", "delayed"))
    _deliver_raw(listener, _dsn(by_target[hard]["message_id"], "5.1.1", "failed"))
    assert (store.get("Contact", soft) or {})["EmailBouncedDate"] is None
    assert tracker_of(store, soft)["State"] == "Running"
    bounced = store.get("Contact", hard) or {}
    assert bounced["EmailBouncedDate"] is not None and "5.1.1" in bounced["EmailBouncedReason"]
    assert tracker_of(store, hard)["CompletionReason"] == "AutomaticallyExited"
    m = engagement.step_metrics(store, by_target[hard]["step_id"])
    assert (
        m["AllEmailsHardBouncedCount"],
        m["AllEmailsSoftBouncedCount"],
        m["AllEmailsBouncedCount"],
        m["AllEmailsDeliveredCount"],
    ) == (1, 0, 1, 0)


def test_tokens_sign_and_refuse_forgeries() -> None:
    token = tracking.make_token(SECRET, "0cK000000000001AAA", "c", "https://example.com/a")
    assert tracking.verify_token(SECRET, token) == {
        "k": "0cK000000000001AAA",
        "t": "c",
        "u": "https://example.com/a",
    }
    assert tracking.verify_token(b"other", token) is None
    forged = tracking.make_token(b"other", "0cK000000000001AAA", "c", "https://evil.test/")
    assert tracking.verify_token(SECRET, forged) is None
    for junk in ("", "abc", "a.b.c", token[:-2] + "xx", "." + token.split(".")[1]):
        assert tracking.verify_token(SECRET, junk) is None


def test_open_and_click_tracking(
    store: records.Store, relay: Relay, template: Template, enrol: Enrol
) -> None:
    sender = smtp_sender.SmtpSender(
        store,
        smtp_sender.SmtpConfig(
            port=relay.port, timeout=5, public_url="https://oc.example.com/", tracking_secret=SECRET
        ),
    )
    target = enrol(
        template(
            HtmlValue='<html><body><a href="https://acme.test/pricing">Pricing</a></body></html>'
        ),
        then=LISTEN,
    )
    worker.Worker(store, sender).run_until_idle()
    sender.close()
    (msg,) = relay.received
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    assert "https://acme.test/pricing" not in html
    click = html.split(f"https://oc.example.com{tracking.CLICK_PATH}")[1].split('"')[0]
    pixel = html.split(f"https://oc.example.com{tracking.OPEN_PATH}")[1].split('"')[0]
    t = tracking.Tracker(store, SECRET)
    assert t.record_click(click[:-3] + "AAA") is None  # forged: nothing happens
    assert t.record_open(pixel + "x") is False
    tr = tracker_of(store, target)
    assert step_trackers(store, tr["Id"])[-1]["StepType"] == "ListenerBranch"
    assert t.record_open(pixel) is True
    assert step_trackers(store, tr["Id"])[-1]["StepType"] == "ListenerBranch"
    assert t.record_click(click) == "https://acme.test/pricing"
    assert step_trackers(store, tr["Id"])[-1]["StepType"] == "MakeACall"
    m = engagement.step_metrics(store, outbox_rows(store)[0]["step_id"])
    assert (
        m["AllEmailsOpenedCount"],
        m["AllEmailsLinkClickedCount"],
        m["AllEmailsTrackedSentCount"],
        m["AllEmailsUntrackedSentCount"],
    ) == (1, 1, 1, 0)


def test_threaded_step_replies_to_previous_email(
    store: records.Store,
    clock: ManualClock,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
) -> None:
    enrol(
        template(),
        then=[
            {
                "StepName": "second",
                "Type": "AutoSendAnEmail",
                "IsThreaded": True,
                "ScheduledStartDelayInMinutes": 60,
            },
            {
                "StepName": "third",
                "Type": "AutoSendAnEmail",
                "IsThreaded": True,
                "ScheduledStartDelayInMinutes": 60,
            },
            {"StepName": "fresh", "Type": "AutoSendAnEmail", "ScheduledStartDelayInMinutes": 60},
        ],
    )
    for _ in range(4):
        work.run_until_idle()
        clock.advance(timedelta(minutes=61))
    first, second, third, fresh = relay.received
    one, two = str(first["Message-ID"]).strip(), str(second["Message-ID"]).strip()
    assert first["In-Reply-To"] is None
    assert str(second["In-Reply-To"]).strip() == one and second["Subject"] == "Re: Hello Ada"
    assert str(third["In-Reply-To"]).strip() == two
    assert str(third["References"]).split() == [one, two] and third["Subject"] == "Re: Hello Ada"
    assert fresh["In-Reply-To"] is None and fresh["Subject"] == "Hello Ada"


def test_engagement_counters_all_and_unique(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    """Opens and clicks count every event (All*) and every email with one (Unique*), on the
    step and on its monthly row, with the tracked send as the trackable denominator; a second
    month's open is that month's unique open again."""
    from opencadence.storage import metrics
    from tests.integration.cadence.invariants import check_metrics

    sender = smtp_sender.SmtpSender(
        store,
        smtp_sender.SmtpConfig(
            port=relay.port, timeout=5, public_url="https://oc.example.com/", tracking_secret=SECRET
        ),
    )
    tid = template(HtmlValue='<html><body><a href="https://acme.test/a">A</a></body></html>')
    enrol(tid, then=[{"StepName": "task", "Type": "CreateTask"}])
    worker.Worker(store, sender).run_until_idle()
    sender.close()
    (msg,) = relay.received
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    click = html.split(f"https://oc.example.com{tracking.CLICK_PATH}")[1].split('"')[0]
    pixel = html.split(f"https://oc.example.com{tracking.OPEN_PATH}")[1].split('"')[0]
    t = tracking.Tracker(store, SECRET)
    assert t.record_open(pixel) and t.record_open(pixel)
    assert t.record_click(click) == "https://acme.test/a"
    (row,) = outbox_rows(store)
    step = store.get("ActionCadenceStep", row["step_id"]) or {}
    assert (
        step["AllEmailsSentCount"],
        step["AllEmailsTrackedSentCount"],
        step["AllEmailsOpenedCount"],
        step["UniqueEmailsOpenedCount"],
        step["AllEmailsLinkClickedCount"],
        step["UniqueEmailsLinkClickedCount"],
    ) == (1, 1, 2, 1, 1, 1)
    with store.reading() as conn:
        tz = metrics.org_time_zone(conn, store.meta)
    month = metrics.month_int(clock.now().replace(tzinfo=None), tz)
    monthly = _monthly_row(store, row["step_id"], month)
    assert monthly["TemplateId"] == tid and monthly["HasTemplateAssigned"] is True
    assert (
        monthly["AllEmailsTrackedSentCount"],
        monthly["OpenTrackableSends"],
        monthly["ReplyTrackableSends"],
        monthly["AllEmailsOpenedCount"],
        monthly["UniqueEmailsOpenedCount"],
        monthly["TrackableSendOpenRate"],
        monthly["TrackableSendLinkClickRate"],
    ) == (1, 1, 1, 2, 1, 200.0, 100.0)
    clock.advance(days=40)  # the next month
    assert t.record_open(pixel)
    later = metrics.month_int(clock.now().replace(tzinfo=None), tz)
    assert later != month
    nxt = _monthly_row(store, row["step_id"], later)
    assert (nxt["AllEmailsOpenedCount"], nxt["UniqueEmailsOpenedCount"], nxt["RecipientSends"]) == (
        1,
        1,
        0,
    )
    step = store.get("ActionCadenceStep", row["step_id"]) or {}
    assert (step["AllEmailsOpenedCount"], step["UniqueEmailsOpenedCount"]) == (3, 1)
    check_metrics(store)


def _monthly_row(store: records.Store, step_id: str, month: int) -> dict[str, object]:
    import sqlalchemy as sa

    m = store.meta.tables["ActionCdncStpMonthlyMetric"]
    with store.reading() as conn:
        rid = conn.execute(
            sa.select(m.c.Id).where(m.c.ActionCadenceStepId == step_id, m.c.MonthInt == month)
        ).scalar_one()
    return store.get("ActionCdncStpMonthlyMetric", rid) or {}
