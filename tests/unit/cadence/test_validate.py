"""Activation checks: each problem names its step."""

from __future__ import annotations

import pytest

from opencadence.cadence import validate
from tests.unit.cadence.graphs import cadence


def messages(*steps: dict[str, object], **kw: object) -> list[str]:
    return [str(p) for p in validate.problems(cadence(*steps, **kw))]  # type: ignore[arg-type]


def test_a_valid_graph_has_no_problem() -> None:
    assert (
        messages(
            {"StepName": "a", "Type": "MakeACall"},
            {
                "StepName": "b",
                "Type": "Branch",
                "BranchDefaultStepName": "c",
                "rules": [("r", "d", ["CallMeaningfulConnect"])],
            },
            {"StepName": "c", "Type": "CreateTask", "ParentStepName": "b"},
            {"StepName": "d", "Type": "Wait", "WaitTimeInSeconds": 5, "ParentStepName": "b"},
        )
        == []
    )


@pytest.mark.parametrize(
    "steps, expected",
    [
        (
            [{"StepName": "root2", "Type": "Root", "ParentStepName": None}],
            "Step root2: the cadence has more than one Root step",
        ),
        (
            [{"StepName": "a", "Type": "CreateTask", "ParentStepName": "nowhere"}],
            "Step a: ParentStepName 'nowhere' names no step",
        ),
        (
            [
                {"StepName": "a", "Type": "CreateTask"},
                {"StepName": "b", "Type": "CreateTask", "ParentStepName": "a"},
                {"StepName": "c", "Type": "CreateTask", "ParentStepName": "a"},
            ],
            "Step a: has more than one next step (b, c)",
        ),
        (
            [
                {"StepName": "d", "Type": "DaisyChain", "ChainedCadenceId": "77Cx"},
                {"StepName": "e", "Type": "CreateTask"},
            ],
            "Step d: a DaisyChain step must be the last",
        ),
        (
            [
                {"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 60},
                {"StepName": "d", "Type": "DaisyChain", "ChainedCadenceId": "77Cx"},
            ],
            "Step d: a Wait step before a DaisyChain step needs IsWaitAllowedBeforeDaisyChain",
        ),
        ([{"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 0}], "Step w: a Wait step needs"),
        (
            [
                {
                    "StepName": "l",
                    "Type": "ListenerBranch",
                    "BranchDefaultStepName": "x",
                    "rules": [("r", "x", ["EmailOpen"])],
                },
                {"StepName": "x", "Type": "CreateTask"},
            ],
            "Step l: a ListenerBranch step needs a WaitTimeInSeconds",
        ),
        (
            [
                {"StepName": "b", "Type": "Branch", "BranchDefaultStepName": "x"},
                {"StepName": "x", "Type": "CreateTask"},
            ],
            "Step b: a branch step needs at least one rule",
        ),
        (
            [
                {
                    "StepName": "b",
                    "Type": "Branch",
                    "BranchDefaultStepName": "x",
                    "rules": [("r", "x", ["EmailOpen"])],
                },
                {"StepName": "x", "Type": "CreateTask"},
            ],
            "Step b: rule r, condition c100: Value 'EmailOpen' is not one of",
        ),
        (
            [
                {
                    "StepName": "b",
                    "Type": "Branch",
                    "BranchDefaultStepName": "x",
                    "rules": [("r", "nope", ["CallUnqualified"])],
                },
                {"StepName": "x", "Type": "CreateTask"},
            ],
            "Step b: rule r: OutcomeNextStepName 'nope' names no step",
        ),
        (
            [
                {
                    "StepName": "b",
                    "Type": "Branch",
                    "BranchDefaultStepName": "x",
                    "rules": [("r", "x", ["CallUnqualified"])],
                },
                {"StepName": "x", "Type": "CreateTask"},
                {"StepName": "y", "Type": "CreateTask", "ParentStepName": "b"},
            ],
            "Step y: is unreachable from the Root step",
        ),
        (
            [{"StepName": "m", "Type": "SendAnEmail", "variants": [("t1", 50), ("t2", 40)]}],
            "Step m: variant SplitPercentage values total 90, not 100",
        ),
        (
            [
                {
                    "StepName": "m",
                    "Type": "SendAnEmail",
                    "variants": [("t1", 25), ("t2", 25), ("t3", 25), ("t4", 25)],
                }
            ],
            "Step m: has 4 variants",
        ),
        (
            [{"StepName": "t", "Type": "CreateTask", "variants": [("t1", 100)]}],
            "Step t: a CreateTask step cannot have variants",
        ),
        (
            [
                {
                    "StepName": "t",
                    "Type": "CreateTask",
                    "GoToStepName": "zzz",
                    "GoToStepIterationLimit": 1,
                }
            ],
            "Step t: GoToStepName 'zzz' names no step",
        ),
    ],
)
def test_problems_name_the_step(steps: list[dict[str, object]], expected: str) -> None:
    found = messages(*steps)
    assert any(m.startswith(expected) for m in found), found


def test_global_exit_rule_event_type() -> None:
    found = messages({"StepName": "t", "Type": "CreateTask"}, exit_rules=("EmailNope",))
    assert found and found[0].startswith(
        "Step root: global exit rule g0: GlobalEventType 'EmailNope'"
    )


def test_check_raises_the_first_problem() -> None:
    with pytest.raises(validate.CadenceInvalid, match="Step w: a Wait step"):
        validate.check(cadence({"StepName": "w", "Type": "Wait"}))


def test_an_auto_email_step_needs_a_sendable_template() -> None:
    ok = "00X0C0000000001AAA"

    def found(step: dict[str, object], templates: dict[str, str | None]) -> list[str]:
        return [str(p) for p in validate.problems(cadence(step), templates)]

    auto = {"StepName": "e", "Type": "AutoSendAnEmail"}
    assert found(auto, {}) == ["Step e: an AutoSendAnEmail step needs a TemplateId"]
    assert found({**auto, "TemplateId": ok}, {ok: None}) == []
    assert found({**auto, "TemplateId": ok}, {}) == [
        f"Step e: TemplateId {ok} names no email template"
    ]
    assert found({**auto, "TemplateId": ok}, {ok: "the email template is not active"}) == [
        f"Step e: TemplateId {ok}: the email template is not active"
    ]
    # with variants, the variants' templates are what the runtime sends
    other = "00X0C0000000002AAA"
    varied = {**auto, "variants": [(ok, 50.0), (other, 50.0)]}
    assert found(varied, {ok: None}) == [f"Step e: TemplateId {other} names no email template"]
    assert found(varied, {ok: None, other: None}) == []
    assert validate.auto_email_templates(cadence(varied)) == {ok, other}
    # a manual email step is the rep's to complete: no template needed to activate
    assert found({"StepName": "m", "Type": "SendAnEmail"}, {}) == []
