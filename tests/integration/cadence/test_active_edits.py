"""Editing an Active cadence through the org (what the REST and SOAP APIs call), on SQLite and
PostgreSQL: an edit is checked as activation checks the graph and a failing one changes
nothing; a passing one reaches running targets as docs/runtime-decisions.md says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from opencadence import system
from opencadence.cadence import actions, decision, definition_file, runtime, validate, worker
from opencadence.clock import ManualClock
from opencadence.org import Org
from opencadence.storage import accounts, records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

V = "62.0"
Contacts = Callable[[int], list[str]]


@pytest.fixture
def org(oc: system.System) -> Org:
    return oc.org


@pytest.fixture
def admin(org: Org) -> accounts.Session:
    user_id, _ = org.accounts.create_user("editor@oc.test", "pw", admin=True)
    return org.accounts.session(org.accounts.open_session(user_id))


@pytest.fixture
def cadence(build: Build) -> str:
    return build(
        {"StepName": "call", "Type": "MakeACall"},
        {"StepName": "wait", "Type": "Wait", "WaitTimeInSeconds": 3600},
        {"StepName": "task", "Type": "CreateTask"},
        name="Live",
    )


def step_id(store: records.Store, cadence: str, name: str) -> str:
    exported = definition_file.export_definition(store, cadence)
    assert any(s["StepName"] == name for s in exported["steps"])
    with store.reading() as conn:
        rows = runtime.RunStore(store).builder_rows(conn, cadence)["steps"]
    return str(next(r["Id"] for r in rows if r["StepName"] == name))


def snapshot(store: records.Store, cadence: str, tracker: str) -> tuple[Any, ...]:
    head = store.get("ActionCadence", cadence) or {}
    return (
        definition_file.dump(definition_file.export_definition(store, cadence)),
        {k: head[k] for k in ("State", "ErrorMessage", "LastEditedDateTime", "TotalSteps")},
        store.get("ActionCadenceTracker", tracker),
        step_trackers(store, tracker),
        last_replay_id(store),
    )


def last_replay_id(store: records.Store) -> int:
    """The newest change event's replay id (a rolled-back edit writes none)."""
    last = 0
    while page := store.read_events(after=last):
        last = int(page[-1]["event"]["replayId"])
    return last


def test_a_failing_edit_changes_nothing(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    cadence: str,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
) -> None:
    (a,) = contacts(1)
    assign(acts, cadence, a, rep)
    tracker = tracker_of(store, a)["Id"]
    before = snapshot(store, cadence, tracker)
    call, wait, task = (step_id(store, cadence, n) for n in ("call", "wait", "task"))
    new = {"ActionCadenceId": cadence, "Type": "CreateTask"}
    attempts: list[tuple[Callable[[], Any], str]] = [
        (
            lambda: org.create(
                admin, "ActionCadenceStep", {**new, "StepName": "x", "ParentStepName": "gone"}, V
            ),
            "Step x: ParentStepName 'gone' names no step of the cadence",
        ),
        (
            lambda: org.create(
                admin, "ActionCadenceStep", {**new, "StepName": "y", "ParentStepName": "call"}, V
            ),
            "Step call: has more than one next step (wait, y)",
        ),
        (
            lambda: org.update(admin, "ActionCadenceStep", wait, {"WaitTimeInSeconds": 0}, V),
            "Step wait: a Wait step needs a WaitTimeInSeconds greater than 0",
        ),
        (
            lambda: org.update(admin, "ActionCadenceStep", task, {"Type": "SendAnEmail"}, V),
            "Step task: the Type of a step cannot change after activation",
        ),
        (
            lambda: org.create(
                admin,
                "ActionCadenceRule",
                {
                    "ActionCadenceStepId": call,
                    "RuleName": "r",
                    "RuleType": "BranchStep",
                    "ConditionLogic": "AND",
                },
                V,
            ),
            "Step call: a MakeACall step cannot have rules of type BranchStep",
        ),
        (
            lambda: org.update(admin, "ActionCadence", cadence, {"Type": "Quick"}, V),
            "Step root: a Quick cadence has exactly one step",
        ),
    ]
    for attempt, message in attempts:
        with pytest.raises(validate.CadenceInvalid) as info:
            attempt()
        assert info.value.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert str(info.value).startswith(message), str(info.value)
        assert snapshot(store, cadence, tracker) == before


def test_an_edit_of_the_draft_is_not_checked_until_activation(
    store: records.Store, org: Org, admin: accounts.Session, build: Build
) -> None:
    draft = build({"StepName": "call", "Type": "MakeACall"}, state="Draft")
    org.create(
        admin,
        "ActionCadenceStep",
        {
            "ActionCadenceId": draft,
            "Type": "CreateTask",
            "StepName": "z",
            "ParentStepName": "gone",
        },
        V,
    )
    with pytest.raises(validate.CadenceInvalid, match="Step z: ParentStepName 'gone'"):
        runtime.activate(store, draft)


def test_an_inactive_cadence_is_checked_too(
    store: records.Store, org: Org, admin: accounts.Session, cadence: str
) -> None:
    runtime.set_state(store, cadence, "Inactive")
    wait = step_id(store, cadence, "wait")
    with pytest.raises(validate.CadenceInvalid, match="Step wait: a Wait step needs"):
        org.update(admin, "ActionCadenceStep", wait, {"WaitTimeInSeconds": None}, V)


def test_an_appended_step_is_reached_by_running_targets(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    cadence: str,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
) -> None:
    a, done = contacts(2)
    assign(acts, cadence, a, rep)
    assign(acts, cadence, done, rep)
    for target in (a, done):
        runtime.log_call(store, rep, target, "Left Voicemail")
    clock.advance(hours=2)
    work.run_until_idle()  # both on the task
    finished = tracker_of(store, done)
    acts.sendSalesCadenceEvent([{"recordId": finished["CurrentStepId"], "eventType": "Skip"}], rep)
    assert tracker_of(store, done)["CompletionReason"] == "NoMoreSteps"
    added = org.create(
        admin,
        "ActionCadenceStep",
        {
            "ActionCadenceId": cadence,
            "StepName": "email",
            "StepTitle": "Follow up",
            "Type": "SendAnEmail",
            "ParentStepName": "task",
        },
        V,
    )
    head = store.get("ActionCadence", cadence) or {}
    assert head["State"] == "Active" and head["TotalSteps"] == 4
    assert head["LastEditedDateTime"] is not None
    row = store.get("ActionCadenceStep", added) or {}
    assert (
        row["RootStepId"] == step_id(store, cadence, "root") and row["TypeDetail"] == "SendAnEmail"
    )
    task = tracker_of(store, a)["CurrentStepId"]
    acts.sendSalesCadenceEvent([{"recordId": task, "eventType": "ManualComplete"}], rep)
    last = step_trackers(store, tracker_of(store, a)["Id"])[-1]
    assert last["StepTitle"] == "Follow up" and last["State"] == "Active"
    assert tracker_of(store, done)["State"] == "Complete"  # a finished target stays finished


def test_an_insertion_in_one_transaction_and_its_effect(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    cadence: str,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
) -> None:
    on_call, on_task = contacts(2)
    assign(acts, cadence, on_call, rep)
    assign(acts, cadence, on_task, rep)
    tid = tracker_of(store, on_task)["Id"]
    runtime.log_call(store, rep, on_task, "Left Voicemail")
    wait_tracker = tracker_of(store, on_task)["CurrentStepId"]
    assert (store.get("ActionCadenceStepTracker", wait_tracker) or {})["StepType"] == "Wait"
    wait = step_id(store, cadence, "wait")
    # insert "note" between call and wait: the new step and the re-pointed wait, together
    with org.transaction(admin, V) as tx:
        org.create(
            admin,
            "ActionCadenceStep",
            {
                "ActionCadenceId": cadence,
                "StepName": "note",
                "Type": "CreateTask",
                "ParentStepName": "call",
            },
            V,
            tx=tx,
        )
        org.update(admin, "ActionCadenceStep", wait, {"ParentStepName": "note"}, V, tx=tx)
    runtime.log_call(store, rep, on_call, "Left Voicemail")
    assert step_trackers(store, tracker_of(store, on_call)["Id"])[-1]["StepType"] == "CreateTask"
    # the target already past the insertion point is not sent back
    assert tracker_of(store, on_task)["CurrentStepId"] == wait_tracker
    assert [r["StepType"] for r in step_trackers(store, tid)] == ["Root", "MakeACall", "Wait"]


def test_timing_edits_apply_to_step_trackers_created_after_them(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
) -> None:
    cid = build({"StepName": "task", "Type": "CreateTask"}, name="Timed")
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    open_due = step_trackers(store, tracker_of(store, a)["Id"])[1]["DueDateTime"]
    org.update(
        admin, "ActionCadenceStep", step_id(store, cid, "task"), {"ScheduledDaysUntilDue": 3}, V
    )
    assert step_trackers(store, tracker_of(store, a)["Id"])[1]["DueDateTime"] == open_due
    assign(acts, cid, b, rep)
    new_due = step_trackers(store, tracker_of(store, b)["Id"])[1]["DueDateTime"]
    assert new_due - open_due == timedelta(days=3)


def test_a_locked_due_date_cannot_be_moved_by_the_assignee(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
) -> None:
    cid = build({"StepName": "task", "Type": "CreateTask"}, name="Locked")
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    st = tracker_of(store, a)["CurrentStepId"]
    due = (store.get("ActionCadenceStepTracker", st) or {})["DueDateTime"]
    later = due + timedelta(days=2)
    runtime.change_due_date(store, st, later, rep)
    assert (store.get("ActionCadenceStepTracker", st) or {})["DueDateTime"] == later
    # locking the step applies at once to its open step trackers
    org.update(
        admin,
        "ActionCadenceStep",
        step_id(store, cid, "task"),
        {"IsScheduledDueDateLocked": True},
        V,
    )
    with pytest.raises(decision.Refused, match="locked") as info:
        runtime.change_due_date(store, st, due, rep)
    assert info.value.error_code == "INVALID_OPERATION"
    assert (store.get("ActionCadenceStepTracker", st) or {})["DueDateTime"] == later
