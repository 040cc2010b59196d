"""The change-event log's one visibility-filtered reader (CometD, Pub/Sub and ``events tail``
all read through it): visible events and where the read got to."""

from __future__ import annotations

from typing import Any

import pytest

from opencadence.org import Org
from opencadence.storage import events, records


def _contacts(store: records.Store, owners: list[str | None]) -> list[str]:
    ids = []
    for i, owner in enumerate(owners):
        values = {"LastName": f"R{i}", **({"OwnerId": owner} if owner else {})}
        with store.transaction() as tx:
            ids.append(tx.insert("Contact", values))
    return ids


def _read(store: records.Store, **kwargs: Any) -> tuple[list[dict[str, Any]], int]:
    with store.reading() as conn:
        return events.read_visible(conn, store.meta, **kwargs)


def _bounds(store: records.Store) -> tuple[int | None, int | None]:
    with store.reading() as conn:
        return events.replay_bounds(conn, store.meta)


def _records(found: list[dict[str, Any]]) -> list[list[str]]:
    return [e["payload"]["ChangeEventHeader"]["recordIds"] for e in found]


def test_a_rep_reads_only_visible_events_and_the_cursor_passes_the_rest(
    store: records.Store,
) -> None:
    org = Org(store)
    rep, _ = org.accounts.create_user("reads-rep@oc.test", "pw", admin=False)
    ids = _contacts(store, [None, rep, None, None, rep, None])
    lo, hi = _bounds(store)
    assert lo is not None and hi is not None
    start = lo - 1
    mine, cursor = _read(store, after=start, entities=["Contact"], limit=10, viewer=rep)
    assert _records(mine) == [[ids[1]], [ids[4]]]
    assert cursor == hi  # every event examined
    first, cursor = _read(store, after=start, entities=["Contact"], limit=1, viewer=rep)
    assert cursor == first[0]["event"]["replayId"]  # stops at the limit
    everything, cursor = _read(store, after=start, entities=None, limit=100, viewer=None)
    assert cursor == hi and [e["event"]["replayId"] for e in everything] == sorted(
        e["event"]["replayId"] for e in everything
    )
    assert len(everything) == hi - start  # nothing filtered for "View All Data"


def test_every_object_for_a_rep_means_the_visible_records_and_no_user_events(
    store: records.Store,
) -> None:
    """entities=None (/data/ChangeEvents) for a rep: public objects, the rep's private
    records, never another's, and no User event (Salesforce asks for "View All Users")."""
    org = Org(store)
    rep, _ = org.accounts.create_user("reads-all@oc.test", "pw", admin=False)
    lo, _ = _bounds(store)
    assert lo is not None
    ids = _contacts(store, [None, rep])
    with store.transaction() as tx:
        account = tx.insert("Account", {"Name": "Public"})
    found, _ = _read(store, after=lo - 1, entities=None, limit=100, viewer=rep)
    assert _records(found) == [[ids[1]], [account]]
    everyone, _ = _read(store, after=lo - 1, entities=None, limit=100, viewer=None)
    assert [rep] in _records(everyone)  # the admin gets the User event


def test_one_read_examines_a_bounded_part_of_the_log(
    store: records.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "SCAN_WINDOW", 4)
    org = Org(store)
    rep, _ = org.accounts.create_user("reads-rep2@oc.test", "pw", admin=False)
    _contacts(store, [None] * 7)
    lo, hi = _bounds(store)
    assert lo is not None and hi is not None
    found, cursor = _read(store, after=lo - 1, entities=["Contact"], limit=10, viewer=rep)
    assert found == [] and cursor == lo + 3 < hi  # four rows examined, the rest next time
    found, cursor = _read(store, after=cursor, entities=["Contact"], limit=10, viewer=rep)
    assert found == [] and cursor == hi


def test_a_read_that_reaches_the_end_moves_past_other_objects_events(
    store: records.Store,
) -> None:
    ids = _contacts(store, [None] * 2)
    with store.transaction() as tx:
        tx.insert("Account", {"Name": "Other object"})
    lo, hi = _bounds(store)
    assert lo is not None and hi is not None
    found, cursor = _read(store, after=lo - 1, entities=["Contact"], limit=10, viewer=None)
    assert _records(found) == [[i] for i in ids]
    assert cursor == hi  # past the Account event too: the log was read to its end
    again, cursor = _read(store, after=cursor, entities=["Contact"], limit=10, viewer=None)
    assert again == [] and cursor == hi
    found, cursor = _read(store, after=lo - 1, entities=["Contact"], limit=1, viewer=None)
    assert cursor == found[0]["event"]["replayId"] < hi  # stopped at the limit: not moved
