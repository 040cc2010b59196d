"""Cadence Builder 2.0 tracks and quick cadences through the runtime, on SQLite and
PostgreSQL: a track switch on an email reply and on a call result, a quick cadence repeating,
and their definition files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from opencadence.cadence import actions, definition_file, runtime, validate, worker
from opencadence.clock import ManualClock
from opencadence.storage import records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

Contacts = Callable[[int], list[str]]


def entry(name: str, resource: str, value: str) -> dict[str, Any]:
    return {
        "RuleName": name,
        "RuleType": "SubRootStep",
        "conditions": [
            {
                "RuleConditionName": f"{name}c",
                "Resource": resource,
                "Operator": "Equal",
                "Value": value,
            }
        ],
    }


def tracks(template_id: str) -> list[dict[str, Any]]:
    """main: auto email -> wait 2 days -> call; positive (on a reply or a meaningful connect):
    call the next day at 9:00 -> task; negative (not interested): task."""
    return [
        {"StepName": "email", "Type": "AutoSendAnEmail", "TemplateId": template_id},
        {"StepName": "wait", "Type": "Wait", "WaitTimeInSeconds": 2 * 86400},
        {"StepName": "call", "Type": "MakeACall"},
        {
            "StepName": "positive",
            "Type": "SubRoot",
            "StepTitle": "Positive",
            "ParentStepName": "root",
            "rules": [
                entry("onreply", "EmailEngagement", "EmailReply"),
                entry("onconnect", "CallDispositionCategory", "CallMeaningfulConnect"),
            ],
        },
        {
            "StepName": "pcall",
            "Type": "MakeACall",
            "ParentStepName": "positive",
            "ScheduledStartDelayInMinutes": 30,
        },
        {"StepName": "ptask", "Type": "CreateTask"},
        {
            "StepName": "negative",
            "Type": "SubRoot",
            "StepTitle": "Negative",
            "ParentStepName": "root",
            "rules": [entry("onno", "CallDispositionCategory", "CallNotInterested")],
        },
        {"StepName": "ntask", "Type": "CreateTask", "ParentStepName": "negative"},
    ]


def test_a_reply_switches_to_the_positive_track(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
    template_id: str,
) -> None:
    cid = build(*tracks(template_id))
    assert (store.get("ActionCadence", cid) or {})["TotalSteps"] == 6
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    tid = tracker_of(store, a)["Id"]
    assert work.run_until_idle() == 1  # the email goes out; the wait starts
    _, email, wait = step_trackers(store, tid)
    assert email["State"] == "Completed" and wait["State"] == "Active"
    clock.advance(hours=1)
    assert runtime.engagement(store, a, "EmailReply", email["Id"])
    rows = step_trackers(store, tid)
    wait, head, pcall = rows[2:]
    assert wait["State"] == "Cancelled" and wait["CompletionReason"] is None
    assert wait["CompletionDate"] is None and not wait["IsActionTaken"]
    assert head["StepType"] == "SubRoot" and head["StepTitle"] == "Positive"
    assert head["State"] == "Completed" and head["CompletionReason"] == "AutomaticallyCompleted"
    assert pcall["StepType"] == "MakeACall" and pcall["State"] == "Scheduled"
    # its own start (now + 30 min) is later than the cancelled wait's start
    assert pcall["ScheduledStartDateTime"] == clock.now().replace(tzinfo=None) + timedelta(
        minutes=30
    )
    tracker = tracker_of(store, a)
    assert tracker["CurrentStepId"] == pcall["Id"] and tracker["ScheduledResumeDateTime"] is None
    assert tracker["LastCompletedStepId"] == head["Id"]
    clock.advance(hours=3)  # the wait's end passes: nothing happens to the cancelled wait
    work.run_until_idle()
    assert (store.get("ActionCadenceStepTracker", pcall["Id"]) or {})["State"] == "Active"
    runtime.log_call(store, rep, a, "Meaningful Connect")  # the positive track's own rule
    assert [r["StepType"] for r in step_trackers(store, tid)][-1] == "CreateTask"


def test_a_call_result_switches_to_the_negative_track_not_before_the_cancelled_start(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
    template_id: str,
) -> None:
    steps = tracks(template_id)
    steps[2] = {"StepName": "later", "Type": "CreateTask", "ScheduledDaysUntilStart": 3}
    cid = build(*steps)
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    tid = tracker_of(store, a)["Id"]
    work.run_until_idle()
    clock.advance(days=2, minutes=1)
    work.run_until_idle()  # the wait ends; the task is scheduled three days later
    call = step_trackers(store, tid)[-1]
    assert call["StepType"] == "CreateTask" and call["State"] == "Scheduled"
    runtime.log_call(store, rep, a, "Not Interested")  # a call the rep made anyway
    rows = step_trackers(store, tid)
    cancelled, head, ntask = rows[-3:]
    assert cancelled["Id"] == call["Id"] and cancelled["State"] == "Cancelled"
    assert cancelled["ActionTakenDateTime"] is None
    assert head["StepType"] == "SubRoot" and head["StepTitle"] == "Negative"
    assert ntask["StepType"] == "CreateTask" and ntask["State"] == "Scheduled"
    assert ntask["ScheduledStartDateTime"] == call["ScheduledStartDateTime"]
    clock.advance(days=3)
    work.run_until_idle()
    assert (store.get("ActionCadenceStepTracker", ntask["Id"]) or {})["State"] == "Active"


def test_a_call_on_the_call_step_completes_it_then_switches(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    template_id: str,
) -> None:
    steps = tracks(template_id)
    cid = build(steps[2], *steps[3:])  # main track: the call first
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    runtime.log_call(store, rep, a, "Meaningful Connect")
    rows = step_trackers(store, tracker_of(store, a)["Id"])
    assert [(r["StepType"], r["State"]) for r in rows] == [
        ("Root", "Completed"),
        ("MakeACall", "Completed"),
        ("SubRoot", "Completed"),
        ("MakeACall", "Scheduled"),
    ]
    assert rows[1]["CompletionReason"] == "AutomaticallyCompleted" and rows[1]["IsActionTaken"]


def test_a_quick_cadence_repeats_then_ends(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
) -> None:
    cid = build(
        {
            "StepName": "call",
            "Type": "MakeACall",
            "GoToStepIterationLimit": 2,
            "GoToStepIntervalInMinutes": 60,
            "rules": [{"RuleName": "again", "RuleType": "RepeatedStep"}],
        },
        Type="Quick",
        exit_rules=["CallMeaningfulConnect"],
    )
    assert (store.get("ActionCadence", cid) or {})["TotalSteps"] == 1
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    assign(acts, cid, b, rep)
    tid = tracker_of(store, a)["Id"]
    for _ in range(3):
        runtime.log_call(store, rep, a, "Left Voicemail")
        clock.advance(minutes=61)
        work.run_until_idle()
    calls = [r for r in step_trackers(store, tid) if r["StepType"] == "MakeACall"]
    assert [c["GoToStepIterationCount"] for c in calls] == [1, 2, 3]
    assert all(c["State"] == "Completed" and c["IsActionTaken"] for c in calls)
    assert calls[1]["ScheduledStartDateTime"] == calls[0]["CompletionDate"] + timedelta(minutes=60)
    assert tracker_of(store, a)["CompletionReason"] == "NoMoreSteps"
    # the global exit ends the repeats at the connect
    runtime.log_call(store, rep, b, "Meaningful Connect")
    assert tracker_of(store, b)["CompletionReason"] == "AutomaticallyExited"


def test_definition_files_of_tracks_and_quick_cadences_round_trip(
    store: records.Store, build: Build, template_id: str
) -> None:
    cid = build(*tracks(template_id), name="Tracked")
    quick = build(
        {
            "StepName": "call",
            "Type": "MakeACall",
            "GoToStepIterationLimit": 1,
            "rules": [{"RuleName": "again", "RuleType": "RepeatedStep"}],
        },
        name="Quick one",
        Type="Quick",
    )
    for name in ("Tracked", "Quick one"):
        exported = definition_file.export_definition(store, name)
        text = definition_file.dump(exported)
        again = definition_file.load_text(text)
        again["cadence"]["Name"] = f"{name} copy"
        definition_file.import_definition(store, again)
        copy = definition_file.export_definition(store, f"{name} copy")
        copy["cadence"]["Name"] = name
        assert definition_file.dump(copy) == text
    exported = definition_file.export_definition(store, cid)
    heads = [s for s in exported["steps"] if s["Type"] == "SubRoot"]
    assert [h["StepName"] for h in heads] == ["negative", "positive"]
    assert heads[1]["rules"][0]["RuleType"] == "SubRootStep"
    assert definition_file.export_definition(store, quick)["cadence"]["Type"] == "Quick"


def test_an_invalid_track_file_imports_nothing(store: records.Store, build: Build) -> None:
    with pytest.raises(validate.CadenceInvalid, match="Step positive: a SubRoot step needs"):
        build(
            {"StepName": "call", "Type": "MakeACall"},
            {"StepName": "positive", "Type": "SubRoot", "ParentStepName": "root"},
            name="Broken",
        )
    with pytest.raises(Exception, match="No cadence"):
        definition_file.export_definition(store, "Broken")
