"""Concurrent logged calls through the real server (issue 10, item 11).

A logged call (a Task with TaskSubtype 'Call') moves its target's cadence in the transaction
that inserts the Task. The runtime used to open a second pooled connection inside that
transaction, so from about 20 concurrent calls every pooled connection was held by a request
waiting for another one: the pool deadlocked (30 s waits, then 500s) on both databases.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import event

from opencadence.cadence import definition_file
from opencadence.storage import records
from tests.integration.cadence.helpers import assign

from .conftest import Server

CALLS = 25
#: Generous for 2 shared cores; the deadlock took 30 s per stalled request.
BOUND_SECONDS = 25.0


def _cadence_with_a_call(server: Server, targets: int) -> list[str]:
    store = server.org.store
    data = {
        "cadence": {"Name": "Calls"},
        "state": "Active",
        "steps": [
            {"StepName": "root", "Type": "Root", "StepTitle": "root"},
            {
                "StepName": "call",
                "Type": "MakeACall",
                "StepTitle": "call",
                "ParentStepName": "root",
            },
            {"StepName": "task", "Type": "CreateTask", "StepTitle": "t", "ParentStepName": "call"},
        ],
    }
    cadence = definition_file.import_definition(store, data)
    admin = server.org.accounts.find_user(server.admin)
    assert admin is not None
    with store.transaction() as tx:
        contacts = [tx.insert("Contact", {"LastName": f"C{i}"}) for i in range(targets)]
    for c in contacts:
        assign(server.org.actions, cadence, c, admin["Id"])
    return contacts


def _post_call(server: Server, token: str, contact: str) -> tuple[int, Any]:
    s = server.session()  # one session per thread: requests.Session is not thread-safe
    r = s.post(
        f"https://{server.instance}/services/data/v60.0/sobjects/Task",
        json={"Subject": "Call", "WhoId": contact, "TaskSubtype": "Call", "Status": "Completed"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    return r.status_code, r.json()


def test_concurrent_logged_calls_never_stall_or_fail(server: Server) -> None:
    contacts = _cadence_with_a_call(server, CALLS)
    admin = server.org.accounts.find_user(server.admin)
    assert admin is not None
    token = server.org.accounts.open_session(admin["Id"])
    start = threading.Barrier(CALLS)

    def one(contact: str) -> tuple[int, Any]:
        start.wait()
        return _post_call(server, token, contact)

    began = time.monotonic()
    with ThreadPoolExecutor(CALLS) as pool:
        results = list(pool.map(one, contacts))
    took = time.monotonic() - began
    statuses = [status for status, _ in results]
    assert statuses == [201] * CALLS, [r for r in results if r[0] != 201][:3]
    assert took < BOUND_SECONDS, took
    # every call completed its target's MakeACall step
    found = server.org.queries.query(
        "SELECT COUNT() FROM ActionCadenceStepTracker "
        "WHERE StepType = 'MakeACall' AND State = 'Completed'"
    )
    assert found["totalSize"] == CALLS


def test_runtime_reads_on_the_request_connection(server: Server) -> None:
    """One connection per request: a call Task's reaction checks out no second connection."""
    (contact,) = _cadence_with_a_call(server, 1)
    store: records.Store = server.org.store
    checked_out: list[int] = []
    pool = store.engine.pool

    def on_checkout(*_: Any) -> None:
        checked_out.append(pool.checkedout())

    event.listen(pool, "checkout", on_checkout)
    try:
        admin = server.org.accounts.find_user(server.admin)
        assert admin is not None
        with store.transaction(admin["Id"]) as tx:
            task = tx.insert("Task", {"Subject": "Call", "WhoId": contact, "TaskSubtype": "Call"})
            checked_out.clear()
            server.org._after_write(
                tx, store.registry.object("Task"), task, {"TaskSubtype": "Call"}
            )
            assert checked_out == [], "the runtime checked out a second connection"
    finally:
        event.remove(pool, "checkout", on_checkout)
