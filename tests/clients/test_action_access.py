"""Two reps and an admin, each with unmodified simple-salesforce against a real server: the
actions refuse what a rep may not act on, and deleting a running tracker frees its target."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceResourceNotFound

from opencadence.cadence import definition_file

from .conftest import Server
from .test_simple_salesforce import by_session

DENIED = "INSUFFICIENT_ACCESS_OR_READONLY"


def act(sf: Salesforce, name: str, *inputs: dict[str, Any]) -> list[dict[str, Any]]:
    out = sf.restful(
        f"actions/standard/{name}", method="POST", data=json.dumps({"inputs": list(inputs)})
    )
    assert isinstance(out, list)
    return out


def rep(server: Server, username: str) -> Salesforce:
    user_id, _ = server.org.accounts.create_user(username, "pw")
    token = server.org.accounts.open_session(user_id)
    return Salesforce(session_id=token, instance=server.instance, session=server.session())


@pytest.fixture
def cadence(server: Server) -> str:
    return definition_file.import_definition(
        server.org.store,
        {
            "cadence": {"Name": "Reps"},
            "steps": [
                {"StepName": "root", "Type": "Root", "StepTitle": "root"},
                {
                    "StepName": "call",
                    "Type": "MakeACall",
                    "StepTitle": "Call",
                    "ParentStepName": "root",
                },
                {
                    "StepName": "task",
                    "Type": "CreateTask",
                    "StepTitle": "Task",
                    "ParentStepName": "call",
                },
            ],
            "state": "Active",
        },
    )


def enrol(sf: Salesforce, target: str) -> dict[str, Any]:
    (res,) = act(
        sf, "assignTargetToSalesCadence", {"salesCadenceNameOrId": "Reps", "targetId": target}
    )
    return res


def test_a_rep_cannot_act_on_another_reps_records(server: Server, cadence: str) -> None:
    admin, a, b = by_session(server), rep(server, "a@reps.test"), rep(server, "b@reps.test")
    bs = b.Contact.create({"LastName": "Bee", "Email": "bee@x.test"})["id"]
    assert enrol(b, bs)["isSuccess"]
    tracker = b.query(
        f"SELECT Id, CurrentStepId FROM ActionCadenceTracker WHERE TargetId = '{bs}'"
    )["records"][0]
    attempts = [
        ("pauseSalesCadenceTracker", {"targetId": bs}),
        ("changeSalesCadenceTargetAssignee", {"targetId": bs}),  # to A, the caller
        (
            "modifyCadenceTrackerAttributes",
            {"actionCadenceTrackerId": tracker["Id"], "completionDisposition": "Success"},
        ),
        ("sendSalesCadenceEvent", {"recordId": tracker["CurrentStepId"], "eventType": "Skip"}),
        ("selectTemplateForSalesCadenceStepTracker", {"stepTrackerId": tracker["CurrentStepId"]}),
        (
            "removeTargetFromSalesCadence",
            {"actionCadenceTrackerId": tracker["Id"], "completionReasonCode": "ManuallyRemoved"},
        ),
        ("assignTargetToSalesCadence", {"salesCadenceNameOrId": "Reps", "targetId": bs}),
    ]
    for name, inp in attempts:
        (res,) = act(a, name, inp)
        assert res["actionName"] == name and res["isSuccess"] is False, res
        assert res["errors"][0]["statusCode"] == DENIED and res["outputValues"] is None
    row = b.ActionCadenceTracker.get(tracker["Id"])
    assert (
        row["State"] == "Running"
        and row["OwnerId"]
        == b.query("SELECT Id FROM User WHERE Username = 'b@reps.test'")["records"][0]["Id"]
    )
    # B acts on B's own tracker; the admin on anyone's
    assert act(b, "pauseSalesCadenceTracker", {"targetId": bs})[0]["isSuccess"]
    assert act(admin, "resumeSalesCadenceTracker", {"targetId": bs})[0]["isSuccess"]
    assert b.ActionCadenceTracker.get(tracker["Id"])["State"] == "Running"


def test_deleting_a_running_tracker_frees_its_target(server: Server, cadence: str) -> None:
    a, b = rep(server, "a@reps.test"), rep(server, "b@reps.test")
    start = server.clock.now() - timedelta(minutes=1)
    bs = b.Contact.create({"LastName": "Bee", "Email": "bee@x.test"})["id"]
    tracker = enrol(b, bs)["outputValues"]["actionCadenceTrackerId"]
    steps = [
        r["Id"]
        for r in b.query(
            f"SELECT Id FROM ActionCadenceStepTracker WHERE ActionCadenceTrackerId = '{tracker}'"
        )["records"]
    ]
    with pytest.raises(SalesforceResourceNotFound):  # A may not, and is told nothing more
        a.ActionCadenceTracker.delete(tracker)
    assert b.ActionCadenceTracker.delete(tracker) == 204
    # the logged call is a plain Task (no 404), and the target enrols again
    call = {"Subject": "Call", "WhoId": bs, "TaskSubtype": "Call", "Status": "Completed"}
    assert b.Task.create(call)["success"] is True
    again = enrol(b, bs)
    assert again["isSuccess"], again
    assert again["outputValues"]["actionCadenceTrackerId"] != tracker
    server.clock.advance(minutes=2)
    end = server.clock.now()
    deleted = b.ActionCadenceTracker.deleted(start, end)["deletedRecords"]
    assert [d["id"] for d in deleted] == [tracker]
    deleted = b.ActionCadenceStepTracker.deleted(start, end)["deletedRecords"]
    assert sorted(d["id"] for d in deleted) == sorted(steps) and len(steps) == 2
