"""Tx.on_commit: actions run once the transaction committed (what they act on is durable),
before its connection goes back to the pool, and never after a rollback."""

from __future__ import annotations

import pytest

from opencadence.storage import records


def _contact(tx: records.Tx) -> str:
    return tx.insert("Contact", {"LastName": "Lovelace"})


def test_runs_after_the_commit(store: records.Store) -> None:
    seen: list[bool] = []
    with store.transaction() as tx:
        record_id = _contact(tx)
        # a second connection sees the row only once it is committed
        tx.on_commit.append(lambda: seen.append(store.get("Contact", record_id) is not None))
        assert seen == []
    assert seen == [True]


def test_never_after_a_rollback(store: records.Store) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), store.transaction() as tx:
        _contact(tx)
        tx.on_commit.append(lambda: ran.append("ran"))
        raise RuntimeError("rolled back")
    assert ran == []
