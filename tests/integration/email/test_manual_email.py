"""A rep's own email on a manual SendAnEmail step (``Org.send_step_email``, the web app's Send
Email) through a real aiosmtpd relay, on both databases: delivered after the commit that
completes the step; a transient relay failure and a crash before delivery are delivered again
by the worker's idle turn with the same Message-ID; a refused check writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import demo, errors, system
from opencadence.cadence import definition_file
from opencadence.clock import ManualClock
from opencadence.email import checks, smtp_sender
from opencadence.org import Org
from opencadence.storage import mail
from tests.integration.email.conftest import Relay, relay  # noqa: F401 (fixture)


@pytest.fixture
def built(
    engine: sa.Engine,
    clock: ManualClock,
    relay: Relay,  # noqa: F811
) -> Iterator[system.System]:
    settings = system.Settings(
        clock=clock,
        upgrade=False,
        relay=system.SmtpRelay(f"127.0.0.1:{relay.port}", tls="none"),
    )
    with system.build(settings, engine=engine) as b:
        demo.seed(b.org)
        yield b
        if b.smtp is not None:
            b.smtp.close()


def _enrolled(org: Org) -> tuple[Any, str]:
    """Rita's session and the open manual email step of a new contact (template with merge
    fields)."""
    admin = org.accounts.find_user(demo.ADMIN)
    rita = org.accounts.find_user(demo.REP)
    assert admin is not None and rita is not None
    with org.store.transaction(str(admin["Id"])) as tx:
        template = tx.insert(
            "EmailTemplate",
            {
                "Name": "Note",
                "DeveloperName": "Note",
                "TemplateType": "text",
                "FolderId": definition_file.ORG_FOLDER,
                "IsActive": True,
                "Subject": "For {!Contact.FirstName}",
                "Body": "Hi {!Contact.FirstName}, {!User.FirstName}",
            },
        )
        contact = tx.insert(
            "Contact",
            {
                "FirstName": "Nia",
                "LastName": "Noor",
                "Email": "nia@noor.example",
                "OwnerId": rita["Id"],
            },
        )
    definition_file.import_definition(
        org.store,
        {
            "cadence": {"Name": "Manual email"},
            "state": "Active",
            "steps": [
                {"StepName": "start", "Type": "Root"},
                {
                    "StepName": "note",
                    "Type": "SendAnEmail",
                    "ParentStepName": "start",
                    "TemplateId": template,
                },
            ],
        },
        str(admin["Id"]),
    )
    org.actions.invoke(
        "assignTargetToSalesCadence",
        [{"salesCadenceNameOrId": "Manual email", "targetId": contact, "userId": rita["Id"]}],
        str(admin["Id"]),
    )
    (step,) = org.queries.query(
        "SELECT Id FROM ActionCadenceStepTracker WHERE StepType = 'SendAnEmail' "
        f"AND TargetId = '{contact}' AND State = 'Active'"
    )["records"]
    token = org.accounts.open_session(str(rita["Id"]))
    return org.accounts.session(token), step["Id"]


def _row(b: system.System, key: str) -> dict[str, Any]:
    with b.store.reading() as conn:
        row = mail.outbox(b.store.meta).row(conn, key)
    assert row is not None
    return row


def _state(org: Org, step: str) -> tuple[str, str]:
    (r,) = org.queries.query(
        f"SELECT State, CompletionReason FROM ActionCadenceStepTracker WHERE Id = '{step}'"
    )["records"]
    return r["State"], r["CompletionReason"]


def test_the_draft_is_rendered_and_the_send_completes_the_step(
    built: system.System,
    relay: Relay,  # noqa: F811
) -> None:
    session, step = _enrolled(built.org)
    draft = built.org.email_draft(session, step)
    assert (draft.subject, draft.body, draft.recipient) == (
        "For Nia",
        "Hi Nia, Rita",
        "nia@noor.example",
    )
    built.org.send_step_email(session, step, draft.subject, draft.body + " (edited)")
    (msg,) = relay.received
    assert msg.get_content().strip() == "Hi Nia, Rita (edited)"
    assert _row(built, step)["status"] == "sent"
    assert _state(built.org, step) == ("Completed", "AutomaticallyCompleted")
    with pytest.raises(errors.OpenCadenceError):  # done: no second send
        built.org.send_step_email(session, step, "again", "again")
    assert len(relay.received) == 1


def test_a_transient_failure_is_delivered_again_by_the_idle_worker(
    built: system.System,
    clock: ManualClock,
    relay: Relay,  # noqa: F811
) -> None:
    session, step = _enrolled(built.org)
    relay.data_replies.append("451 4.3.0 try again later")
    built.org.send_step_email(session, step, "Hello", "Hi Nia")
    assert relay.received == [] and _row(built, step)["status"] == "retry"
    assert _state(built.org, step)[0] == "Completed"  # the rep sent it: the step is done
    assert built.worker is not None
    built.worker._idle()  # not yet due: nothing
    assert relay.received == []
    clock.advance(minutes=2)
    built.worker._idle()
    (msg,) = relay.received
    row = _row(built, step)
    assert row["status"] == "sent" and str(msg["Message-ID"]) == row["message_id"]
    built.worker._idle()
    assert len(relay.received) == 1  # never twice


def test_a_crash_before_delivery_is_delivered_after_the_lease(
    built: system.System,
    clock: ManualClock,
    relay: Relay,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session, step = _enrolled(built.org)
    mailer = built.org.mailer
    assert isinstance(mailer, smtp_sender.SmtpSender)
    monkeypatch.setattr(mailer, "after_commit", lambda: None)  # "dies" after the commit
    built.org.send_step_email(session, step, "Hello", "Hi Nia")
    monkeypatch.undo()
    assert _row(built, step)["status"] == "pending" and relay.received == []
    assert built.worker is not None
    built.worker._idle()  # its lease still runs: not taken over
    assert relay.received == []
    clock.advance(minutes=3)
    built.worker._idle()
    (msg,) = relay.received
    assert str(msg["Message-ID"]) == _row(built, step)["message_id"]


def test_a_refused_check_writes_nothing(
    built: system.System,
    relay: Relay,  # noqa: F811
) -> None:
    session, step = _enrolled(built.org)
    (contact,) = built.org.queries.query("SELECT Id FROM Contact WHERE Name = 'Nia Noor'")[
        "records"
    ]
    with built.store.transaction() as tx:
        tx.update("Contact", contact["Id"], {"HasOptedOutOfEmail": True})
    events = len(built.store.read_events())
    assert "opted out" in (built.org.email_draft(session, step).problem or "")
    with pytest.raises(checks.SendRefused):
        built.org.send_step_email(session, step, "Hello", "Hi")
    assert relay.received == []
    assert _state(built.org, step)[0] == "Active"
    assert len(built.store.read_events()) == events
    with built.store.reading() as conn:
        assert mail.outbox(built.store.meta).row(conn, step) is None
