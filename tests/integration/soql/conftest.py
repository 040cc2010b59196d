"""A small org for SOQL tests: users, accounts, contacts, leads, a cadence, trackers.

Most tests only query it, so the org is built once per module and backend (on
``module_engine``) and shared; a test that changes it is marked ``@pytest.mark.writes`` and gets
an org of its own on a fresh database. The shared org is compared before and after the module,
so an unmarked test that writes fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import errors
from opencadence.api import rest
from opencadence.clock import ManualClock
from opencadence.metadata import registry as registries
from opencadence.soql import execute
from opencadence.storage import database, records
from tests import db_state


@dataclass
class Org:
    store: records.Store
    service: execute.QueryService
    clock: ManualClock
    ids: dict[str, str] = field(default_factory=dict)

    def q(self, text: str, **kw: object) -> dict:  # type: ignore[type-arg]
        return self.service.query(text, **kw)  # type: ignore[arg-type]


NOW = datetime(2026, 3, 10, 15, 0)  # a Tuesday, 15:00 UTC


def build_org(store: records.Store, clock: ManualClock) -> dict[str, str]:
    ids: dict[str, str] = {}
    with store.transaction() as tx:
        ids["rep"] = tx.insert(
            "User",
            {
                "Username": "rep@x.io",
                "LastName": "Rep",
                "Name": "Rita Rep",
                "Email": "rep@x.io",
                "Alias": "rrep",
                "TimeZoneSidKey": "America/Los_Angeles",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
            system=True,
        )
        ids["acme"] = tx.insert("Account", {"Name": "Acme", "Industry": "Technology"})
        ids["globex"] = tx.insert("Account", {"Name": "Globex"})
        ids["c1"] = tx.insert(
            "Contact",
            {
                "FirstName": "Ann",
                "LastName": "Able",
                "Email": "ann@acme.io",
                "AccountId": ids["acme"],
                "Title": "CEO",
            },
        )
        ids["c2"] = tx.insert(
            "Contact", {"FirstName": "Bob", "LastName": "baker", "AccountId": ids["acme"]}
        )
        ids["c3"] = tx.insert(
            "Contact",
            {
                "FirstName": "Émile",
                "LastName": "Zola",
                "AccountId": ids["globex"],
                "Title": "100% Writer",
            },
        )
        ids["l1"] = tx.insert(
            "Lead", {"LastName": "Lee", "Company": "Initech", "Email": "lee@initech.io"}
        )
        ids["cad"] = tx.insert(
            "ActionCadence",
            {"Name": "Outbound", "State": "Active", "FolderId": ids["rep"], "OwnerId": ids["rep"]},
            system=True,
        )
        ids["s1"] = tx.insert(
            "ActionCadenceStep",
            {
                "ActionCadenceId": ids["cad"],
                "StepName": "call1",
                "StepTitle": "Call",
                "Type": "MakeACall",
            },
            system=True,
        )
        ids["s2"] = tx.insert(
            "ActionCadenceStep",
            {
                "ActionCadenceId": ids["cad"],
                "StepName": "mail1",
                "StepTitle": "Email",
                "Type": "AutoSendAnEmail",
                "ParentStepName": "call1",
            },
            system=True,
        )
        for key, target in (("t1", "c1"), ("t2", "c2"), ("t3", "l1")):
            ids[key] = tx.insert(
                "ActionCadenceTracker",
                {
                    "ActionCadenceId": ids["cad"],
                    "TargetId": ids[target],
                    "OwnerId": ids["rep"],
                    "State": "Running",
                },
                system=True,
            )
        base = NOW - timedelta(days=1)
        rows = [
            (
                "st1",
                "t1",
                "c1",
                "s1",
                "Completed",
                "MakeACall",
                base - timedelta(hours=5),
                base - timedelta(hours=4),
            ),
            ("st2", "t1", "c1", "s2", "Active", "AutoSendAnEmail", base, None),
            ("st3", "t2", "c2", "s1", "Active", "MakeACall", NOW + timedelta(days=2), None),
            (
                "st4",
                "t3",
                "l1",
                "s1",
                "Completed",
                "MakeACall",
                base - timedelta(days=3),
                base - timedelta(days=3, hours=-1),
            ),
        ]
        for key, tracker, target, step, state, stype, due, taken in rows:
            ids[key] = tx.insert(
                "ActionCadenceStepTracker",
                {
                    "ActionCadenceId": ids["cad"],
                    "ActionCadenceName": "Outbound",
                    "ActionCadenceStepId": ids[step],
                    "ActionCadenceTrackerId": ids[tracker],
                    "TargetId": ids[target],
                    "State": state,
                    "StepType": stype,
                    "StepTitle": "Call" if stype == "MakeACall" else "Email",
                    "DueDateTime": due,
                    "ActionTakenDateTime": taken,
                    "CompletedById": ids["rep"] if taken else None,
                    "CompletionReason": "AutomaticallyCompleted" if state == "Completed" else None,
                    "CompletionDate": taken,
                    "GoToStepIterationCount": 1,
                },
                system=True,
            )
    return ids


class CheckedService(execute.QueryService):
    """Answers every query by the fast path (storage.fastread) after asking the general path
    (SQLAlchemy execution) the same: the two must agree exactly (records, totalSize, done,
    where the next page starts, or the same error; the same bytes as the REST API renders
    them), so every test here is also a differential test of the fast path."""

    def __init__(self, store: records.Store) -> None:
        super().__init__(store)
        self.general = execute.QueryService(store, fast=False)
        self.compared = 0

    def query(self, text: str, caller: execute.Caller | None = None, **kw: Any) -> dict[str, Any]:
        try:
            expected: Any = self.general.query(text, caller, **kw)
        except errors.OpenCadenceError as exc:
            expected = exc
        try:
            got = super().query(text, caller, **kw)
        except errors.OpenCadenceError as exc:
            assert isinstance(expected, errors.OpenCadenceError), (text, exc)
            assert (type(exc), str(exc)) == (type(expected), str(expected)), text
            raise
        assert not isinstance(expected, Exception), (text, expected)
        assert _comparable(got) == _comparable(expected), text
        # and byte for byte as REST renders them: == takes True for 1 and 1.0 for 1, and
        # ignores key order, which a JSON client sees
        assert rest.render_json(_comparable(got)) == rest.render_json(_comparable(expected)), text
        self.compared += 1
        return got


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """The result without its random locator (where the next page starts stays)."""
    out = dict(result)
    url = out.pop("nextRecordsUrl", None)
    out["next"] = url.rsplit("-", 1)[1] if url else None
    return out


def _seeded(engine: sa.Engine) -> Org:
    clock = ManualClock()
    clock.set(NOW)
    store = records.Store(engine, registries.default_registry(), clock)
    ids = build_org(store, clock)
    return Org(store, CheckedService(store), clock, ids)


@pytest.fixture(scope="module")
def shared_org(module_engine: sa.Engine) -> Iterator[Org]:
    """The org, built once per module and backend, for the tests that only read it."""
    org = _seeded(module_engine)
    before = db_state.dump(module_engine)
    yield org
    after = db_state.dump(module_engine)
    assert after == before, "a test changed the shared org: mark it @pytest.mark.writes"


@pytest.fixture
def org(
    request: pytest.FixtureRequest, shared_org: Org, fresh_url: Callable[[str], str]
) -> Iterator[Org]:
    """The shared org, or an org of the test's own for a test marked ``writes``."""
    if request.node.get_closest_marker("writes") is None:
        yield shared_org
        return
    engine = database.create_engine(fresh_url(shared_org.store.engine.dialect.name))
    yield _seeded(engine)
    engine.dispose()
