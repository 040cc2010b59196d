from __future__ import annotations

import pytest

from opencadence import errors
from opencadence.metadata import describe
from opencadence.metadata.registry import default_registry

REG = default_registry()


def _field(result: dict, name: str) -> dict:
    return next(f for f in result["fields"] if f["name"] == name)


def test_step_tracker_describe_shape() -> None:
    d = describe.describe_object(REG, "actioncadencesteptracker", "59.0")
    assert d["name"] == "ActionCadenceStepTracker" and d["keyPrefix"] == "0cK"
    assert (d["createable"], d["updateable"], d["deletable"]) == (False, False, False)
    assert d["queryable"] and d["retrieveable"] and d["replicateable"]
    assert d["urls"]["sobject"] == "/services/data/v59.0/sobjects/ActionCadenceStepTracker"
    target = _field(d, "TargetId")
    assert target["referenceTo"] == ["Contact", "Lead"]
    assert target["polymorphicForeignKey"] is True and target["relationshipName"] == "Target"
    assert target["soapType"] == "tns:ID" and target["type"] == "reference"
    state = _field(d, "State")
    assert state["restrictedPicklist"] and len(state["picklistValues"]) == 8
    assert _field(d, "SecondsOverdue")["calculated"] is True
    assert _field(d, "ActionTakenDateTime")["soapType"] == "xsd:dateTime"


def test_fields_follow_the_api_version() -> None:
    old = {
        f["name"]
        for f in describe.describe_object(REG, "ActionCadenceStepTracker", "48.0")["fields"]
    }
    new = {
        f["name"]
        for f in describe.describe_object(REG, "ActionCadenceStepTracker", "58.0")["fields"]
    }
    assert "GoToStepIterationCount" not in old and "CompletedById" not in old
    assert {
        "GoToStepIterationCount",
        "ScheduledStartDateTime",
        "CompletedById",
        "WasEverPaused",
    } <= new
    reasons48 = [
        p["value"]
        for p in _field(
            describe.describe_object(REG, "ActionCadenceStepTracker", "48.0"), "CompletionReason"
        )["picklistValues"]
    ]
    assert "AutomaticallyExited" not in reasons48


def test_object_not_yet_available_and_unknown() -> None:
    with pytest.raises(errors.InvalidType):
        describe.describe_object(REG, "ActionCadenceStepTracker", "47.0")
    with pytest.raises(errors.InvalidType):
        describe.describe_object(REG, "Nope")


def test_every_object_describes_and_global_lists_them() -> None:
    names = {o["name"] for o in describe.describe_global(REG)["sobjects"]}
    assert names == {o.name for o in REG}
    for obj in REG:
        d = describe.describe_object(REG, obj.name)
        assert len(d["fields"]) == len(obj.fields)
        assert all(set(f) == set(d["fields"][0]) for f in d["fields"])
    tracker = describe.describe_object(REG, "ActionCadenceTracker")
    assert {
        "relationshipName": "ActionCadenceStepTrackers",
        "field": "ActionCadenceTrackerId",
    }.items() <= next(
        c for c in tracker["childRelationships"] if c["childSObject"] == "ActionCadenceStepTracker"
    ).items()
