"""Fixtures of the email scenarios: a real aiosmtpd relay on 127.0.0.1, users, targets,
templates, cadences with an AutoSendAnEmail step and a worker with the SMTP sender."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from opencadence.cadence import actions, definition_file, worker
from opencadence.email import smtp_sender
from opencadence.storage import records
from tests.integration.cadence.helpers import assign


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Relay:
    """What the test relay received, and the replies it is told to give (popped in order)."""

    port: int = 0
    received: list[Message] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.received.append(
            message_from_bytes(envelope.original_content or b"", policy=policy.default)
        )
        return "250 Message accepted"

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.received]


def _auth(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"rep" and data.password == b"secret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(port=free_port())
    ctl = Controller(
        r, hostname="127.0.0.1", port=r.port, authenticator=_auth, auth_require_tls=False
    )
    ctl.start()
    yield r
    ctl.stop()


@pytest.fixture
def smtp(store: records.Store, relay: Relay) -> Iterator[smtp_sender.SmtpSender]:
    s = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    yield s
    s.close()


@pytest.fixture
def work(store: records.Store, smtp: smtp_sender.SmtpSender) -> worker.Worker:
    return worker.Worker(store, smtp)


@pytest.fixture
def acts(store: records.Store, smtp: smtp_sender.SmtpSender) -> actions.Actions:
    return actions.Actions(store, sender=smtp)


@pytest.fixture
def rep(store: records.Store) -> str:
    with store.transaction() as tx:
        return tx.insert(
            "User",
            {
                "Username": "rep@example.com",
                "FirstName": "Rita",
                "LastName": "Rep",
                "Alias": "rep",
                "Email": "rep@example.com",
                "TimeZoneSidKey": "America/New_York",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
        )


Template = Callable[..., str]


@pytest.fixture
def template(store: records.Store) -> Template:
    folder: list[str] = []
    made: list[str] = []

    def make(**fields: Any) -> str:
        if not folder:
            with store.transaction() as tx:
                folder.append(
                    tx.insert(
                        "Folder",
                        {
                            "Name": "Cadences",
                            "DeveloperName": "Cadences",
                            "Type": "EmailTemplate",
                            "AccessType": "Public",
                        },
                    )
                )
        rec = {
            "FolderId": folder[0],
            "Name": "T",
            "DeveloperName": f"T{len(made)}",  # unique names, as the database keeps them
            "TemplateType": "text",
            "IsActive": True,
            "Subject": "Hello {!Contact.FirstName, there}",
            "Body": "Hi {!Contact.FirstName, there}, this is {!User.Name}.",
            **fields,
        }
        with store.transaction() as tx:
            made.append(tx.insert("EmailTemplate", rec))
        return made[-1]

    return make


Enrol = Callable[..., str]


@pytest.fixture
def enrol(store: records.Store, acts: actions.Actions, rep: str) -> Enrol:
    """enrol(template_id, **contact fields) -> step tracker... -> the target id, enrolled in a
    one-step AutoSendAnEmail cadence."""
    counter = iter(range(10_000))

    def make(
        template_id: str | None,
        target: dict[str, Any] | None = None,
        user: str | None = None,
        step: dict[str, Any] | None = None,
        then: list[dict[str, Any]] | None = None,
        exit_rules: list[str] | None = None,
    ) -> str:
        n = next(counter)
        with store.transaction() as tx:
            fields = {
                "LastName": f"C{n}",
                "FirstName": "Ada",
                "Email": f"c{n}@example.com",
                **(target or {}),
            }
            obj = "Lead" if "Company" in fields else "Contact"
            target_id = tx.insert(obj, fields)
        steps: list[dict[str, Any]] = [
            {
                "StepName": "root",
                "Type": "Root",
                "StepTitle": "root",
                "rules": [
                    {"RuleName": f"exit{i}", "RuleType": "RootStep", "GlobalEventType": ev}
                    for i, ev in enumerate(exit_rules or [])
                ],
            },
            {
                "StepName": "auto",
                "Type": "AutoSendAnEmail",
                "StepTitle": "auto",
                "ParentStepName": "root",
                "TemplateId": template_id,
                **(step or {}),
            },
        ]
        for extra in then or []:
            extra = {
                "StepTitle": extra["StepName"],
                "ParentStepName": steps[-1]["StepName"],
                **extra,
            }
            if extra.get("Type") == "AutoSendAnEmail":
                extra.setdefault("TemplateId", template_id)
            steps.append(extra)
        data = {"cadence": {"Name": f"Email {n}"}, "state": "Active", "steps": steps}
        cid = definition_file.import_definition(store, data)
        assign(acts, cid, target_id, user or rep)
        return target_id

    return make
