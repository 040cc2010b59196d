"""records.ambient: inside it, Store.transaction is a savepoint of the ambient transaction (what
an all-or-none composite request runs its subrequests in): it commits and rolls back with it,
and an error in it undoes only what it wrote."""

from __future__ import annotations

import pytest

from opencadence.storage import records


def _names(store: records.Store) -> list[str]:
    with store.reading() as conn:
        table = store.meta.tables["Contact"]
        return sorted(r.LastName for r in conn.execute(table.select()))


def test_a_joined_transaction_commits_with_the_ambient_one(store: records.Store) -> None:
    ran: list[str] = []
    before = len(store.read_events(limit=100_000))
    with store.transaction() as outer, records.ambient(outer):
        outer.insert("Contact", {"LastName": "Outer"})
        with store.transaction() as inner:  # does not wait for the writer lock outer holds
            inner.insert("Contact", {"LastName": "Inner"})
            inner.on_commit.append(lambda: ran.append("inner"))
        assert ran == []  # the joined one's actions wait for the real commit
    assert ran == ["inner"]
    assert _names(store) == ["Inner", "Outer"]
    assert len(store.read_events(limit=100_000)) == before + 2


def test_a_joined_transaction_rolls_back_with_the_ambient_one(store: records.Store) -> None:
    before = len(store.read_events(limit=100_000))
    with pytest.raises(RuntimeError), store.transaction() as outer, records.ambient(outer):
        with store.transaction() as inner:
            inner.insert("Contact", {"LastName": "Inner"})
        raise RuntimeError("the composite failed")
    assert _names(store) == []
    assert len(store.read_events(limit=100_000)) == before  # its change event rolled back too


def test_an_error_in_a_joined_transaction_undoes_only_its_writes(store: records.Store) -> None:
    with store.transaction() as outer, records.ambient(outer):
        outer.insert("Contact", {"LastName": "Kept"})
        with pytest.raises(RuntimeError), store.transaction() as inner:
            inner.insert("Contact", {"LastName": "Undone"})
            raise RuntimeError("one action input failed")
    assert _names(store) == ["Kept"]


def test_one_notice_per_commit_whatever_its_savepoints_wrote(store: records.Store) -> None:
    """Other processes hear of a commit once (PostgreSQL: one NOTIFY, whose payload is the last
    replay id of the commit, savepoints' events included); this process's listeners too."""
    import psycopg

    from opencadence.storage import dialect

    heard: list[int] = []
    store.event_listeners.append(heard.append)
    listener = None
    if store.engine.dialect.name == "postgresql":
        args, kwargs = store.engine.dialect.create_connect_args(store.engine.url)
        listener = psycopg.connect(*args, **kwargs, autocommit=True)
        listener.execute(f"LISTEN {dialect.EVENTS_CHANNEL}")
    try:
        with store.transaction() as outer, records.ambient(outer):
            outer.insert("Contact", {"LastName": "Outer"})
            for name in ("First", "Second"):
                with store.transaction() as inner:
                    inner.insert("Contact", {"LastName": name})
        last = max(e["event"]["replayId"] for e in store.read_events(limit=100_000))
        assert heard == [last]
        if listener is not None:
            notices = [n.payload for n in listener.notifies(timeout=1.0)]
            assert notices == [str(last)]
    finally:
        store.event_listeners.remove(heard.append)
        if listener is not None:
            listener.close()
