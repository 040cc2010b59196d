"""AutoSendAnEmail, Branch on call outcomes, global exit rules, ListenerBranch, Repeat/GoTo,
DaisyChain, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from opencadence.cadence import actions, runtime, sender, worker
from opencadence.clock import ManualClock
from opencadence.storage import migrate, records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

Contacts = Callable[[int], list[str]]


def test_auto_email_queued_then_sent(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    work: worker.Worker,
    outbox: sender.RecordingSender,
    template_id: str,
) -> None:
    cid = build({"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id})
    (target,) = contacts(1)
    assign(acts, cid, target, rep)
    tr = tracker_of(store, target)
    auto = step_trackers(store, tr["Id"])[1]
    assert auto["State"] == "Queued" and auto["DueDateTime"] is None
    assert work.run_until_idle() == 1
    auto = store.get("ActionCadenceStepTracker", auto["Id"]) or {}
    assert auto["State"] == "Completed" and auto["IsActionTaken"] and auto["CompletedById"] == rep
    assert [e.key for e in outbox.sent] == [auto["Id"]] and outbox.duplicates == 0
    assert tracker_of(store, target)["CompletionReason"] == "NoMoreSteps"


def test_auto_email_scheduled_for_later_start(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
    outbox: sender.RecordingSender,
    template_id: str,
) -> None:
    cid = build(
        {
            "StepName": "auto",
            "Type": "AutoSendAnEmail",
            "TemplateId": template_id,
            "ScheduledStartDelayInMinutes": 30,
        }
    )
    (target,) = contacts(1)
    assign(acts, cid, target, rep)
    auto = step_trackers(store, tracker_of(store, target)["Id"])[1]
    assert auto["State"] == "Scheduled"
    assert auto["ScheduledStartDateTime"] == datetime(2026, 1, 5, 9, 30)
    assert work.run_until_idle() == 0 and outbox.sent == []
    clock.advance(minutes=30)
    assert work.run_until_idle() == 1 and len(outbox.sent) == 1


def test_auto_email_error_code_and_rep_recovery(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    work: worker.Worker,
    outbox: sender.RecordingSender,
    template_id: str,
) -> None:
    cid = build(
        {"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id},
        {"StepName": "t", "Type": "CreateTask"},
    )
    (target,) = contacts(1)
    outbox.fail[target] = "INVALID_TARGET_EMAIL"
    assign(acts, cid, target, rep)
    work.run_until_idle()
    tr = tracker_of(store, target)
    auto = step_trackers(store, tr["Id"])[1]
    assert auto["State"] == "Error" and auto["ErrorCode"] == "INVALID_TARGET_EMAIL"
    assert tr["CurrentStepId"] == auto["Id"]  # still the open step: the rep resolves it
    (res,) = acts.sendSalesCadenceEvent([{"recordId": auto["Id"], "eventType": "Skip"}], rep)
    assert res["isSuccess"], res
    assert step_trackers(store, tr["Id"])[2]["StepType"] == "CreateTask"


def test_auto_email_retry_later_stays_queued(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
    outbox: sender.RecordingSender,
    template_id: str,
) -> None:
    cid = build({"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id})
    (target,) = contacts(1)
    outbox.retry[target] = datetime(2026, 1, 5, 9, 10)
    assign(acts, cid, target, rep)
    assert work.run_until_idle() == 1
    auto = step_trackers(store, tracker_of(store, target)["Id"])[1]
    assert auto["State"] == "Queued" and outbox.sent == []
    clock.advance(minutes=10)
    assert work.run_until_idle() == 1 and len(outbox.sent) == 1


BRANCH = [
    {"StepName": "call", "Type": "MakeACall"},
    {
        "StepName": "branch",
        "Type": "Branch",
        "BranchDefaultStepName": "other",
        "rules": [
            {
                "RuleName": "connected",
                "OutcomeNextStepName": "happy",
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
    {"StepName": "happy", "Type": "SendAnEmail", "ParentStepName": "branch"},
    {"StepName": "other", "Type": "CreateTask", "ParentStepName": "branch"},
]


def test_logged_call_completes_call_and_branch_routes_on_outcome(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build(*BRANCH)
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    assign(acts, cid, b, rep)
    task_id = runtime.log_call(store, rep, a, "Meaningful Connect")
    runtime.log_call(store, rep, b, "Left Voicemail")
    _, call, branch, happy = step_trackers(store, tracker_of(store, a)["Id"])
    assert call["CompletionReason"] == "AutomaticallyCompleted" and call["IsActionTaken"]
    assert call["CompletedById"] == rep
    assert branch["StepType"] == "Branch" and branch["State"] == "Completed"
    assert happy["StepType"] == "SendAnEmail" and happy["State"] == "Active"
    assert step_trackers(store, tracker_of(store, b)["Id"])[3]["StepType"] == "CreateTask"
    task = store.get("Task", task_id) or {}
    assert task["TaskSubtype"] == "Call" and task["WhoId"] == a


def test_call_results_are_call_disposition_records(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    """The source of truth moved from a configuration dictionary to CallDisposition records:
    a call result added as a record routes on its category."""
    category = migrate.category_id(store.registry, "CallMeaningfulConnect")
    with store.transaction() as tx:
        tx.insert(
            "CallDisposition",
            {"Disposition": "Booked", "DispositionCategoryId": category},
            system=True,
        )
    cid = build(*BRANCH)
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    runtime.log_call(store, rep, a, "Booked")
    assert step_trackers(store, tracker_of(store, a)["Id"])[3]["StepType"] == "SendAnEmail"


def test_global_exit_rule_on_reply(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build({"StepName": "task", "Type": "CreateTask"}, exit_rules=["EmailReply"])
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    assert runtime.engagement(store, a, "EmailReply")
    tr = tracker_of(store, a)
    assert tr["State"] == "Complete" and tr["CompletionReason"] == "AutomaticallyExited"
    assert tr["ExitGlobalRuleId"] is not None
    task = step_trackers(store, tr["Id"])[1]
    assert task["State"] == "Completed" and task["CompletionReason"] == "AutomaticallyExited"


def test_global_exit_rule_on_call_outcome(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build(
        {"StepName": "call", "Type": "MakeACall"},
        {"StepName": "t", "Type": "CreateTask"},
        exit_rules=["CallNotInterested"],
    )
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    runtime.log_call(store, rep, a, "Not Interested")
    tr = tracker_of(store, a)
    assert tr["CompletionReason"] == "AutomaticallyExited"
    assert len(step_trackers(store, tr["Id"])) == 2  # no step after the exit


LISTENER = [
    {"StepName": "auto", "Type": "AutoSendAnEmail"},
    {
        "StepName": "listen",
        "Type": "ListenerBranch",
        "WaitTimeInSeconds": 86400,
        "BranchDefaultStepName": "nope",
        "rules": [
            {
                "RuleName": "opened",
                "OutcomeNextStepName": "yes",
                "conditions": [
                    {
                        "RuleConditionName": "c1",
                        "Resource": "EmailEngagement",
                        "Operator": "Equal",
                        "Value": "EmailOpen",
                    }
                ],
            }
        ],
    },
    {"StepName": "yes", "Type": "MakeACall", "ParentStepName": "listen"},
    {"StepName": "nope", "Type": "CreateTask", "ParentStepName": "listen"},
]


def test_listener_immediate_wakeup_routes_at_first_open(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    work: worker.Worker,
    template_id: str,
) -> None:
    steps = [dict(s) for s in LISTENER]
    steps[0]["TemplateId"] = template_id
    steps[1]["IsImmediateWakeUp"] = True
    cid = build(*steps)
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    work.run_until_idle()
    tr = tracker_of(store, a)
    email = step_trackers(store, tr["Id"])[1]
    runtime.engagement(store, a, "EmailLinkClick", email["Id"])  # not a rule's value
    assert step_trackers(store, tr["Id"])[-1]["StepType"] == "ListenerBranch"
    runtime.engagement(store, a, "EmailOpen", email["Id"])
    assert step_trackers(store, tr["Id"])[-1]["StepType"] == "MakeACall"


def test_listener_waits_for_window_end(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
    template_id: str,
) -> None:
    cid = build({**LISTENER[0], "TemplateId": template_id}, *LISTENER[1:])
    a, b = contacts(2)
    assign(acts, cid, a, rep)
    assign(acts, cid, b, rep)
    work.run_until_idle()
    runtime.engagement(store, a, "EmailOpen")
    assert step_trackers(store, tracker_of(store, a)["Id"])[-1]["StepType"] == "ListenerBranch"
    clock.advance(days=1)
    assert work.run_until_idle() == 2
    assert step_trackers(store, tracker_of(store, a)["Id"])[-1]["StepType"] == "MakeACall"
    assert step_trackers(store, tracker_of(store, b)["Id"])[-1]["StepType"] == "CreateTask"


def test_repeat_goto_creates_new_step_trackers_with_iteration_count(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    work: worker.Worker,
) -> None:
    cid = build(
        {"StepName": "call", "Type": "MakeACall"},
        {
            "StepName": "again",
            "Type": "CreateTask",
            "GoToStepName": "call",
            "GoToStepIterationLimit": 2,
            "GoToStepIntervalInMinutes": 60,
        },
    )
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    tid = tracker_of(store, a)["Id"]
    for _ in range(10):
        for st in step_trackers(store, tid):
            if st["State"] in ("Active",):
                acts.sendSalesCadenceEvent(
                    [{"recordId": st["Id"], "eventType": "ManualComplete"}], rep
                )
        clock.advance(minutes=30)
        work.run_until_idle()
    rows = step_trackers(store, tid)
    calls = [r for r in rows if r["StepType"] == "MakeACall"]
    assert [c["GoToStepIterationCount"] for c in calls] == [1, 2, 3]
    assert calls[1]["ScheduledStartDateTime"] > calls[0]["CompletionDate"]
    assert tracker_of(store, a)["CompletionReason"] == "NoMoreSteps"


def test_daisy_chain_enrols_in_next_cadence(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    build({"StepName": "t2", "Type": "CreateTask"}, name="Second")
    first = build(
        {"StepName": "t1", "Type": "CreateTask"},
        {"StepName": "chain", "Type": "DaisyChain", "ChainedCadence": "Second"},
    )
    (a,) = contacts(1)
    assign(acts, first, a, rep)
    old = tracker_of(store, a)
    t1 = step_trackers(store, old["Id"])[1]
    acts.sendSalesCadenceEvent([{"recordId": t1["Id"], "eventType": "ManualComplete"}], rep)
    old = store.get("ActionCadenceTracker", old["Id"]) or {}
    assert old["State"] == "Complete" and old["CompletionReason"] == "DaisyChained"
    new = tracker_of(store, a)
    assert new["Id"] != old["Id"] and new["DaisyChainIteration"] == 2 and new["State"] == "Running"
    assert step_trackers(store, old["Id"])[-1]["StepType"] == "DaisyChain"


def test_daisy_chain_stops_at_ten(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    loop = build(
        {"StepName": "t", "Type": "CreateTask"},
        {"StepName": "chain", "Type": "DaisyChain"},
        name="Loop",
        state="Draft",
    )
    with store.transaction() as tx:
        import sqlalchemy as sa

        t = store.meta.tables["ActionCadenceStep"]
        sid = tx.conn.execute(sa.select(t.c.Id).where(t.c.StepName == "chain")).scalar_one()
        tx.update("ActionCadenceStep", sid, {"ChainedCadenceId": loop})
    runtime.activate(store, loop)
    (a,) = contacts(1)
    assign(acts, loop, a, rep)
    for _ in range(12):
        tr = tracker_of(store, a)
        if tr["State"] == "Complete":
            break
        st = step_trackers(store, tr["Id"])[1]
        acts.sendSalesCadenceEvent([{"recordId": st["Id"], "eventType": "Skip"}], rep)
    tr = tracker_of(store, a)
    assert tr["DaisyChainIteration"] == 10 and tr["CompletionReason"] == "NoMoreSteps"
    assert "at most 10" in tr["ErrorMessage"]
