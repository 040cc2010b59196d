"""The runtime's Python API beyond the invocable actions: activation, editing an active
cadence, rep work on a step, logged calls and email engagement.

The API layer calls these around record writes Salesforce performs behaviour on:
``set_state`` around updates of ActionCadence.State, ``delete_step`` for deletes of
ActionCadenceStep, ``delete_tracker`` for deletes of ActionCadenceTracker, ``on_task_created``
after a Task insert (a logged call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from opencadence import errors, ids
from opencadence.cadence import applying, decision, engine, graph, loading, validate
from opencadence.cadence.settings import Config
from opencadence.metadata.sales_engagement import (
    CALL_TEMPLATE_COUNTERS,
    PUBLIC_FOLDER_ACCESS,
    STEP,
    TRACKER,
)
from opencadence.storage import mail, metrics, records, visibility
from opencadence.storage.runs import RunStore

CALL_TEMPLATE = "CallTemplate"

Decide = Callable[[decision.Context, graph.Cadence, decision.Situation], decision.Decision]


def transition(
    store: records.Store,
    tracker_id: str,
    user_id: str,
    decide: Decide,
    config: Config | None = None,
    tx: records.Tx | None = None,
) -> decision.Decision:
    """Lock one tracker, decide its transition and apply it (in ``tx`` or a new transaction)."""
    runs = RunStore(store)
    config = config or Config()
    if tx is None:
        with store.transaction(user_id) as new_tx:
            return _transition(runs, config, new_tx, tracker_id, decide)
    return _transition(runs, config, tx, tracker_id, decide)


def _transition(
    runs: RunStore, config: Config, tx: records.Tx, tracker_id: str, decide: Decide
) -> decision.Decision:
    runs.lock(tx.conn, [tracker_id])
    loaded = loading.Loaded(runs, tx.conn, config)
    sit = loading.situations(runs, tx.conn, loaded, [tracker_id]).get(tracker_id)
    if sit is None:
        raise errors.NotFound(f"No cadence tracker with Id {tracker_id}")
    cadence = loaded.cadences[sit.tracker["ActionCadenceId"]]
    d = decide(loaded.context(), cadence, sit)
    applying.apply(tx, runs, [d])
    outbox = mail.outbox(tx.store.meta)
    for effect in d.effects:  # an email the cancelled step had queued (a daily cap) stays unsent
        if isinstance(effect, decision.CancelEmail):
            outbox.cancel(tx.conn, effect.step_tracker_id)
    return d


def now_of(store: records.Store) -> datetime:
    return store.clock.now().replace(tzinfo=None)


# -- activation -------------------------------------------------------------------------------


def activate(
    store: records.Store,
    cadence_id: str,
    user_id: str = records.AUTOMATED_USER,
    *,
    tx: records.Tx | None = None,
) -> graph.Cadence:
    """Validate the graph; set State Active (+ActivatedDate, TotalSteps) or Error with an
    ErrorMessage naming the step, then raise CadenceInvalid.

    In a caller's ``tx`` (an import, all or nothing) a problem raises CadenceInvalid at once
    and records nothing: the caller's transaction rolls back, the cadence with it."""
    runs = RunStore(store)
    if tx is not None:
        problem = _check_and_activate(runs, tx, cadence_id)
        if problem is not None:
            raise validate.CadenceInvalid(str(problem))
        return loading.load_definition(runs, tx.conn, cadence_id)
    with store.transaction(user_id) as new_tx:
        problem = _check_and_activate(runs, new_tx, cadence_id)
        if problem is not None:
            new_tx.update(
                "ActionCadence",
                cadence_id,
                {"State": "Error", "ErrorMessage": str(problem)[:255]},
                system=True,
            )
    if problem is not None:
        raise validate.CadenceInvalid(str(problem))
    with store.reading() as conn:
        return loading.load_definition(runs, conn, cadence_id)


def _check_and_activate(runs: RunStore, tx: records.Tx, cadence_id: str) -> validate.Problem | None:
    """Activate the cadence if its graph is valid; otherwise its first problem."""
    cadence = loading.load_definition(runs, tx.conn, cadence_id)
    if cadence.state == "Deleting":
        raise decision.Refused(f"The cadence {cadence.name} is being deleted.")
    found = validate.problems(cadence, _template_states(tx, cadence))
    if found:
        return found[0]
    _activate(runs, tx, cadence)
    return None


def _template_states(tx: records.Tx, cadence: graph.Cadence) -> dict[str, str | None]:
    """What activation needs to know of each template the cadence's automated emails name:
    None when it can be sent (an active EmailTemplate, not deleted, in no folder, the org's
    folder, a user's own folder or a public one), else why not. Ids naming no EmailTemplate
    are left out. Whether a user's own folder is the assignee's is known only at send time."""
    reg = tx.store.registry
    out: dict[str, str | None] = {}
    for tid in validate.auto_email_templates(cadence):
        if not reg.is_id_of(tid, "EmailTemplate"):
            continue
        template = tx.get("EmailTemplate", tid, include_deleted=True)
        if template is not None:
            out[tid] = _template_problem(tx, template)
    return out


def _template_problem(tx: records.Tx, template: dict[str, Any]) -> str | None:
    reg = tx.store.registry
    if template["IsDeleted"]:
        return "the email template is deleted"
    if not template.get("IsActive"):
        return "the email template is not active"
    folder_id = template.get("FolderId")
    if not folder_id or reg.is_id_of(folder_id, "User") or reg.is_id_of(folder_id, "Organization"):
        return None
    folder = tx.get("Folder", folder_id)
    if folder is None or folder.get("AccessType") not in PUBLIC_FOLDER_ACCESS:
        return "the email template is in a folder that is not public"
    return None


def _activate(runs: RunStore, tx: records.Tx, cadence: graph.Cadence) -> None:
    for step in cadence.detached:
        if step.graph_state == "Orphaned":  # removed before activation: deleted now
            tx.delete("ActionCadenceStep", step.id, system=True)
    _fill_graph_fields(runs, tx, cadence)
    tx.update(
        "ActionCadence",
        cadence.id,
        {
            "State": "Active",
            "ErrorMessage": None,
            "TotalSteps": cadence.total_steps(),
            "ActivatedDate": tx.store.clock.now().date(),
        },
        system=True,
    )
    metrics.zero_counters(tx.conn, tx.store.meta, tx.store.registry, cadence.id)


def _fill_graph_fields(runs: RunStore, tx: records.Tx, cadence: graph.Cadence) -> None:
    """RootStepId and TypeDetail of every step (a step added after activation gets them too)."""
    root = cadence.root
    for sid, root_id, detail, typ in runs.step_graph_fields(tx.conn, cadence.id):
        if root_id != root.id or detail is None:
            tx.update(
                "ActionCadenceStep",
                sid,
                {"RootStepId": root.id, "TypeDetail": detail or typ},
                system=True,
            )


def set_state(
    store: records.Store, cadence_id: str, state: str, user_id: str = records.AUTOMATED_USER
) -> None:
    """An update of ActionCadence.State: Active activates (validating); others are set as
    they are (Inactive: no new targets, running targets continue)."""
    if state == "Active":
        activate(store, cadence_id, user_id)
        return
    with store.transaction(user_id) as tx:
        tx.update("ActionCadence", cadence_id, {"State": state}, system=True)


# -- editing an active cadence ------------------------------------------------------------------

#: The builder objects: a write of one of them edits its cadence's graph.
BUILDER_OBJECTS = frozenset(
    {
        "ActionCadence",
        "ActionCadenceStep",
        "ActionCadenceRule",
        "ActionCadenceRuleCondition",
        "ActionCadenceStepVariant",
    }
)
#: Cadence states whose edits are checked as activation checks them (targets may be running).
CHECKED_STATES = frozenset({"Active", "Inactive"})
#: Where each builder object's parent is: (reference field, parent object).
_PARENT = {
    "ActionCadenceStep": ("ActionCadenceId", "ActionCadence"),
    "ActionCadenceRule": ("ActionCadenceStepId", "ActionCadenceStep"),
    "ActionCadenceRuleCondition": ("ActionCadenceRuleId", "ActionCadenceRule"),
    "ActionCadenceStepVariant": ("ActionCadenceStepId", "ActionCadenceStep"),
}


def builder_edit(
    tx: records.Tx,
    object_name: str,
    record_id: str,
    changes: Mapping[str, Any] | None = None,
) -> None:
    """A write of a builder record in ``tx`` (``Org`` calls it after a create and before an
    update or a delete). When its cadence is Active or Inactive, the graph as ``tx`` leaves it
    is checked just before ``tx`` commits, as activation checks it: a problem raises
    CadenceInvalid (FIELD_CUSTOM_VALIDATION_EXCEPTION, naming the step) and rolls the whole
    transaction back, so a failing edit changes nothing. One check per cadence per
    transaction, so the rows of one edit (a step and its rules, an insertion that re-points the
    next step) are judged together. A step's Type cannot change after activation (its step
    trackers carry it). docs/runtime-decisions.md, "Editing an active cadence"."""
    if object_name not in BUILDER_OBJECTS:
        return
    cadence_id = _cadence_of(tx, object_name, record_id)
    head = tx.get("ActionCadence", cadence_id) if cadence_id else None
    if cadence_id is None or head is None or head["State"] not in CHECKED_STATES:
        return
    if object_name == "ActionCadenceStep" and changes and "Type" in changes:
        current = tx.get("ActionCadenceStep", record_id) or {}
        if current.get("Type") != changes["Type"]:
            raise validate.CadenceInvalid(
                f"Step {current.get('StepName')}: the Type of a step cannot change after "
                "activation (delete the step and add another)"
            )
    tx.before_commit.setdefault(
        f"cadence-edit:{cadence_id}", lambda now_tx: _check_edit(now_tx, cadence_id)
    )


def _cadence_of(tx: records.Tx, object_name: str, record_id: str) -> str | None:
    """The ActionCadence a builder record belongs to (following its parents)."""
    while object_name != "ActionCadence":
        row = tx.get(object_name, record_id, include_deleted=True)
        if row is None:
            return None
        field, object_name = _PARENT[object_name]
        record_id = row[field]
        if record_id is None:
            return None
    return record_id


def _check_edit(tx: records.Tx, cadence_id: str) -> None:
    """The check ``builder_edit`` schedules: the edited graph, then what activation fills."""
    runs = RunStore(tx.store)
    cadence = loading.load_definition(runs, tx.conn, cadence_id)
    if cadence.state not in CHECKED_STATES:
        return
    found = validate.problems(cadence, _template_states(tx, cadence))
    if found:
        raise validate.CadenceInvalid(str(found[0]))
    _fill_graph_fields(runs, tx, cadence)
    tx.update(
        "ActionCadence",
        cadence_id,
        {"LastEditedDateTime": tx.store.clock.now(), "TotalSteps": cadence.total_steps()},
        system=True,
    )


def change_due_date(
    store: records.Store,
    step_tracker_id: str,
    due: datetime,
    user_id: str,
    config: Config | None = None,
) -> decision.Decision:
    """The assignee moves the due date of an open manual step; refused (INVALID_OPERATION)
    when the step's IsScheduledDueDateLocked is set."""
    sid = ids.parse(step_tracker_id, field="stepTrackerId")
    tracker_id = _tracker_of_step(store, sid)
    return transition(
        store,
        tracker_id,
        user_id,
        lambda c, cad, s: engine.change_due_date(c, cad, s, now_of(store), user_id, sid, due),
        config,
    )


def delete_step(
    store: records.Store,
    step_id: str,
    user_id: str = records.AUTOMATED_USER,
    config: Config | None = None,
) -> int:
    """Remove a step. Never-activated cadence: the step becomes Orphaned (ParentStepName
    nulled; deleted at activation). Otherwise it becomes Retired, its parent's GoToStepName
    points past it, and targets on it exit with AutomaticallyExitedDeletedStep. Returns how
    many targets exited."""
    runs = RunStore(store)
    config = config or Config()
    with store.transaction(user_id) as tx:
        step_row = tx.get("ActionCadenceStep", step_id)
        if step_row is None:
            raise errors.NotFound(f"No cadence step with Id {step_id}")
        cad_row = tx.get("ActionCadence", step_row["ActionCadenceId"])
        assert cad_row is not None
        if cad_row["ActivatedDate"] is None:
            tx.update(
                "ActionCadenceStep",
                step_id,
                {"GraphState": "Orphaned", "ParentStepName": None},
                system=True,
            )
            return 0
        cadence = loading.load_definition(runs, tx.conn, cad_row["Id"])
        _retire(tx, cadence, cadence.by_id[step_row["Id"]])
        tracker_ids = runs.trackers_on_step(tx.conn, step_row["Id"])
        for tid in tracker_ids:
            _transition(
                runs,
                config,
                tx,
                tid,
                lambda c, cad, s: engine.retired(c, cad, s, now_of(store), tx.user_id),
            )
        return len(tracker_ids)


def _retire(tx: records.Tx, cadence: graph.Cadence, step: graph.Step) -> None:
    tx.update("ActionCadenceStep", step.id, {"GraphState": "Retired"}, system=True)
    parent = cadence.step(step.parent_name)
    kids = cadence.children.get(step.name, ())
    if parent is not None and parent.type not in graph.BRANCH_TYPES:
        tx.update(
            "ActionCadenceStep", parent.id, {"GoToStepName": kids[0] if kids else None}, system=True
        )
    tx.update(
        "ActionCadence", cadence.id, {"LastEditedDateTime": tx.store.clock.now()}, system=True
    )


# -- deleting a tracker ---------------------------------------------------------------------------


def delete_tracker(tx: records.Tx, tracker_id: str, viewer: str | None = None) -> None:
    """Delete a tracker in ``tx`` and take its target out of the cadence first, all or nothing:
    a running or paused tracker is removed as removeTargetFromSalesCadence removes it (open step
    Cancelled, tracker Complete with ManuallyRemoved, run-state row gone so the target may be
    enrolled again), its emails not yet at the relay are cancelled, and its step trackers are
    deleted with it as its children; each deleted record is in getDeleted and has its DELETE
    change event (docs/runtime-decisions.md, "Deleting a tracker").

    ``viewer`` (None: an admin) deletes only a tracker they may act on, as for the actions:
    their own or one of a user they manage.
    """
    runs = RunStore(tx.store)
    _check_may_delete(tx, tracker_id, viewer)
    runs.lock(tx.conn, [tracker_id])  # waits for a worker moving this tracker right now
    row = tx.get(TRACKER, tracker_id)
    if row is not None:  # a deleted or unknown one: tx.delete below says so
        if row["State"] in ("Running", "Paused"):
            _transition(
                runs,
                Config(),
                tx,
                tracker_id,
                lambda c, cad, s: engine.remove(c, cad, s, now_of(tx.store), tx.user_id),
            )
        runs.forget(tx.conn, tracker_id)  # any state: no wake-up for a deleted tracker
        mail.outbox(tx.store.meta).cancel_tracker(tx.conn, tracker_id)
        for step_tracker_id in runs.live_step_trackers(tx.conn, tracker_id):
            tx.delete(STEP, step_tracker_id, system=True)
    tx.delete(TRACKER, tracker_id)


def target_deleted(tx: records.Tx, target_ids: Sequence[str]) -> int:
    """Targets deleted while in a cadence leave it in ``tx``, before their delete: the open
    step Cancelled, the tracker Complete with ManuallyRemovedNoAccess (Salesforce reserves
    the value; here: nobody has access to a deleted target any more), its emails not yet at
    the relay cancelled (docs/runtime-decisions.md, "Deleting a target"). Returns how many
    trackers it completed."""
    runs = RunStore(tx.store)
    found = runs.active_tracker_of(tx.conn, [t for t in target_ids if t])
    done = 0
    for tracker_id in sorted(found.values()):
        runs.lock(tx.conn, [tracker_id])  # waits for a worker moving this tracker right now
        row = tx.get(TRACKER, tracker_id)
        if row is None or row["State"] not in ("Running", "Paused"):
            continue
        _transition(
            runs,
            Config(),
            tx,
            tracker_id,
            lambda c, cad, s: engine.remove(
                c, cad, s, now_of(tx.store), tx.user_id, reason="ManuallyRemovedNoAccess"
            ),
        )
        mail.outbox(tx.store.meta).cancel_tracker(tx.conn, tracker_id)
        done += 1
    return done


def _check_may_delete(tx: records.Tx, tracker_id: str, viewer: str | None) -> None:
    if viewer is None:
        return
    meta = tx.store.meta
    owners = visibility.visible_owners(
        tx.conn, meta, TRACKER, [tracker_id], viewer, include_deleted=True
    )
    if tracker_id not in owners:  # the answer for an Id of no record: it tells nothing
        raise errors.NotFound(f"Provided id does not exist: {tracker_id}")
    if not visibility.acts_for(tx.conn, meta, viewer, owners[tracker_id]):
        raise errors.InsufficientAccess(f"insufficient access rights on object id: {tracker_id}")


# -- rep work, calls and engagement --------------------------------------------------------------


def _tracker_of_step(store: records.Store, step_tracker_id: str) -> str:
    row = store.get(STEP, ids.parse(step_tracker_id, field="stepTrackerId"))
    if row is None:
        raise errors.NotFound(f"No cadence step tracker with Id {step_tracker_id}")
    return str(row["ActionCadenceTrackerId"])


def step_event(
    store: records.Store,
    step_tracker_id: str,
    event: str,
    user_id: str,
    config: Config | None = None,
) -> decision.Decision:
    """A rep's Start / ActionTaken / ManualComplete / Skip on an open step."""
    sid = ids.parse(step_tracker_id, field="stepTrackerId")
    tracker_id = _tracker_of_step(store, sid)
    return transition(
        store,
        tracker_id,
        user_id,
        lambda c, cad, s: engine.on_step_event(c, cad, s, now_of(store), user_id, sid, event),
        config,
    )


def start_step(store: records.Store, step_tracker_id: str, user_id: str) -> None:
    """The rep started the step (Active -> InProgress)."""
    step_event(store, step_tracker_id, "Start", user_id)


def take_action(store: records.Store, step_tracker_id: str, user_id: str) -> None:
    """The rep did the step's action (IsActionTaken; CompletionReason AutomaticallyCompleted)."""
    step_event(store, step_tracker_id, "ActionTaken", user_id)


def call_outcome(runs: RunStore, conn: Any, task: dict[str, Any]) -> str | None:
    """The call-result category of a Task's CallDisposition: the Category of the CallDisposition
    record with that Disposition (None: uncategorized, or no such call result)."""
    disposition = task.get("CallDisposition")
    if not disposition:
        return None
    return runs.call_category(conn, str(disposition))


def on_task_created(
    store: records.Store,
    task_id: str,
    config: Config | None = None,
    tx: records.Tx | None = None,
) -> bool:
    """A Task was inserted: a logged call (TaskSubtype 'Call') on a target in a cadence
    completes its MakeACall step as the Task's owner, records the call outcome and counts the
    call on the step's call script (CallTemplate), all in one transaction (``tx``, or a new
    one). Returns whether a tracker moved."""
    if tx is None:
        task = store.get("Task", task_id)
        if not _is_call(task):
            return False
        assert task is not None
        with store.transaction(task.get("OwnerId") or records.AUTOMATED_USER) as new_tx:
            return on_task_created(store, task_id, config, new_tx)
    task = tx.get("Task", task_id)
    if not _is_call(task):
        return False
    assert task is not None
    runs = RunStore(store)
    # the request's own connection: never a second one from the pool
    tracker_id = runs.active_tracker_of(tx.conn, [task["WhoId"]]).get(task["WhoId"])
    if tracker_id is None:
        return False
    if not _may_log_for(tx, tracker_id):
        return False  # a plain Task: the step stays the tracker owner's to complete
    outcome = call_outcome(runs, tx.conn, task)
    user = task.get("OwnerId") or records.AUTOMATED_USER
    scripts: list[str | None] = []

    def decide(c: decision.Context, cad: graph.Cadence, s: decision.Situation) -> decision.Decision:
        d = engine.on_call(c, cad, s, now_of(store), user, outcome)
        d.logged_call = (outcome,)  # counted on the MakeACall step it completes
        scripts.append(_call_script(tx, cad, s, d))
        return d

    transition(store, tracker_id, user, decide, config, tx)
    if scripts and scripts[0] is not None:
        count_call(tx, scripts[0], outcome)
    return True


def _is_call(task: dict[str, Any] | None) -> bool:
    return task is not None and task.get("TaskSubtype") == "Call" and bool(task.get("WhoId"))


def _call_script(
    tx: records.Tx, cadence: graph.Cadence, sit: decision.Situation, d: decision.Decision
) -> str | None:
    """The call script (CallTemplate) of the MakeACall step the call completed: its variant's
    template (the one selectTemplateForSalesCadenceStepTracker names), else the step's; None
    when the call completed no step or the step names no call script."""
    step = sit.step
    if step is None:
        return None
    completed = any(
        isinstance(op, decision.Update)
        and op.object == STEP
        and op.id == step["Id"]
        and op.changes.get("CompletionReason") == "AutomaticallyCompleted"
        for op in d.ops
    )
    step_def = cadence.by_id.get(str(step.get("ActionCadenceStepId")))
    if not completed or step_def is None or step_def.type != "MakeACall":
        return None
    variant = engine.pick_variant(step_def, str(step["Id"]))
    script = variant.template_id if variant is not None else step_def.template_id
    if script is None or not tx.store.registry.is_id_of(script, CALL_TEMPLATE):
        return None
    return script


#: Times a concurrent counter update is retried before the call fails.
COUNTER_RETRIES = 20


def count_call(tx: records.Tx, script_id: str, outcome: str | None) -> None:
    """TotalCalls and the outcome's TotalCalls* counter of a call script, one more, in ``tx``.

    A guarded update (the counters as read): a concurrent transaction counting on the same
    script makes it match no row (StaleTransition) and it is read again; a deleted script
    counts nothing."""
    counter = CALL_TEMPLATE_COUNTERS.get(outcome, CALL_TEMPLATE_COUNTERS[None])
    for _ in range(COUNTER_RETRIES):
        row = tx.get(CALL_TEMPLATE, script_id)
        if row is None:
            return
        expect = {"TotalCalls": row.get("TotalCalls"), counter: row.get(counter)}
        changes = {name: (value or 0) + 1 for name, value in expect.items()}
        try:
            tx.update(CALL_TEMPLATE, script_id, changes, system=True, expect=expect)
            return
        except errors.StaleTransition:
            continue
    raise errors.StaleTransition(f"{CALL_TEMPLATE} {script_id}: counters changed concurrently")


def _may_log_for(tx: records.Tx, tracker_id: str) -> bool:
    """Whether the signed-in user writing ``tx`` may complete the tracker's call step: its owner,
    a manager above the owner, or an admin, as for the actions (docs/security-model.md). A rep
    who sees the target (they own the Contact) but not the tracker logs a call that stays a
    plain Task. System writes (no principal) always may."""
    principal = tx.principal
    if principal is None or principal.admin:
        return True
    tracker = tx.get(TRACKER, tracker_id)
    owner = tracker.get("OwnerId") if tracker is not None else None
    return visibility.acts_for(tx.conn, tx.store.meta, principal.user_id, owner)


def log_call(
    store: records.Store,
    user_id: str,
    target_id: str,
    disposition: str | None,
    subject: str = "Call",
    config: Config | None = None,
) -> str:
    """Log a call as a Task (TaskSubtype 'Call', WhoId = target) and apply it; returns the
    Task Id."""
    with store.transaction(user_id) as tx:
        task_id = tx.insert(
            "Task",
            {
                "Subject": subject,
                "WhoId": target_id,
                "OwnerId": user_id,
                "TaskSubtype": "Call",
                "CallDisposition": disposition,
                "Status": "Completed",
                "CallType": "Outbound",
            },
        )
        on_task_created(store, task_id, config, tx)
    return task_id


def engagement(
    store: records.Store,
    target_id: str,
    event: str,
    email_step_tracker_id: str | None = None,
    config: Config | None = None,
) -> bool:
    """Email engagement of a target (EmailOpen, EmailLinkClick, EmailReply, EmailHardBounce,
    EmailSoftBounce), optionally naming the email's step tracker. Returns whether the
    target is in a cadence."""
    runs = RunStore(store)
    with store.reading() as conn:
        tracker_id = runs.active_tracker_of(conn, [target_id]).get(target_id)
        listened = (
            tracker_id is not None
            and email_step_tracker_id is not None
            and runs.latest_completed(conn, tracker_id, graph.EMAIL_TYPES)
            == ids.parse(email_step_tracker_id)
        )
    if tracker_id is None:
        return False
    on_listened = email_step_tracker_id is None or listened
    ours = email_step_tracker_id is None or _sent_by(store, email_step_tracker_id, tracker_id)
    transition(
        store,
        tracker_id,
        records.AUTOMATED_USER,
        lambda c, cad, s: engine.on_engagement(
            c, cad, s, now_of(store), records.AUTOMATED_USER, event, on_listened, ours
        ),
        config,
    )
    return True


def _sent_by(store: records.Store, email_step_tracker_id: str, tracker_id: str) -> bool:
    """Whether the email's step tracker belongs to the enrolment ``tracker_id`` (engagement
    with an email of an earlier enrolment moves no track)."""
    row = store.get(STEP, ids.parse(email_step_tracker_id))
    return row is not None and row["ActionCadenceTrackerId"] == tracker_id


def trackers_of(store: records.Store, target_ids: Sequence[str]) -> dict[str, str]:
    """target id -> active tracker id."""
    with store.reading() as conn:
        return RunStore(store).active_tracker_of(conn, list(target_ids))
