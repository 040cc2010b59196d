"""Record store behaviour, on SQLite and PostgreSQL (the ``store`` fixture runs on both)."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from opencadence import errors, ids
from opencadence.clock import ManualClock
from opencadence.storage import records, schema

TRACKER_ID = ids.make_id("0cT", 5)


def _count(store: records.Store, table: str) -> int:
    with store.reading() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(store.meta.tables[table])
            ).scalar_one()
        )


def test_insert_sets_system_fields_and_get_reads_back(
    store: records.Store, clock: ManualClock
) -> None:
    with store.transaction() as tx:
        cid = tx.insert("Contact", {"LastName": "Ng", "Email": "ng@example.com"})
    row = store.get("Contact", cid)
    assert row is not None
    assert cid.startswith("003") and len(cid) == 18
    assert row["LastName"] == "Ng" and row["IsDeleted"] is False
    assert row["CreatedDate"] == clock.now().replace(tzinfo=None)
    assert row["CreatedById"] == records.AUTOMATED_USER == row["LastModifiedById"]
    assert row["HasOptedOutOfEmail"] is False  # boolean defaulted on create


def test_ids_are_unique_across_transactions(store: records.Store) -> None:
    made = []
    for _ in range(3):
        with store.transaction() as tx:
            made += tx.insert_many("Contact", [{"LastName": f"n{i}"} for i in range(5)])
    assert len(set(made)) == 15


@pytest.mark.parametrize(
    "record, code, field",
    [
        ({}, "REQUIRED_FIELD_MISSING", "LastName"),
        ({"LastName": "x" * 81}, "STRING_TOO_LONG", "LastName"),
        ({"LastName": "a", "Email": "not-an-address"}, "INVALID_EMAIL_ADDRESS", "Email"),
        (
            {"LastName": "a", "HasOptedOutOfEmail": "maybe"},
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "HasOptedOutOfEmail",
        ),
        (
            {"LastName": "a", "EmailBouncedDate": "yesterday"},
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "EmailBouncedDate",
        ),
        ({"LastName": "a", "Nope__c": 1}, "INVALID_FIELD", "Nope__c"),
        ({"LastName": "a", "AccountId": "abc"}, "MALFORMED_ID", "AccountId"),
        (
            {"LastName": "a", "AccountId": "00Qxx000002TRI2EAO"},
            "FIELD_INTEGRITY_EXCEPTION",
            "AccountId",
        ),
        (
            {"LastName": "a", "AccountId": "0010C0000000ZZZAAA"},
            "INVALID_CROSS_REFERENCE_KEY",
            "AccountId",
        ),
        (
            {"LastName": "a", "CreatedDate": "2026-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "CreatedDate",
        ),
    ],
)
def test_bad_input_is_rejected_and_nothing_written(
    store: records.Store, record: dict[str, object], code: str, field: str
) -> None:
    before = _count(store, "Contact"), _count(store, schema.EVENTS)
    with pytest.raises(errors.OpenCadenceError) as info:
        with store.transaction() as tx:
            tx.insert("Contact", {"LastName": "first in the same transaction"})
            tx.insert("Contact", record)
    assert info.value.error_code == code
    assert field in info.value.fields
    assert (_count(store, "Contact"), _count(store, schema.EVENTS)) == before


def test_restricted_picklist_is_enforced(store: records.Store) -> None:
    with pytest.raises(errors.InvalidPicklistValue) as info:
        with store.transaction() as tx:
            tx.insert(
                "ActionCadenceStepTracker",
                {"ActionCadenceTrackerId": TRACKER_ID, "State": "Done"},
                system=True,
            )
    exc = info.value
    assert (exc.message, exc.error_code, exc.fields) == (
        "State: bad value for restricted picklist field: Done",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ["State"],
    )


def test_read_only_object_refuses_api_writes_but_not_the_runtime(store: records.Store) -> None:
    with pytest.raises(errors.InvalidTypeForOperation):
        with store.transaction() as tx:
            tx.insert("ActionCadenceStepTracker", {"State": "Active"})
    with store.transaction() as tx:
        sid = tx.insert(
            "ActionCadenceStepTracker",
            {"ActionCadenceTrackerId": TRACKER_ID, "State": "Active"},
            system=True,
        )
    with pytest.raises(errors.RequiredFieldMissing):
        with store.transaction() as tx:  # not nillable: required even for the runtime
            tx.insert("ActionCadenceStepTracker", {"State": "Active"}, system=True)
    assert store.get("ActionCadenceStepTracker", sid)["State"] == "Active"  # type: ignore[index]


def test_update_changes_only_what_differs(store: records.Store, clock: ManualClock) -> None:
    with store.transaction() as tx:
        cid = tx.insert("Contact", {"LastName": "A", "Title": "CEO"})
    clock.advance(minutes=5)
    with store.transaction() as tx:
        assert tx.update("Contact", cid, {"LastName": "A", "Title": "CTO"}) == ["Title"]
        assert tx.update("Contact", cid, {"Title": "CTO"}) == []
    row = store.get("Contact", cid)
    assert row is not None and row["Title"] == "CTO"
    assert row["LastModifiedDate"] == clock.now().replace(tzinfo=None) == row["SystemModstamp"]
    assert row["CreatedDate"] < row["LastModifiedDate"]


def test_update_cannot_null_a_required_field(store: records.Store) -> None:
    with store.transaction() as tx:
        cid = tx.insert("Contact", {"LastName": "A"})
    with pytest.raises(errors.RequiredFieldMissing):
        with store.transaction() as tx:
            tx.update("Contact", cid, {"LastName": None})


def test_guarded_update(store: records.Store) -> None:
    with store.transaction() as tx:
        sid = tx.insert(
            "ActionCadenceStepTracker",
            {"ActionCadenceTrackerId": TRACKER_ID, "State": "Active"},
            system=True,
        )
    with store.transaction() as tx:
        tx.update(
            "ActionCadenceStepTracker",
            sid,
            {"State": "InProgress"},
            system=True,
            expect={"State": "Active"},
        )
    with pytest.raises(errors.StaleTransition):
        with store.transaction() as tx:
            tx.update(
                "ActionCadenceStepTracker",
                sid,
                {"State": "Completed"},
                system=True,
                expect={"State": "Active"},
            )
    assert store.get("ActionCadenceStepTracker", sid)["State"] == "InProgress"  # type: ignore[index]


def test_update_unknown_or_deleted_record(store: records.Store) -> None:
    with pytest.raises(errors.NotFound):
        with store.transaction() as tx:
            tx.update("Contact", "0030C0000000ZZZAAA", {"LastName": "x"})
    with store.transaction() as tx:
        cid = tx.insert("Contact", {"LastName": "A"})
        tx.delete("Contact", cid)
    with pytest.raises(errors.EntityIsDeleted):
        with store.transaction() as tx:
            tx.update("Contact", cid, {"LastName": "x"})


def test_soft_delete_logs_and_undelete_restores(store: records.Store, clock: ManualClock) -> None:
    with store.transaction() as tx:
        cid = tx.insert("Contact", {"LastName": "A"})
    clock.advance(hours=1)
    with store.transaction() as tx:
        tx.delete("Contact", cid)
    assert store.get("Contact", cid) is None
    deleted = store.get("Contact", cid, include_deleted=True)
    assert deleted is not None and deleted["IsDeleted"] is True
    with store.reading() as conn:
        log = conn.execute(sa.select(store.meta.tables[schema.DELETED])).mappings().all()
    assert [(r["record_id"], r["entity"], r["deleted_date"]) for r in log] == [
        (cid, "Contact", clock.now().replace(tzinfo=None))
    ]
    with store.transaction() as tx:
        tx.undelete("Contact", cid)
    assert store.get("Contact", cid) is not None
    assert _count(store, schema.DELETED) == 0
    with pytest.raises(errors.UndeleteFailed):
        with store.transaction() as tx:
            tx.undelete("Contact", cid)


def test_datetime_values_are_utc_millisecond(store: records.Store) -> None:
    with store.transaction() as tx:
        cid = tx.insert(
            "Contact", {"LastName": "A", "EmailBouncedDate": "2026-03-01T10:00:00.123456+02:00"}
        )
    row = store.get("Contact", cid)
    assert row is not None and row["EmailBouncedDate"] == datetime(2026, 3, 1, 8, 0, 0, 123000)


def test_calculated_fields_are_derived_on_read(store: records.Store, clock: ManualClock) -> None:
    due = clock.now().replace(tzinfo=None)
    with store.transaction() as tx:
        sid = tx.insert(
            "ActionCadenceStepTracker",
            {"ActionCadenceTrackerId": TRACKER_ID, "State": "Active", "DueDateTime": due},
            system=True,
        )
    row = store.get("ActionCadenceStepTracker", sid)
    assert row is not None and row["SecondsOverdue"] is None and row["IsActionTaken"] is False
    clock.advance(seconds=90)
    assert store.get("ActionCadenceStepTracker", sid)["SecondsOverdue"] == 90  # type: ignore[index]
    with store.transaction() as tx:
        tx.update(
            "ActionCadenceStepTracker", sid, {"ActionTakenDateTime": clock.now()}, system=True
        )
    clock.advance(hours=5)
    row = store.get("ActionCadenceStepTracker", sid)
    assert row is not None and row["SecondsOverdue"] == 90 and row["IsActionTaken"] is True


def test_live_row_counters_stay_exact(store: records.Store) -> None:
    from opencadence.storage import counts

    def both(name: str) -> tuple[int, int]:
        table = store.meta.tables[name]
        with store.reading() as conn:
            actual = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.IsDeleted == sa.false())
            ).scalar_one()
            return counts.live(conn, store.meta, name), int(actual)

    assert both("User") == (1, 1)  # the bootstrap Automated Process user
    for _ in range(20):  # many transactions land on different shards
        with store.transaction() as tx:
            made = tx.insert_many("Contact", [{"LastName": "n"}, {"LastName": "m"}])
            tx.delete("Contact", made[0])
    with store.transaction() as tx:
        tx.undelete("Contact", made[0])
    with pytest.raises(errors.RequiredFieldMissing):
        with store.transaction() as tx:  # rolled back: counts untouched
            tx.insert("Contact", {"LastName": "x"})
            tx.insert("Contact", {})
    assert both("Contact") == (21, 21)
