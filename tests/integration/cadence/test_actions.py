"""The eight Sales Engagement actions: outputs and per-input errors, on both databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from opencadence import ids
from opencadence.cadence import actions, runtime, sender, worker
from opencadence.cadence.settings import Config
from opencadence.clock import ManualClock
from opencadence.storage import records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

Contacts = Callable[[int], list[str]]


def codes(results: list[dict[str, object]]) -> list[str | None]:
    return [
        None if r["isSuccess"] else r["errors"][0]["statusCode"]  # type: ignore[index]
        for r in results
    ]


def test_assign_reports_each_input_alone(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build({"StepName": "t", "Type": "CreateTask"}, name="Live")
    draft = build({"StepName": "t", "Type": "CreateTask"}, name="Drafty", state="Draft")
    a, b, c = contacts(3)
    res = acts.assignTargetToSalesCadence(
        [
            {"salesCadenceNameOrId": "Live", "targetId": a},
            {"salesCadenceNameOrId": cid, "targetId": a},  # same target twice
            {"salesCadenceNameOrId": draft, "targetId": b},  # Draft cadence
            {"salesCadenceNameOrId": "Nope", "targetId": b},
            {"targetId": c},  # missing cadence
            {"salesCadenceNameOrId": cid, "targetId": "garbage"},
            {"salesCadenceNameOrId": cid, "targetId": ids.make_id("003", 999_999)},
            {"salesCadenceNameOrId": cid, "targetId": c, "startStepNameOrId": "t"},
        ],
        rep,
    )
    assert codes(res) == [
        None,
        "DUPLICATE_VALUE",
        "INVALID_OPERATION",
        "INVALID_CROSS_REFERENCE_KEY",
        "REQUIRED_FIELD_MISSING",
        "INVALID_ID_FIELD",
        "INVALID_CROSS_REFERENCE_KEY",
        None,
    ]
    assert res[0] == {
        "isSuccess": True,
        "outputValues": {"actionCadenceTrackerId": tracker_of(store, a)["Id"]},
        "errors": [],
    }
    assert tracker_of(store, a)["OwnerId"] == rep  # the running user by default
    again = acts.assignTargetToSalesCadence([{"salesCadenceNameOrId": cid, "targetId": a}], rep)
    assert codes(again) == ["DUPLICATE_VALUE"]


def test_active_tracker_limit_is_configurable(
    store: records.Store, build: Build, rep: str, contacts: Contacts
) -> None:
    acts = actions.Actions(store, Config(max_active_trackers=2))
    cid = build({"StepName": "t", "Type": "CreateTask"})
    targets = contacts(3)
    res = acts.assignTargetToSalesCadence(
        [{"salesCadenceNameOrId": cid, "targetId": t} for t in targets], rep
    )
    assert codes(res) == [None, None, "LIMIT_EXCEEDED"]


def test_inactive_cadence_takes_no_new_targets_but_runs_on(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build({"StepName": "t", "Type": "CreateTask"}, {"StepName": "u", "Type": "CreateTask"})
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    runtime.set_state(store, cid, "Inactive")
    res = acts.assignTargetToSalesCadence([{"salesCadenceNameOrId": cid, "targetId": b}], rep)
    assert codes(res) == ["INVALID_OPERATION"]
    st = step_trackers(store, tracker_of(store, a)["Id"])[1]
    acts.sendSalesCadenceEvent([{"recordId": st["Id"], "eventType": "Skip"}], rep)
    assert step_trackers(store, tracker_of(store, a)["Id"])[2]["State"] == "Active"


def test_remove_cancels_open_step_and_unsends_email(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    outbox: sender.RecordingSender,
    work: worker.Worker,
    template_id: str,
) -> None:
    cid = build(
        {
            "StepName": "auto",
            "Type": "AutoSendAnEmail",
            "TemplateId": template_id,
            "ScheduledDaysUntilStart": 1,
        }
    )
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    assign(acts, cid, b, rep)
    tr = tracker_of(store, a)
    res = acts.removeTargetFromSalesCadence(
        [
            {
                "targetId": a,
                "completionReasonCode": "ManuallyRemoved",
                "completionDisposition": "Not Interested",
            },
            {
                "actionCadenceTrackerId": tracker_of(store, b)["Id"],
                "completionReasonCode": "ManuallyRemoved",
                "relatedToAttributionType": "Bogus",
            },
            {"completionReasonCode": "ManuallyRemoved"},
        ],
        rep,
    )
    assert codes(res) == [None, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "REQUIRED_FIELD_MISSING"]
    tr = tracker_of(store, a)
    assert tr["State"] == "Complete" and tr["CompletionReason"] == "ManuallyRemoved"
    assert tr["CompletionDisposition"] == "Not Interested" and not tr["IsTrackerActive"]
    auto = step_trackers(store, tr["Id"])[1]
    assert auto["State"] == "Cancelled" and auto["CompletionReason"] is None
    assert outbox.cancelled == [auto["Id"]]  # the scheduled email is unsent
    res = acts.removeTargetFromSalesCadence(
        [{"targetId": a, "completionReasonCode": "ManuallyRemoved"}], rep
    )
    assert codes(res) == ["INVALID_INPUT"]  # no longer in a cadence
    # a removed target can be assigned again
    assign(acts, cid, a, rep)


def test_pause_and_resume_shift_due_dates(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
) -> None:
    cid = build({"StepName": "t", "Type": "CreateTask", "ScheduledDaysUntilDue": 1})
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    task = step_trackers(store, tracker_of(store, a)["Id"])[1]
    res = acts.pauseSalesCadenceTracker([{"targetId": a}, {"targetId": a}], rep)
    assert codes(res) == [None, "INVALID_OPERATION"]  # the second sees the first's pause
    paused = store.get("ActionCadenceStepTracker", task["Id"]) or {}
    assert paused["State"] == "Paused" and paused["WasEverPaused"]
    assert tracker_of(store, a)["State"] == "Paused"
    assert codes(acts.pauseSalesCadenceTracker([{"targetId": a}], rep)) == ["INVALID_OPERATION"]
    clock.advance(hours=5)
    assert codes(acts.resumeSalesCadenceTracker([{"targetId": a}], rep)) == [None]
    resumed = store.get("ActionCadenceStepTracker", task["Id"]) or {}
    assert resumed["State"] == "Active" and resumed["WasEverPaused"]
    assert resumed["DueDateTime"] == task["DueDateTime"] + timedelta(hours=5)
    assert codes(acts.resumeSalesCadenceTracker([{"targetId": a}], rep)) == ["INVALID_OPERATION"]


def test_pause_with_resume_time_and_wait_shift(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
) -> None:
    cid = build(
        {"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 7200},
        {"StepName": "t", "Type": "CreateTask"},
    )
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    clock.advance(hours=1)
    res = acts.pauseSalesCadenceTracker(
        [{"targetId": a, "resumeTime": "2026-01-05T13:00:00Z"}], rep
    )
    assert codes(res) == [None]
    assert tracker_of(store, a)["ScheduledResumeDateTime"] == datetime(2026, 1, 5, 13)
    clock.set(datetime(2026, 1, 5, 13))
    assert work.run_until_idle() == 1
    tr = tracker_of(store, a)
    assert tr["State"] == "Running"
    assert tr["ScheduledResumeDateTime"] == datetime(2026, 1, 5, 14)  # 1 h of wait was left
    clock.set(datetime(2026, 1, 5, 14))
    work.run_until_idle()
    assert step_trackers(store, tr["Id"])[-1]["StepType"] == "CreateTask"


def test_change_assignee_and_modify_attributes(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    with store.transaction() as tx:
        other = tx.insert(
            "User",
            {
                "Username": "o@example.com",
                "LastName": "O",
                "Alias": "o",
                "Email": "o@example.com",
                "TimeZoneSidKey": "Europe/Paris",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
        )
        opp = tx.insert(
            "Opportunity", {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-03-01"}
        )
    cid = build({"StepName": "t", "Type": "CreateTask"}, {"StepName": "u", "Type": "CreateTask"})
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    bad = acts.changeSalesCadenceTargetAssignee([{"targetId": a}], rep)  # userId is optional
    bad += acts.changeSalesCadenceTargetAssignee([{"targetId": a, "userId": "005bad"}], rep)
    bad += acts.changeSalesCadenceTargetAssignee([{"userId": other}], rep)
    assert codes(bad) == [None, "INVALID_ID_FIELD", "REQUIRED_FIELD_MISSING"]
    assert tracker_of(store, a)["OwnerId"] == rep  # no userId: the running user
    res = acts.changeSalesCadenceTargetAssignee([{"targetId": a, "userId": other}], rep)
    assert codes(res) == [None]
    assert tracker_of(store, a)["OwnerId"] == other
    st = step_trackers(store, tracker_of(store, a)["Id"])[1]
    runtime.take_action(store, st["Id"], other)
    nxt = step_trackers(store, tracker_of(store, a)["Id"])[2]
    assert nxt["DueDateTime"] == datetime(2026, 1, 5, 22, 59, 59)  # end of day in Paris
    tid = tracker_of(store, a)["Id"]
    res = acts.modifyCadenceTrackerAttributes(
        [
            {
                "actionCadenceTrackerId": tid,
                "completionDisposition": "Success",
                "relatedToId": opp,
                "relatedToAttributionType": "Activation",
            },
            {"actionCadenceTrackerId": tid, "relatedToAttributionType": "Nope"},
            {"completionDisposition": "Success"},
        ],
        rep,
    )
    assert codes(res) == [None, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "REQUIRED_FIELD_MISSING"]
    tr = tracker_of(store, a)
    assert (tr["CompletionDisposition"], tr["RelatedToId"], tr["RelatedToAttributionType"]) == (
        "Success",
        opp,
        "Activation",
    )


def test_send_event_errors(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build({"StepName": "t", "Type": "CreateTask"}, {"StepName": "u", "Type": "CreateTask"})
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    root, task = step_trackers(store, tracker_of(store, a)["Id"])
    res = acts.sendSalesCadenceEvent(
        [
            {"recordId": root["Id"], "eventType": "Skip"},  # not the open step
            {"recordId": task["Id"], "eventType": "Explode"},
            {"eventType": "Skip"},
            {"recordId": task["Id"], "eventType": "Skip"},
        ],
        rep,
    )
    assert codes(res) == ["INVALID_OPERATION", "INVALID_INPUT", "REQUIRED_FIELD_MISSING", None]


def test_select_template_honours_variant_split(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    t1, t2 = ids.make_id("00X", 900_001), ids.make_id("00X", 900_002)
    cid = build(
        {
            "StepName": "mail",
            "Type": "SendAnEmail",
            "TemplateId": t1,
            "variants": [
                {"TemplateId": t1, "SplitPercentage": 70, "Type": "SendAnEmail"},
                {"TemplateId": t2, "SplitPercentage": 30, "Type": "SendAnEmail"},
            ],
        }
    )
    targets = contacts(400)
    acts.assignTargetToSalesCadence(
        [{"salesCadenceNameOrId": cid, "targetId": t} for t in targets], rep
    )
    st_ids = [step_trackers(store, tracker_of(store, t)["Id"])[1]["Id"] for t in targets]
    res = acts.selectTemplateForSalesCadenceStepTracker(
        [{"stepTrackerId": s} for s in st_ids] + [{"stepTrackerId": "bad"}], rep
    )
    assert codes(res)[-1] == "INVALID_ID_FIELD"
    chosen = [json.loads(r["outputValues"]["output"])["templateId"] for r in res[:-1]]  # type: ignore[index]
    share = chosen.count(t1) / len(chosen)
    assert 0.62 < share < 0.78, share
    again = acts.selectTemplateForSalesCadenceStepTracker([{"stepTrackerId": st_ids[0]}], rep)
    assert again[0]["outputValues"] == res[0]["outputValues"]  # stable per step tracker


def test_invoke_by_name(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build({"StepName": "t", "Type": "CreateTask"})
    (a,) = contacts(1)
    res = acts.invoke(
        "assignTargetToSalesCadence", [{"salesCadenceNameOrId": cid, "targetId": a}], rep
    )
    assert codes(res) == [None]
