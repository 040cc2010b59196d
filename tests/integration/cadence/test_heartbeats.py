"""Worker heartbeats across processes (``storage.heartbeats``), on both databases: a loop's
row is written when it starts, beats at most every WRITE_EVERY (a failure at once), is
deleted when it stops; long-silent rows are forgotten; the health report lists every row,
``alive`` by its last beat, without making the server unhealthy."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from opencadence import system
from opencadence.api import health
from opencadence.api import server as api_server
from opencadence.cadence import worker as workers
from opencadence.clock import ManualClock
from opencadence.storage import heartbeats, schema


def _rows(oc: system.System) -> list[heartbeats.Beat]:
    return heartbeats.Heartbeats(oc.store).all()


def _silence(oc: system.System, row_id: str, since: timedelta) -> None:
    """Make ``row_id``'s last beat ``since`` ago."""
    table = oc.store.meta.tables[schema.WORKER_HEARTBEATS]
    with oc.store.transaction() as tx:
        tx.conn.execute(
            table.update().where(table.c.id == row_id).values(beat_at=_wall_now() - since)
        )


def _wall_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_a_loop_owns_one_row_while_it_runs(oc: system.System) -> None:
    w = oc.worker
    assert w is not None
    published = w.publish("worker")
    [row] = _rows(oc)
    assert row.role == "worker" and row.failures == 0 and row.transitions == 0
    first = row.beat_at
    w.transitions = 7
    w.health.beat()  # within WRITE_EVERY of the last write: not written
    assert _rows(oc)[0].transitions == 0
    w.health.failed(RuntimeError("database away\nmore"))  # a failure is written at once
    [row] = _rows(oc)
    assert row.failures == 1 and row.last_error == "RuntimeError: database away"
    assert row.transitions == 7 and row.beat_at >= first
    published.written -= heartbeats.WRITE_EVERY.total_seconds()  # time for the next write
    w.health.beat()
    [row] = _rows(oc)
    assert row.failures == 0 and row.last_error is None
    other = workers.Worker(oc.store).publish("worker")  # a second loop: a second row
    assert len(_rows(oc)) == 2
    published.close()
    assert [r.id for r in _rows(oc)] == [other.row_id]
    other.close()
    assert _rows(oc) == []


def test_a_forgotten_row_is_registered_again(oc: system.System) -> None:
    w = oc.worker
    assert w is not None
    stale = heartbeats.Heartbeats(oc.store)
    old = stale.register("worker")
    table = oc.store.meta.tables[schema.WORKER_HEARTBEATS]
    _silence(oc, old, heartbeats.FORGET_AFTER + timedelta(minutes=1))  # past FORGET_AFTER
    published = w.publish("server")  # registering forgets the silent row
    assert [r.id for r in _rows(oc)] == [published.row_id] and published.row_id != old
    with oc.store.transaction() as tx:  # forgotten meanwhile: the next beat registers again
        tx.conn.execute(table.delete())
    published.written = float("-inf")
    w.health.beat()
    [row] = _rows(oc)
    assert row.role == "server" and row.id != old
    published.close()


def test_health_lists_every_worker_process(oc: system.System) -> None:
    elsewhere = heartbeats.Heartbeats(oc.store)
    other = elsewhere.register("worker")  # as an `opencadence worker` process would
    watch = health.Health(oc.store)
    stop = threading.Event()
    thread = api_server.start_background(oc, stop, watch)
    assert thread is not None
    try:
        deadline = time.monotonic() + 10
        while len(watch.report()[0]["workerProcesses"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _silence(oc, other, timedelta(seconds=health.SILENT_SECONDS + 1))  # went silent
        doc, healthy = watch.report()
        by_role = {p["role"]: p for p in doc["workerProcesses"]}
        assert by_role["server"]["alive"] and not by_role["worker"]["alive"]
        assert by_role["worker"]["id"] == other and by_role["worker"]["secondsSinceHeartbeat"] > 120
        assert healthy, doc  # another process's silence is its supervisor's to act on
    finally:
        stop.set()
        thread.join(5)
    assert [r.id for r in _rows(oc)] == [other]  # the stopped thread's row is gone


def test_rows_are_on_wall_time_not_the_manual_clock(oc: system.System) -> None:
    clock = oc.manual_clock or oc.clock
    assert isinstance(clock, ManualClock)
    clock.advance(days=30)
    heartbeats.Heartbeats(oc.store).register("worker")
    t = oc.store.meta.tables[schema.WORKER_HEARTBEATS]
    with oc.store.reading() as conn:
        beat = conn.execute(sa.select(t.c.beat_at)).scalar_one()
    assert abs((beat - _wall_now()).total_seconds()) < 60
