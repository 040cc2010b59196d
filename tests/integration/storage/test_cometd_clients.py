"""The shared CometD client rows (``storage.cometd_clients``), on both databases, as two
processes see them (two engines on one database): the client limit and the idle expiry count
every process's clients; a cursor advance is a compare-and-set, so two deliveries of the same
events cannot both succeed; a newer connect taking over makes an older one's advance fail; a
live hold keeps a client from expiring, a dead process's hold runs out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from opencadence.metadata import registry as registries
from opencadence.storage import cometd_clients, database, records, schema

IDLE = timedelta(seconds=40)


@pytest.fixture
def two(db_url: str) -> Iterator[tuple[cometd_clients.CometdClients, cometd_clients.CometdClients]]:
    """The registry as two processes see it: one engine each."""
    engines = [database.create_engine(db_url) for _ in range(2)]
    try:
        stores = [records.Store(e, registries.default_registry()) for e in engines]
        yield cometd_clients.CometdClients(stores[0]), cometd_clients.CometdClients(stores[1])
    finally:
        for e in engines:
            e.dispose()


def _age(rows: cometd_clients.CometdClients, client_id: str, by: timedelta) -> None:
    """Make ``client_id``'s last response (and hold bound, if any) ``by`` older."""
    t = rows.table
    with rows.store.transaction() as tx:
        answered, held = tx.conn.execute(
            sa.select(t.c.answered_at, t.c.held_until).where(t.c.client_id == client_id)
        ).one()
        tx.conn.execute(
            t.update()
            .where(t.c.client_id == client_id)
            .values(answered_at=answered - by, held_until=None if held is None else held - by)
        )


def test_one_process_sees_what_another_wrote(two: tuple[cometd_clients.CometdClients, ...]) -> None:
    a, b = two
    assert a.create("c1", "005A", "005A", idle=IDLE, limit=10)
    assert b.subscribe("c1", "/data/ChangeEvents", 7)
    row = a.get("c1", idle=IDLE)
    assert row is not None and row.user_id == "005A" and row.viewer == "005A"
    assert row.subscriptions == {"/data/ChangeEvents": 7} and not row.connected
    b.connected("c1")
    assert b.unsubscribe("c1", "/data/ChangeEvents")
    row = a.get("c1", idle=IDLE)
    assert row is not None and row.connected and row.subscriptions == {}
    a.remove("c1")
    assert b.get("c1", idle=IDLE) is None
    assert not b.subscribe("c1", "/data/ChangeEvents", 1)  # gone: nothing to subscribe


def test_the_client_limit_counts_every_process(
    two: tuple[cometd_clients.CometdClients, ...],
) -> None:
    a, b = two
    assert a.create("c1", "005A", None, idle=IDLE, limit=2)
    assert b.create("c2", "005A", None, idle=IDLE, limit=2)
    assert not a.create("c3", "005A", None, idle=IDLE, limit=2)
    assert not b.create("c3", "005A", None, idle=IDLE, limit=2)
    _age(a, "c1", IDLE + timedelta(seconds=1))  # past the reconnect timeout: room again
    assert b.create("c3", "005A", None, idle=IDLE, limit=2)
    assert a.get("c1", idle=IDLE) is None and b.count(idle=IDLE) == 2


def test_concurrent_handshakes_never_pass_the_limit(
    two: tuple[cometd_clients.CometdClients, ...],
) -> None:
    made: list[bool] = []

    def shake(rows: cometd_clients.CometdClients, tag: str) -> None:
        for i in range(10):
            made.append(rows.create(f"{tag}{i}", "005A", None, idle=IDLE, limit=7))

    threads = [threading.Thread(target=shake, args=(r, t)) for r, t in zip(two, "ab", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made.count(True) == 7 and two[0].count(idle=IDLE) == 7


def test_two_deliveries_of_the_same_events_cannot_both_advance(
    two: tuple[cometd_clients.CometdClients, ...],
) -> None:
    a, b = two
    a.create("c1", "005A", None, idle=IDLE, limit=10)
    a.subscribe("c1", "/data/ChangeEvents", 0)
    seen_a, seen_b = a.get("c1", idle=IDLE), b.get("c1", idle=IDLE)
    assert seen_a is not None and seen_b is not None and seen_a.version == seen_b.version
    # both read events 1..5 past cursor 0; only the first advance stands
    assert b.advance("c1", seen_b.version, {"/data/ChangeEvents": 5})
    assert not a.advance("c1", seen_a.version, {"/data/ChangeEvents": 5})
    row = a.get("c1", idle=IDLE)
    assert row is not None and row.subscriptions == {"/data/ChangeEvents": 5}


def test_a_subscription_made_meanwhile_fails_the_advance(
    two: tuple[cometd_clients.CometdClients, ...],
) -> None:
    a, b = two
    a.create("c1", "005A", None, idle=IDLE, limit=10)
    a.subscribe("c1", "/data/ChangeEvents", 0)
    read = a.get("c1", idle=IDLE)
    assert read is not None
    b.subscribe("c1", "/data/ContactChangeEvent", 0)  # through the other process
    assert not a.advance("c1", read.version, {"/data/ChangeEvents": 3})  # would drop it
    row = a.get("c1", idle=IDLE)
    assert row is not None
    assert row.subscriptions == {"/data/ChangeEvents": 0, "/data/ContactChangeEvent": 0}


def test_a_newer_connect_takes_over_and_the_older_cannot_deliver(
    two: tuple[cometd_clients.CometdClients, ...],
) -> None:
    a, b = two
    a.create("c1", "005A", None, idle=IDLE, limit=10)
    a.subscribe("c1", "/data/ChangeEvents", 0)
    assert a.hold("c1", "older", at_most=timedelta(seconds=140))
    older = a.get("c1", idle=IDLE)
    assert older is not None and older.holder == "older"
    assert b.hold("c1", "newer", at_most=timedelta(seconds=140))
    assert not a.advance("c1", older.version, {"/data/ChangeEvents": 2}, release="older")
    a.release("c1", "older")  # the older one's answer leaves the newer one's hold alone
    newer = b.get("c1", idle=IDLE)
    assert newer is not None and newer.holder == "newer"
    assert b.advance("c1", newer.version, {"/data/ChangeEvents": 2}, release="newer")
    row = a.get("c1", idle=IDLE)
    assert row is not None and row.holder is None and row.subscriptions == {"/data/ChangeEvents": 2}


def test_a_held_client_is_not_idle_until_its_hold_runs_out(
    two: tuple[cometd_clients.CometdClients, ...],
) -> None:
    a, b = two
    a.create("c1", "005A", None, idle=IDLE, limit=10)
    a.hold("c1", "k", at_most=timedelta(seconds=140))
    _age(a, "c1", IDLE + timedelta(seconds=1))
    assert b.get("c1", idle=IDLE) is not None  # held right now: not idle
    assert b.count(idle=IDLE) == 1
    _age(a, "c1", timedelta(seconds=140))  # the holding process died: its hold ran out
    assert b.get("c1", idle=IDLE) is None
    with a.store.reading() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(a.table)).scalar_one()
    assert left == 0  # an expired client's row goes when it is looked up


def test_the_table_is_in_the_schema(db_url: str) -> None:
    engine = database.create_engine(db_url)
    try:
        assert schema.COMETD_CLIENTS in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
