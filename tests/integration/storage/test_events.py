"""The change-event log, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from opencadence import errors, ids
from opencadence.clock import ManualClock
from opencadence.storage import records

TRACKER_ID = ids.make_id("0cT", 5)


def _step(tx: records.Tx, **extra: object) -> str:
    return tx.insert(
        "ActionCadenceStepTracker",
        {"ActionCadenceTrackerId": TRACKER_ID, "State": "Active", **extra},
        system=True,
    )


def test_create_event_carries_non_null_fields_and_header(
    store: records.Store, clock: ManualClock
) -> None:
    with store.transaction(origin="com/salesforce/api/rest/59.0") as tx:
        sid = _step(tx, StepType="MakeACall")
    (event,) = store.read_events()
    header = event["payload"]["ChangeEventHeader"]
    assert header["entityName"] == "ActionCadenceStepTracker"
    assert header["changeType"] == "CREATE"
    assert header["recordIds"] == [sid]
    assert header["sequenceNumber"] == 1
    assert header["commitTimestamp"] == int(clock.now().timestamp() * 1000)
    assert header["commitUser"] == records.AUTOMATED_USER
    assert header["changeOrigin"] == "com/salesforce/api/rest/59.0"
    assert header["changedFields"] == [] and header["nulledFields"] == []
    body = {k: v for k, v in event["payload"].items() if k != "ChangeEventHeader"}
    assert body["State"] == "Active" and body["StepType"] == "MakeACall"
    assert body["CreatedDate"].endswith("Z")
    assert "IsDeleted" not in body and "SystemModstamp" not in body
    assert "SecondsOverdue" not in body and "IsActionTaken" not in body
    assert "CompletionReason" not in body  # null: left out, as CometD does
    assert event["event"]["replayId"] >= 1


def test_update_event_lists_changed_and_nulled_fields(
    store: records.Store, clock: ManualClock
) -> None:
    with store.transaction() as tx:
        sid = _step(tx, StepTitle="Call them")
    clock.advance(minutes=1)
    with store.transaction() as tx:
        tx.update(
            "ActionCadenceStepTracker",
            sid,
            {"State": "Completed", "StepTitle": None, "CompletionReason": "ManuallyCompleted"},
            system=True,
        )
    event = store.read_events()[-1]
    header = event["payload"]["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE"
    assert header["changedFields"] == ["State", "StepTitle", "CompletionReason", "LastModifiedDate"]
    assert header["nulledFields"] == ["StepTitle"]
    assert event["payload"]["StepTitle"] is None
    assert event["payload"]["LastModifiedDate"].endswith("Z")
    assert "CreatedDate" not in event["payload"]


def test_one_transaction_one_key_increasing_sequence(store: records.Store) -> None:
    with store.transaction() as tx:
        a = _step(tx)
        tx.update("ActionCadenceStepTracker", a, {"State": "Completed"}, system=True)
        _step(tx)
    with store.transaction() as tx:
        _step(tx)
    evs = [e["payload"]["ChangeEventHeader"] for e in store.read_events()]
    assert len({e["transactionKey"] for e in evs[:3]}) == 1
    assert [e["sequenceNumber"] for e in evs] == [1, 2, 3, 1]
    assert evs[3]["transactionKey"] != evs[0]["transactionKey"]
    assert evs[3]["commitNumber"] > evs[0]["commitNumber"]
    replay = [e["event"]["replayId"] for e in store.read_events()]
    assert replay == sorted(replay) and len(set(replay)) == 4


def test_rolled_back_transaction_leaves_no_event(store: records.Store) -> None:
    with pytest.raises(errors.InvalidPicklistValue):
        with store.transaction() as tx:
            _step(tx)
            _step(tx, State="Nope")
    assert store.read_events() == []


def test_delete_and_undelete_events(store: records.Store) -> None:
    with store.transaction() as tx:
        cid = tx.insert("Contact", {"LastName": "Z"})
        tx.delete("Contact", cid)
        tx.undelete("Contact", cid)
    types = [
        (e["payload"]["ChangeEventHeader"]["changeType"], len(e["payload"]))
        for e in store.read_events()
    ]
    assert [t for t, _ in types] == ["CREATE", "DELETE", "UNDELETE"]
    assert types[1][1] == 1  # DELETE: header only
    assert store.read_events()[2]["payload"]["LastName"] == "Z"


def test_objects_without_change_events_emit_none(store: records.Store) -> None:
    with store.transaction() as tx:
        tx.insert(
            "ActionCadenceRule",
            {
                "ActionCadenceStepId": ids.make_id("0cS", 5),
                "RuleName": "r1",
                "ConditionLogic": "AND",
            },
            system=True,
        )
    assert store.read_events() == []


def test_read_filters_by_entity_and_replay(store: records.Store) -> None:
    with store.transaction() as tx:
        tx.insert("Contact", {"LastName": "Z"})
        _step(tx)
    first, second = store.read_events()
    assert store.read_events(entity="Contact") == [first]
    assert store.read_events(after=first["event"]["replayId"]) == [second]


def test_prune_drops_only_events_past_retention(store: records.Store, clock: ManualClock) -> None:
    with store.transaction() as tx:
        _step(tx)
    clock.advance(hours=71)
    with store.transaction() as tx:
        _step(tx)
    clock.advance(hours=2)  # first event is now 73 h old, second 2 h
    assert store.prune_events() == 1
    assert len(store.read_events()) == 1
    assert store.prune_events() == 0


def test_replay_ids_follow_commit_order(store: records.Store) -> None:
    """A transaction that writes its events first but commits last gets the larger replay ids,
    so a reader resuming after the last replay id it saw never misses an event."""
    import threading
    import time

    first_wrote = threading.Event()
    order: list[str] = []  # transaction keys in commit order

    def slow() -> None:
        with store.transaction() as tx:
            _step(tx)
            key = tx.events.transaction_key
            tx.flush_events()  # events written (replay ids taken) ...
            first_wrote.set()
            time.sleep(0.4)  # ... but the commit comes late
        order.append(key)

    def fast() -> None:
        first_wrote.wait(5)
        with store.transaction() as tx:
            _step(tx)
            key = tx.events.transaction_key
        order.append(key)

    threads = [threading.Thread(target=slow), threading.Thread(target=fast)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    replay = {
        e["payload"]["ChangeEventHeader"]["transactionKey"]: e["event"]["replayId"]
        for e in store.read_events()
    }
    assert len(order) == 2
    assert replay[order[0]] < replay[order[1]]  # committed first <=> smaller replay id
