"""What the engine reads, built from the rows ``storage.runs`` returns: cadence graphs, time
zones and tracker situations, read in the transaction that applies the decisions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opencadence import errors
from opencadence.cadence import decision, graph
from opencadence.cadence.settings import Config
from opencadence.storage.records import Connection
from opencadence.storage.runs import RunStore


def load_definition(runs: RunStore, conn: Connection, cadence_id: str) -> graph.Cadence:
    """The graph of one cadence (live and detached steps), read in ``conn``."""
    rows = runs.definition(conn, cadence_id)
    return graph.from_records(rows.head, rows.steps, rows.rules, rows.conditions, rows.variants)


class Loaded:
    """Definitions and time zones read in one transaction (definitions never outlive it, so an
    edit of a cadence is seen by the next transaction)."""

    def __init__(self, runs: RunStore, conn: Connection, config: Config) -> None:
        self.runs, self.conn, self.config = runs, conn, config
        self.cadences: dict[str, graph.Cadence] = {}
        self.time_zones: dict[str, str | None] = {}

    def cadence(self, cadence_id: str) -> graph.Cadence:
        """A cadence, with the cadences its daisy-chain steps enrol into."""
        found = self.cadences.get(cadence_id)
        if found is None:
            found = self.cadences[cadence_id] = load_definition(self.runs, self.conn, cadence_id)
            for step in found.steps.values():
                chained = step.chained_cadence_id
                if step.type == "DaisyChain" and chained and chained not in self.cadences:
                    try:
                        self.cadences[chained] = load_definition(self.runs, self.conn, chained)
                    except errors.NotFound:
                        pass
        return found

    def zones(self, user_ids: Iterable[str]) -> None:
        todo = sorted({u for u in user_ids if u and u not in self.time_zones})
        self.time_zones.update(self.runs.time_zones(self.conn, todo))
        for uid in todo:
            self.time_zones.setdefault(uid, None)

    def context(self) -> decision.Context:
        return decision.Context(self.cadences, self.time_zones, self.config.max_daisy_chain)


def situations(
    runs: RunStore, conn: Connection, loaded: Loaded, tracker_ids: Sequence[str]
) -> dict[str, decision.Situation]:
    """Tracker row, open step-tracker row, run state and step visits of each tracker."""
    trackers = runs.trackers(conn, tracker_ids)
    states = runs.run_states(conn, tracker_ids)
    current = [t["CurrentStepId"] for t in trackers.values() if t["CurrentStepId"]]
    steps = runs.step_trackers(conn, current)
    for cid in {t["ActionCadenceId"] for t in trackers.values()}:
        loaded.cadence(cid)
    loaded.zones(t["OwnerId"] for t in trackers.values())
    visits = _visits(runs, conn, loaded, trackers)
    return {
        tid: decision.Situation(
            t,
            steps.get(t["CurrentStepId"] or ""),
            _run(states[tid]) if tid in states else decision.Run(tid),
            visits.get(tid, {}),
        )
        for tid, t in trackers.items()
    }


def _run(row: Mapping[str, Any]) -> decision.Run:
    return decision.Run(
        row["tracker_id"],
        row["due_at"],
        row["call_outcome"],
        row["signals"],
        row["paused_at"],
        row["paused_state"],
        row["held_due_at"],
    )


def _visits(
    runs: RunStore, conn: Connection, loaded: Loaded, trackers: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    """Step trackers per (tracker, step name), only for cadences with repeat loops."""
    looping = [
        tid for tid, t in trackers.items() if loaded.cadences[t["ActionCadenceId"]].has_loops
    ]
    out: dict[str, dict[str, int]] = {}
    for tid, step_id, n in runs.step_counts(conn, looping):
        step = loaded.cadences[trackers[tid]["ActionCadenceId"]].by_id.get(step_id)
        if step is not None:
            out.setdefault(tid, {})[step.name] = n
    return out
