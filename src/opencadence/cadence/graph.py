"""The immutable cadence graph, loaded from the builder records.

A ``Cadence`` is built once from the ActionCadence row and its ActionCadenceStep,
ActionCadenceRule, ActionCadenceRuleCondition and ActionCadenceStepVariant rows
(``from_records``). Steps link to their predecessor by name (ParentStepName = the parent's
StepName), as Salesforce links them; the model indexes them by name and by parent so the
engine walks the graph without touching the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

#: Steps a rep works by hand (they appear in the work queue, have due dates).
MANUAL_TYPES = frozenset(
    {
        "SendAnEmail",
        "MakeACall",
        "CreateTask",
        "LinkedInConnection",
        "LinkedInMail",
        "PlatformScreenFlow",
    }
)
#: Steps that send an email (the listener branch and engagement events refer to them).
EMAIL_TYPES = frozenset({"SendAnEmail", "AutoSendAnEmail"})
#: Steps that may carry template / call-script variants.
VARIANT_TYPES = frozenset({"SendAnEmail", "AutoSendAnEmail", "MakeACall"})
#: Steps that route on rules.
BRANCH_TYPES = frozenset({"Branch", "ListenerBranch"})
#: Call-result categories a Branch condition reads (Resource CallDispositionCategory).
CALL_OUTCOMES = (
    "CallMeaningfulConnect",
    "CallUnqualified",
    "CallLeftVoicemail",
    "CallNotInterested",
    "CallCallBackLater",
)
#: Email engagement a ListenerBranch condition reads (Resource EmailEngagement).
EMAIL_ENGAGEMENT = ("EmailOpen", "EmailLinkClick")
#: Events a global exit rule (RuleType RootStep) can name in GlobalEventType.
GLOBAL_EVENTS = ("EmailReply", "EmailHardBounce", "EmailSoftBounce") + CALL_OUTCOMES
#: Resource a condition must use, per branching step type.
RESOURCE_OF = {"Branch": "CallDispositionCategory", "ListenerBranch": "EmailEngagement"}
#: Values allowed per condition resource.
VALUES_OF = {"CallDispositionCategory": CALL_OUTCOMES, "EmailEngagement": EMAIL_ENGAGEMENT}
#: Graph states of steps that run (Retired steps keep their trackers but take no new targets).
LIVE = "Included"
#: The head of a Cadence Builder 2.0 track (positive or negative): a child of the Root whose
#: SubRootStep rules say when a target enters the track; its one child is the track's first step.
SUBROOT = "SubRoot"
#: Tracks besides the main one (Cadence Builder 2.0 has main, positive and negative).
MAX_TRACKS = 2
#: What a track entry rule (RuleType SubRootStep) can name, per condition Resource: the email
#: engagement of any email of the target's cadence (a reply included) or a logged call's result.
ENTRY_VALUES_OF = {
    "EmailEngagement": EMAIL_ENGAGEMENT + ("EmailReply",),
    "CallDispositionCategory": CALL_OUTCOMES,
}
#: Rule types by the kind of step that carries them (RootStep rules are the global exits).
BRANCH_RULE, ENTRY_RULE, REPEAT_RULE, EXIT_RULE = (
    "BranchStep",
    "SubRootStep",
    "RepeatedStep",
    "RootStep",
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a rule; conditions of a rule are ANDed, the operator is Equal."""

    id: str
    name: str
    resource: str | None
    operator: str | None
    value: str | None


@dataclass(frozen=True, slots=True)
class Rule:
    """A branch rule (BranchStep), a global exit rule (RootStep) or another rule type."""

    id: str
    name: str
    rule_type: str
    step_id: str
    global_event_type: str | None
    outcome_next_step_name: str | None
    parent_rule_name: str | None
    conditions: tuple[Condition, ...]

    def holds(self, facts: frozenset[str]) -> bool:
        """True when every condition's value is among ``facts`` (and there is a condition)."""
        return bool(self.conditions) and all(c.value in facts for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Variant:
    """A template / call-script variant of an email or call step."""

    id: str
    template_id: str | None
    split_percentage: float


@dataclass(frozen=True, slots=True)
class Step:
    """One ActionCadenceStep, with its rules and variants."""

    id: str
    name: str
    type: str
    title: str | None
    parent_name: str | None
    graph_state: str
    branch_default: str | None = None
    chained_cadence_id: str | None = None
    goto_name: str | None = None
    goto_limit: int | None = None
    goto_interval_minutes: int | None = None
    immediate_wakeup: bool = False
    wait_seconds: int | None = None
    days_until_start: int | None = None
    start_delay_minutes: int | None = None
    start_time_minutes: int | None = None
    days_until_due: int | None = None
    template_id: str | None = None
    #: IsScheduledDueDateLocked: assignees cannot change the due date of its step trackers
    due_locked: bool = False
    rules: tuple[Rule, ...] = ()
    variants: tuple[Variant, ...] = ()

    @property
    def is_loop(self) -> bool:
        """A repeat step: jumps back to GoToStepName up to GoToStepIterationLimit times."""
        return bool(self.goto_name) and (self.goto_limit or 0) > 0

    @property
    def entry_rules(self) -> tuple[Rule, ...]:
        """A SubRoot step's track entry rules (RuleType SubRootStep)."""
        return tuple(r for r in self.rules if r.rule_type == ENTRY_RULE)

    @property
    def repeat_rule(self) -> Rule | None:
        """A quick cadence step's RepeatedStep rule, if any."""
        return next((r for r in self.rules if r.rule_type == REPEAT_RULE), None)

    @property
    def repeats(self) -> bool:
        """The target comes back to a step after this one (a GoTo loop or a quick repeat)."""
        return self.is_loop or self.repeat_rule is not None


@dataclass(frozen=True)
class Cadence:
    """One cadence definition: its steps by name and the links between them."""

    id: str
    name: str
    state: str
    type: str
    owner_id: str | None
    wait_allowed_before_daisy_chain: bool
    steps: Mapping[str, Step]
    #: Steps of the graph, excluding Orphaned/Pending ones (kept apart for activation).
    detached: tuple[Step, ...] = ()
    global_rules: tuple[Rule, ...] = ()
    children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    by_id: Mapping[str, Step] = field(default_factory=dict)
    #: StepNames used by more than one step (an activation error).
    duplicate_names: tuple[str, ...] = ()

    @property
    def roots(self) -> list[Step]:
        return [s for s in self.steps.values() if s.type == "Root" and s.graph_state == LIVE]

    @property
    def root(self) -> Step:
        return self.roots[0]

    @property
    def has_loops(self) -> bool:
        """Whether step visits must be counted (GoToStepIterationCount of a step entered again:
        a loop, a quick repeat, or a track entered a second time)."""
        return bool(self.tracks) or any(s.repeats for s in self.steps.values())

    @cached_property
    def tracks(self) -> tuple[Step, ...]:
        """The live SubRoot steps under the Root (the positive / negative track heads)."""
        roots = self.roots
        if not roots:
            return ()
        kids = self.children.get(roots[0].name, ())
        return tuple(self.steps[k] for k in kids if self.steps[k].type == SUBROOT)

    @cached_property
    def track_of(self) -> Mapping[str, str]:
        """Step name -> the track it is on: a SubRoot step's name, or "" for the main track
        (steps reachable from the Root without passing a SubRoot). A step reachable from two
        tracks is on the first that reaches it (``validate`` refuses such a graph)."""
        out: dict[str, str] = {}
        roots = self.roots
        if not roots:
            return out
        heads = [("", roots[0])] + [(t.name, t) for t in self.tracks]
        for track, head in heads:
            todo = [head]
            while todo:
                step = todo.pop()
                if step.name in out:
                    continue
                out[step.name] = track
                for name in edges(self, step):
                    nxt = self.step(name)
                    if nxt is not None and nxt.type != SUBROOT and nxt.name not in out:
                        todo.append(nxt)
        return MappingProxyType(out)

    def repeat_of(self, step: Step) -> tuple[Step, int, int] | None:
        """Where a repeating ``step`` goes back to, how many repeats, and the minutes between:
        a GoTo loop's GoToStepName, or a quick cadence's RepeatedStep rule (its
        OutcomeNextStepName, the step itself when empty); GoToStepIterationLimit and
        GoToStepIntervalInMinutes of ``step`` in both cases."""
        if step.is_loop:
            name: str | None = step.goto_name
        elif step.repeat_rule is not None:
            name = step.repeat_rule.outcome_next_step_name or step.name
        else:
            return None
        target = self.step(name)
        if target is None:
            return None
        return target, step.goto_limit or 0, step.goto_interval_minutes or 0

    def step(self, name: str | None) -> Step | None:
        """A live (Included) step by name, or None."""
        found = self.steps.get(name or "")
        return found if found is not None and found.graph_state == LIVE else None

    def next_of(self, step: Step) -> Step | None:
        """The step after a non-branching ``step``: its live child, else its GoToStepName.

        GoToStepName is how Salesforce re-links a step whose next step was removed after
        activation; on a repeat step (GoToStepIterationLimit set) it is the loop target and is
        handled by the engine, not here.
        """
        kids = [k for k in self.children.get(step.name, ()) if self.steps[k].type != SUBROOT]
        if kids:
            return self.steps[kids[0]]
        if step.goto_name and not step.is_loop:
            return self.step(step.goto_name)
        return None

    def total_steps(self) -> int:
        """ActionCadence.TotalSteps: steps excluding root, branch and daisy-chain steps."""
        skip = {"Root", "Branch", "ListenerBranch", "DaisyChain", SUBROOT}
        return sum(1 for s in self.steps.values() if s.graph_state == LIVE and s.type not in skip)


def edges(cadence: Cadence, step: Step) -> list[str]:
    """Names of the steps a target can move to from ``step`` (track switches aside)."""
    if step.type in BRANCH_TYPES:
        out = [r.outcome_next_step_name for r in step.rules if r.outcome_next_step_name]
        return out + ([step.branch_default] if step.branch_default else [])
    out = list(cadence.children.get(step.name, ()))
    if step.goto_name:
        out.append(step.goto_name)
    rule = step.repeat_rule
    if rule is not None and rule.outcome_next_step_name:
        out.append(rule.outcome_next_step_name)
    return out


def ordered_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """Rules in ParentRuleName chain order (the root rule first), then by name."""
    rules = sorted(rules, key=lambda r: r.name)
    by_parent: dict[str | None, list[Rule]] = {}
    for r in rules:
        by_parent.setdefault(r.parent_rule_name, []).append(r)
    names = {r.name for r in rules}
    out: list[Rule] = []
    queue = [r for r in rules if r.parent_rule_name not in names]
    while queue:
        r = queue.pop(0)
        if r in out:
            continue
        out.append(r)
        queue[0:0] = by_parent.get(r.name, [])
    out += [r for r in rules if r not in out]  # rules in a ParentRuleName cycle: last
    return tuple(out)


Row = Mapping[str, Any]


def _condition(row: Row) -> Condition:
    return Condition(
        row["Id"], row["RuleConditionName"], row["Resource"], row["Operator"], row["Value"]
    )


def _rule(row: Row, conditions: Sequence[Condition]) -> Rule:
    return Rule(
        id=row["Id"],
        name=row["RuleName"],
        rule_type=row["RuleType"] or "BranchStep",
        step_id=row["ActionCadenceStepId"],
        global_event_type=row["GlobalEventType"],
        outcome_next_step_name=row["OutcomeNextStepName"],
        parent_rule_name=row["ParentRuleName"],
        conditions=tuple(sorted(conditions, key=lambda c: c.name)),
    )


def _step(row: Row, rules: tuple[Rule, ...], variants: tuple[Variant, ...]) -> Step:
    return Step(
        id=row["Id"],
        name=row["StepName"] or row["Id"],
        type=row["Type"],
        title=row["StepTitle"],
        parent_name=row["ParentStepName"],
        graph_state=row["GraphState"] or LIVE,
        branch_default=row["BranchDefaultStepName"],
        chained_cadence_id=row["ChainedCadenceId"],
        goto_name=row["GoToStepName"],
        goto_limit=row["GoToStepIterationLimit"],
        goto_interval_minutes=row["GoToStepIntervalInMinutes"],
        immediate_wakeup=bool(row["IsImmediateWakeUp"]),
        wait_seconds=row["WaitTimeInSeconds"],
        days_until_start=row["ScheduledDaysUntilStart"],
        start_delay_minutes=row["ScheduledStartDelayInMinutes"],
        start_time_minutes=row["ScheduledStartTimeInMinutes"],
        days_until_due=row["ScheduledDaysUntilDue"],
        template_id=row["TemplateId"],
        due_locked=bool(row.get("IsScheduledDueDateLocked")),
        rules=rules,
        variants=variants,
    )


def from_records(
    cadence: Row,
    steps: Sequence[Row],
    rules: Sequence[Row] = (),
    conditions: Sequence[Row] = (),
    variants: Sequence[Row] = (),
) -> Cadence:
    """Build the graph of one cadence from its (non-deleted) builder rows."""
    conds: dict[str, list[Condition]] = {}
    for c in conditions:
        conds.setdefault(c["ActionCadenceRuleId"], []).append(_condition(c))
    rules_of: dict[str, list[Rule]] = {}
    for r in rules:
        if (r["GraphState"] or LIVE) == LIVE:
            rule = _rule(r, conds.get(r["Id"], []))
            rules_of.setdefault(r["ActionCadenceStepId"], []).append(rule)
    vars_of: dict[str, list[Variant]] = {}
    for v in variants:
        vars_of.setdefault(v["ActionCadenceStepId"], []).append(
            Variant(v["Id"], v["TemplateId"], float(v["SplitPercentage"] or 0))
        )
    graph: dict[str, Step] = {}
    detached: list[Step] = []
    global_rules: list[Rule] = []
    duplicates: list[str] = []
    for row in sorted(steps, key=lambda r: (r["StepName"] or "", r["Id"])):
        own = ordered_rules(rules_of.get(row["Id"], []))
        branch = tuple(r for r in own if r.rule_type != "RootStep")
        global_rules += [r for r in own if r.rule_type == "RootStep"]
        step = _step(row, branch, tuple(sorted(vars_of.get(row["Id"], []), key=lambda v: v.id)))
        if step.graph_state in (LIVE, "Retired"):
            if step.name in graph:
                duplicates.append(step.name)
            graph.setdefault(step.name, step)
        else:
            detached.append(step)
    children: dict[str, list[str]] = {}
    for s in graph.values():
        if s.graph_state == LIVE and s.parent_name and s.type != "Root":
            children.setdefault(s.parent_name, []).append(s.name)
    return Cadence(
        id=cadence["Id"],
        name=cadence["Name"],
        state=cadence["State"] or "Draft",
        type=cadence["Type"] or "Standard",
        owner_id=cadence["OwnerId"],
        wait_allowed_before_daisy_chain=bool(cadence["IsWaitAllowedBeforeDaisyChain"]),
        steps=MappingProxyType(graph),
        detached=tuple(detached),
        global_rules=ordered_rules(global_rules),
        children=MappingProxyType({k: tuple(sorted(v)) for k, v in children.items()}),
        by_id=MappingProxyType({s.id: s for s in graph.values()}),
        duplicate_names=tuple(sorted(set(duplicates))),
    )
