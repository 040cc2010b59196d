"""The two tracker CompletionReasons that edits and deletes produce (SQLite and PostgreSQL): a
target deleted while in a cadence leaves it ManuallyRemovedNoAccess (with its person account
too), and a branch whose outcome step was deleted after activation ends the target's run
AutomaticallyExitedInvalidParentStep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from opencadence import system
from opencadence.cadence import actions, conversion, runtime
from opencadence.storage import accounts, metrics, records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

V = "62.0"


def _admin_session(oc: system.System) -> accounts.Session:
    admin, _ = oc.org.accounts.create_user("admin@oc.test", "s3cret!", admin=True)
    return oc.org.accounts.session(oc.org.accounts.open_session(admin))


def test_a_deleted_target_leaves_its_cadence_no_access(
    oc: system.System,
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
) -> None:
    cid = build({"StepName": "call", "Type": "MakeACall"}, {"StepName": "t", "Type": "CreateTask"})
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    assign(acts, cid, b, rep)
    tracker = tracker_of(store, a)["Id"]
    session = _admin_session(oc)
    oc.org.delete(session, "Contact", a, V)
    done = store.get("ActionCadenceTracker", tracker) or {}
    assert (done["State"], done["CompletionReason"], done["IsTrackerActive"]) == (
        "Complete",
        "ManuallyRemovedNoAccess",
        False,
    )
    open_step = step_trackers(store, tracker)[-1]
    assert open_step["State"] == "Cancelled" and open_step["CompletionReason"] is None
    assert tracker_of(store, b)["State"] == "Running"  # the other target runs on
    assert runtime.trackers_of(store, [a]) == {}  # no run-state row is left


def test_a_person_accounts_delete_takes_its_contact_out(
    oc: system.System, store: records.Store, build: Build, acts: actions.Actions, rep: str
) -> None:
    cid = build({"StepName": "call", "Type": "MakeACall"})
    session = _admin_session(oc)
    account = oc.org.create(
        session,
        "Account",
        {"FirstName": "Pat", "LastName": "Person", "PersonEmail": "pat@x.test"},
        V,
    )
    person = (store.get("Account", account) or {})["PersonContactId"]
    assert person
    assign(acts, cid, person, rep)  # the person contact stands for the account
    enrolled = runtime.trackers_of(store, [account, person])
    assert len(enrolled) == 1
    (tracker,) = enrolled.values()
    oc.org.delete(session, "Account", account, V)
    assert (store.get("ActionCadenceTracker", tracker) or {})[
        "CompletionReason"
    ] == "ManuallyRemovedNoAccess"


def test_a_deleted_branch_outcome_exits_invalid_parent_step(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
) -> None:
    cid = build(
        {"StepName": "call", "Type": "MakeACall"},
        {
            "StepName": "outcome",
            "Type": "Branch",
            "BranchDefaultStepName": "other",
            "rules": [
                {
                    "RuleName": "connected",
                    "RuleType": "BranchStep",
                    "OutcomeNextStepName": "good",
                    "conditions": [
                        {
                            "RuleConditionName": "c",
                            "Resource": "CallDispositionCategory",
                            "Operator": "Equal",
                            "Value": "CallMeaningfulConnect",
                        }
                    ],
                }
            ],
        },
        {"StepName": "good", "Type": "CreateTask"},
        {"StepName": "other", "Type": "CreateTask", "ParentStepName": "outcome"},
    )
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    assign(acts, cid, b, rep)
    good = _step_id(store, cid, "good")
    assert runtime.delete_step(store, good, rep) == 0  # nobody is on it yet
    runtime.log_call(store, rep, a, "Meaningful Connect")  # routes to the deleted step
    done = tracker_of(store, a)
    assert (done["State"], done["CompletionReason"]) == (
        "Complete",
        "AutomaticallyExitedInvalidParentStep",
    )
    assert [s["StepType"] for s in step_trackers(store, done["Id"])][-2:] == ["MakeACall", "Branch"]
    runtime.log_call(store, rep, b, "Left Voicemail")  # the default outcome still leads on
    assert step_trackers(store, tracker_of(store, b)["Id"])[-1]["StepTitle"] == "other"


def _step_id(store: records.Store, cadence_id: str, name: str) -> str:
    t = store.meta.tables["ActionCadenceStep"]
    with store.reading() as conn:
        return str(
            conn.execute(
                sa.select(t.c.Id).where(t.c.ActionCadenceId == cadence_id, t.c.StepName == name)
            ).scalar_one()
        )


def _branch(name: str, parent: str, to: str, default: str) -> dict[str, Any]:
    """A Branch on a meaningful connect: to ``to``, else ``default``."""
    return {
        "StepName": name,
        "Type": "Branch",
        "ParentStepName": parent,
        "BranchDefaultStepName": default,
        "rules": [
            {
                "RuleName": f"r_{name}",
                "RuleType": "BranchStep",
                "OutcomeNextStepName": to,
                "conditions": [
                    {
                        "RuleConditionName": f"c_{name}",
                        "Resource": "CallDispositionCategory",
                        "Operator": "Equal",
                        "Value": "CallMeaningfulConnect",
                    }
                ],
            }
        ],
    }


def test_branches_routing_to_each_other_end_the_tracker_in_error(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
) -> None:
    cid = build(
        {"StepName": "call", "Type": "MakeACall"},
        _branch("a", "call", "b", "t"),
        _branch("b", "a", "a", "t2"),  # back to a on the same call result: a loop
        {"StepName": "t", "Type": "CreateTask", "ParentStepName": "a"},
        {"StepName": "t2", "Type": "CreateTask", "ParentStepName": "b"},
    )
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    assign(acts, cid, b, rep)
    runtime.log_call(store, rep, a, "Meaningful Connect")
    tr = tracker_of(store, a)
    assert (tr["State"], tr["CompletionReason"], tr["IsTrackerActive"]) == ("Error", None, False)
    assert tr["ErrorMessage"] == "Stopped: too many instant steps in a row"
    assert tr["CurrentStepId"] is None and runtime.trackers_of(store, [a]) == {}
    assert {s["State"] for s in step_trackers(store, tr["Id"])} == {"Completed"}
    runtime.log_call(store, rep, b, "Left Voicemail")  # another result leaves the loop
    assert tracker_of(store, b)["State"] == "Running"
    assign(acts, cid, a, rep)  # a target whose run ended in error may be enrolled again
    with store.reading() as conn:
        tz = metrics.org_time_zone(conn, store.meta)
        assert metrics.differences(conn, store.meta, store.registry, tz) == []
    head = store.get("ActionCadence", cid) or {}
    assert (head["TotalTargets"], head["ActiveTargets"], head["SuccessfulCompletions"]) == (3, 2, 0)


def test_a_lead_conversion_passes_the_tracker_through_processing(
    oc: system.System,
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
) -> None:
    cid = build({"StepName": "call", "Type": "MakeACall"})
    with store.transaction() as tx:
        lead = tx.insert("Lead", {"LastName": "Lee", "Company": "Leeco"})
    assign(acts, cid, lead, rep)
    tracker = tracker_of(store, lead)["Id"]
    with store.transaction(rep) as tx:
        conversion.convert(
            tx, conversion.LeadConvert(lead_id=lead, converted_status="Closed - Converted")
        )
    events = [
        e["payload"]
        for e in store.read_events(entity="ActionCadenceTracker")
        if tracker in e["payload"]["ChangeEventHeader"]["recordIds"]
    ]
    states = [(p["ChangeEventHeader"]["changeType"], p.get("State")) for p in events]
    assert states == [
        ("CREATE", "Initializing"),
        ("UPDATE", "Running"),
        ("UPDATE", "Processing"),
        ("UPDATE", "Complete"),
    ]
    assert events[-1]["CompletionReason"] == "LeadConverted"
    # one transaction: the two updates share its transactionKey
    keys = {p["ChangeEventHeader"]["transactionKey"] for p in events[2:]}
    assert len(keys) == 1
    head = store.get("ActionCadence", cid) or {}
    assert (head["TotalTargets"], head["ActiveTargets"]) == (1, 0)
    done = tracker_of(store, lead)
    assert (done["State"], done["IsTrackerActive"]) == ("Complete", False)
