"""A lock another transaction holds past the wait is UNABLE_TO_LOCK_ROW, never a driver error
(issue 10, item 11): SQLite's busy timeout and PostgreSQL's lock timeout, both bounded."""

from __future__ import annotations

import time

import pytest

from opencadence import errors
from opencadence.clock import ManualClock
from opencadence.metadata.registry import default_registry
from opencadence.storage import database, dialect, records


def test_a_held_lock_is_unable_to_lock_row(
    db_url: str, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    monkeypatch.setattr(dialect, "LOCK_WAIT_SECONDS", 1)
    holder = database.create_engine(db_url)
    waiter = database.create_engine(db_url)
    try:
        store = records.Store(waiter, default_registry(), clock)
        with store.transaction() as tx:
            contact = tx.insert("Contact", {"LastName": "Locked"})
        other = records.Store(holder, default_registry(), clock)
        with other.transaction() as held:
            held.update("Contact", contact, {"LastName": "Held"})  # row (or file) locked
            began = time.monotonic()
            with pytest.raises(errors.UnableToLockRow) as info:
                with store.transaction() as tx:
                    tx.update("Contact", contact, {"LastName": "Waiter"})
            assert time.monotonic() - began < 8
        assert info.value.error_code == "UNABLE_TO_LOCK_ROW" and info.value.http_status == 400
        assert (store.get("Contact", contact) or {})["LastName"] == "Held"
    finally:
        holder.dispose()
        waiter.dispose()


def test_reading_inside_a_transaction_uses_its_connection(db_url: str, clock: ManualClock) -> None:
    eng = database.create_engine(db_url)
    try:
        store = records.Store(eng, default_registry(), clock)
        with store.transaction() as tx:
            contact = tx.insert("Contact", {"LastName": "Mine"})
            with store.reading() as conn:
                assert conn is tx.conn  # sees its own uncommitted row, no second checkout
                assert records.read_record(store, conn, "Contact", contact) is not None
        with store.reading() as conn:
            assert conn is not None
    finally:
        eng.dispose()
