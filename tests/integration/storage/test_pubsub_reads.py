"""The Pub/Sub API's reads of the change-event log: visible events and where the scan got to."""

from __future__ import annotations

import pytest

from opencadence.org import Org
from opencadence.storage import pubsub, records


def _contacts(store: records.Store, owners: list[str | None]) -> list[str]:
    ids = []
    for i, owner in enumerate(owners):
        values = {"LastName": f"R{i}", **({"OwnerId": owner} if owner else {})}
        with store.transaction() as tx:
            ids.append(tx.insert("Contact", values))
    return ids


def test_a_rep_reads_only_visible_events_and_the_cursor_passes_the_rest(
    store: records.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pubsub, "SCAN_ROWS", 2)  # several scans per call
    org = Org(store)
    rep, _ = org.accounts.create_user("reads-rep@oc.test", "pw", admin=False)
    ids = _contacts(store, [None, rep, None, None, rep, None])
    lo, hi = pubsub.bounds(store)
    assert lo is not None and hi is not None
    start = lo - 1
    mine, cursor = pubsub.read_visible(store, after=start, entity="Contact", limit=10, viewer=rep)
    assert [e["payload"]["ChangeEventHeader"]["recordIds"] for e in mine] == [[ids[1]], [ids[4]]]
    assert cursor == hi  # every event examined
    first, cursor = pubsub.read_visible(store, after=start, entity="Contact", limit=1, viewer=rep)
    assert cursor == first[0]["event"]["replayId"]  # stops at the limit
    everything, cursor = pubsub.read_visible(
        store, after=start, entity=None, limit=100, viewer=None
    )
    assert cursor == hi and [e["event"]["replayId"] for e in everything] == sorted(
        e["event"]["replayId"] for e in everything
    )


def test_one_call_examines_a_bounded_part_of_the_log(
    store: records.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pubsub, "SCAN_ROWS", 2)
    monkeypatch.setattr(pubsub, "MAX_SCANS", 2)
    org = Org(store)
    rep, _ = org.accounts.create_user("reads-rep2@oc.test", "pw", admin=False)
    _contacts(store, [None] * 7)
    lo, hi = pubsub.bounds(store)
    assert lo is not None and hi is not None
    found, cursor = pubsub.read_visible(store, after=lo - 1, entity="Contact", limit=10, viewer=rep)
    assert found == [] and lo - 1 < cursor < hi  # four rows examined, the rest next time
    found, cursor = pubsub.read_visible(store, after=cursor, entity="Contact", limit=10, viewer=rep)
    assert found == [] and cursor == hi


def test_a_scan_that_reaches_the_end_moves_to_what_the_caller_knows_is_committed(
    store: records.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pubsub, "SCAN_ROWS", 2)
    monkeypatch.setattr(pubsub, "MAX_SCANS", 2)
    ids = _contacts(store, [None] * 2)
    with store.transaction() as tx:
        tx.insert("Account", {"Name": "Other object"})
    lo, hi = pubsub.bounds(store)
    assert lo is not None and hi is not None
    found, cursor = pubsub.read_visible(
        store, after=lo - 1, entity="Contact", limit=10, viewer=None, known=hi
    )
    assert [e["payload"]["ChangeEventHeader"]["recordIds"] for e in found] == [[i] for i in ids]
    assert cursor == hi  # past the Account event too: the log was read to its end
    found, cursor = pubsub.read_visible(
        store, after=lo - 1, entity="Contact", limit=1, viewer=None, known=hi
    )
    assert cursor == found[0]["event"]["replayId"] < hi  # stopped at the limit: not moved
    _contacts(store, [None] * 5)
    _, hi = pubsub.bounds(store)
    assert hi is not None
    found, cursor = pubsub.read_visible(
        store, after=lo - 1, entity="Contact", limit=10, viewer=None, known=hi
    )
    assert len(found) == 4 and cursor < hi  # MAX_SCANS reached before the end: not moved
