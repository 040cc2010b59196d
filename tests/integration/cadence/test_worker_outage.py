"""Workers survive a lost database connection (issue 10, item 12): PostgreSQL backends
terminated (``pg_terminate_backend``) in the middle of the worker's transactions; the loop
backs off, reconnects and carries on, and the health endpoint's report shows it alive."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import system
from opencadence.api import health
from opencadence.api import server as api_server
from opencadence.cadence import definition_file, worker
from opencadence.storage import records
from tests.integration.cadence.helpers import assign


def _terminate(admin: sa.Engine, pid: int) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})


def _enrol_task_cadence(oc: system.System, n: int) -> list[str]:
    data = {
        "cadence": {"Name": f"Tasks {time.monotonic_ns()}"},
        "state": "Active",
        "steps": [
            {"StepName": "root", "Type": "Root", "StepTitle": "root"},
            {"StepName": "t", "Type": "CreateTask", "StepTitle": "t", "ParentStepName": "root"},
        ],
    }
    cadence = definition_file.import_definition(oc.store, data)
    with oc.store.transaction() as tx:
        targets = [tx.insert("Contact", {"LastName": f"T{i}"}) for i in range(n)]
    for t in targets:
        assign(oc.org.actions, cadence, t, records.AUTOMATED_USER)
    return targets


def _open_task_steps(store: records.Store) -> int:
    t = store.meta.tables["ActionCadenceStepTracker"]
    with store.reading() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(t.c.StepType == "CreateTask")
            ).scalar_one()
        )


def test_worker_thread_survives_terminated_backends(
    oc: system.System, request: pytest.FixtureRequest
) -> None:
    if oc.store.engine.dialect.name != "postgresql":
        pytest.skip("terminating a backend is PostgreSQL's; SQLite has no connection to lose")
    pg_admin: sa.Engine = request.getfixturevalue("pg_admin")
    w = oc.worker
    assert w is not None
    kills = {"n": 0}
    original = w.runs.claim_due

    def claim_then_lose_connection(conn: sa.Connection, *args: Any, **kw: Any) -> Any:
        if kills["n"] < 3:  # the first three batches lose their connection mid-transaction
            kills["n"] += 1
            _terminate(pg_admin, int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()))
        return original(conn, *args, **kw)

    w.runs.claim_due = claim_then_lose_connection  # type: ignore[method-assign]
    watch = health.Health(oc.store)
    stop = threading.Event()
    # shorter backoff for the test: same loop
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(worker, "BACKOFF_FIRST_SECONDS", 0.05)
        mp.setattr(worker, "BACKOFF_MAX_SECONDS", 0.2)
        thread = api_server.start_background(oc, stop, watch)
        assert thread is not None
        try:
            deadline = time.monotonic() + 20
            while kills["n"] < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert kills["n"] == 3
            targets = _enrol_task_cadence(oc, 3)
            while _open_task_steps(oc.store) < len(targets) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _open_task_steps(oc.store) == len(targets)  # work goes on after the losses
            assert thread.is_alive()
            time.sleep(0.3)
            doc, healthy = watch.report()
            assert healthy, doc
            assert doc["database"]["reachable"] and doc["workers"][0]["alive"]
        finally:
            stop.set()
            thread.join(5)
    assert not thread.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_health_reports_a_dead_worker(oc: system.System) -> None:
    w = oc.worker
    assert w is not None

    def dies(*_: Any, **__: Any) -> int:
        raise SystemExit("worker killed")  # not an Exception: nothing catches it

    w.run_once = dies  # type: ignore[method-assign]
    watch = health.Health(oc.store)
    stop = threading.Event()
    thread = api_server.start_background(oc, stop, watch)
    assert thread is not None
    thread.join(5)
    doc, healthy = watch.report()
    stop.set()
    assert not healthy and doc["workers"][0]["alive"] is False and doc["status"] == "unhealthy"
