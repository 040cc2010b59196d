"""Activation checks of a cadence graph; every problem names the step it is about.

``problems`` lists everything wrong; ``check`` raises the first as CadenceInvalid. The checks
are the ones Salesforce states (one root, DaisyChain last on its path, Wait has
WaitTimeInSeconds, ≤ 3 variants totalling 100 %, branch rules complete) plus the ones a graph
linked by names needs (no dangling names, no unreachable step, one next step per plain step),
and those of Cadence Builder 2.0 tracks and quick cadences (docs/runtime-decisions.md). The
same checks judge an edit of an active cadence (``runtime.builder_edit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opencadence import errors
from opencadence.cadence import graph
from opencadence.metadata.registry import default_registry

#: Most variants per step (OR-VAR).
MAX_VARIANTS = 3


class CadenceInvalid(errors.FieldCustomValidation):
    """The cadence cannot be activated."""

    error_code = "FIELD_CUSTOM_VALIDATION_EXCEPTION"


@dataclass(frozen=True, slots=True)
class Problem:
    step: str
    message: str

    def __str__(self) -> str:
        return f"Step {self.step}: {self.message}"


#: What the caller found about each email template id a cadence names: None when the runtime
#: can send it, else why not. An id missing from the mapping names no email template.
Templates = Mapping[str, str | None]


def check(cadence: graph.Cadence, templates: Templates | None = None) -> None:
    """Raise CadenceInvalid naming the first problem, if any."""
    found = problems(cadence, templates)
    if found:
        raise CadenceInvalid(str(found[0]))


def auto_email_templates(cadence: graph.Cadence) -> set[str]:
    """The template ids the live AutoSendAnEmail steps of ``cadence`` would send."""
    return {
        tid
        for step in cadence.steps.values()
        if step.graph_state == graph.LIVE and step.type == "AutoSendAnEmail"
        for tid in _templates_of(step)
        if tid
    }


def problems(cadence: graph.Cadence, templates: Templates | None = None) -> list[Problem]:
    """Every reason the cadence cannot be activated, root problems first. ``templates``
    describes the ids of ``auto_email_templates(cadence)`` (the caller reads them)."""
    out = _root_problems(cadence)
    out += [Problem(n, "StepName is used by more than one step") for n in cadence.duplicate_names]
    for step in cadence.steps.values():
        if step.graph_state == graph.LIVE:
            out += _step_problems(cadence, step, templates or {})
    out += _global_rule_problems(cadence)
    out += _quick_problems(cadence)
    if not out:
        out += _unreachable(cadence)
    if not out:
        out += _track_problems(cadence)
    return out


def _root_problems(cadence: graph.Cadence) -> list[Problem]:
    roots = cadence.roots
    if not roots:
        return [Problem("(none)", "the cadence has no Root step")]
    if len(roots) > 1:
        names = ", ".join(r.name for r in roots)
        return [Problem(roots[1].name, f"the cadence has more than one Root step ({names})")]
    if roots[0].parent_name:
        return [Problem(roots[0].name, "the Root step cannot have a ParentStepName")]
    return []


def _step_problems(cadence: graph.Cadence, step: graph.Step, templates: Templates) -> list[Problem]:
    out: list[Problem] = []

    def say(message: str) -> None:
        out.append(Problem(step.name, message))

    if step.type != "Root":
        if not step.parent_name:
            say("ParentStepName is empty (only the Root step has no parent)")
        elif cadence.steps.get(step.parent_name) is None:
            # a Retired parent is fine: its parent's GoToStepName leads past it
            say(f"ParentStepName '{step.parent_name}' names no step of the cadence")
    kids = cadence.children.get(step.name, ())
    if step.type == "Root":  # the main track's first step and the track heads hang off the Root
        kids = tuple(k for k in kids if cadence.steps[k].type != graph.SUBROOT)
    if step.type not in graph.BRANCH_TYPES and len(kids) > 1:
        say(f"has more than one next step ({', '.join(kids)}); only branch steps can fork")
    if step.type == graph.SUBROOT:
        out += _track_head_problems(cadence, step, kids)
    elif step.type not in graph.BRANCH_TYPES:
        out += _plain_rule_problems(cadence, step)
    if step.type == "DaisyChain":
        out += _daisy_chain_problems(cadence, step, kids)
    if step.type in ("Wait", "ListenerBranch") and not (step.wait_seconds or 0) > 0:
        say(f"a {step.type} step needs a WaitTimeInSeconds greater than 0")
    if step.type in graph.BRANCH_TYPES:
        out += _branch_problems(cadence, step)
    if step.goto_name and cadence.step(step.goto_name) is None:
        say(f"GoToStepName '{step.goto_name}' names no step of the cadence")
    if (step.goto_limit or 0) < 0 or (step.goto_interval_minutes or 0) < 0:
        say("GoToStepIterationLimit and GoToStepIntervalInMinutes cannot be negative")
    out += _variant_problems(step)
    out += _script_problems(step)
    if step.type == "AutoSendAnEmail":
        out += _auto_email_problems(step, templates)
    return out


def _templates_of(step: graph.Step) -> list[str | None]:
    """What the runtime sends for the step: a variant's template when it has variants."""
    return [v.template_id for v in step.variants] if step.variants else [step.template_id]


def _script_problems(step: graph.Step) -> list[Problem]:
    """A MakeACall step (and each of its variants) names a call script (CallTemplate) or
    nothing; a SendAnEmail step names no call script (an AutoSendAnEmail step must name an
    email template: ``_auto_email_problems``)."""
    registry = default_registry()
    out = []
    for tid in _templates_of(step):
        script = bool(tid) and registry.is_id_of(str(tid), "CallTemplate")
        if step.type == "MakeACall" and tid and not script:
            out.append(Problem(step.name, f"TemplateId {tid} names no call script (CallTemplate)"))
        elif step.type == "SendAnEmail" and script:
            out.append(Problem(step.name, f"TemplateId {tid} is a call script, not an email"))
    return out


def _auto_email_problems(step: graph.Step, templates: Templates) -> list[Problem]:
    """An automated email goes out with no rep to fix it: its template must be sendable now
    (send time checks it again, as a template can change after activation)."""
    out = []
    for tid in _templates_of(step):
        if not tid:
            out.append(Problem(step.name, "an AutoSendAnEmail step needs a TemplateId"))
        elif tid not in templates:
            out.append(Problem(step.name, f"TemplateId {tid} names no email template"))
        elif templates[tid] is not None:
            out.append(Problem(step.name, f"TemplateId {tid}: {templates[tid]}"))
    return out


def _daisy_chain_problems(
    cadence: graph.Cadence, step: graph.Step, kids: tuple[str, ...]
) -> list[Problem]:
    out = []
    if kids:
        out.append(Problem(step.name, "a DaisyChain step must be the last step on its path"))
    if not step.chained_cadence_id:
        out.append(Problem(step.name, "a DaisyChain step needs a ChainedCadenceId"))
    parent = cadence.step(step.parent_name)
    if parent is not None and parent.type == "Wait" and not cadence.wait_allowed_before_daisy_chain:
        out.append(
            Problem(
                step.name,
                "a Wait step before a DaisyChain step needs "
                "IsWaitAllowedBeforeDaisyChain on the cadence",
            )
        )
    return out


def _branch_problems(cadence: graph.Cadence, step: graph.Step) -> list[Problem]:
    out: list[Problem] = []

    def say(message: str) -> None:
        out.append(Problem(step.name, message))

    if not step.branch_default:
        say("a branch step needs a BranchDefaultStepName")
    elif cadence.step(step.branch_default) is None:
        say(f"BranchDefaultStepName '{step.branch_default}' names no step of the cadence")
    if not step.rules:
        say("a branch step needs at least one rule")
    resource = graph.RESOURCE_OF[step.type]
    for rule in step.rules:
        if not rule.outcome_next_step_name:
            say(f"rule {rule.name} has no OutcomeNextStepName")
        elif cadence.step(rule.outcome_next_step_name) is None:
            say(
                f"rule {rule.name}: OutcomeNextStepName '{rule.outcome_next_step_name}' "
                "names no step of the cadence"
            )
        if (rule.rule_type or "BranchStep") != "BranchStep":
            say(f"rule {rule.name} has RuleType {rule.rule_type}; branch rules are BranchStep")
        if rule.conditions == ():
            say(f"rule {rule.name} has no condition")
        for c in rule.conditions:
            if c.resource != resource:
                say(
                    f"rule {rule.name}, condition {c.name}: Resource must be {resource}, "
                    f"not {c.resource}"
                )
            elif c.value not in graph.VALUES_OF[resource]:
                say(
                    f"rule {rule.name}, condition {c.name}: Value {c.value!r} is not one of "
                    f"{', '.join(graph.VALUES_OF[resource])}"
                )
            if c.operator not in (None, "Equal"):
                say(f"rule {rule.name}, condition {c.name}: Operator must be Equal")
    return out


def _track_head_problems(
    cadence: graph.Cadence, step: graph.Step, kids: tuple[str, ...]
) -> list[Problem]:
    """A SubRoot step: a child of the Root, leading to its track's first step, entered on its
    SubRootStep rules (email engagement or call results)."""
    out: list[Problem] = []

    def say(message: str) -> None:
        out.append(Problem(step.name, message))

    root = cadence.roots[0] if cadence.roots else None
    if cadence.type == "Quick":
        say("a Quick cadence has no tracks (SubRoot steps)")
    if root is not None and step.parent_name != root.name:
        say(f"a SubRoot step's ParentStepName must be the Root step ({root.name})")
    elif step.name not in [t.name for t in cadence.tracks[: graph.MAX_TRACKS]]:
        say(f"a cadence has at most {graph.MAX_TRACKS} tracks besides the main track")
    if not kids:
        say("a SubRoot step needs a first step (a step whose ParentStepName names it)")
    if not step.entry_rules:
        say("a SubRoot step needs at least one track entry rule (RuleType SubRootStep)")
    for rule in step.rules:
        if rule.rule_type != graph.ENTRY_RULE:
            say(
                f"rule {rule.name} has RuleType {rule.rule_type}; track entry rules are SubRootStep"
            )
            continue
        nxt = rule.outcome_next_step_name
        if nxt and nxt != step.name and nxt not in kids:
            say(f"rule {rule.name}: OutcomeNextStepName '{nxt}' is not the track's first step")
        if not rule.conditions:
            say(f"rule {rule.name} has no condition")
        for c in rule.conditions:
            allowed = graph.ENTRY_VALUES_OF.get(c.resource or "")
            if allowed is None:
                say(
                    f"rule {rule.name}, condition {c.name}: Resource must be "
                    f"{' or '.join(graph.ENTRY_VALUES_OF)}, not {c.resource}"
                )
            elif c.value not in allowed:
                say(
                    f"rule {rule.name}, condition {c.name}: Value {c.value!r} is not one of "
                    f"{', '.join(allowed)}"
                )
            if c.operator not in (None, "Equal"):
                say(f"rule {rule.name}, condition {c.name}: Operator must be Equal")
    return out


def _plain_rule_problems(cadence: graph.Cadence, step: graph.Step) -> list[Problem]:
    """Rules of a step that neither branches nor heads a track: only a quick cadence's
    RepeatedStep rule (global exits, RootStep rules of the Root, are checked apart)."""
    out: list[Problem] = []
    repeats = [r for r in step.rules if r.rule_type == graph.REPEAT_RULE]
    for rule in step.rules:
        if rule.rule_type != graph.REPEAT_RULE:
            out.append(
                Problem(step.name, f"a {step.type} step cannot have rules of type {rule.rule_type}")
            )
        elif cadence.type != "Quick":
            out.append(
                Problem(step.name, f"rule {rule.name}: RepeatedStep rules are for Quick cadences")
            )
        else:
            if rule.conditions:
                out.append(
                    Problem(step.name, f"rule {rule.name}: a RepeatedStep rule has no conditions")
                )
            nxt = rule.outcome_next_step_name
            if nxt and nxt != step.name:
                out.append(
                    Problem(
                        step.name, f"rule {rule.name}: a step can repeat only itself, not '{nxt}'"
                    )
                )
    if len(repeats) > 1:
        out.append(Problem(step.name, "has more than one RepeatedStep rule"))
    if repeats and not (step.goto_limit or 0) >= 1:
        out.append(
            Problem(step.name, "a repeated step needs a GoToStepIterationLimit of at least 1")
        )
    return out


#: Steps a Quick cadence's one step can be (an action, manual or automated).
QUICK_TYPES = graph.MANUAL_TYPES | {"AutoSendAnEmail"}


def _quick_problems(cadence: graph.Cadence) -> list[Problem]:
    """A Quick cadence is its Root and one action step (OR-AC: one step)."""
    if cadence.type != "Quick" or not cadence.roots:
        return []
    steps = [s for s in cadence.steps.values() if s.graph_state == graph.LIVE and s.type != "Root"]
    if len(steps) != 1:
        names = ", ".join(s.name for s in steps) or "none"
        return [Problem(cadence.root.name, f"a Quick cadence has exactly one step, not {names}")]
    if steps[0].type not in QUICK_TYPES:
        return [Problem(steps[0].name, f"a Quick cadence's step cannot be a {steps[0].type} step")]
    return []


def _track_problems(cadence: graph.Cadence) -> list[Problem]:
    """Each step is on one track: no branch outcome or GoToStepName leads into another one
    (a target changes track only by an entry rule)."""
    heads = [("the main track", cadence.root)] + [(f"track {t.name}", t) for t in cadence.tracks]
    seen: dict[str, str] = {}
    out = []
    for label, head in heads:
        todo, mine = [head], set()
        while todo:
            step = todo.pop()
            if step.name in mine:
                continue
            mine.add(step.name)
            for name in graph.edges(cadence, step):
                nxt = cadence.step(name)
                if nxt is not None and nxt.type != graph.SUBROOT:
                    todo.append(nxt)
        for name in sorted(mine):
            if name in seen:
                out.append(Problem(name, f"is on {seen[name]} and on {label}"))
            else:
                seen[name] = label
    return out


def _variant_problems(step: graph.Step) -> list[Problem]:
    if not step.variants:
        return []
    out = []
    if step.type not in graph.VARIANT_TYPES:
        out.append(Problem(step.name, f"a {step.type} step cannot have variants"))
    if len(step.variants) > MAX_VARIANTS:
        out.append(Problem(step.name, f"has {len(step.variants)} variants; at most {MAX_VARIANTS}"))
    total = sum(v.split_percentage for v in step.variants)
    if abs(total - 100.0) > 1e-6:
        out.append(Problem(step.name, f"variant SplitPercentage values total {total:g}, not 100"))
    return out


def _global_rule_problems(cadence: graph.Cadence) -> list[Problem]:
    out = []
    for rule in cadence.global_rules:
        if rule.global_event_type not in graph.GLOBAL_EVENTS:
            owner = cadence.by_id.get(rule.step_id)
            out.append(
                Problem(
                    owner.name if owner else rule.step_id,
                    f"global exit rule {rule.name}: GlobalEventType "
                    f"{rule.global_event_type!r} is not one of "
                    f"{', '.join(graph.GLOBAL_EVENTS)}",
                )
            )
    return out


def edges(cadence: graph.Cadence, step: graph.Step) -> list[str]:
    """Names of the steps a target can move to from ``step``."""
    return graph.edges(cadence, step)


def _unreachable(cadence: graph.Cadence) -> list[Problem]:
    seen = {cadence.root.name}
    todo = [cadence.root.name]
    while todo:
        step = cadence.step(todo.pop())
        if step is None:
            continue
        for name in edges(cadence, step):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return [
        Problem(s.name, "is unreachable from the Root step")
        for s in cadence.steps.values()
        if s.graph_state == graph.LIVE and s.name not in seen
    ]
