"""A cadence email sent by the real server is queryable as an EmailMessage and its Task with
unmodified simple-salesforce, through a real SMTP relay and without one; activating an
automated email step without a usable template is refused over REST."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from opencadence import system
from opencadence.api import server as api_server
from opencadence.api import tls
from opencadence.clock import ManualClock
from opencadence.storage import records
from tests.integration.email.conftest import Relay, relay  # noqa: F401 (the relay fixture)

from .conftest import Server, free_port, serving
from .test_simple_salesforce import by_session


@pytest.fixture
def relay_server(
    store: records.Store,
    clock: ManualClock,
    session_clock: ManualClock,
    tmp_path: Path,
    relay: Relay,  # noqa: F811
) -> Iterator[Server]:
    """The server fixture's server, wired as `serve --clock manual --smtp-relay HOST:PORT`."""
    settings = system.Settings(
        clock=clock,
        session_clock=session_clock,
        upgrade=False,
        tracking=True,
        relay=system.SmtpRelay(f"127.0.0.1:{relay.port}", tls="none"),
    )
    built = system.build(settings, engine=store.engine)
    org = built.org
    org.accounts.create_user("admin@oc.test", "s3cret!", admin=True, time_zone="Europe/Paris")
    cert, key = tls.self_signed(tmp_path / "tls")
    port = free_port()
    config = api_server.config(
        api_server.app(built), host="127.0.0.1", port=port, tls_files=(cert, key), log_level="error"
    )
    with serving(config):
        running = Server(org, clock, port, cert, "admin@oc.test", "s3cret!", "")
        try:
            yield running
        finally:
            running.close_clients()
            if built.smtp is not None:
                built.smtp.close()


def _act(sf: Salesforce, name: str, *inputs: dict[str, Any]) -> list[dict[str, Any]]:
    out = sf.restful(
        f"actions/standard/{name}", method="POST", data=json.dumps({"inputs": list(inputs)})
    )
    assert isinstance(out, list) and all(r["isSuccess"] for r in out), out
    return out


def _template(sf: Salesforce) -> str:
    org = sf.query("SELECT Id FROM Organization")["records"][0]["Id"]
    return str(
        sf.EmailTemplate.create(
            {
                "FolderId": org,
                "Name": "Intro",
                "DeveloperName": "Intro",
                "TemplateType": "text",
                "Subject": "Hi {!Contact.FirstName, there}",
                "Body": "Hello {!Contact.FirstName}, {!User.LastName} here.",
                "IsActive": True,
            }
        )["id"]
    )


def _cadence(sf: Salesforce) -> tuple[str, str]:
    """Root -> AutoSendAnEmail, built with plain creates and no template yet."""
    org = sf.query("SELECT Id FROM Organization")["records"][0]["Id"]
    cadence = sf.ActionCadence.create({"Name": "Mail cadence", "FolderId": org})["id"]
    sf.ActionCadenceStep.create(
        {"ActionCadenceId": cadence, "StepName": "root", "Type": "Root", "StepTitle": "Start"}
    )
    step = sf.ActionCadenceStep.create(
        {
            "ActionCadenceId": cadence,
            "StepName": "mail",
            "Type": "AutoSendAnEmail",
            "StepTitle": "Intro email",
            "ParentStepName": "root",
        }
    )["id"]
    return cadence, step


def _send_one(sf: Salesforce) -> str:
    """Activate (refused without a template, then with one), enrol a contact and let the
    worker send; returns the contact."""
    cadence, step = _cadence(sf)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.ActionCadence.update(cadence, {"State": "Active"})
    (error,) = info.value.content
    assert error["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert error["message"] == "Step mail: an AutoSendAnEmail step needs a TemplateId"
    assert sf.ActionCadence.get(cadence)["State"] == "Error"
    sf.ActionCadenceStep.update(step, {"TemplateId": _template(sf)})
    assert sf.ActionCadence.update(cadence, {"State": "Active"}) == 204
    me = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    account = sf.Account.create({"Name": "Acme"})["id"]
    target = sf.Contact.create(
        {"FirstName": "Zoë", "LastName": "Z", "Email": "z@example.com", "AccountId": account}
    )["id"]
    _act(
        sf,
        "assignTargetToSalesCadence",
        {"salesCadenceNameOrId": cadence, "targetId": target, "userId": me},
    )
    sf.restful("../../../_opencadence/clock", method="POST", data='{"advance": 60}')
    state = sf.query(
        "SELECT State FROM ActionCadenceStepTracker "
        f"WHERE TargetId = '{target}' AND StepType = 'AutoSendAnEmail'"
    )["records"]
    assert [r["State"] for r in state] == ["Completed"]
    return str(target)


def _check_activity(sf: Salesforce, target: str) -> dict[str, Any]:
    (email,) = sf.query(
        "SELECT Id, Status, Incoming, Subject, TextBody, FromAddress, ToAddress, MessageDate, "
        "RelatedToId, ActivityId, MessageIdentifier, Activity.Subject FROM EmailMessage"
    )["records"]
    assert (email["Status"], email["Incoming"], email["Subject"]) == ("3", False, "Hi Zoë")
    assert email["ToAddress"] == "z@example.com" and email["FromAddress"] == "admin@oc.test"
    assert "Hello Zoë" in email["TextBody"] and email["MessageDate"]
    assert email["Activity"]["Subject"] == "Email: Hi Zoë"
    (task,) = sf.query(
        "SELECT Id, Subject, TaskSubtype, Status, WhoId, WhatId, ActivityDate FROM Task "
        f"WHERE WhoId = '{target}'"
    )["records"]
    assert task["Id"] == email["ActivityId"]
    assert (task["TaskSubtype"], task["Status"], task["Subject"]) == (
        "Email",
        "Completed",
        "Email: Hi Zoë",
    )
    assert task["WhatId"] == email["RelatedToId"] and task["WhatId"].startswith("001")
    assert task["ActivityDate"]
    return dict(email)


def test_a_sent_email_is_queryable_without_a_relay(server: Server) -> None:
    sf = by_session(server)
    email = _check_activity(sf, _send_one(sf))
    assert email["MessageIdentifier"] is None  # nothing left the machine: no Message-ID


def test_a_sent_email_is_queryable_through_a_real_relay(
    relay_server: Server,
    relay: Relay,  # noqa: F811
) -> None:
    sf = by_session(relay_server)
    email = _check_activity(sf, _send_one(sf))
    (msg,) = relay.received
    assert email["MessageIdentifier"] == str(msg["Message-ID"]).strip()
