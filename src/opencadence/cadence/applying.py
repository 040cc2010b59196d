"""Decisions onto storage: records through ``batch.BatchWriter``, run state through
``runs.RunStore``; nothing here writes SQL.

Each decision is one change set (its own transactionKey); within it the events come in the
order a new tracker, its step trackers, then tracker updates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opencadence.cadence import decision
from opencadence.metadata.sales_engagement import STEP
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
    return ref_ids


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
