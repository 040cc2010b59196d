"""Activation, editing an active cadence, definition files, on both databases."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence.cadence import actions, applying, definition_file, runtime, validate, worker
from opencadence.clock import ManualClock as ManualClockT
from opencadence.storage import records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

Contacts = Callable[[int], list[str]]


def _step_id(store: records.Store, name: str) -> str:
    t = store.meta.tables["ActionCadenceStep"]
    with store.reading() as conn:
        return str(conn.execute(sa.select(t.c.Id).where(t.c.StepName == name)).scalar_one())


def test_activation_sets_active_and_fills_graph_fields(store: records.Store, build: Build) -> None:
    cid = build(
        {"StepName": "call", "Type": "MakeACall"},
        {
            "StepName": "b",
            "Type": "Branch",
            "BranchDefaultStepName": "t",
            "rules": [
                {
                    "RuleName": "r",
                    "OutcomeNextStepName": "t",
                    "conditions": [
                        {
                            "RuleConditionName": "c",
                            "Resource": "CallDispositionCategory",
                            "Value": "CallUnqualified",
                        }
                    ],
                }
            ],
        },
        {"StepName": "t", "Type": "CreateTask"},
        state="Draft",
    )
    orphan = _step_id(store, "t")
    with store.transaction() as tx:
        tx.insert(
            "ActionCadenceStep",
            {
                "ActionCadenceId": cid,
                "StepName": "gone",
                "Type": "CreateTask",
                "GraphState": "Orphaned",
            },
        )
    runtime.set_state(store, cid, "Active")
    cad = store.get("ActionCadence", cid) or {}
    assert cad["State"] == "Active" and cad["ActivatedDate"] is not None
    assert cad["TotalSteps"] == 2 and cad["ErrorMessage"] is None
    step = store.get("ActionCadenceStep", orphan) or {}
    assert step["RootStepId"] == _step_id(store, "root") and step["TypeDetail"] == "CreateTask"
    assert store.get("ActionCadenceStep", _step_id(store, "gone")) is None  # orphan deleted


@pytest.mark.parametrize(
    "steps, message",
    [
        ([{"StepName": "w", "Type": "Wait"}], "Step w: a Wait step needs a WaitTimeInSeconds"),
        (
            [{"StepName": "t", "Type": "CreateTask", "ParentStepName": "ghost"}],
            "Step t: ParentStepName 'ghost' names no step",
        ),
        (
            [{"StepName": "d", "Type": "DaisyChain"}],
            "Step d: a DaisyChain step needs a ChainedCadenceId",
        ),
        (
            [{"StepName": "b", "Type": "Branch", "BranchDefaultStepName": "x"}],
            "Step b: BranchDefaultStepName 'x' names no step",
        ),
    ],
)
def test_activation_refused_names_the_step(
    store: records.Store, build: Build, steps: list[dict[str, object]], message: str
) -> None:
    cid = build(*steps, state="Draft")
    with pytest.raises(validate.CadenceInvalid) as err:
        runtime.activate(store, cid)
    assert str(err.value).startswith(message)
    assert err.value.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    cad = store.get("ActionCadence", cid) or {}
    assert cad["State"] == "Error" and cad["ErrorMessage"].startswith(message)


def test_deleting_a_step_of_an_active_cadence(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build(
        {"StepName": "a", "Type": "CreateTask"},
        {"StepName": "b", "Type": "CreateTask"},
        {"StepName": "c", "Type": "CreateTask"},
    )
    x, y = contacts(2)
    assign(acts, cid, x, rep)
    assign(acts, cid, y, rep)
    st = step_trackers(store, tracker_of(store, y)["Id"])[1]
    acts.sendSalesCadenceEvent([{"recordId": st["Id"], "eventType": "Skip"}], rep)  # y is on b
    assert runtime.delete_step(store, _step_id(store, "b")) == 1
    step_b = store.get("ActionCadenceStep", _step_id(store, "b")) or {}
    assert step_b["GraphState"] == "Retired"
    assert (store.get("ActionCadenceStep", _step_id(store, "a")) or {})["GoToStepName"] == "c"
    ty = tracker_of(store, y)
    assert ty["CompletionReason"] == "AutomaticallyExitedDeletedStep"
    assert step_trackers(store, ty["Id"])[-1]["State"] == "Cancelled"
    st = step_trackers(store, tracker_of(store, x)["Id"])[1]
    acts.sendSalesCadenceEvent([{"recordId": st["Id"], "eventType": "Skip"}], rep)
    assert step_trackers(store, tracker_of(store, x)["Id"])[-1]["StepTitle"] == "c"  # b skipped
    runtime.activate(store, cid)  # still a valid graph


def test_deleting_a_draft_step_orphans_it(store: records.Store, build: Build) -> None:
    build({"StepName": "a", "Type": "CreateTask"}, state="Draft")
    runtime.delete_step(store, _step_id(store, "a"))
    row = store.get("ActionCadenceStep", _step_id(store, "a")) or {}
    assert row["GraphState"] == "Orphaned" and row["ParentStepName"] is None and row["IsOrphan"]


FULL = {
    "cadence": {"Name": "Outbound", "Description": "demo", "Type": "Standard"},
    "state": "Active",
    "steps": [
        {
            "StepName": "root",
            "Type": "Root",
            "rules": [
                {
                    "RuleName": "reply",
                    "RuleType": "RootStep",
                    "GlobalEventType": "EmailReply",
                    "ConditionLogic": "AND",
                }
            ],
        },
        {
            "StepName": "call",
            "Type": "MakeACall",
            "ParentStepName": "root",
            "ScheduledDaysUntilDue": 1,
            "StepTitle": "First call",
        },
        {"StepName": "wait", "Type": "Wait", "ParentStepName": "call", "WaitTimeInSeconds": 86400},
        {"StepName": "auto", "Type": "AutoSendAnEmail", "ParentStepName": "wait"},
        {
            "StepName": "branch",
            "Type": "Branch",
            "ParentStepName": "auto",
            "BranchDefaultStepName": "task",
            "rules": [
                {
                    "RuleName": "connected",
                    "OutcomeNextStepName": "task",
                    "ConditionLogic": "AND",
                    "RuleType": "BranchStep",
                    "conditions": [
                        {
                            "RuleConditionName": "c1",
                            "Resource": "CallDispositionCategory",
                            "Operator": "Equal",
                            "Value": "CallMeaningfulConnect",
                        }
                    ],
                }
            ],
        },
        {"StepName": "task", "Type": "CreateTask", "ParentStepName": "branch"},
    ],
}


def full(template_id: str) -> dict[str, Any]:
    """FULL with the email template its AutoSendAnEmail step sends (activation needs one)."""
    data = copy.deepcopy(FULL)
    data["steps"][3]["TemplateId"] = template_id
    return data


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_definition_file_round_trips(
    store: records.Store, tmp_path: Path, suffix: str, template_id: str
) -> None:
    path = tmp_path / f"c.{suffix}"
    path.write_text(definition_file.dump(full(template_id), as_json=suffix == "json"))
    cid = definition_file.import_definition(store, definition_file.load(path))
    assert (store.get("ActionCadence", cid) or {})["State"] == "Active"
    exported = definition_file.export_definition(store, "Outbound")
    assert exported == full(template_id)
    text = definition_file.dump(exported)
    assert definition_file.dump(definition_file.load_text(text)) == text


def test_worker_crash_between_claim_and_commit_loses_nothing(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    work: worker.Worker,
    monkeypatch: pytest.MonkeyPatch,
    template_id: str,
) -> None:
    cid = build({"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id})
    (a,) = contacts(1)
    assign(acts, cid, a, rep)

    class Crash(Exception):
        pass

    def boom(*args: object) -> None:
        raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(applying, "apply", boom)
        with pytest.raises(Crash):
            work.run_once()
    assert work.run_until_idle() == 1
    auto = step_trackers(store, tracker_of(store, a)["Id"])[1]
    assert auto["State"] == "Completed"
    assert work.sender.duplicates == 1  # type: ignore[attr-defined]  # the key made it detectable


def test_step_deleted_through_the_api_exits_its_targets_at_wake_up(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClockT,
    work: worker.Worker,
) -> None:
    cid = build(
        {"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 60},
        {"StepName": "t", "Type": "CreateTask"},
    )
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    with store.transaction() as tx:
        tx.delete("ActionCadenceStep", _step_id(store, "w"))
    clock.advance(minutes=1)
    assert work.run_until_idle() == 1
    tr = tracker_of(store, a)
    assert tr["CompletionReason"] == "AutomaticallyExitedDeletedStep"
    assert step_trackers(store, tr["Id"])[-1]["State"] == "Cancelled"
    assert (store.get("ActionCadence", cid) or {})["State"] == "Active"
