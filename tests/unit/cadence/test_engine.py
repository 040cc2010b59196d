"""The pure transition logic: decisions from (definition, situation, event, now)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from opencadence.cadence import decision, engine, graph
from opencadence.metadata import sales_engagement
from tests.unit.cadence.graphs import cadence

NOW = datetime(2026, 1, 5, 9)
USER = "005REP"


def ctx(*cads: graph.Cadence) -> decision.Context:
    return decision.Context({c.id: c for c in cads}, {USER: "GMT"})


def inserted(d: decision.Decision, obj: str = sales_engagement.STEP) -> list[dict[str, Any]]:
    return [op.fields for op in d.ops if isinstance(op, decision.Insert) and op.object == obj]


def updates(d: decision.Decision, obj: str) -> list[decision.Update]:
    return [op for op in d.ops if isinstance(op, decision.Update) and op.object == obj]


def situation(
    cad: graph.Cadence,
    step_name: str,
    state: str = "Active",
    *,
    tracker: dict[str, Any] | None = None,
    run: decision.Run | None = None,
    visits: dict[str, int] | None = None,
    **step_fields: Any,
) -> decision.Situation:
    step = cad.steps[step_name]
    t = {
        "Id": "0cT1",
        "ActionCadenceId": cad.id,
        "TargetId": "003X",
        "OwnerId": USER,
        "State": "Running",
        "CurrentStepId": "0cK1",
        "LastCompletedStepId": "0cK0",
        "DaisyChainIteration": 1,
        "ScheduledResumeDateTime": None,
        "IsTrackerActive": True,
        "LastModifiedById": USER,
        **(tracker or {}),
    }
    s = {
        "Id": "0cK1",
        "ActionCadenceStepId": step.id,
        "StepType": step.type,
        "State": state,
        "DueDateTime": None,
        "ScheduledStartDateTime": NOW,
        "GoToStepIterationCount": 1,
        "WasEverPaused": False,
        "LastModifiedById": USER,
        **step_fields,
    }
    return decision.Situation(t, s, run or decision.Run("0cT1"), visits or {step_name: 1})


def test_enrol_creates_tracker_root_and_first_step() -> None:
    cad = cadence({"StepName": "call", "Type": "MakeACall"})
    d = engine.enrol(ctx(cad), cad, "003X", USER, NOW, USER)
    (tracker,) = inserted(d, sales_engagement.TRACKER)
    assert tracker["State"] == "Initializing" and tracker["IsTrackerActive"]
    root, call = inserted(d)
    assert root["StepType"] == "Root" and root["State"] == "Completed"
    assert call["StepType"] == "MakeACall" and call["State"] == "Active"
    (up,) = updates(d, sales_engagement.TRACKER)
    assert up.changes["State"] == "Running" and up.expect == {"State": "Initializing"}
    assert isinstance(up.changes["CurrentStepId"], decision.Ref)
    assert [op.kind for op in d.run] == ["insert", "update"]


def test_enrol_refuses_inactive_cadence_and_unknown_start() -> None:
    cad = cadence({"StepName": "t", "Type": "CreateTask"}, state="Draft")
    with pytest.raises(decision.Refused):
        engine.enrol(ctx(cad), cad, "003X", USER, NOW, USER)
    live = cadence({"StepName": "t", "Type": "CreateTask"})
    with pytest.raises(decision.Refused) as err:
        engine.enrol(ctx(live), live, "003X", USER, NOW, USER, start_step_name="zz")
    assert err.value.error_code == "INVALID_INPUT"


def test_wait_due_completes_and_moves_on() -> None:
    cad = cadence(
        {"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 60},
        {"StepName": "t", "Type": "CreateTask"},
    )
    d = engine.on_due(ctx(cad), cad, situation(cad, "w"), NOW, USER)
    (done,) = updates(d, sales_engagement.STEP)
    assert done.changes["State"] == "Completed" and done.expect == {"State": "Active"}
    (task,) = inserted(d)
    assert task["StepType"] == "CreateTask"


def test_branch_routes_on_call_outcome_else_default() -> None:
    cad = cadence(
        {"StepName": "call", "Type": "MakeACall"},
        {
            "StepName": "b",
            "Type": "Branch",
            "BranchDefaultStepName": "no",
            "rules": [("r", "yes", ["CallMeaningfulConnect"])],
        },
        {"StepName": "yes", "Type": "SendAnEmail", "ParentStepName": "b"},
        {"StepName": "no", "Type": "CreateTask", "ParentStepName": "b"},
    )
    for outcome, expected in (
        ("CallMeaningfulConnect", "SendAnEmail"),
        ("CallUnqualified", "CreateTask"),
        (None, "CreateTask"),
    ):
        d = engine.on_call(ctx(cad), cad, situation(cad, "call"), NOW, USER, outcome)
        branch, nxt = inserted(d)
        assert branch["State"] == "Completed" and nxt["StepType"] == expected
        assert d.run[-1].fields["call_outcome"] == outcome


def test_global_exit_on_event() -> None:
    cad = cadence({"StepName": "t", "Type": "CreateTask"}, exit_rules=("EmailHardBounce",))
    d = engine.on_engagement(ctx(cad), cad, situation(cad, "t"), NOW, USER, "EmailHardBounce")
    (step,) = updates(d, sales_engagement.STEP)
    assert step.changes["CompletionReason"] == "AutomaticallyExited"
    (tr,) = updates(d, sales_engagement.TRACKER)
    assert tr.changes["CompletionReason"] == "AutomaticallyExited"
    assert tr.changes["ExitGlobalRuleId"] == "0cRg0" and d.run[-1].kind == "delete"
    nothing = engine.on_engagement(ctx(cad), cad, situation(cad, "t"), NOW, USER, "EmailReply")
    assert nothing.ops == [] and nothing.run == []


def test_listener_records_signals_and_routes_at_window_end() -> None:
    cad = cadence(
        {
            "StepName": "l",
            "Type": "ListenerBranch",
            "WaitTimeInSeconds": 60,
            "BranchDefaultStepName": "no",
            "rules": [("r", "yes", ["EmailLinkClick"])],
        },
        {"StepName": "yes", "Type": "MakeACall", "ParentStepName": "l"},
        {"StepName": "no", "Type": "CreateTask", "ParentStepName": "l"},
    )
    d = engine.on_engagement(ctx(cad), cad, situation(cad, "l"), NOW, USER, "EmailLinkClick")
    assert d.ops == [] and d.run[-1].fields == {"signals": "EmailLinkClick"}
    ignored = engine.on_engagement(
        ctx(cad), cad, situation(cad, "l"), NOW, USER, "EmailLinkClick", on_listened_email=False
    )
    assert ignored.run == []
    sit = situation(cad, "l", run=decision.Run("0cT1", signals=frozenset({"EmailLinkClick"})))
    end = engine.on_due(ctx(cad), cad, sit, NOW, USER)
    assert inserted(end)[0]["StepType"] == "MakeACall"


def test_repeat_loop_counts_iterations_and_waits_the_interval() -> None:
    cad = cadence(
        {"StepName": "a", "Type": "CreateTask"},
        {
            "StepName": "b",
            "Type": "CreateTask",
            "GoToStepName": "a",
            "GoToStepIterationLimit": 1,
            "GoToStepIntervalInMinutes": 30,
        },
    )
    sit = situation(cad, "b", visits={"a": 1, "b": 1})
    d = engine.on_step_event(ctx(cad), cad, sit, NOW, USER, "0cK1", "ManualComplete")
    (again,) = inserted(d)
    assert again["StepTitle"] is None and again["GoToStepIterationCount"] == 2
    assert again["State"] == "Scheduled" and again["ScheduledStartDateTime"] == NOW + timedelta(
        minutes=30
    )
    done = engine.on_step_event(
        ctx(cad),
        cad,
        situation(cad, "b", visits={"a": 2, "b": 2}),
        NOW,
        USER,
        "0cK1",
        "ManualComplete",
    )
    assert updates(done, sales_engagement.TRACKER)[0].changes["CompletionReason"] == "NoMoreSteps"


def test_daisy_chain_enrols_into_the_chained_cadence() -> None:
    nxt = cadence({"StepName": "x", "Type": "CreateTask"}, cid="77CNEXT")
    cad = cadence(
        {"StepName": "t", "Type": "CreateTask"},
        {"StepName": "d", "Type": "DaisyChain", "ChainedCadenceId": "77CNEXT"},
    )
    d = engine.on_step_event(ctx(cad, nxt), cad, situation(cad, "t"), NOW, USER, "0cK1", "Skip")
    old = updates(d, sales_engagement.TRACKER)[0]
    assert old.changes["CompletionReason"] == "DaisyChained"
    (new,) = inserted(d, sales_engagement.TRACKER)
    assert new["ActionCadenceId"] == "77CNEXT" and new["DaisyChainIteration"] == 2
    assert [op.kind for op in d.run] == ["delete", "insert", "update"]


def test_pause_and_resume_shift_by_the_paused_time() -> None:
    cad = cadence({"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 3600})
    due = NOW + timedelta(hours=1)
    sit = situation(cad, "w", run=decision.Run("0cT1", due_at=due))
    d = engine.pause(ctx(cad), cad, sit, NOW, USER, None)
    assert updates(d, sales_engagement.STEP)[0].changes == {
        "State": "Paused",
        "WasEverPaused": True,
    }
    assert d.run[-1].fields["due_at"] is None and d.run[-1].fields["held_due_at"] == due
    later = NOW + timedelta(hours=2)
    paused = situation(
        cad,
        "w",
        "Paused",
        tracker={"State": "Paused"},
        run=decision.Run("0cT1", paused_at=NOW, paused_state="Active", held_due_at=due),
    )
    r = engine.resume(ctx(cad), cad, paused, later, USER)
    assert r.run[-1].fields["due_at"] == due + timedelta(hours=2)
    assert updates(r, sales_engagement.TRACKER)[0].changes[
        "ScheduledResumeDateTime"
    ] == due + timedelta(hours=2)
    with pytest.raises(decision.Refused):
        engine.resume(ctx(cad), cad, sit, NOW, USER)


def test_rep_events_on_wrong_or_paused_step_are_refused() -> None:
    cad = cadence({"StepName": "t", "Type": "CreateTask"})
    with pytest.raises(decision.Refused):
        engine.on_step_event(ctx(cad), cad, situation(cad, "t"), NOW, USER, "0cKother", "Skip")
    paused = situation(cad, "t", "Paused", tracker={"State": "Paused"})
    with pytest.raises(decision.Refused):
        engine.on_step_event(ctx(cad), cad, paused, NOW, USER, "0cK1", "Skip")
    with pytest.raises(decision.Refused):
        engine.on_step_event(ctx(cad), cad, situation(cad, "t"), NOW, USER, "0cK1", "Start2")


def test_auto_email_due_asks_for_a_send_with_the_variant_template() -> None:
    cad = cadence({"StepName": "e", "Type": "AutoSendAnEmail", "variants": [("00XA", 100)]})
    d = engine.on_due(ctx(cad), cad, situation(cad, "e", "Queued"), NOW, USER)
    assert d.send is not None and d.send.template_id == "00XA" and d.ops == []
    err = engine.on_sent(
        ctx(cad),
        cad,
        situation(cad, "e", "Queued"),
        NOW,
        USER,
        decision.SendResult(False, "TEMPLATE_EMPTY"),
    )
    assert updates(err, sales_engagement.STEP)[0].changes == {
        "State": "Error",
        "ErrorCode": "TEMPLATE_EMPTY",
    }


def test_variant_pick_is_stable_and_follows_the_split() -> None:
    cad = cadence({"StepName": "e", "Type": "SendAnEmail", "variants": [("A", 20), ("B", 80)]})
    step = cad.steps["e"]
    picks = [engine.pick_variant(step, f"0cK{i:06d}") for i in range(5000)]
    share = sum(1 for p in picks if p and p.template_id == "A") / len(picks)
    assert 0.17 < share < 0.23
    assert engine.pick_variant(step, "0cK000001") == engine.pick_variant(step, "0cK000001")


# -- a worker's wake-up: everything it writes is the engine's decision -------------------------


def moves_timer(d: decision.Decision) -> bool:
    return any(op.kind == "delete" or "due_at" in op.fields for op in d.run)


def test_wake_drops_a_run_row_without_an_active_tracker() -> None:
    cad = cadence({"StepName": "t", "Type": "CreateTask"})
    for sit in (None, situation(cad, "t", tracker={"State": "Complete"})):
        d = engine.wake(ctx(cad), sit, "0cT1", NOW, USER)
        assert [(op.kind, op.tracker, op.fields) for op in d.run] == [("delete", "0cT1", {})]
        assert d.ops == [] and d.send is None and d.warning is None


def test_wake_refused_clears_the_timer_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    cad = cadence({"StepName": "t", "Type": "CreateTask"})

    def refuse(*args: object) -> decision.Decision:
        raise decision.Refused("nothing to do")

    monkeypatch.setattr(engine, "on_due", refuse)
    d = engine.wake(ctx(cad), situation(cad, "t"), "0cT1", NOW, USER)
    assert [(op.kind, op.tracker, op.fields) for op in d.run] == [
        ("update", "0cT1", {"due_at": None})
    ]
    assert d.ops == [] and d.warning == "nothing to do"


def test_every_wake_up_moves_the_timer() -> None:
    cad = cadence(
        {"StepName": "t", "Type": "CreateTask"},
        {"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 60},
    )
    for sit in (
        situation(cad, "t"),  # a manual step: nothing to do at a wake-up
        situation(cad, "t", "Completed"),  # no open step
        situation(cad, "w"),  # a wait ends
        situation(cad, "t", "Paused", tracker={"State": "Paused"}, run=decision.Run("0cT1")),
    ):
        d = engine.wake(ctx(cad), sit, "0cT1", NOW, USER)
        assert moves_timer(d), sit
    stuck = decision.Decision()
    engine._move_timer(stuck, "0cT1")
    assert [(op.kind, op.fields) for op in stuck.run] == [("update", {"due_at": None})]


def test_a_due_email_asks_for_a_send_before_moving_the_timer() -> None:
    cad = cadence({"StepName": "e", "Type": "AutoSendAnEmail"})
    d = engine.wake(ctx(cad), situation(cad, "e", "Queued"), "0cT1", NOW, USER)
    assert d.send is not None and str(d.send.step_tracker) == "0cK1"
    assert d.run == []  # the timer moves with the send's result (on_sent)


def test_a_send_kept_queued_says_why_and_a_sent_one_clears_the_reason() -> None:
    cad = cadence(
        {"StepName": "e", "Type": "AutoSendAnEmail"}, {"StepName": "t", "Type": "CreateTask"}
    )
    later = NOW + timedelta(hours=1)
    queued = situation(cad, "e", "Queued")
    retry = engine.on_sent(
        ctx(cad), cad, queued, NOW, USER, decision.SendResult(False, "DAILY_LIMIT", later)
    )
    (step,) = updates(retry, sales_engagement.STEP)
    assert step.changes == {"ErrorCode": "DAILY_LIMIT"} and step.expect == {"State": "Queued"}
    assert retry.run[-1].fields == {"due_at": later}
    same = situation(cad, "e", "Queued", ErrorCode="DAILY_LIMIT")
    again = engine.on_sent(
        ctx(cad), cad, same, NOW, USER, decision.SendResult(False, "DAILY_LIMIT", later)
    )
    assert all("ErrorCode" not in op.changes for op in updates(again, sales_engagement.STEP))
    sent = engine.on_sent(ctx(cad), cad, same, NOW, USER, decision.SendResult(True))
    done = [op for op in updates(sent, sales_engagement.STEP) if op.id == "0cK1"]
    assert done[0].changes["State"] == "Completed" and done[0].changes["ErrorCode"] is None
    assert moves_timer(sent)
    failed = engine.on_sent(ctx(cad), cad, same, NOW, USER, decision.SendResult(False, "X"))
    (err,) = updates(failed, sales_engagement.STEP)
    assert err.changes == {"State": "Error", "ErrorCode": "X"}
