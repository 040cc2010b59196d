"""The Sales Engagement actions do what their own describe says, through simple-salesforce.

Describe shape: Salesforce's REST guide, "Standard Invocable Actions" (emailSimple example);
inputs and outputs: the Actions Developer Guide, "Sales Engagement Actions".
"""

from __future__ import annotations

import json
from typing import Any

from simple_salesforce import Salesforce

from .conftest import Server
from .test_cadence_api import act
from .test_simple_salesforce import by_session

PARAM_KEYS = {
    "byteLength",
    "description",
    "label",
    "maxOccurs",
    "name",
    "picklistValues",
    "sobjectType",
    "type",
}


def _cadence(sf: Salesforce) -> str:
    folder = sf.query("SELECT Id FROM Organization")["records"][0]["Id"]
    cadence = sf.ActionCadence.create({"Name": "Describe cadence", "FolderId": folder})["id"]
    for step in (
        {"StepName": "root", "Type": "Root", "StepTitle": "Start"},
        {"StepName": "t1", "Type": "CreateTask", "StepTitle": "One", "ParentStepName": "root"},
        {"StepName": "t2", "Type": "CreateTask", "StepTitle": "Two", "ParentStepName": "t1"},
    ):
        sf.ActionCadenceStep.create({"ActionCadenceId": cadence, **step})
    assert sf.ActionCadence.update(cadence, {"State": "Active"}) == 204
    return cadence


def _enrolled(sf: Salesforce, cadence: str, last_name: str) -> tuple[str, dict[str, Any]]:
    target = sf.Contact.create({"LastName": last_name, "Email": f"{last_name}@example.com"})["id"]
    (res,) = act(
        sf, "assignTargetToSalesCadence", {"salesCadenceNameOrId": cadence, "targetId": target}
    )
    assert res["isSuccess"], res
    return target, res


def _tracker(sf: Salesforce, target: str) -> dict[str, Any]:
    return sf.query(
        "SELECT Id, State, OwnerId, CompletionDisposition, CurrentStepId "
        f"FROM ActionCadenceTracker WHERE TargetId = '{target}'"
    )["records"][0]


def _error(res: dict[str, Any]) -> str:
    assert not res["isSuccess"] and res["outputValues"] is None
    code: str = res["errors"][0]["statusCode"]
    return code


def test_assign_returns_the_tracker_id_it_describes(server: Server) -> None:
    sf = by_session(server)
    described = sf.restful("actions/standard/assignTargetToSalesCadence")
    assert [o["name"] for o in described["outputs"]] == ["actionCadenceTrackerId"]
    target, res = _enrolled(sf, _cadence(sf), "Assigned")
    assert res["outputValues"] == {"actionCadenceTrackerId": _tracker(sf, target)["Id"]}


def test_select_template_returns_output_and_error(server: Server) -> None:
    sf = by_session(server)
    described = sf.restful("actions/standard/selectTemplateForSalesCadenceStepTracker")
    target, _ = _enrolled(sf, _cadence(sf), "Selected")
    (res,) = act(
        sf,
        "selectTemplateForSalesCadenceStepTracker",
        {"stepTrackerId": _tracker(sf, target)["CurrentStepId"]},
    )
    assert res["isSuccess"]
    assert (
        set(res["outputValues"])
        == {o["name"] for o in described["outputs"]}
        == {
            "output",
            "error",
        }
    )
    assert res["outputValues"]["error"] is None
    assert json.loads(res["outputValues"]["output"]) == {
        "templateId": None,
        "splitPercentage": 100.0,
    }


def test_change_assignee_without_user_id_is_the_running_user(server: Server) -> None:
    sf = by_session(server)
    described = sf.restful("actions/standard/changeSalesCadenceTargetAssignee")
    assert {i["name"]: i["required"] for i in described["inputs"]} == {
        "targetId": True,
        "userId": False,
    }
    me = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    target, _ = _enrolled(sf, _cadence(sf), "Reassigned")
    (res,) = act(sf, "changeSalesCadenceTargetAssignee", {"targetId": target})
    assert res["isSuccess"], res
    assert _tracker(sf, target)["OwnerId"] == me


def test_remove_requires_its_reason_and_a_disposition_of_the_picklist(server: Server) -> None:
    sf = by_session(server)
    described = sf.restful("actions/standard/removeTargetFromSalesCadence")
    required = {i["name"] for i in described["inputs"] if i["required"]}
    assert required == {"completionReasonCode"}
    target, _ = _enrolled(sf, _cadence(sf), "Removed")
    (missing,) = act(sf, "removeTargetFromSalesCadence", {"targetId": target})
    assert _error(missing) == "REQUIRED_FIELD_MISSING"
    assert "completionReasonCode" in missing["errors"][0]["message"]
    (bogus,) = act(
        sf,
        "removeTargetFromSalesCadence",
        {
            "targetId": target,
            "completionReasonCode": "ManuallyRemoved",
            "completionDisposition": "Bogus",
        },
    )
    assert _error(bogus) == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert _tracker(sf, target)["State"] == "Running"  # neither changed anything
    (done,) = act(
        sf,
        "removeTargetFromSalesCadence",
        {
            "targetId": target,
            "completionReasonCode": "ManuallyRemoved",
            "completionDisposition": "Success",
        },
    )
    assert done["isSuccess"], done
    tracker = _tracker(sf, target)
    assert (tracker["State"], tracker["CompletionDisposition"]) == ("Complete", "Success")


def test_describe_carries_salesforce_parameter_keys(server: Server) -> None:
    sf = by_session(server)
    for listed in sf.restful("actions/standard")["actions"]:
        described = sf.restful(f"actions/standard/{listed['name']}")
        assert set(described) == {
            "description",
            "inputs",
            "label",
            "name",
            "outputs",
            "standard",
            "targetEntityName",
            "type",
        }
        assert described["description"] and described["label"] == listed["label"]
        for p in described["inputs"]:
            assert set(p) == PARAM_KEYS | {"required"}, p
            assert p["description"] and p["label"] != p["name"] and p["maxOccurs"] == 1
        for p in described["outputs"]:
            assert set(p) == PARAM_KEYS, p
    remove = sf.restful("actions/standard/removeTargetFromSalesCadence")
    inputs = {p["name"]: p for p in remove["inputs"]}
    field = next(
        f
        for f in sf.ActionCadenceTracker.describe()["fields"]
        if f["name"] == "CompletionDisposition"
    )
    assert [v["value"] for v in inputs["completionDisposition"]["picklistValues"]] == [
        v["value"] for v in field["picklistValues"]
    ]
    assert [v["value"] for v in inputs["completionReasonCode"]["picklistValues"]] == [
        "ManuallyRemoved"
    ]
    assert inputs["targetId"]["picklistValues"] is None and inputs["targetId"]["type"] == "ID"


def test_actions_resource_lists_standard_and_custom(server: Server) -> None:
    sf = by_session(server)
    base = f"/services/data/v{sf.sf_version}/actions"
    assert sf.restful("")["actions"] == base
    assert sf.restful("actions") == {"standard": f"{base}/standard", "custom": f"{base}/custom"}
    # simple-salesforce answers None for an empty JSON body: read the body with requests
    custom = server.session().get(
        f"https://{server.instance}{base}/custom",
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    assert (custom.status_code, custom.json()) == (200, {})
