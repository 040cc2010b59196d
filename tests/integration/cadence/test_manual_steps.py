"""Enrolment, manual steps, Wait and the end of the graph, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from opencadence.cadence import actions, runtime, worker
from opencadence.clock import ManualClock
from opencadence.storage import records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of


def test_enrol_completes_root_and_opens_first_step(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
    clock: ManualClock,
) -> None:
    cid = build({"StepName": "call", "Type": "MakeACall", "ScheduledDaysUntilDue": 1})
    (target,) = contacts(1)
    assign(acts, cid, target, rep)
    tr = tracker_of(store, target)
    assert tr["State"] == "Running" and tr["IsTrackerActive"] and tr["OwnerId"] == rep
    assert tr["DaisyChainIteration"] == 1
    root, call = step_trackers(store, tr["Id"])
    assert root["StepType"] == "Root" and root["State"] == "Completed"
    assert root["CompletionReason"] == "AutomaticallyCompleted"
    assert call["StepType"] == "MakeACall" and call["State"] == "Active"
    assert call["GoToStepIterationCount"] == 1 and call["StepTitle"] == "call"
    assert tr["CurrentStepId"] == call["Id"] and tr["LastCompletedStepId"] == root["Id"]
    # due: end of the rep's local day (New York) one day after the start
    assert call["DueDateTime"] == datetime(2026, 1, 7, 4, 59, 59)
    assert call["SecondsOverdue"] is None and call["IsActionTaken"] is False
    trs = [e["payload"] for e in store.read_events(entity="ActionCadenceTracker")]
    assert [p["ChangeEventHeader"]["changeType"] for p in trs] == ["CREATE", "UPDATE"]
    assert trs[0]["State"] == "Initializing" and trs[1]["State"] == "Running"
    key = trs[0]["ChangeEventHeader"]["transactionKey"]
    same = [
        e["payload"]["ChangeEventHeader"]
        for e in store.read_events()
        if e["payload"]["ChangeEventHeader"]["transactionKey"] == key
    ]
    tracker, step = "ActionCadenceTracker", "ActionCadenceStepTracker"
    assert [(h["entityName"], h["changeType"], h["sequenceNumber"]) for h in same] == [
        (tracker, "CREATE", 1),
        (step, "CREATE", 2),
        (step, "CREATE", 3),
        (tracker, "UPDATE", 4),
    ]


def test_manual_steps_complete_by_action_mark_and_skip(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
    clock: ManualClock,
) -> None:
    cid = build(
        {"StepName": "email", "Type": "SendAnEmail"},
        {"StepName": "task", "Type": "CreateTask"},
        {"StepName": "li", "Type": "LinkedInConnection"},
    )
    (target,) = contacts(1)
    assign(acts, cid, target, rep)
    tr = tracker_of(store, target)
    email = step_trackers(store, tr["Id"])[1]
    runtime.start_step(store, email["Id"], rep)
    assert store.get("ActionCadenceStepTracker", email["Id"])["State"] == "InProgress"  # type: ignore[index]
    clock.advance(hours=1)
    runtime.take_action(store, email["Id"], rep)
    task = step_trackers(store, tr["Id"])[2]
    (res,) = acts.sendSalesCadenceEvent(
        [{"recordId": task["Id"], "eventType": "ManualComplete"}], rep
    )
    assert res["isSuccess"], res
    li = step_trackers(store, tr["Id"])[3]
    (res,) = acts.sendSalesCadenceEvent([{"recordId": li["Id"], "eventType": "Skip"}], rep)
    assert res["isSuccess"], res
    _, email, task, li = step_trackers(store, tr["Id"])
    assert email["CompletionReason"] == "AutomaticallyCompleted" and email["IsActionTaken"]
    assert email["ActionTakenDateTime"] == email["CompletionDate"] == datetime(2026, 1, 5, 10)
    assert email["CompletedById"] == rep and email["SecondsOverdue"] == 0
    assert task["CompletionReason"] == "ManuallyCompleted" and not task["IsActionTaken"]
    assert li["CompletionReason"] == "ManuallySkipped" and li["CompletedById"] == rep
    tr = tracker_of(store, target)
    assert tr["State"] == "Complete" and tr["CompletionReason"] == "NoMoreSteps"
    assert not tr["IsTrackerActive"] and tr["LastCompletedStepId"] == li["Id"]


def test_seconds_overdue_grows_after_due_date(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
    clock: ManualClock,
) -> None:
    cid = build({"StepName": "task", "Type": "CreateTask"})
    (target,) = contacts(1)
    assign(acts, cid, target, rep)
    task = step_trackers(store, tracker_of(store, target)["Id"])[1]
    due = task["DueDateTime"]
    clock.set(due.replace(tzinfo=None) + timedelta(seconds=90))
    assert store.get("ActionCadenceStepTracker", task["Id"])["SecondsOverdue"] == 90  # type: ignore[index]


def test_scheduled_start_then_active_via_worker(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
    clock: ManualClock,
    work: worker.Worker,
) -> None:
    cid = build(
        {
            "StepName": "call",
            "Type": "MakeACall",
            "ScheduledDaysUntilStart": 2,
            "ScheduledStartTimeInMinutes": 9 * 60,
        }
    )
    (target,) = contacts(1)
    assign(acts, cid, target, rep)
    call = step_trackers(store, tracker_of(store, target)["Id"])[1]
    assert call["State"] == "Scheduled"
    assert call["ScheduledStartDateTime"] == datetime(2026, 1, 7, 14, 0)  # 09:00 New York
    assert work.run_until_idle() == 0
    clock.set(datetime(2026, 1, 7, 14, 0))
    assert work.run_until_idle() == 1
    assert store.get("ActionCadenceStepTracker", call["Id"])["State"] == "Active"  # type: ignore[index]


def test_wait_step_completes_after_its_time(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Callable[[int], list[str]],
    clock: ManualClock,
    work: worker.Worker,
) -> None:
    cid = build(
        {"StepName": "wait", "Type": "Wait", "WaitTimeInSeconds": 3600},
        {"StepName": "task", "Type": "CreateTask"},
    )
    (target,) = contacts(1)
    assign(acts, cid, target, rep)
    tr = tracker_of(store, target)
    assert tr["ScheduledResumeDateTime"] == datetime(2026, 1, 5, 10)
    clock.advance(minutes=59)
    assert work.run_until_idle() == 0
    clock.advance(minutes=1)
    assert work.run_until_idle() == 1
    _, wait, task = step_trackers(store, tr["Id"])
    assert wait["State"] == "Completed" and wait["CompletionReason"] == "AutomaticallyCompleted"
    assert wait["DueDateTime"] is None and task["State"] == "Active"
    assert tracker_of(store, target)["ScheduledResumeDateTime"] is None
