"""Fixtures of the cadence scenarios: users, targets, a worker with a test sender, builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opencadence.cadence import actions, definition_file, sender, worker
from opencadence.storage import records
from tests.integration.cadence import helpers, invariants

Build = Callable[..., str]


@pytest.fixture
def rep(store: records.Store) -> str:
    with store.transaction() as tx:
        return tx.insert(
            "User",
            {
                "Username": "rep@example.com",
                "LastName": "Rep",
                "Alias": "rep",
                "Email": "rep@example.com",
                "TimeZoneSidKey": "America/New_York",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
        )


@pytest.fixture
def contacts(store: records.Store) -> Callable[[int], list[str]]:
    def make(n: int) -> list[str]:
        with store.transaction() as tx:
            return tx.insert_many(
                "Contact", [{"LastName": f"C{i}", "Email": f"c{i}@example.com"} for i in range(n)]
            )

    return make


@pytest.fixture
def template_id(store: records.Store) -> str:
    """An active EmailTemplate AutoSendAnEmail steps can be activated with."""
    return helpers.email_template(store)


@pytest.fixture
def outbox() -> sender.RecordingSender:
    return sender.RecordingSender()


@pytest.fixture
def work(store: records.Store, outbox: sender.RecordingSender) -> worker.Worker:
    return worker.Worker(store, outbox)


@pytest.fixture
def acts(store: records.Store, outbox: sender.RecordingSender) -> actions.Actions:
    return actions.Actions(store, sender=outbox)


@pytest.fixture
def build(store: records.Store) -> Build:
    """build(step, step, ..., name=..., exit_rules=[...], state="Active") -> cadence id.

    Each step is a dict of ActionCadenceStep fields; ``parent`` defaults to the previous step.
    """
    counter = iter(range(1000))

    def make(
        *steps: dict[str, Any],
        name: str | None = None,
        state: str = "Active",
        exit_rules: list[dict[str, Any]] | None = None,
        **cadence: Any,
    ) -> str:
        out = [
            {
                "StepName": "root",
                "Type": "Root",
                "rules": [
                    {"RuleName": f"exit{i}", "RuleType": "RootStep", "GlobalEventType": ev}
                    for i, ev in enumerate(exit_rules or [])
                ],
            }
        ]
        for s in steps:
            s = dict(s)
            s.setdefault("ParentStepName", out[-1]["StepName"])
            s.setdefault("StepTitle", s["StepName"])
            out.append(s)
        data = {
            "cadence": {"Name": name or f"Cadence {next(counter)}", **cadence},
            "steps": out,
            "state": state,
        }
        return definition_file.import_definition(store, data)

    return make


@pytest.fixture(autouse=True)
def _invariants(store: records.Store) -> Iterator[None]:
    """Every scenario ends with the runtime's invariants checked."""
    yield
    invariants.check(store)
