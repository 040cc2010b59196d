"""Decisions onto storage: records through ``batch.BatchWriter``, run state through
``runs.RunStore``, the metric counters the decisions move through ``storage.metrics``;
nothing here writes SQL.

Each decision is one change set (its own transactionKey); within it the events come in the
order a new tracker, its step trackers, then tracker updates. The counters are written in the
same transaction, after the rows (what they count is read from the decisions: completions,
skips, sends, logged calls, trackers entering and leaving a cadence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opencadence.cadence import decision
from opencadence.metadata.sales_engagement import STEP, TRACKER
from opencadence.storage import metrics
from opencadence.storage.batch import BatchWriter
from opencadence.storage.records import Tx
from opencadence.storage.runs import RunChanges, RunStore


def apply(tx: Tx, runs: RunStore, decisions: Sequence[decision.Decision]) -> list[dict[str, str]]:
    """Write every decision in ``tx``; returns each decision's Ref key -> new Id."""
    writer = BatchWriter(tx)
    ref_ids = [
        {op.key.key: writer.new_id(op.object) for op in d.ops if isinstance(op, decision.Insert)}
        for d in decisions
    ]
    counts = _counts(tx, decisions) if tx.store.count_metrics else None
    run_changes = RunChanges()
    for d, refs in zip(decisions, ref_ids):
        writer.change_set()
        for op in sorted(d.ops, key=_event_rank):
            if isinstance(op, decision.Insert):
                writer.insert(op.object, refs[op.key.key], _resolved(op.fields, refs))
            else:
                record_id = op.id if isinstance(op.id, str) else refs[op.id.key]
                changes = _resolved(op.changes, refs)
                writer.update(op.object, record_id, changes, op.expect, op.modified_by)
        for run_op in d.run:
            _add_run_op(run_changes, run_op, refs)
    writer.write()
    runs.write(tx.conn, run_changes)
    writer.write_events()
    if counts:
        metrics.write_tx(tx, counts)
    return ref_ids


def _counts(tx: Tx, decisions: Sequence[decision.Decision]) -> metrics.Counts:
    """What the decisions add to the counters, read before their rows are written (a
    tracker's disposition before the change)."""
    counts = metrics.Counts()
    done: list[tuple[decision.Decision, decision.Update]] = []
    trackers: list[tuple[dict[str, Any] | None, decision.Update]] = []
    for d in decisions:
        inserted: dict[str, dict[str, Any]] = {}
        for op in d.ops:
            if isinstance(op, decision.Insert):
                if op.object == TRACKER:
                    inserted[op.key.key] = op.fields
                    counts.cadence(op.fields["ActionCadenceId"], "TotalTargets")
                    _move_tracker(counts, op.fields["ActionCadenceId"], (None, None), op.fields)
            elif op.object == STEP and op.changes.get("State") == "Completed":
                if isinstance(op.id, str):
                    done.append((d, op))
            elif op.object == TRACKER and ("State" in op.changes or _DISPOSITION in op.changes):
                before = inserted.get(op.id.key) if isinstance(op.id, decision.Ref) else None
                trackers.append((before, op))
    conn, meta = tx.conn, tx.store.meta
    if trackers:
        known = metrics.tracker_facts(
            conn, meta, [str(op.id) for b, op in trackers if isinstance(op.id, str)]
        )
        for before, op in trackers:
            old: tuple[str | None, str | None]
            if before is not None:
                cadence, old = before["ActionCadenceId"], (before.get("State"), None)
            elif isinstance(op.id, str) and op.id in known:
                cadence, state, disposition = known[op.id]
                old = (state, disposition)
            else:
                continue
            after = {"State": old[0], _DISPOSITION: old[1], **op.changes}
            _move_tracker(counts, cadence, old, after)
    if done:
        facts = metrics.step_tracker_facts(conn, meta, [str(op.id) for _, op in done])
        tz = metrics.org_time_zone(conn, meta)
        for d, op in done:
            f = facts.get(str(op.id))
            if f is None:
                continue
            due = op.changes["DueDateTime"] if "DueDateTime" in op.changes else f.due
            metrics.count_completion(
                counts,
                f,
                str(op.id),
                op.changes.get("CompletionReason"),
                op.changes.get("ActionTakenDateTime"),
                due,
                tz,
                d.logged_call,
            )
    return counts


_DISPOSITION = "CompletionDisposition"


def _move_tracker(
    counts: metrics.Counts,
    cadence_id: str,
    old: tuple[str | None, str | None],
    new: Mapping[str, Any],
) -> None:
    """A tracker's values went from ``old`` (State, disposition) to ``new``."""
    was = metrics.tracker_weight(*old)
    now = metrics.tracker_weight(new.get("State"), new.get(_DISPOSITION))
    if now[0] != was[0]:
        counts.cadence(cadence_id, "ActiveTargets", now[0] - was[0])
    if now[1] != was[1]:
        counts.cadence(cadence_id, "SuccessfulCompletions", now[1] - was[1])


def _event_rank(op: decision.Insert | decision.Update) -> int:
    """Event order within a transition: a new tracker, its step trackers, tracker updates."""
    if op.object == STEP:
        return 1
    return 0 if isinstance(op, decision.Insert) else 2


def _resolved(fields: dict[str, Any], refs: Mapping[str, str]) -> dict[str, Any]:
    """``fields`` with each Ref replaced by the new Id (the same dict when there is none)."""
    if any(isinstance(v, decision.Ref) for v in fields.values()):
        return {k: refs[v.key] if isinstance(v, decision.Ref) else v for k, v in fields.items()}
    return fields


def _add_run_op(changes: RunChanges, op: decision.RunOp, refs: Mapping[str, str]) -> None:
    tracker = op.tracker if isinstance(op.tracker, str) else refs[op.tracker.key]
    if op.kind == "delete":
        changes.delete(tracker)
    elif op.kind == "insert":
        changes.insert(tracker, op.fields)
    else:
        changes.update(tracker, op.fields)
