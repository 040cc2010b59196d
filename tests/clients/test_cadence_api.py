"""Building, activating and running a cadence only through unmodified simple-salesforce."""

from __future__ import annotations

import json
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from .conftest import Server
from .test_simple_salesforce import by_session


def act(sf: Salesforce, name: str, *inputs: dict[str, Any]) -> list[dict[str, Any]]:
    out = sf.restful(
        f"actions/standard/{name}", method="POST", data=json.dumps({"inputs": list(inputs)})
    )
    assert isinstance(out, list)
    return out


def build(sf: Salesforce) -> tuple[str, dict[str, Any]]:
    """Root -> call -> branch(connected? task : wait) -> wait -> task, built with plain creates.

    Returns the cadence Id and the branch rule's condition, which the caller inserts itself
    (ActionCadenceRuleCondition is read-only over the API)."""
    folder = sf.query("SELECT Id FROM Organization")["records"][0]["Id"]
    cadence = sf.ActionCadence.create({"Name": "API cadence", "FolderId": folder})["id"]
    steps = [
        {"StepName": "root", "Type": "Root", "StepTitle": "Start"},
        {"StepName": "call", "Type": "MakeACall", "StepTitle": "Call", "ParentStepName": "root"},
        {
            "StepName": "branch",
            "Type": "Branch",
            "StepTitle": "Outcome",
            "ParentStepName": "call",
            "BranchDefaultStepName": "wait",
        },
        {
            "StepName": "wait",
            "Type": "Wait",
            "StepTitle": "Wait",
            "ParentStepName": "branch",
            "WaitTimeInSeconds": 3600,
        },
        {"StepName": "task", "Type": "CreateTask", "StepTitle": "Task", "ParentStepName": "wait"},
    ]
    ids = {
        s["StepName"]: sf.ActionCadenceStep.create({"ActionCadenceId": cadence, **s})["id"]
        for s in steps
    }
    rule = sf.ActionCadenceRule.create(
        {
            "ActionCadenceStepId": ids["branch"],
            "RuleName": "connected",
            "RuleType": "BranchStep",
            "ConditionLogic": "AND",
            "OutcomeNextStepName": "task",
        }
    )["id"]
    server_side_condition = {
        "ActionCadenceRuleId": rule,
        "RuleConditionName": "c",
        "Resource": "CallDispositionCategory",
        "Operator": "Equal",
        "Value": "CallMeaningfulConnect",
    }
    return cadence, server_side_condition


def test_activation_through_update_validates_the_graph(server: Server) -> None:
    sf = by_session(server)
    cadence, condition = build(sf)
    with pytest.raises(SalesforceMalformedRequest) as info:  # the branch rule has no condition yet
        sf.ActionCadence.update(cadence, {"State": "Active"})
    assert "branch" in info.value.content[0]["message"].lower()
    state = sf.ActionCadence.get(cadence)
    assert state["State"] == "Error" and state["ErrorMessage"]
    with (
        server.org.store.transaction() as tx
    ):  # ActionCadenceRuleCondition is read-only over the API
        tx.insert("ActionCadenceRuleCondition", condition, system=True)
    assert sf.ActionCadence.update(cadence, {"State": "Active"}) == 204
    assert sf.ActionCadence.get(cadence)["State"] == "Active"


def test_every_action_and_a_logged_call(server: Server) -> None:
    sf = by_session(server)
    cadence, condition = build(sf)
    with server.org.store.transaction() as tx:
        tx.insert("ActionCadenceRuleCondition", condition, system=True)
    sf.ActionCadence.update(cadence, {"State": "Active"})
    me = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    a = sf.Contact.create({"LastName": "Alpha", "Email": "a@example.com"})["id"]
    b = sf.Contact.create({"LastName": "Beta", "Email": "b@example.com"})["id"]
    listed = {x["name"] for x in sf.restful("actions/standard")["actions"]}
    assert len(listed) == 8
    res = act(
        sf,
        "assignTargetToSalesCadence",
        {"salesCadenceNameOrId": "API cadence", "targetId": a, "userId": me},
        {"salesCadenceNameOrId": cadence, "targetId": b},
        {"salesCadenceNameOrId": "No such cadence", "targetId": a},
    )
    assert [r["isSuccess"] for r in res] == [True, True, False]
    assert (
        res[2]["errors"][0]["statusCode"] and res[0]["actionName"] == "assignTargetToSalesCadence"
    )
    assert (
        act(sf, "assignTargetToSalesCadence", {"salesCadenceNameOrId": cadence, "targetId": a})[0][
            "isSuccess"
        ]
        is False
    )
    # a logged call (a Task) completes the MakeACall step; the branch routes on its outcome
    sf.Task.create(
        {
            "Subject": "Call",
            "WhoId": a,
            "TaskSubtype": "Call",
            "CallDisposition": "Meaningful Connect",
            "Status": "Completed",
        }
    )
    steps = sf.query(
        f"SELECT StepType, State, CompletionReason, IsActionTaken FROM ActionCadenceStepTracker "
        f"WHERE TargetId = '{a}' ORDER BY CreatedDate, StepType"
    )["records"]
    call = next(s for s in steps if s["StepType"] == "MakeACall")
    assert (
        call["State"] == "Completed"
        and call["CompletionReason"] == "AutomaticallyCompleted"
        and call["IsActionTaken"]
    )
    assert any(s["StepType"] == "CreateTask" and s["State"] == "Active" for s in steps)
    tracker_b = sf.query(
        f"SELECT Id, CurrentStepId FROM ActionCadenceTracker WHERE TargetId = '{b}'"
    )["records"][0]
    assert act(
        sf, "sendSalesCadenceEvent", {"recordId": tracker_b["CurrentStepId"], "eventType": "Skip"}
    )[0]["isSuccess"]
    wait = sf.query(
        f"SELECT Id, State FROM ActionCadenceStepTracker WHERE TargetId = '{b}' AND StepType = 'Wait'"
    )
    assert wait["records"][0]["State"] == "Active"
    assert act(sf, "pauseSalesCadenceTracker", {"targetId": b})[0]["isSuccess"]
    assert (
        sf.query(f"SELECT State FROM ActionCadenceTracker WHERE TargetId = '{b}'")["records"][0][
            "State"
        ]
        == "Paused"
    )
    assert act(sf, "resumeSalesCadenceTracker", {"targetId": b})[0]["isSuccess"]
    sf.restful(
        "../../../_opencadence/clock", method="POST", data='{"advance": 3700}'
    )  # the wait ends (sessions last 2 h)
    after = sf.query(
        f"SELECT StepType, State FROM ActionCadenceStepTracker WHERE TargetId = '{b}' AND State = 'Active'"
    )
    assert [r["StepType"] for r in after["records"]] == ["CreateTask"]
    assert act(sf, "changeSalesCadenceTargetAssignee", {"targetId": b, "userId": me})[0][
        "isSuccess"
    ]
    assert act(
        sf,
        "modifyCadenceTrackerAttributes",
        {"actionCadenceTrackerId": tracker_b["Id"], "completionDisposition": "Customer Engaged"},
    )[0]["isSuccess"]
    selected = act(
        sf,
        "selectTemplateForSalesCadenceStepTracker",
        {"stepTrackerId": tracker_b["CurrentStepId"]},
    )
    assert len(selected) == 1 and "isSuccess" in selected[0]
    removed = act(
        sf,
        "removeTargetFromSalesCadence",
        {"targetId": b, "completionReasonCode": "ManuallyRemoved"},
    )
    assert removed[0]["isSuccess"]
    final = sf.query(
        f"SELECT State, CompletionReason FROM ActionCadenceTracker WHERE TargetId = '{b}'"
    )["records"][0]
    assert final == {**final, "State": "Complete", "CompletionReason": "ManuallyRemoved"}


def test_action_request_errors(server: Server) -> None:
    sf = by_session(server)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful(
            "actions/standard/assignTargetToSalesCadence", method="POST", data='{"inputs": "nope"}'
        )
    assert info.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("actions/standard/assignTargetToSalesCadence", method="POST", data="{not json")
    described = sf.restful("actions/standard/pauseSalesCadenceTracker")
    assert {i["name"] for i in described["inputs"]} == {"targetId", "resumeTime"}
