"""Cadence Builder 2.0 tracks, quick cadences and edits of an active cadence, seen through
unmodified simple-salesforce against the real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from opencadence.cadence import definition_file

from .conftest import Server
from .test_simple_salesforce import by_session

V = "v62.0"


def act(sf: Salesforce, name: str, *inputs: dict[str, Any]) -> list[dict[str, Any]]:
    out = sf.restful(
        f"actions/standard/{name}", method="POST", data=json.dumps({"inputs": list(inputs)})
    )
    assert isinstance(out, list) and all(r["isSuccess"] for r in out), out
    return out


def call(sf: Salesforce, target: str, disposition: str) -> None:
    sf.Task.create(
        {
            "Subject": "Call",
            "WhoId": target,
            "TaskSubtype": "Call",
            "CallDisposition": disposition,
            "Status": "Completed",
        }
    )


def steps_of(sf: Salesforce, target: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k != "attributes"}
        for r in sf.query_all(
            "SELECT StepType, StepTitle, State, CompletionReason, GoToStepIterationCount, "
            "ScheduledStartDateTime FROM ActionCadenceStepTracker "
            f"WHERE TargetId = '{target}' ORDER BY CreatedDate, GoToStepIterationCount, StepType"
        )["records"]
    ]


def test_a_call_result_switches_track(server: Server) -> None:
    entry = {
        "RuleName": "no",
        "RuleType": "SubRootStep",
        "conditions": [
            {
                "RuleConditionName": "noc",
                "Resource": "CallDispositionCategory",
                "Operator": "Equal",
                "Value": "CallNotInterested",
            }
        ],
    }
    definition_file.import_definition(  # conditions are read-only over the API
        server.org.store,
        {
            "cadence": {"Name": "Tracked"},
            "state": "Active",
            "steps": [
                {"StepName": "root", "Type": "Root"},
                {
                    "StepName": "wait",
                    "Type": "Wait",
                    "ParentStepName": "root",
                    "WaitTimeInSeconds": 86400,
                    "StepTitle": "Wait",
                },
                {
                    "StepName": "neg",
                    "Type": "SubRoot",
                    "ParentStepName": "root",
                    "StepTitle": "Negative",
                    "rules": [entry],
                },
                {
                    "StepName": "bye",
                    "Type": "CreateTask",
                    "ParentStepName": "neg",
                    "StepTitle": "Break-up",
                },
            ],
        },
    )
    sf = by_session(server)
    types = {
        v["value"]
        for f in sf.ActionCadenceStep.describe()["fields"]
        if f["name"] == "Type"
        for v in f["picklistValues"]
    }
    assert "SubRoot" in types
    target = sf.Contact.create({"LastName": "Target", "Email": "t@example.com"})["id"]
    act(sf, "assignTargetToSalesCadence", {"salesCadenceNameOrId": "Tracked", "targetId": target})
    call(sf, target, "Not Interested")
    rows = {r["StepType"]: r for r in steps_of(sf, target)}  # one each, all at the same instant
    assert {t: (r["State"], r["CompletionReason"]) for t, r in rows.items()} == {
        "Root": ("Completed", "AutomaticallyCompleted"),
        "Wait": ("Cancelled", None),
        "SubRoot": ("Completed", "AutomaticallyCompleted"),
        "CreateTask": ("Active", None),
    }
    assert rows["SubRoot"]["StepTitle"] == "Negative"
    tracker = sf.query(
        f"SELECT State, CurrentStep.StepTitle, ScheduledResumeDateTime FROM ActionCadenceTracker "
        f"WHERE TargetId = '{target}'"
    )["records"][0]
    assert tracker["State"] == "Running" and tracker["ScheduledResumeDateTime"] is None
    assert tracker["CurrentStep"]["StepTitle"] == "Break-up"


def test_a_quick_cadence_built_through_the_api_repeats(server: Server) -> None:
    sf = by_session(server)
    folder = sf.query("SELECT Id FROM Organization")["records"][0]["Id"]
    cadence = sf.ActionCadence.create({"Name": "Quick", "FolderId": folder, "Type": "Quick"})["id"]
    sf.ActionCadenceStep.create({"ActionCadenceId": cadence, "StepName": "root", "Type": "Root"})
    step = sf.ActionCadenceStep.create(
        {
            "ActionCadenceId": cadence,
            "StepName": "call",
            "StepTitle": "Call",
            "Type": "MakeACall",
            "ParentStepName": "root",
            "GoToStepIterationLimit": 1,
            "GoToStepIntervalInMinutes": 60,
        }
    )["id"]
    sf.ActionCadenceRule.create(
        {
            "ActionCadenceStepId": step,
            "RuleName": "again",
            "RuleType": "RepeatedStep",
            "ConditionLogic": "AND",
        }
    )
    assert sf.ActionCadence.update(cadence, {"State": "Active"}) == 204
    assert sf.ActionCadence.get(cadence)["TotalSteps"] == 1
    target = sf.Contact.create({"LastName": "Quick", "Email": "q@example.com"})["id"]
    act(sf, "assignTargetToSalesCadence", {"salesCadenceNameOrId": cadence, "targetId": target})
    call(sf, target, "Left Voicemail")
    again = steps_of(sf, target)[-1]
    assert again["State"] == "Scheduled" and again["GoToStepIterationCount"] == 2
    sf.restful("../../../_opencadence/clock", method="POST", data='{"advance": 3700}')
    call(sf, target, "Left Voicemail")
    rows = steps_of(sf, target)
    assert sorted((r["StepType"], r["GoToStepIterationCount"], r["State"]) for r in rows) == [
        ("MakeACall", 1, "Completed"),
        ("MakeACall", 2, "Completed"),
        ("Root", 1, "Completed"),
    ]
    done = sf.query(
        f"SELECT CompletionReason FROM ActionCadenceTracker WHERE TargetId = '{target}'"
    )
    assert done["records"][0]["CompletionReason"] == "NoMoreSteps"


def build_active(sf: Salesforce) -> str:
    folder = sf.query("SELECT Id FROM Organization")["records"][0]["Id"]
    cadence = sf.ActionCadence.create({"Name": "Edited", "FolderId": folder})["id"]
    for s in (
        {"StepName": "root", "Type": "Root"},
        {"StepName": "call", "Type": "MakeACall", "ParentStepName": "root", "StepTitle": "Call"},
        {"StepName": "task", "Type": "CreateTask", "ParentStepName": "call", "StepTitle": "Task"},
    ):
        sf.ActionCadenceStep.create({"ActionCadenceId": cadence, **s})
    sf.ActionCadence.update(cadence, {"State": "Active"})
    return cadence


def count_steps(sf: Salesforce, cadence: str) -> int:
    return int(
        sf.query(f"SELECT COUNT() FROM ActionCadenceStep WHERE ActionCadenceId = '{cadence}'")[
            "totalSize"
        ]
    )


def test_edits_of_an_active_cadence(server: Server) -> None:
    sf = by_session(server)
    cadence = build_active(sf)
    target = sf.Contact.create({"LastName": "Edit", "Email": "e@example.com"})["id"]
    act(sf, "assignTargetToSalesCadence", {"salesCadenceNameOrId": cadence, "targetId": target})
    with pytest.raises(SalesforceMalformedRequest) as info:  # a second next step for "call"
        sf.ActionCadenceStep.create(
            {
                "ActionCadenceId": cadence,
                "StepName": "x",
                "Type": "CreateTask",
                "ParentStepName": "call",
            }
        )
    (error,) = info.value.content
    assert error["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert error["message"].startswith("Step call: has more than one next step")
    assert count_steps(sf, cadence) == 3
    head = sf.ActionCadence.get(cadence)
    assert head["State"] == "Active" and head["ErrorMessage"] is None
    assert head["LastEditedDateTime"] is None
    # an insertion between call and task, in one all-or-none composite request
    task = sf.query(
        f"SELECT Id FROM ActionCadenceStep WHERE ActionCadenceId = '{cadence}' AND StepName = 'task'"
    )["records"][0]["Id"]
    base = f"/services/data/{V}/sobjects/ActionCadenceStep"
    out = sf.restful(
        "composite",
        method="POST",
        data=json.dumps(
            {
                "allOrNone": True,
                "compositeRequest": [
                    {
                        "method": "POST",
                        "url": base,
                        "referenceId": "note",
                        "body": {
                            "ActionCadenceId": cadence,
                            "StepName": "note",
                            "StepTitle": "Note",
                            "Type": "CreateTask",
                            "ParentStepName": "call",
                        },
                    },
                    {
                        "method": "PATCH",
                        "url": f"{base}/{task}",
                        "referenceId": "repoint",
                        "body": {"ParentStepName": "note"},
                    },
                ],
            }
        ),
    )
    assert [r["httpStatusCode"] for r in out["compositeResponse"]] == [201, 204]
    assert count_steps(sf, cadence) == 4
    head = sf.ActionCadence.get(cadence)
    assert head["LastEditedDateTime"] is not None and head["TotalSteps"] == 3
    call(sf, target, "Left Voicemail")  # the running target goes through the inserted step
    assert [r["StepTitle"] for r in steps_of(sf, target) if r["State"] == "Active"] == ["Note"]


def test_a_failing_composite_edit_changes_nothing(server: Server) -> None:
    sf = by_session(server)
    cadence = build_active(sf)
    sub = {
        "method": "POST",
        "url": f"/services/data/{V}/sobjects/ActionCadenceStep",
        "referenceId": "fork",
        "body": {
            "ActionCadenceId": cadence,
            "StepName": "fork",
            "Type": "CreateTask",
            "ParentStepName": "call",
        },
    }
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful(
            "composite",
            method="POST",
            data=json.dumps({"allOrNone": True, "compositeRequest": [sub]}),
        )
    # the graph is checked when the request's one transaction commits: the request fails whole
    (error,) = info.value.content
    assert error["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert error["message"].startswith("Step call: has more than one next step (fork, task)")
    assert count_steps(sf, cadence) == 3
