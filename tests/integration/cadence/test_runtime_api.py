"""The runtime's Python API around record writes: Task hook, engagement matching, worker loop."""

from __future__ import annotations

from collections.abc import Callable

from opencadence.cadence import actions, runtime, worker
from opencadence.storage import records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

Contacts = Callable[[int], list[str]]


def test_task_hook_only_moves_on_logged_calls(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build({"StepName": "call", "Type": "MakeACall"}, {"StepName": "t", "Type": "CreateTask"})
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    with store.transaction(rep) as tx:
        plain = tx.insert("Task", {"Subject": "x", "WhoId": a, "TaskSubtype": "Task"})
        call = tx.insert(
            "Task",
            {
                "Subject": "c",
                "WhoId": a,
                "TaskSubtype": "Call",
                "OwnerId": rep,
                "CallDisposition": "Call Back Later",
            },
        )
        elsewhere = tx.insert("Task", {"Subject": "c", "WhoId": b, "TaskSubtype": "Call"})
    assert not runtime.on_task_created(store, plain)
    assert not runtime.on_task_created(store, elsewhere)  # b is in no cadence
    assert runtime.on_task_created(store, call)
    _, done, nxt = step_trackers(store, tracker_of(store, a)["Id"])
    assert done["CompletionReason"] == "AutomaticallyCompleted" and done["CompletedById"] == rep
    assert nxt["StepType"] == "CreateTask"


def test_engagement_on_another_email_is_not_heard(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    work: worker.Worker,
    template_id: str,
) -> None:
    cid = build(
        {"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id},
        {
            "StepName": "l",
            "Type": "ListenerBranch",
            "WaitTimeInSeconds": 600,
            "IsImmediateWakeUp": True,
            "BranchDefaultStepName": "no",
            "rules": [
                {
                    "RuleName": "r",
                    "OutcomeNextStepName": "yes",
                    "conditions": [
                        {
                            "RuleConditionName": "c",
                            "Resource": "EmailEngagement",
                            "Operator": "Equal",
                            "Value": "EmailLinkClick",
                        }
                    ],
                }
            ],
        },
        {"StepName": "yes", "Type": "MakeACall", "ParentStepName": "l"},
        {"StepName": "no", "Type": "CreateTask", "ParentStepName": "l"},
    )
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    work.run_until_idle()
    tid = tracker_of(store, a)["Id"]
    root = step_trackers(store, tid)[0]
    runtime.engagement(store, a, "EmailLinkClick", root["Id"])  # not the listened email
    assert step_trackers(store, tid)[-1]["StepType"] == "ListenerBranch"
    assert not runtime.engagement(store, contacts(1)[0], "EmailOpen")  # not in a cadence
    runtime.engagement(store, a, "EmailLinkClick", step_trackers(store, tid)[1]["Id"])
    assert step_trackers(store, tid)[-1]["StepType"] == "MakeACall"


def test_worker_loop_stops_when_told(store: records.Store, work: worker.Worker) -> None:
    calls = iter([False, False, True])
    work.loop(poll_seconds=0, stop=lambda: next(calls))
    assert work.transitions == 0


def test_set_state_inactive_and_back(store: records.Store, build: Build) -> None:
    cid = build({"StepName": "t", "Type": "CreateTask"})
    runtime.set_state(store, cid, "Inactive")
    assert (store.get("ActionCadence", cid) or {})["State"] == "Inactive"
    runtime.set_state(store, cid, "Active")
    assert (store.get("ActionCadence", cid) or {})["State"] == "Active"
