"""The batch writer of pre-validated rows writes as ``Tx`` does, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from opencadence import errors, ids
from opencadence.clock import ManualClock
from opencadence.storage import counts, records
from opencadence.storage.batch import BatchWriter
from opencadence.storage.runs import RunChanges, RunStore

STEP = "ActionCadenceStepTracker"
TRACKER_ID = ids.make_id("0cT", 5)


def _without_header(event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    payload = dict(event["payload"])
    return payload.pop("ChangeEventHeader"), payload


def test_batch_rows_and_events_match_tx_writes(store: records.Store, clock: ManualClock) -> None:
    fields = {"ActionCadenceTrackerId": TRACKER_ID, "State": "Active", "StepTitle": "Call"}
    with store.transaction() as tx:
        by_tx = tx.insert(STEP, fields, system=True)
    with store.transaction() as tx:
        writer = BatchWriter(tx)
        by_batch = writer.new_id(STEP)
        writer.change_set()
        writer.insert(STEP, by_batch, fields)
        writer.write()
        writer.write_events()
    clock.advance(minutes=1)
    change = {"State": "Completed", "StepTitle": None, "CompletionDate": clock.now()}
    with store.transaction() as tx:
        tx.update(STEP, by_tx, change, system=True, expect={"State": "Active"})
    with store.transaction() as tx:
        writer = BatchWriter(tx)
        writer.change_set()
        writer.update(STEP, by_batch, change, {"State": "Active"})
        writer.write()
        writer.write_events()
    skip = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"}
    a, b = store.get(STEP, by_tx) or {}, store.get(STEP, by_batch) or {}
    assert {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }
    assert a["LastModifiedDate"] == b["LastModifiedDate"] == a["SystemModstamp"]
    created_tx, created_batch, updated_tx, updated_batch = store.read_events(entity=STEP)
    for one, other in ((created_tx, created_batch), (updated_tx, updated_batch)):
        (h1, body1), (h2, body2) = _without_header(one), _without_header(other)
        assert body1 == body2
        assert h1["changedFields"] == h2["changedFields"]
        assert h1["nulledFields"] == h2["nulledFields"]
        assert h1["changeType"] == h2["changeType"] and h2["sequenceNumber"] == 1
    with store.reading() as conn:
        assert counts.live(conn, store.meta, STEP) == 2


def test_change_sets_share_the_commit_and_get_their_own_keys(store: records.Store) -> None:
    with store.transaction() as tx:
        writer = BatchWriter(tx)
        first, second = writer.new_id(STEP), writer.new_id(STEP)
        for record_id in (first, second):
            writer.change_set()
            writer.insert(STEP, record_id, {"ActionCadenceTrackerId": TRACKER_ID})
        writer.write()
        writer.write_events()
        tx.insert(STEP, {"ActionCadenceTrackerId": TRACKER_ID}, system=True)
    heads = [_without_header(e)[0] for e in store.read_events(entity=STEP)]
    assert len({h["transactionKey"] for h in heads}) == 3
    assert len({h["commitNumber"] for h in heads}) == 1
    assert len({h["commitTimestamp"] for h in heads}) == 1
    assert [h["sequenceNumber"] for h in heads] == [1, 1, 1]


def test_a_stale_guard_writes_nothing(store: records.Store) -> None:
    with store.transaction() as tx:
        sid = tx.insert(
            STEP, {"ActionCadenceTrackerId": TRACKER_ID, "State": "Active"}, system=True
        )
    before = len(store.read_events())
    with pytest.raises(errors.StaleTransition):
        with store.transaction() as tx:
            writer = BatchWriter(tx)
            writer.change_set()
            writer.update(STEP, sid, {"State": "Completed"}, {"State": "InProgress"})
            writer.write()
    assert (store.get(STEP, sid) or {})["State"] == "Active"
    assert len(store.read_events()) == before


def test_a_broken_unique_key_is_a_duplicate_value(store: records.Store) -> None:
    runs = RunStore(store)
    tracker = ids.make_id("0cT", 7)

    def enrol(target: str) -> None:
        changes = RunChanges()
        changes.insert(tracker, {"target_id": target, "cadence_id": ids.make_id("77C", 1)})
        with store.transaction() as tx:
            runs.write(tx.conn, changes)

    enrol(ids.make_id("003", 7))
    with pytest.raises(errors.DuplicateValue):  # the driver's IntegrityError, translated
        enrol(ids.make_id("003", 8))
    with store.reading() as conn:
        assert runs.active_tracker_of(conn, [ids.make_id("003", 7)]) == {
            ids.make_id("003", 7): tracker
        }


def test_a_target_has_one_run_row_whoever_writes_it(store: records.Store) -> None:
    """Two enrolments of one target that both passed their checks (two PostgreSQL workers at
    once): the run-state table's unique target index refuses the second."""
    runs = RunStore(store)
    target = ids.make_id("003", 9)

    def enrol(tracker: str) -> None:
        changes = RunChanges()
        changes.insert(tracker, {"target_id": target, "cadence_id": ids.make_id("77C", 1)})
        with store.transaction() as tx:
            runs.write(tx.conn, changes)

    enrol(ids.make_id("0cT", 9))
    with pytest.raises(errors.DuplicateValue):
        enrol(ids.make_id("0cT", 10))
    with store.reading() as conn:
        assert runs.active_tracker_of(conn, [target]) == {target: ids.make_id("0cT", 9)}


def test_a_batch_insert_of_an_existing_id_is_a_duplicate_value(store: records.Store) -> None:
    """The batch's inserts (PostgreSQL: one COPY) refuse a row whose Id exists as an INSERT
    does, translated; nothing of the transaction stays."""
    with store.transaction() as tx:
        taken = tx.insert(STEP, {"ActionCadenceTrackerId": TRACKER_ID}, system=True)
    before = len(store.read_events())
    with pytest.raises(errors.DuplicateValue), store.transaction() as tx:
        writer = BatchWriter(tx)
        fresh = writer.new_id(STEP)
        writer.change_set()
        writer.insert(STEP, fresh, {"ActionCadenceTrackerId": TRACKER_ID})
        writer.insert(STEP, taken, {"ActionCadenceTrackerId": TRACKER_ID})
        writer.write()
    assert store.get(STEP, fresh) is None
    assert len(store.read_events()) == before
    with store.reading() as conn:
        assert counts.live(conn, store.meta, STEP) == 1


def test_batch_events_precede_the_transactions_own_with_consecutive_replay_ids(
    store: records.Store,
) -> None:
    """Whatever the order of the writes, a transaction's log is its batches' change sets in
    order, then the events of its own writes: one run of replay ids, one commit."""
    listened: list[int] = []
    store.event_listeners.append(listened.append)
    with store.transaction() as tx:
        own = tx.insert(
            STEP, {"ActionCadenceTrackerId": TRACKER_ID, "StepTitle": "own"}, system=True
        )
        batched = []
        for _ in range(2):
            writer = BatchWriter(tx)
            record_id = writer.new_id(STEP)
            batched.append(record_id)
            writer.change_set()
            writer.insert(STEP, record_id, {"ActionCadenceTrackerId": TRACKER_ID})
            writer.write()
            writer.write_events()
    store.event_listeners.remove(listened.append)
    log = store.read_events(entity=STEP)
    assert [e["payload"]["ChangeEventHeader"]["recordIds"] for e in log] == [
        [batched[0]],
        [batched[1]],
        [own],
    ]
    replay = [e["event"]["replayId"] for e in log]
    assert replay == list(range(replay[0], replay[0] + 3))
    assert listened == [replay[-1]]
    assert len({e["payload"]["ChangeEventHeader"]["commitNumber"] for e in log}) == 1
    with store.reading() as conn:
        assert counts.live(conn, store.meta, STEP) == 3
