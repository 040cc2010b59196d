"""The metric counters through unmodified simple-salesforce: a logged call (a Task create) and
a skip counted on the steps, the cadence's target counts, the monthly metric row, all read
back with SOQL as a manager's report would."""

from __future__ import annotations

import json
from typing import Any

from simple_salesforce import Salesforce

from opencadence.cadence import definition_file

from .conftest import Server
from .test_simple_salesforce import by_session


def _act(sf: Salesforce, name: str, *inputs: dict[str, Any]) -> list[dict[str, Any]]:
    out = sf.restful(
        f"actions/standard/{name}", method="POST", data=json.dumps({"inputs": list(inputs)})
    )
    assert isinstance(out, list) and all(r["isSuccess"] for r in out), out
    return out


def test_counters_through_simple_salesforce(server: Server) -> None:
    sf = by_session(server)
    cadence = definition_file.import_definition(
        server.org.store,
        {
            "cadence": {"Name": "Counted"},
            "state": "Active",
            "steps": [
                {"StepName": "root", "Type": "Root"},
                {"StepName": "call", "Type": "MakeACall", "ParentStepName": "root"},
                {"StepName": "task", "Type": "CreateTask", "ParentStepName": "call"},
            ],
        },
    )
    a = sf.Contact.create({"LastName": "Alpha"})["id"]
    b = sf.Contact.create({"LastName": "Beta"})["id"]
    _act(
        sf,
        "assignTargetToSalesCadence",
        {"salesCadenceNameOrId": cadence, "targetId": a},
        {"salesCadenceNameOrId": cadence, "targetId": b},
    )
    sf.Task.create(
        {"Subject": "Call", "WhoId": a, "TaskSubtype": "Call", "CallDisposition": "Left Voicemail"}
    )
    current = sf.query(f"SELECT CurrentStepId FROM ActionCadenceTracker WHERE TargetId = '{b}'")
    _act(
        sf,
        "sendSalesCadenceEvent",
        {"recordId": current["records"][0]["CurrentStepId"], "eventType": "Skip"},
    )
    steps = {
        r["StepName"]: r
        for r in sf.query(
            "SELECT StepName, AllCallsLeftVoicemail, AllTotalCallsCount, AllOnTimeCompletedCount, "
            "AllSkippedCount, AllEmailsSentCount FROM ActionCadenceStep "
            f"WHERE ActionCadenceId = '{cadence}'"
        )["records"]
    }
    call = steps["call"]
    assert (
        call["AllCallsLeftVoicemail"],
        call["AllTotalCallsCount"],
        call["AllOnTimeCompletedCount"],
        call["AllSkippedCount"],
        call["AllEmailsSentCount"],
    ) == (1, 1, 1, 1, 0)
    assert steps["task"]["AllSkippedCount"] == 0
    head = sf.ActionCadence.get(cadence)
    assert (head["TotalTargets"], head["ActiveTargets"], head["SuccessfulCompletions"]) == (2, 2, 0)
    monthly = sf.query(
        "SELECT ActionCadenceStep.StepName, MonthInt, Month, AllCallsLeftVoicemail, "
        "AllTotalCallsCount, HasTemplateAssigned, TrackableSendOpenRate "
        "FROM ActionCdncStpMonthlyMetric"
    )["records"]
    assert len(monthly) == 1
    (row,) = monthly
    assert row["ActionCadenceStep"]["StepName"] == "call"
    assert (row["AllCallsLeftVoicemail"], row["AllTotalCallsCount"]) == (1, 1)
    assert str(row["MonthInt"]) == row["Month"][:7].replace("-", "")
    assert row["HasTemplateAssigned"] is False and row["TrackableSendOpenRate"] is None
