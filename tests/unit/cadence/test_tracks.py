"""Cadence Builder 2.0 tracks (SubRoot steps, SubRootStep rules) and quick cadences
(RepeatedStep rules): the pure engine and the activation checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opencadence.cadence import decision, engine, graph, validate
from opencadence.metadata import sales_engagement
from tests.unit.cadence.graphs import cadence
from tests.unit.cadence.test_engine import NOW, USER, ctx, inserted, situation, updates

STEP = sales_engagement.STEP


def entry(name: str, resource: str, *values: str) -> dict[str, Any]:
    return {"name": name, "type": "SubRootStep", "resource": resource, "values": list(values)}


def tracked(**main: Any) -> graph.Cadence:
    """Root -> main: call (+1 day) -> task; positive: email (SendAnEmail) -> pcall;
    negative: ntask. Positive on a reply or a meaningful connect, negative on not interested."""
    return cadence(
        {"StepName": "call", "Type": "MakeACall", **main},
        {"StepName": "task", "Type": "CreateTask", "ScheduledDaysUntilStart": 1},
        {
            "StepName": "positive",
            "Type": "SubRoot",
            "ParentStepName": "root",
            "rules": [
                entry("p1", "EmailEngagement", "EmailReply"),
                entry("p2", "CallDispositionCategory", "CallMeaningfulConnect"),
            ],
        },
        {"StepName": "pemail", "Type": "SendAnEmail", "ParentStepName": "positive"},
        {"StepName": "pcall", "Type": "MakeACall"},
        {
            "StepName": "negative",
            "Type": "SubRoot",
            "ParentStepName": "root",
            "rules": [entry("n1", "CallDispositionCategory", "CallNotInterested")],
        },
        {
            "StepName": "ntask",
            "Type": "CreateTask",
            "ParentStepName": "negative",
            "ScheduledStartDelayInMinutes": 60,
        },
    )


def test_a_tracked_cadence_is_valid_and_enrols_on_the_main_track() -> None:
    cad = tracked()
    assert validate.problems(cad) == []
    assert [t.name for t in cad.tracks] == ["negative", "positive"]
    assert cad.track_of["task"] == "" and cad.track_of["pcall"] == "positive"
    assert cad.total_steps() == 5  # SubRoot steps are not counted, like Root
    d = engine.enrol(ctx(cad), cad, "003X", USER, NOW, USER)
    assert [r["StepType"] for r in inserted(d)] == ["Root", "MakeACall"]


def test_a_reply_cancels_the_open_step_and_starts_the_positive_track() -> None:
    cad = tracked()
    started = NOW - timedelta(hours=3)
    sit = situation(cad, "call", ScheduledStartDateTime=started)
    d = engine.on_engagement(ctx(cad), cad, sit, NOW, USER, "EmailReply")
    (cancel,) = updates(d, STEP)
    assert cancel.id == "0cK1" and cancel.changes["State"] == "Cancelled"
    assert "CompletionReason" not in cancel.changes and cancel.expect == {"State": "Active"}
    head, first = inserted(d)
    assert head["StepType"] == "SubRoot" and head["State"] == "Completed"
    assert head["CompletionReason"] == "AutomaticallyCompleted"
    # the cancelled step started earlier: the first step starts now (its own start)
    assert first["StepTitle"] is None and first["StepType"] == "SendAnEmail"
    assert first["State"] == "Active" and first["ScheduledStartDateTime"] == NOW
    (tracker,) = updates(d, sales_engagement.TRACKER)
    assert isinstance(tracker.changes["CurrentStepId"], decision.Ref)


def test_the_new_first_step_starts_no_earlier_than_the_cancelled_one() -> None:
    cad = tracked()
    later = NOW + timedelta(days=2)
    sit = situation(cad, "task", "Scheduled", ScheduledStartDateTime=later)
    d = engine.on_call(ctx(cad), cad, sit, NOW, USER, "CallNotInterested")
    (cancel,) = updates(d, STEP)
    assert cancel.changes["State"] == "Cancelled" and cancel.expect == {"State": "Scheduled"}
    _, first = inserted(d)
    assert first["StepType"] == "CreateTask" and first["State"] == "Scheduled"
    assert first["ScheduledStartDateTime"] == later  # later than its own (now + 60 min)
    assert any(op.fields.get("due_at") == later for op in d.run)


def test_own_start_wins_when_it_is_later() -> None:
    cad = tracked()
    sit = situation(cad, "call", ScheduledStartDateTime=NOW - timedelta(days=1))
    d = engine.on_engagement(ctx(cad), cad, sit, NOW, USER, "EmailReply")
    assert inserted(d)[1]["ScheduledStartDateTime"] == NOW
    d = engine.on_call(ctx(cad), cad, situation(cad, "task"), NOW, USER, "CallNotInterested")
    assert inserted(d)[1]["ScheduledStartDateTime"] == NOW + timedelta(minutes=60)


def test_a_call_completes_its_step_then_switches_instead_of_advancing() -> None:
    cad = tracked()
    d = engine.on_call(ctx(cad), cad, situation(cad, "call"), NOW, USER, "CallMeaningfulConnect")
    (done,) = updates(d, STEP)
    assert done.changes["State"] == "Completed"
    assert done.changes["CompletionReason"] == "AutomaticallyCompleted"
    assert [r["StepType"] for r in inserted(d)] == ["SubRoot", "SendAnEmail"]


def test_rules_of_the_current_track_and_unmatched_events_change_nothing() -> None:
    cad = tracked()
    sit = situation(cad, "pcall")
    assert engine.on_engagement(ctx(cad), cad, sit, NOW, USER, "EmailReply").ops == []
    assert (
        engine.on_engagement(ctx(cad), cad, situation(cad, "call"), NOW, USER, "EmailOpen").ops
        == []
    )
    # from the positive track to the negative one is a switch
    d = engine.on_call(ctx(cad), cad, sit, NOW, USER, "CallNotInterested")
    assert [r["StepType"] for r in inserted(d)] == ["SubRoot", "CreateTask"]
    assert updates(d, STEP)[0].changes["State"] == "Completed"  # the call was made


def test_global_exit_rules_come_before_track_entry() -> None:
    base = tracked()
    cad = cadence(
        *[_row(s) for s in base.steps.values() if s.type != "Root"],
        exit_rules=("EmailReply",),
    )
    d = engine.on_engagement(ctx(cad), cad, situation(cad, "call"), NOW, USER, "EmailReply")
    (tracker,) = updates(d, sales_engagement.TRACKER)
    assert tracker.changes["CompletionReason"] == "AutomaticallyExited"
    assert inserted(d) == []


def _row(step: graph.Step) -> dict[str, Any]:
    row: dict[str, Any] = {
        "StepName": step.name,
        "Type": step.type,
        "ParentStepName": step.parent_name,
        "ScheduledDaysUntilStart": step.days_until_start,
        "ScheduledStartDelayInMinutes": step.start_delay_minutes,
    }
    row["rules"] = [
        {
            "name": r.name,
            "type": r.rule_type,
            "resource": r.conditions[0].resource,
            "values": [c.value for c in r.conditions],
        }
        for r in step.rules
    ]
    return row


def test_a_paused_target_does_not_switch() -> None:
    cad = tracked()
    sit = situation(cad, "call", "Paused", tracker={"State": "Paused"})
    assert engine.on_engagement(ctx(cad), cad, sit, NOW, USER, "EmailReply").ops == []


def test_email_of_another_enrolment_moves_no_track() -> None:
    cad = tracked()
    d = engine.on_engagement(
        ctx(cad), cad, situation(cad, "call"), NOW, USER, "EmailReply", True, False
    )
    assert d.ops == []


def test_entering_a_track_again_counts_the_iteration() -> None:
    cad = tracked()
    assert cad.has_loops  # visits are loaded for tracked cadences
    sit = situation(cad, "ntask", visits={"positive": 1, "pemail": 1, "ntask": 1})
    d = engine.on_engagement(ctx(cad), cad, sit, NOW, USER, "EmailReply")
    head, first = inserted(d)
    assert head["GoToStepIterationCount"] == 2 and first["GoToStepIterationCount"] == 2


def test_starting_at_a_track_head_enters_that_track() -> None:
    cad = tracked()
    d = engine.enrol(ctx(cad), cad, "003X", USER, NOW, USER, start_step_name="negative")
    assert [r["StepType"] for r in inserted(d)] == ["Root", "SubRoot", "CreateTask"]


# -- activation checks of tracks --------------------------------------------------------------


def messages(cad: graph.Cadence) -> list[str]:
    return [str(p) for p in validate.problems(cad)]


def test_track_checks_name_the_step() -> None:
    cad = cadence(
        {"StepName": "call", "Type": "MakeACall"},
        {"StepName": "pos", "Type": "SubRoot", "ParentStepName": "call"},
    )
    found = messages(cad)
    assert any(m.startswith("Step pos: a SubRoot step's ParentStepName must be") for m in found)
    assert "Step pos: a SubRoot step needs a first step" in " ".join(found)
    assert any("needs at least one track entry rule" in m for m in found)


def test_entry_rule_conditions_are_checked() -> None:
    cad = cadence(
        {"StepName": "call", "Type": "MakeACall"},
        {
            "StepName": "pos",
            "Type": "SubRoot",
            "ParentStepName": "root",
            "rules": [
                entry("r1", "EmailEngagement", "EmailBounce"),
                entry("r2", "Nonsense", "EmailReply"),
                {"name": "r3", "type": "BranchStep", "values": ["CallUnqualified"]},
            ],
        },
        {"StepName": "ptask", "Type": "CreateTask", "ParentStepName": "pos"},
    )
    found = " | ".join(messages(cad))
    assert "Step pos: rule r1, condition" in found and "'EmailBounce' is not one of" in found
    assert "rule r2, condition" in found and "not Nonsense" in found
    assert "rule r3 has RuleType BranchStep; track entry rules are SubRootStep" in found


def test_three_tracks_besides_main_are_refused() -> None:
    steps: list[dict[str, Any]] = [{"StepName": "call", "Type": "MakeACall"}]
    for n in ("a", "b", "c"):
        steps += [
            {
                "StepName": n,
                "Type": "SubRoot",
                "ParentStepName": "root",
                "rules": [entry(f"r{n}", "EmailEngagement", "EmailReply")],
            },
            {"StepName": f"{n}1", "Type": "CreateTask", "ParentStepName": n},
        ]
    assert "Step c: a cadence has at most 2 tracks" in " ".join(messages(cadence(*steps)))


def test_a_branch_may_not_lead_into_another_track() -> None:
    cad = cadence(
        {"StepName": "call", "Type": "MakeACall"},
        {
            "StepName": "br",
            "Type": "Branch",
            "BranchDefaultStepName": "ptask",
            "rules": [("r", "ptask", ["CallUnqualified"])],
        },
        {
            "StepName": "pos",
            "Type": "SubRoot",
            "ParentStepName": "root",
            "rules": [entry("p", "EmailEngagement", "EmailReply")],
        },
        {"StepName": "ptask", "Type": "CreateTask", "ParentStepName": "pos"},
    )
    assert messages(cad) == ["Step ptask: is on the main track and on track pos"]


def test_rules_on_a_plain_step_are_refused() -> None:
    cad = cadence({"StepName": "call", "Type": "MakeACall", "rules": [("r", None, [])]})
    assert "Step call: a MakeACall step cannot have rules of type BranchStep" in messages(cad)


# -- quick cadences ----------------------------------------------------------------------------


def quick(**step: Any) -> graph.Cadence:
    row = {
        "StepName": "call",
        "Type": "MakeACall",
        "GoToStepIterationLimit": 2,
        "GoToStepIntervalInMinutes": 1440,
        "rules": [{"name": "again", "type": "RepeatedStep"}],
        **step,
    }
    return cadence(row, Type="Quick")


def test_a_quick_cadence_repeats_its_step_limit_times_then_ends() -> None:
    cad = quick()
    assert validate.problems(cad) == [] and cad.has_loops and cad.total_steps() == 1
    d = engine.on_call(ctx(cad), cad, situation(cad, "call"), NOW, USER, None)
    (again,) = inserted(d)
    assert again["StepType"] == "MakeACall" and again["GoToStepIterationCount"] == 2
    assert again["State"] == "Scheduled"
    assert again["ScheduledStartDateTime"] == NOW + timedelta(days=1)
    sit = situation(cad, "call", visits={"call": 3})
    d = engine.on_step_event(ctx(cad), cad, sit, NOW, USER, "0cK1", "Skip")
    assert inserted(d) == []
    (tracker,) = updates(d, sales_engagement.TRACKER)
    assert tracker.changes["CompletionReason"] == "NoMoreSteps"


def test_quick_cadence_checks() -> None:
    two = cadence(
        {"StepName": "call", "Type": "MakeACall"},
        {"StepName": "task", "Type": "CreateTask"},
        Type="Quick",
    )
    assert messages(two) == ["Step root: a Quick cadence has exactly one step, not call, task"]
    assert messages(
        cadence({"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 5}, Type="Quick")
    ) == ["Step w: a Quick cadence's step cannot be a Wait step"]
    assert messages(quick(GoToStepIterationLimit=None)) == [
        "Step call: a repeated step needs a GoToStepIterationLimit of at least 1"
    ]
    standard = cadence(
        {
            "StepName": "call",
            "Type": "MakeACall",
            "GoToStepIterationLimit": 1,
            "rules": [{"name": "again", "type": "RepeatedStep"}],
        }
    )
    assert messages(standard) == [
        "Step call: rule again: RepeatedStep rules are for Quick cadences"
    ]
    conditioned = quick(
        rules=[{"name": "again", "type": "RepeatedStep", "values": ["CallUnqualified"]}]
    )
    assert messages(conditioned) == ["Step call: rule again: a RepeatedStep rule has no conditions"]
