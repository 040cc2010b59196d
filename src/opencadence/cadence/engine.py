"""Pure transition logic of the cadence runtime: no SQL, no clock.

Every function takes the definition (``graph.Cadence``), the tracker's situation (its
ActionCadenceTracker row, its open ActionCadenceStepTracker row, its run-state bookkeeping row)
and ``now``, and returns a ``Decision``: the rows to insert, the guarded updates to apply, the
run-state changes (next wake-up) and the side effects (send or cancel an email).
``applying`` writes decisions through storage; nothing here can touch the database or read the
time.

New rows are named by ``Ref`` keys until they are written, so one decision can create a step
tracker and point the tracker's CurrentStepId at it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from opencadence.cadence import graph, schedule
from opencadence.cadence.decision import (
    MAX_CASCADE,
    CancelEmail,
    Context,
    Decision,
    Insert,
    Refused,
    RowId,
    RunOp,
    SendEmail,
    SendResult,
    Situation,
    Update,
)
from opencadence.metadata.sales_engagement import ACTIVE_TRACKER_STATES, OPEN_STATES, STEP, TRACKER


def pick_variant(step: graph.Step, step_tracker_id: str) -> graph.Variant | None:
    """The variant a step tracker uses: a stable hash of its Id into the split percentages."""
    if not step.variants:
        return None
    bucket = int(hashlib.sha1(step_tracker_id.encode()).hexdigest()[:8], 16) % 10000 / 100
    edge = 0.0
    for v in step.variants:
        edge += v.split_percentage
        if bucket < edge:
            return v
    return step.variants[-1]


class _Move:
    """The changes of one tracker within a decision."""

    def __init__(
        self,
        ctx: Context,
        d: Decision,
        cadence: graph.Cadence,
        tracker: Mapping[str, Any],
        tracker_id: RowId,
        now: datetime,
        user: str,
    ) -> None:
        self.ctx, self.d, self.cadence, self.now, self.user = ctx, d, cadence, now, user
        self.tracker = dict(tracker)
        self.tracker_id = tracker_id
        self.tracker_update: Update | None = None
        self.step: dict[str, Any] | None = None
        self.step_id: RowId | None = None
        self.step_insert: Insert | None = None
        self.step_update: Update | None = None
        self.run_fields: dict[str, Any] = {}
        self.visits: dict[str, int] = {}
        self.call_outcome: str | None = None
        self.signals: frozenset[str] = frozenset()
        self.finished = False
        #: why the target leaves when it reaches no next step (a branch outcome deleted)
        self.end_reason = "NoMoreSteps"
        self.paused_state: str | None = None

    # -- row plumbing -----------------------------------------------------------------------

    @property
    def tz(self) -> str | None:
        return self.ctx.time_zones.get(self.tracker["OwnerId"])

    def set_tracker(self, **changes: Any) -> None:
        real = {k: v for k, v in changes.items() if self.tracker.get(k) != v}
        if not real:
            return
        if self.tracker_update is None:
            expect = {"State": self.tracker["State"]}
            self.tracker_update = Update(
                TRACKER, self.tracker_id, {}, expect, self.tracker.get("LastModifiedById")
            )
            self.d.ops.append(self.tracker_update)
        self.tracker_update.changes.update(real)
        self.tracker.update(real)

    def adopt_step(self, row: Mapping[str, Any]) -> None:
        self.step, self.step_id = dict(row), row["Id"]

    def set_step(self, **changes: Any) -> None:
        assert self.step is not None and self.step_id is not None
        if self.step_insert is not None:
            self.step_insert.fields.update(changes)
            self.step.update(changes)
            return
        real = {k: v for k, v in changes.items() if self.step.get(k) != v}
        if not real:
            return
        if self.step_update is None:
            self.step_update = Update(
                STEP,
                self.step_id,
                {},
                {"State": self.step["State"]},
                self.step.get("LastModifiedById"),
            )
            self.d.ops.append(self.step_update)
        self.step_update.changes.update(real)
        self.step.update(real)

    def set_run(self, **fields: Any) -> None:
        self.run_fields.update(fields)

    @property
    def step_def(self) -> graph.Step:
        """The builder step of the open step tracker; a stand-in when the step was deleted
        through the API (no successor: the target's path ends there)."""
        assert self.step is not None
        found = self.cadence.by_id.get(self.step["ActionCadenceStepId"])
        if found is None:
            return graph.Step(
                id=self.step["ActionCadenceStepId"] or "",
                name="",
                graph_state="Deleted",
                type=self.step["StepType"],
                title=None,
                parent_name=None,
            )
        return found

    # -- steps ------------------------------------------------------------------------------

    def new_step(self, step: graph.Step, state: str, **fields: Any) -> None:
        """Insert the step tracker of ``step`` and make it the tracker's current step."""
        iteration = self.visits.get(step.name, 0) + 1
        self.visits[step.name] = iteration
        ref = self.d.new_ref()
        row = {
            "ActionCadenceId": self.cadence.id,
            "ActionCadenceName": self.cadence.name,
            "ActionCadenceStepId": step.id,
            "ActionCadenceTrackerId": self.tracker_id,
            "StepTitle": step.title,
            "StepType": step.type,
            "TargetId": self.tracker["TargetId"],
            "GoToStepIterationCount": iteration,
            "State": state,
            "WasEverPaused": False,
            "ScheduledStartDateTime": self.now,
            **fields,
        }
        self.step_insert = Insert(ref, STEP, row)
        self.step_update = None
        self.d.ops.append(self.step_insert)
        self.step, self.step_id = dict(row), ref
        if state == "Completed":
            self.set_tracker(LastCompletedStepId=ref)
        self.set_tracker(CurrentStepId=ref)

    def close_step(
        self, state: str, reason: str | None, *, action_by: str | None = None, by: str | None = None
    ) -> None:
        """End the open step: Completed with a reason, or Cancelled."""
        if self.step is None or self.step["State"] not in OPEN_STATES:
            return
        waiting = self.step["State"]
        if waiting == "Paused":
            waiting = self.paused_state or ""
        if self.step_def.type == "AutoSendAnEmail" and waiting in ("Queued", "Scheduled"):
            if isinstance(self.step_id, str):
                self.d.effects.append(CancelEmail(self.step_id))
        changes: dict[str, Any] = {"State": state}
        if state == "Completed":
            changes.update(CompletionReason=reason, CompletionDate=self.now)
            if action_by is not None:
                changes.update(ActionTakenDateTime=self.now, CompletedById=action_by)
            elif by is not None:
                changes["CompletedById"] = by
        self.set_step(**changes)
        if state == "Completed":
            self.set_tracker(LastCompletedStepId=self.step_id)
        if self.step_def.type == "Wait":
            self.set_tracker(ScheduledResumeDateTime=None)
        self.set_run(due_at=None)

    def finish(self, reason: str | None, **extra: Any) -> None:
        """Complete the tracker (``State`` in ``extra``: end it so, e.g. Error without a
        reason); its run-state row goes."""
        self.set_tracker(
            **{
                "State": "Complete",
                "CompletionReason": reason,
                "IsTrackerActive": False,
                "CurrentStepId": None,
                "ScheduledResumeDateTime": None,
                **extra,
            }
        )
        self.d.run.append(RunOp("delete", self.tracker_id))
        self.run_fields = {}
        self.finished = True

    def enter(self, step: graph.Step | None, not_before: datetime | None = None) -> None:
        """Move the target to ``step`` (None: end of graph), cascading through instant steps."""
        for _ in range(MAX_CASCADE):
            if step is None:
                self.finish(self.end_reason)
                return
            nxt = self._enter_one(step, not_before)
            if nxt is None:
                return
            step, not_before = nxt
        # a loop of instant steps (branches routing back to each other on the same facts): the
        # run cannot complete, so the tracker ends in Error, saying why
        self.finish(None, State="Error", ErrorMessage="Stopped: too many instant steps in a row")

    def _enter_one(
        self, step: graph.Step, not_before: datetime | None
    ) -> tuple[graph.Step | None, datetime | None] | None:
        """Create ``step``'s tracker; return the next step when ``step`` is instantaneous."""
        if step.type == graph.SUBROOT:  # a track's head: passed at once, like the Root
            self.new_step(
                step,
                "Completed",
                CompletionReason="AutomaticallyCompleted",
                CompletionDate=self.now,
            )
            return self.cadence.next_of(step), not_before
        if step.type in graph.MANUAL_TYPES or step.type == "AutoSendAnEmail":
            t = schedule.timing(step, self.now, self.tz, not_before)
            later = t.start > self.now
            if step.type == "AutoSendAnEmail":
                state = "Scheduled" if later else "Queued"
                self.new_step(step, state, ScheduledStartDateTime=t.start)
                self.set_run(due_at=t.start if later else self.now)
            else:
                self.new_step(
                    step,
                    "Scheduled" if later else "Active",
                    ScheduledStartDateTime=t.start,
                    DueDateTime=t.due,
                )
                self.set_run(due_at=t.start if later else None)
            return None
        if not_before is not None and not_before > self.now:
            self.new_step(step, "Scheduled", ScheduledStartDateTime=not_before)
            self.set_run(due_at=not_before)
            return None
        self.new_step(step, "Active")
        return self.begin(step)

    def begin(self, step: graph.Step) -> tuple[graph.Step | None, datetime | None] | None:
        """Start an automatic step that has become current (now, or at its scheduled start)."""
        self.set_step(State="Active", ScheduledStartDateTime=self.now)
        if step.type == "Wait":
            resume = self.now + timedelta(seconds=step.wait_seconds or 0)
            self.set_tracker(ScheduledResumeDateTime=resume)
            self.set_run(due_at=resume)
            return None
        if step.type == "ListenerBranch":
            self.signals = frozenset()
            self.set_run(due_at=self.now + timedelta(seconds=step.wait_seconds or 0), signals="")
            return None
        if step.type == "DaisyChain":
            self.close_step("Completed", "AutomaticallyCompleted")
            self.chain(step)
            return None
        if step.type == "Branch":
            self.close_step("Completed", "AutomaticallyCompleted")
            return self.route(step, frozenset({self.call_outcome or ""})), None
        self.set_run(due_at=None)  # a manual step restarted from Scheduled
        return None

    def route(self, step: graph.Step, facts: frozenset[str]) -> graph.Step | None:
        """The branch ``step``'s outcome for ``facts``. An outcome deleted after activation
        (Retired: no GoToStepName can lead past a branch's outcome) ends the target's run
        with AutomaticallyExitedInvalidParentStep: the branch it leaves from is invalid."""
        name = next(
            (rule.outcome_next_step_name for rule in step.rules if rule.holds(facts)),
            step.branch_default,
        )
        found = self.cadence.step(name)
        if found is None and name in self.cadence.steps:
            self.end_reason = "AutomaticallyExitedInvalidParentStep"
        return found

    def advance(self, done: graph.Step) -> None:
        """After ``done`` completed: follow a repeat (a GoTo loop, a quick cadence's
        RepeatedStep rule), else the next step."""
        repeat = self.cadence.repeat_of(done)
        if repeat is not None:
            target, limit, interval = repeat
            if self.visits.get(target.name, 0) <= limit:
                wait = timedelta(minutes=interval)
                self.enter(target, self.now + wait if wait else None)
                return
        self.enter(self.cadence.next_of(done))

    @property
    def track(self) -> str:
        """The track of the target's current (or just completed) step: "" for the main one."""
        if self.step is None:
            return ""
        return self.cadence.track_of.get(self.step_def.name, "")

    def entry_track(self, facts: frozenset[str]) -> graph.Step | None:
        """The head of another track whose entry rule ``facts`` satisfy (tracks by name)."""
        if self.tracker["State"] != "Running":
            return None  # a paused target stays where it is (docs/runtime-decisions.md)
        current = self.track
        for head in self.cadence.tracks:
            if head.name != current and any(r.holds(facts) for r in head.entry_rules):
                return head
        return None

    def switch_track(self, head: graph.Step) -> None:
        """Cadence Builder 2.0: cancel the open step and start the new track, whose first step
        starts at the later of the cancelled step's start and its own."""
        cancelled_start = None
        if self.step is not None and self.step["State"] in OPEN_STATES:
            cancelled_start = self.step.get("ScheduledStartDateTime")
            self.close_step("Cancelled", None)
        self.set_run(signals="")
        self.enter(head, cancelled_start)

    def chain(self, step: graph.Step) -> None:
        """DaisyChain: complete here and enrol the target in the chained cadence."""
        iteration = self.tracker.get("DaisyChainIteration") or 1
        chained = self.ctx.cadences.get(step.chained_cadence_id or "")
        if chained is None or chained.state != "Active":
            self.finish(
                "NoMoreSteps", ErrorMessage="Daisy chain stopped: the chained cadence is not active"
            )
            return
        if iteration >= self.ctx.max_daisy_chain:
            self.finish(
                "NoMoreSteps",
                ErrorMessage=f"Daisy chain stopped: at most "
                f"{self.ctx.max_daisy_chain} linked cadences",
            )
            return
        self.finish("DaisyChained")
        enrol_into(
            self.ctx,
            self.d,
            chained,
            self.tracker["TargetId"],
            self.tracker["OwnerId"],
            self.now,
            self.user,
            daisy_iteration=iteration + 1,
            related_to=self.tracker.get("RelatedToId"),
        )

    def exit_global(self, rule: graph.Rule) -> None:
        self.close_step("Completed", "AutomaticallyExited")
        self.finish("AutomaticallyExited", ExitGlobalRuleId=rule.id)

    def flush_run(self) -> None:
        if self.run_fields and not self.finished:
            self.d.run.append(RunOp("update", self.tracker_id, dict(self.run_fields)))


def _move(
    ctx: Context, d: Decision, cadence: graph.Cadence, sit: Situation, now: datetime, user: str
) -> _Move:
    mv = _Move(ctx, d, cadence, sit.tracker, sit.tracker["Id"], now, user)
    if sit.step is not None:
        mv.adopt_step(sit.step)
    mv.visits = dict(sit.visits)
    mv.call_outcome = sit.run.call_outcome
    mv.signals = sit.run.signals
    mv.paused_state = sit.run.paused_state
    return mv


def enrol_into(
    ctx: Context,
    d: Decision,
    cadence: graph.Cadence,
    target_id: str,
    owner_id: str,
    now: datetime,
    user: str,
    *,
    start_step: graph.Step | None = None,
    daisy_iteration: int = 1,
    related_to: str | None = None,
) -> None:
    """Add an enrolment to ``d``: tracker (Initializing → Running), Root, first step."""
    ref = d.new_ref()
    fields: dict[str, Any] = {
        "ActionCadenceId": cadence.id,
        "TargetId": target_id,
        "OwnerId": owner_id,
        "State": "Initializing",
        "IsTrackerActive": True,
        "DaisyChainIteration": daisy_iteration,
        "RelatedToId": related_to,
    }
    d.ops.append(Insert(ref, TRACKER, fields))
    d.run.append(RunOp("insert", ref, {"target_id": target_id, "cadence_id": cadence.id}))
    mv = _Move(ctx, d, cadence, {"Id": ref, **fields}, ref, now, user)
    mv.tracker_update = Update(TRACKER, ref, {}, {"State": "Initializing"})
    d.ops.append(mv.tracker_update)
    root = cadence.root
    mv.new_step(root, "Completed", CompletionReason="AutomaticallyCompleted", CompletionDate=now)
    mv.set_tracker(State="Running")
    mv.enter(start_step or cadence.next_of(root))
    mv.flush_run()


def enrol(
    ctx: Context,
    cadence: graph.Cadence,
    target_id: str,
    owner_id: str,
    now: datetime,
    user: str,
    *,
    start_step_name: str | None = None,
    related_to: str | None = None,
) -> Decision:
    """assignTargetToSalesCadence for one target (the caller checks the target)."""
    if cadence.state != "Active":
        raise Refused(f"The cadence {cadence.name} is not active.", "INVALID_OPERATION")
    start = None
    if start_step_name:
        start = cadence.step(start_step_name) or _step_by_id(cadence, start_step_name)
        if start is None or start.type == "Root":
            raise Refused(f"No step {start_step_name} in cadence {cadence.name}.", "INVALID_INPUT")
    d = Decision()
    enrol_into(
        ctx, d, cadence, target_id, owner_id, now, user, start_step=start, related_to=related_to
    )
    return d


def _step_by_id(cadence: graph.Cadence, step_id: str) -> graph.Step | None:
    found = cadence.by_id.get(step_id)
    return found if found is not None and found.graph_state == graph.LIVE else None


def _running(sit: Situation) -> None:
    if sit.tracker["State"] not in ("Running", "Paused"):
        raise Refused(f"The cadence tracker {sit.tracker['Id']} is not active.")


# -- timers ---------------------------------------------------------------------------------


def wake(
    ctx: Context, sit: Situation | None, tracker_id: str, now: datetime, user: str
) -> Decision:
    """A run-state row is due (the worker's entry point): ``on_due`` for an active tracker.

    A row without an active tracker (deleted through the API) is dropped; a wake-up the engine
    refuses clears the timer and says why in ``warning``.
    """
    if sit is None or sit.tracker["State"] not in ACTIVE_TRACKER_STATES:
        return Decision(run=[RunOp("delete", tracker_id)])
    try:
        return on_due(ctx, ctx.cadences[sit.tracker["ActionCadenceId"]], sit, now, user)
    except Refused as exc:
        return Decision(run=[RunOp("update", tracker_id, {"due_at": None})], warning=exc.message)


def on_due(
    ctx: Context, cadence: graph.Cadence, sit: Situation, now: datetime, user: str
) -> Decision:
    """The tracker's wake-up time has come (``send`` set: call ``on_sent`` with the result)."""
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    if sit.tracker["State"] == "Paused":
        _resume(mv, sit)
    elif mv.step is None or mv.step["State"] not in OPEN_STATES:
        mv.set_run(due_at=None)
    elif mv.step_def.graph_state == "Deleted":
        mv.close_step("Cancelled", None)
        mv.finish("AutomaticallyExitedDeletedStep")
    else:
        _due_step(mv, sit)
    mv.flush_run()
    if d.send is None:
        _move_timer(d, sit.tracker["Id"])
    return d


def _move_timer(d: Decision, tracker_id: str) -> None:
    """Every wake-up must move the timer, or it would fire again at once."""
    if not any(op.kind == "delete" or "due_at" in op.fields for op in d.run):
        d.run.append(RunOp("update", tracker_id, {"due_at": None}))


def _due_step(mv: _Move, sit: Situation) -> None:
    assert mv.step is not None
    step, state = mv.step_def, mv.step["State"]
    if step.type == "AutoSendAnEmail" and state in ("Queued", "Scheduled"):
        variant = pick_variant(step, str(mv.step_id))
        template = variant.template_id if variant else step.template_id
        mv.d.send = SendEmail(
            mv.step_id or "", template, mv.tracker["OwnerId"], mv.tracker["TargetId"]
        )
    elif state == "Scheduled":
        nxt = mv.begin(step) if step.type not in graph.MANUAL_TYPES else None
        if step.type in graph.MANUAL_TYPES:
            mv.set_step(State="Active")
            mv.set_run(due_at=None)
        elif nxt is not None:
            mv.enter(*nxt)
    elif step.type == "Wait" and state == "Active":
        mv.close_step("Completed", "AutomaticallyCompleted")
        mv.advance(step)
    elif step.type == "ListenerBranch" and state == "Active":
        mv.close_step("Completed", "AutomaticallyCompleted")
        mv.enter(mv.route(step, sit.run.signals))
    else:
        mv.set_run(due_at=None)


def on_sent(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    result: SendResult,
) -> Decision:
    """An automated email was sent (Completed), failed (Error) or must be retried (Queued,
    ErrorCode saying why)."""
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    if result.sent:
        mv.close_step("Completed", "AutomaticallyCompleted", action_by=sit.tracker["OwnerId"])
        mv.advance(mv.step_def)
    elif result.retry_at is not None:
        mv.set_step(State="Queued")
        mv.set_run(due_at=result.retry_at)
    else:
        mv.set_step(State="Error", ErrorCode=result.error_code or "UNKNOWN")
        mv.set_run(due_at=None)
    mv.flush_run()
    _note_reason(d, sit, result)
    _move_timer(d, sit.tracker["Id"])
    return d


def _note_reason(d: Decision, sit: Situation, result: SendResult) -> None:
    """A step kept Queued says why in ErrorCode (a daily cap, a transient failure); a sent
    step clears a reason left from its wait."""
    if sit.step is None or not (result.sent or result.retry_at is not None):
        return
    code = None if result.sent else result.error_code
    if sit.step.get("ErrorCode") == code:
        return
    for op in d.ops:
        if isinstance(op, Update) and op.object == STEP and op.id == sit.step["Id"]:
            op.changes["ErrorCode"] = code
            return
    d.ops.append(
        Update(
            STEP,
            sit.step["Id"],
            {"ErrorCode": code},
            {"State": sit.step["State"]},
            sit.step.get("LastModifiedById"),
        )
    )


# -- rep work and Sales Engagement actions ---------------------------------------------------


def _open_step(mv: _Move, sit: Situation, step_tracker_id: str) -> graph.Step:
    if mv.step is None or mv.step["Id"] != step_tracker_id or mv.step["State"] not in OPEN_STATES:
        raise Refused(f"The step tracker {step_tracker_id} is not the target's open step.")
    if sit.tracker["State"] != "Running" or mv.step["State"] == "Paused":
        raise Refused(f"The cadence tracker {sit.tracker['Id']} is paused.")
    return mv.step_def


def on_step_event(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    step_tracker_id: str,
    event: str,
) -> Decision:
    """A rep's event on the open step: Start, ActionTaken, ManualComplete or Skip."""
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    step = _open_step(mv, sit, step_tracker_id)
    if event == "Start":
        if step.type not in graph.MANUAL_TYPES or mv.step is None or mv.step["State"] != "Active":
            raise Refused(f"The step tracker {step_tracker_id} cannot be started.")
        mv.set_step(State="InProgress")
        return d
    if event == "ActionTaken":
        if step.type not in graph.MANUAL_TYPES and not (
            step.type == "AutoSendAnEmail" and mv.step and mv.step["State"] == "Error"
        ):
            raise Refused(f"A {step.type} step has no action for a rep to take.")
        mv.close_step("Completed", "AutomaticallyCompleted", action_by=user)
    elif event in ("ManualComplete", "Skip"):
        reason = "ManuallyCompleted" if event == "ManualComplete" else "ManuallySkipped"
        mv.close_step("Completed", reason, by=user)
    else:
        raise Refused(f"Unknown event type {event}; use Skip or ManualComplete.", "INVALID_INPUT")
    mv.advance(step)
    mv.flush_run()
    return d


def change_due_date(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    step_tracker_id: str,
    due: datetime,
) -> Decision:
    """The assignee moves the DueDateTime of the open manual step, unless the step's
    IsScheduledDueDateLocked forbids it."""
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    step = _open_step(mv, sit, step_tracker_id)
    if step.type not in graph.MANUAL_TYPES:
        raise Refused(f"A {step.type} step has no due date.")
    if step.due_locked:
        raise Refused(f"The due date of step {step.name} is locked (IsScheduledDueDateLocked).")
    mv.set_step(DueDateTime=schedule.ms(due))
    return d


def on_call(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    outcome: str | None,
) -> Decision:
    """A call to the target was logged: complete an open MakeACall step, record the outcome,
    then apply a global exit rule on that outcome."""
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    mv.call_outcome = outcome
    mv.set_run(call_outcome=outcome)
    step = mv.step_def if mv.step is not None and mv.step["State"] in OPEN_STATES else None
    completed = False
    if (
        step is not None
        and step.type == "MakeACall"
        and sit.tracker["State"] == "Running"
        and mv.step is not None
        and mv.step["State"] != "Paused"
    ):
        mv.close_step("Completed", "AutomaticallyCompleted", action_by=user)
        completed = True
    rule = _global_rule(cadence, outcome)
    head = mv.entry_track(frozenset({outcome})) if rule is None and outcome else None
    if rule is not None:
        mv.exit_global(rule)
    elif head is not None:
        mv.switch_track(head)
    elif completed and step is not None:
        mv.advance(step)
    mv.flush_run()
    return d


def _global_rule(cadence: graph.Cadence, event: str | None) -> graph.Rule | None:
    for rule in cadence.global_rules:
        if event is not None and rule.global_event_type == event:
            return rule
    return None


def on_engagement(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    event: str,
    on_listened_email: bool = True,
    of_this_tracker: bool = True,
) -> Decision:
    """Email engagement (EmailOpen, EmailLinkClick, EmailReply, EmailHardBounce,
    EmailSoftBounce): global exit rules first, then track entry rules (``of_this_tracker``:
    the email was sent by this enrolment), then the listener branch."""
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    rule = _global_rule(cadence, event)
    if rule is not None:
        mv.exit_global(rule)
        return d
    head = mv.entry_track(frozenset({event})) if of_this_tracker else None
    if head is not None:
        mv.switch_track(head)
        mv.flush_run()
        return d
    step = mv.step_def if mv.step is not None else None
    if (
        step is None
        or step.type != "ListenerBranch"
        or mv.step is None
        or mv.step["State"] not in ("Active", "Paused")
        or event not in graph.EMAIL_ENGAGEMENT
        or not on_listened_email
    ):
        return d
    signals = sit.run.signals | {event}
    mv.set_run(signals=",".join(sorted(signals)))
    if step.immediate_wakeup and mv.step["State"] == "Active":
        _wake_listener(mv, step, signals)
    mv.flush_run()
    return d


def _wake_listener(mv: _Move, step: graph.Step, signals: frozenset[str]) -> None:
    """An immediate listener routes at the first event a rule matches."""
    if any(rule.holds(signals) for rule in step.rules):
        mv.close_step("Completed", "AutomaticallyCompleted")
        mv.enter(mv.route(step, signals))


def remove(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    reason: str = "ManuallyRemoved",
    *,
    processing: bool = False,
    **attributes: Any,
) -> Decision:
    """removeTargetFromSalesCadence (and exits for deleted steps): cancel the open step.
    ``processing``: the system moves the tracker (a lead conversion), so it is first
    ``Processing`` (its own UPDATE change event), then Complete, in the one transaction."""
    _running(sit)
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    if processing:
        mv.set_tracker(State="Processing")
        mv.tracker_update = None  # the completion: a second update, expecting Processing
    mv.close_step("Cancelled", None)
    mv.finish(reason, **{k: v for k, v in attributes.items() if v is not None})
    return d


def pause(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    resume_at: datetime | None,
) -> Decision:
    """pauseSalesCadenceTracker: tracker and open step Paused; timers held."""
    if sit.tracker["State"] != "Running":
        raise Refused(f"The cadence tracker {sit.tracker['Id']} is not running.")
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    mv.set_tracker(State="Paused", ScheduledResumeDateTime=resume_at)
    state = mv.step["State"] if mv.step is not None else None
    if mv.step is not None and state in OPEN_STATES:
        mv.set_step(State="Paused", WasEverPaused=True)
    mv.set_run(paused_at=now, paused_state=state, held_due_at=sit.run.due_at, due_at=resume_at)
    mv.flush_run()
    return d


def resume(
    ctx: Context, cadence: graph.Cadence, sit: Situation, now: datetime, user: str
) -> Decision:
    """resumeSalesCadenceTracker: back to Running; due dates and timers shift by the pause."""
    if sit.tracker["State"] != "Paused":
        raise Refused(f"The cadence tracker {sit.tracker['Id']} is not paused.")
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    _resume(mv, sit)
    mv.flush_run()
    return d


def _resume(mv: _Move, sit: Situation) -> None:
    run = sit.run
    shift = mv.now - (run.paused_at or mv.now)
    held = run.held_due_at + shift if run.held_due_at is not None else None
    mv.set_tracker(State="Running", ScheduledResumeDateTime=None)
    mv.set_run(paused_at=None, paused_state=None, held_due_at=None, due_at=held)
    if mv.step is None or mv.step["State"] != "Paused":
        return
    state = run.paused_state or "Active"
    changes: dict[str, Any] = {"State": state}
    if mv.step.get("DueDateTime") is not None:
        changes["DueDateTime"] = schedule.ms(mv.step["DueDateTime"] + shift)
    if state in ("Scheduled", "Queued") and mv.step.get("ScheduledStartDateTime") is not None:
        changes["ScheduledStartDateTime"] = schedule.ms(mv.step["ScheduledStartDateTime"] + shift)
    mv.set_step(**changes)
    step = mv.step_def
    if step.type == "Wait" and held is not None:
        mv.set_tracker(ScheduledResumeDateTime=held)
    if step.type == "ListenerBranch" and step.immediate_wakeup and state == "Active":
        _wake_listener(mv, step, run.signals)


def change_owner(
    ctx: Context, cadence: graph.Cadence, sit: Situation, now: datetime, user: str, owner_id: str
) -> Decision:
    """changeSalesCadenceTargetAssignee: the tracker's OwnerId."""
    _running(sit)
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    mv.set_tracker(OwnerId=owner_id)
    return d


def modify(
    ctx: Context,
    cadence: graph.Cadence,
    sit: Situation,
    now: datetime,
    user: str,
    **attributes: Any,
) -> Decision:
    """modifyCadenceTrackerAttributes: disposition and related opportunity of a tracker."""
    d = Decision()
    mv = _move(ctx, d, cadence, sit, now, user)
    mv.set_tracker(**attributes)
    return d


def retired(
    ctx: Context, cadence: graph.Cadence, sit: Situation, now: datetime, user: str
) -> Decision:
    """The target's current step was removed from the active cadence: the target exits."""
    return remove(ctx, cadence, sit, now, user, reason="AutomaticallyExitedDeletedStep")
