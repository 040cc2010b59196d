"""A sent cadence email leaves an EmailMessage and its Task, in the transaction that records the
send, under a real relay and without one (the demo's mode), on SQLite and PostgreSQL; the
logged email moves no step; the demo's automated email is sendable through a real relay."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import demo, system
from opencadence.cadence import actions, definition_file, runtime, worker
from opencadence.clock import ManualClock
from opencadence.email import activity, no_relay, smtp_sender
from opencadence.soql import execute
from opencadence.storage import records, schema
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_relay import _DiesBeforeDelivery, _FailsAfterAccept
from tests.integration.email.test_send import auto_step


def _rows(store: records.Store, name: str, **where: Any) -> list[dict[str, Any]]:
    t = store.meta.tables[name]
    stmt = sa.select(t.c.Id).where(*(t.c[k] == v for k, v in where.items()))
    with store.reading() as conn:
        found = list(conn.execute(stmt).scalars())
    return [store.get(name, i) or {} for i in found]


def _account_contact(store: records.Store) -> tuple[str, dict[str, Any]]:
    with store.transaction() as tx:
        account = tx.insert("Account", {"Name": "Acme"})
    return account, {"FirstName": "Zoë", "AccountId": account}


def test_a_sent_email_leaves_an_email_message_and_its_task(
    store: records.Store,
    clock: ManualClock,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    clock.set(datetime(2026, 1, 6, 2, 0, tzinfo=UTC))
    account, fields = _account_contact(store)
    target = enrol(template(HtmlValue="<p>Hi {!Contact.FirstName}</p>"), fields)
    work.run_until_idle()
    step = auto_step(store, target)
    assert step["State"] == "Completed"
    (msg,) = relay.received
    (email,) = _rows(store, "EmailMessage")
    (task,) = _rows(store, "Task")
    assert (email["Status"], email["Incoming"], email["IsTracked"]) == ("3", False, False)
    assert email["Subject"] == "Hello Zoë" and email["FromAddress"] == "rep@example.com"
    assert email["FromName"] == "Rita Rep"
    assert email["ToAddress"] == (store.get("Contact", target) or {})["Email"]
    assert "Hi Zoë, this is Rita Rep." in email["TextBody"]
    assert "<p>Hi Zoë</p>" in email["HtmlBody"]
    assert email["MessageIdentifier"] == str(msg["Message-ID"]).strip()
    assert email["ThreadIdentifier"] == email["MessageIdentifier"]
    assert "Subject: " in email["Headers"] and email["MessageIdentifier"] in email["Headers"]
    assert email["RelatedToId"] == account and email["ActivityId"] == task["Id"]
    assert email["MessageDate"] is not None
    assert (task["TaskSubtype"], task["Status"], task["IsClosed"]) == ("Email", "Completed", True)
    assert task["Subject"] == "Email: Hello Zoë" and task["CompletedDateTime"] is not None
    assert (task["WhoId"], task["WhatId"], task["OwnerId"]) == (target, account, rep)
    # 02:00 UTC is the evening before in the assignee's New York: the Task is dated there
    assert task["ActivityDate"] == date(2026, 1, 5)
    assert step["Id"] in task["Description"] and "Hi Zoë" in task["Description"]
    # the write path made their change events, both in one transaction
    headers = {
        name: [e["payload"]["ChangeEventHeader"] for e in store.read_events(entity=name)]
        for name in ("EmailMessage", "Task")
    }
    ((em,), (tk,)) = headers["EmailMessage"], headers["Task"]
    assert (em["changeType"], em["recordIds"]) == ("CREATE", [email["Id"]])
    assert (tk["changeType"], tk["recordIds"]) == ("CREATE", [task["Id"]])
    assert em["transactionKey"] == tk["transactionKey"]
    work.run_until_idle()
    assert len(_rows(store, "EmailMessage")) == 1 and len(_rows(store, "Task")) == 1


def test_a_lead_email_relates_to_nothing(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    target = enrol(template(Subject="For {!Lead.Company}"), {"Company": "Acme"})
    work.run_until_idle()
    (email,) = _rows(store, "EmailMessage")
    (task,) = _rows(store, "Task")
    assert email["RelatedToId"] is None and task["WhatId"] is None and task["WhoId"] == target
    assert email["Subject"] == "For Acme" and task["Subject"] == "Email: For Acme"


def test_no_records_when_the_send_is_not_recorded(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    """The records roll back with the transaction that fails to mark the row sent."""
    s = _FailsAfterAccept(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    enrol(template())
    worker.Worker(store, s).run_until_idle()
    s.close()
    assert len(relay.received) == 1
    assert _rows(store, "EmailMessage") == [] and _rows(store, "Task") == []


@pytest.mark.parametrize("left", ["accepted", "sending"])
def test_a_send_a_crash_interrupted_is_logged_once(
    store: records.Store,
    clock: ManualClock,
    relay: Relay,
    template: Template,
    enrol: Enrol,
    left: str,
) -> None:
    """Killed after the relay's 250 was recorded (``accepted``: reconciled as sent) or while
    the "." was in flight (``sending``: unknown, resent): one EmailMessage and Task either way."""
    target = enrol(template())
    worker.Worker(
        store, _DiesBeforeDelivery(store, smtp_sender.SmtpConfig(port=relay.port))
    ).run_until_idle()
    ob = store.meta.tables[schema.EMAIL_OUTBOX]
    with store.transaction() as tx:
        tx.conn.execute(sa.update(ob).values(status=left))
    clock.advance(smtp_sender.LEASE + timedelta(seconds=1))
    restarted = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    try:
        assert restarted.reconcile() == 1
        worker.Worker(store, restarted).run_until_idle()
        assert restarted.reconcile() == 0
    finally:
        restarted.close()
    assert auto_step(store, target)["State"] == "Completed"
    (email,) = _rows(store, "EmailMessage")
    (task,) = _rows(store, "Task")
    assert email["ActivityId"] == task["Id"] and task["WhoId"] == target
    assert email["Subject"] == "Hello Ada"


def test_the_email_task_moves_no_open_call_step(
    store: records.Store, oc: system.System, acts: actions.Actions, rep: str
) -> None:
    """A logged email is not a logged call: the call step the target is on stays open, whether
    the Task comes from a send, is offered to the runtime, or is created over the API."""
    cadence = definition_file.import_definition(
        store,
        {
            "cadence": {"Name": "Calls"},
            "state": "Active",
            "steps": [
                {"StepName": "root", "Type": "Root"},
                {"StepName": "call", "Type": "MakeACall", "ParentStepName": "root"},
            ],
        },
    )
    with store.transaction() as tx:
        target = tx.insert("Contact", {"LastName": "C", "Email": "c@example.com"})
    assign(acts, cadence, target, rep)
    sent = activity.SentEmail(
        key="0cK0C0000000001AAA",
        tracker_id=None,
        owner_id=rep,
        target_id=target,
        from_address="rep@example.com",
        from_name="Rep",
        to_address="c@example.com",
        subject="Hi",
        html=None,
        text="Hi",
    )
    with store.transaction() as tx:
        activity.log_sent(tx, [sent], store.clock.now().replace(tzinfo=None))
    (task,) = _rows(store, "Task")
    assert not runtime.on_task_created(store, task["Id"])
    session = oc.org.accounts.session(oc.org.accounts.open_session(rep))
    oc.org.create(
        session, "Task", {"Subject": "Email: Hi", "WhoId": target, "TaskSubtype": "Email"}, "62.0"
    )
    call = step_trackers(store, tracker_of(store, target)["Id"])[-1]
    assert (call["StepType"], call["State"]) == ("MakeACall", "Active")
    runtime.log_call(store, rep, target, "Meaningful Connect")  # a call does complete it
    call = store.get("ActionCadenceStepTracker", call["Id"]) or {}
    assert call["State"] == "Completed"


def test_without_a_relay_the_same_records_are_written(
    store: records.Store, oc: system.System, template: Template, enrol: Enrol, rep: str
) -> None:
    """The sender of a process without --smtp-relay (serve, demo) checks, renders and logs."""
    assert oc.worker is not None and isinstance(oc.worker.sender, no_relay.NoRelaySender)
    account, fields = _account_contact(store)
    target = enrol(template(HtmlValue="<p>Hi {!Contact.FirstName}</p>"), fields)
    oc.worker.run_until_idle()
    assert auto_step(store, target)["State"] == "Completed"
    (email,) = _rows(store, "EmailMessage")
    (task,) = _rows(store, "Task")
    assert (email["Status"], email["Incoming"], email["Subject"]) == ("3", False, "Hello Zoë")
    assert "Hi Zoë, this is Rita Rep." in email["TextBody"] and "<p>Hi Zoë</p>" in email["HtmlBody"]
    assert email["ActivityId"] == task["Id"] and email["RelatedToId"] == account
    assert (task["TaskSubtype"], task["Status"], task["Subject"]) == (
        "Email",
        "Completed",
        "Email: Hello Zoë",
    )
    # never pretended: a template that cannot be sent errors as under a relay
    broken = template()
    second = enrol(broken)
    with store.transaction() as tx:
        tx.update("EmailTemplate", broken, {"IsActive": False})
    oc.worker.run_until_idle()
    step = auto_step(store, second)
    assert (step["State"], step["ErrorCode"]) == ("Error", "TEMPLATE_NOT_PUBLIC")
    assert len(_rows(store, "EmailMessage")) == 1


def test_the_demo_email_is_logged_and_sendable_through_a_real_relay(
    store: records.Store, oc: system.System, clock: ManualClock, relay: Relay
) -> None:
    seeded = demo.seed(oc.org)
    # the demo's own run (no relay) logged the intro emails it sent
    emails = _rows(store, "EmailMessage")
    assert emails and all(e["Status"] == "3" and e["ActivityId"] for e in emails)
    # the first cadence's intro (Rita's), and the tracks cadence's first touch (Tess's; its two
    # variants: the intro template and a second subject line)
    subjects = {e["Subject"] for e in emails}
    assert "Hello from Rita" in subjects and "A question for Oz" in subjects
    variant_b = {f"A question for {n}" for n in ("Nia", "Oz", "Pia")}
    assert subjects <= {"Hello from Rita", "Hello from Tess"} | variant_b
    # the same cadence, step and template through a real relay
    with store.transaction() as tx:
        target = tx.insert("Contact", {"LastName": "New", "FirstName": "Nia", "Email": "n@x.io"})
    smtp = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    acts = actions.Actions(store, sender=smtp)
    assign(acts, "Demo: every step", target, seeded["rep"])
    work = worker.Worker(store, smtp)
    work.run_until_idle()
    runtime.log_call(store, seeded["rep"], target, "Meaningful Connect")
    for _ in range(3):
        work.run_until_idle()
    smtp.close()
    (msg,) = relay.received
    assert msg["Subject"] == "Hello from Rita" and msg["To"] == "n@x.io"
    intro = [
        s
        for s in step_trackers(store, tracker_of(store, target)["Id"])
        if s["StepType"] == "AutoSendAnEmail"
    ]
    assert [(s["State"], s["ErrorCode"]) for s in intro] == [("Completed", None)]
    assert len(_rows(store, "EmailMessage", ToAddress="n@x.io")) == 1


def test_a_rep_sees_the_emails_of_their_own_tasks_only(
    store: records.Store,
    oc: system.System,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    enrol(template())
    work.run_until_idle()
    with store.transaction() as tx:
        other = tx.insert(
            "User",
            {
                "Username": "other@example.com",
                "LastName": "Other",
                "Alias": "o",
                "Email": "other@example.com",
                "TimeZoneSidKey": "GMT",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
        )
    soql = "SELECT Id, Subject FROM EmailMessage"
    mine = oc.org.queries.query(soql, execute.Caller(rep, view_all=False))
    theirs = oc.org.queries.query(soql, execute.Caller(other, view_all=False))
    assert [r["Subject"] for r in mine["records"]] == ["Hello Ada"]
    assert theirs["totalSize"] == 0 and theirs["records"] == []


class _LateAcceptance(smtp_sender.SmtpSender):
    """Records its acceptances only after its lease ran out and a restarted worker reconciled
    them (the row ``accepted``, then ``sent`` with its EmailMessage and Task)."""

    clock: ManualClock | None = None

    def _accepted(self, rows: list[dict[str, Any]]) -> None:
        assert self.clock is not None
        ob = self.store.meta.tables[schema.EMAIL_OUTBOX]
        with self.store.transaction() as tx:
            self.outbox.mark_accepted(tx.conn, [r["key"] for r in rows])
            assert tx.conn.execute(sa.select(ob.c.status)).scalars().all() == ["accepted"]
        self.clock.advance(smtp_sender.LEASE + timedelta(seconds=1))
        other = smtp_sender.SmtpSender(self.store, self.config)
        try:
            assert other.reconcile() == 1
        finally:
            other.close()
        super()._accepted(rows)


def test_an_acceptance_recorded_after_a_reconcile_is_logged_once(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    """The late worker's mark moves no row, so it writes no second EmailMessage and Task."""
    target = enrol(template())
    late = _LateAcceptance(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    late.clock = clock
    try:
        worker.Worker(store, late).run_until_idle()
    finally:
        late.close()
    assert len(relay.received) == 1
    (email,) = _rows(store, "EmailMessage")
    (task,) = _rows(store, "Task")
    assert email["ActivityId"] == task["Id"] and task["WhoId"] == target
    ob = store.meta.tables[schema.EMAIL_OUTBOX]
    with store.reading() as conn:
        assert conn.execute(sa.select(ob.c.status)).scalars().all() == ["sent"]
