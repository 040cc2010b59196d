"""Invariants every cadence scenario must leave true (checked after each one)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from opencadence.metadata import sales_engagement
from opencadence.storage import counts, events, metrics, records, schema


def _rows(store: records.Store, name: str) -> list[dict[str, Any]]:
    table = store.meta.tables[name]
    with store.reading() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def check(store: records.Store) -> None:
    """One open step per running tracker; none after completion; reasons; events = rows;
    the live-row counters equal the tables; the metric counters equal their recomputation."""
    check_metrics(store)
    trackers = _rows(store, sales_engagement.TRACKER)
    steps = _rows(store, sales_engagement.STEP)
    with store.reading() as conn:
        for name, rows in ((sales_engagement.TRACKER, trackers), (sales_engagement.STEP, steps)):
            live = sum(1 for r in rows if not r["IsDeleted"])
            assert counts.live(conn, store.meta, name) == live, f"{name} row counter is off"
    runs = {r["tracker_id"]: r for r in _rows(store, schema.CADENCE_RUN)}
    open_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in steps:
        if s["State"] in sales_engagement.OPEN_STATES:
            open_of[s["ActionCadenceTrackerId"]].append(s)
        if s["State"] == "Completed":
            assert s["CompletionReason"], f"completed step {s['Id']} has no CompletionReason"
            assert s["CompletionDate"] is not None, s["Id"]
    for t in trackers:
        active = t["State"] in sales_engagement.ACTIVE_TRACKER_STATES
        assert t["IsTrackerActive"] == active, t
        opened = open_of.get(t["Id"], [])
        if t["State"] in ("Running", "Paused"):
            assert len(opened) == 1, f"tracker {t['Id']} has {len(opened)} open steps"
            assert t["CurrentStepId"] == opened[0]["Id"], t
            assert t["Id"] in runs, f"running tracker {t['Id']} has no run row"
        if t["State"] == "Complete":
            assert opened == [], f"complete tracker {t['Id']} has open steps"
            assert t["CurrentStepId"] is None and t["CompletionReason"], t
            assert t["Id"] not in runs
    targets = [t["TargetId"] for t in trackers if t["IsTrackerActive"]]
    assert len(targets) == len(set(targets)), "a target runs in two cadences"
    _check_events(store, {r["Id"]: r for r in trackers + steps})


def _check_events(store: records.Store, rows: dict[str, dict[str, Any]]) -> None:
    """Folding each record's change events gives its current stored values."""
    folded: dict[str, dict[str, Any]] = {}
    step_created: list[tuple[str, int]] = []  # (tracker id, replay id)
    completed_at: dict[str, int] = {}
    deleted: set[str] = set()
    sequences: dict[str, list[int]] = defaultdict(list)
    after = 0
    while True:
        batch = store.read_events(after=after, limit=5000)
        if not batch:
            break
        after = batch[-1]["event"]["replayId"]
        for e in batch:
            payload = e["payload"]
            head = payload["ChangeEventHeader"]
            sequences[head["transactionKey"]].append(head["sequenceNumber"])
            if head["entityName"] not in (sales_engagement.TRACKER, sales_engagement.STEP):
                continue
            body = {k: v for k, v in payload.items() if k != "ChangeEventHeader"}
            (rid,) = head["recordIds"]
            if head["changeType"] == "CREATE":
                folded[rid] = body
                if head["entityName"] == sales_engagement.STEP:
                    step_created.append((body["ActionCadenceTrackerId"], e["event"]["replayId"]))
            elif head["changeType"] == "DELETE":
                deleted.add(rid)
            elif body.get("State") == "Complete":
                completed_at[rid] = e["event"]["replayId"]
            if head["changeType"] != "CREATE":
                assert set(head["changedFields"]) >= set(body) - {"LastModifiedById"}, head
                folded.setdefault(rid, {}).update(body)
    for tracker, replay in step_created:
        assert replay < completed_at.get(tracker, replay + 1), (
            f"step tracker created after tracker {tracker} completed"
        )
    for key, seq in sequences.items():
        assert seq == list(range(1, len(seq) + 1)), f"transaction {key}: sequence {seq}"
    for rid, row in rows.items():
        assert rid in folded, f"no CREATE event for {rid}"
        assert (rid in deleted) == bool(row["IsDeleted"]), f"DELETE event and row of {rid}"
        # a DELETE event has no body: the delete's own stamp is in the row alone
        stamp = records.MODIFIED_FIELDS + ("LastModifiedDate",) if row["IsDeleted"] else ()
        obj = store.registry.object(
            sales_engagement.TRACKER if rid.startswith("0cT") else sales_engagement.STEP
        )
        for f in events.event_fields(obj):
            if f.name in ("Id", "CreatedById", "CreatedDate") or f.name in stamp:
                continue
            want = events.body_value(f, row[f.name])
            got = folded[rid].get(f.name)
            if f.type == "boolean" and got is None:
                got = False
            assert got == want, (
                f"{obj.name} {rid}.{f.name}: events say {got!r}, row has "
                f"{want!r}; events: {[e for e in _events_of(store, rid)]}"
            )


def _events_of(store: records.Store, rid: str) -> list[Any]:
    return [
        e["payload"]
        for e in store.read_events(limit=100000)
        if rid in e["payload"]["ChangeEventHeader"]["recordIds"]
    ]


def check_metrics(store: records.Store) -> None:
    """Every metric counter (steps, cadences, monthly rows) equals its recomputation."""
    with store.reading() as conn:
        tz = metrics.org_time_zone(conn, store.meta)
        found = metrics.differences(conn, store.meta, store.registry, tz)
    assert not found, "metric counters differ: " + "; ".join(d.describe() for d in found[:10])
