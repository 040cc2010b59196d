"""Where a REST request's work runs (api/dispatch.py): a short GET on SQLite runs on the event
loop once measured, with the same answer; one that writes (FOR VIEW) still writes, in a
thread; PostgreSQL keeps every handler in a thread; the day's API count stays exact when
the counting request may not write it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from opencadence.storage import api_usage, dialect

from .conftest import Server

V = "/services/data/v59.0"


def _threads(server: Server, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads ``Org.query`` runs in, in order."""
    names: list[str] = []
    real = server.org.query

    def query(*args: Any, **kwargs: Any) -> Any:
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(server.org, "query", query)
    return names


def _get(s: requests.Session, server: Server, token: str, soql: str) -> requests.Response:
    r = s.get(
        f"https://{server.instance}{V}/query",
        params={"q": soql},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return r


@pytest.fixture
def token(server: Server) -> str:
    """A session of the admin."""
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    return server.org.accounts.open_session(str(user["Id"]))


def _in_worker(name: str) -> bool:
    return name.startswith("AnyIO worker thread")


def test_a_short_get_runs_on_the_loop_once_measured_with_the_same_answer(
    server: Server, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server.org.store.transaction() as tx:
        tx.insert("Contact", {"LastName": "Loop"})
    names = _threads(server, monkeypatch)
    s = server.session()
    soql = "SELECT Id, LastName FROM Contact"
    answers = [_get(s, server, token, soql) for _ in range(5)]
    assert len({a.content for a in answers}) == 1
    assert len({(a.status_code, a.headers["Content-Type"]) for a in answers}) == 1
    assert _in_worker(names[0])  # first run: in a thread, measured (the day's count row made)
    if dialect.is_sqlite(server.org.store.engine):
        assert not any(_in_worker(n) for n in names[-3:]), names  # then on the loop
    else:
        assert all(_in_worker(n) for n in names), names  # PostgreSQL: always a thread


def test_a_get_that_writes_still_writes(
    server: Server, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first page with more records after it saves its query locator (a write): each time,
    in a thread, and each locator answers."""
    with server.org.store.transaction() as tx:
        tx.insert_many("Contact", [{"LastName": f"Paged {i}"} for i in range(250)])
    names = _threads(server, monkeypatch)
    s = server.session()
    headers = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": "batchSize=200"}
    for _ in range(3):
        r = s.get(
            f"https://{server.instance}{V}/query",
            params={"q": "SELECT Id FROM Contact"},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        first = r.json()
        assert len(first["records"]) == 200
        more = s.get(f"https://{server.instance}{first['nextRecordsUrl']}", headers=headers)
        assert more.status_code == 200, more.text
        assert len(more.json()["records"]) == 50
    assert all(_in_worker(n) for n in names), names  # a write: never on the loop


def test_the_day_s_count_is_written_when_the_counting_request_may_not(
    server: Server, token: str
) -> None:
    """A request answered on the loop hands the due write of the API count to a thread: the
    count in the database catches up with what responses said."""
    s = server.session()
    soql = "SELECT Id FROM Contact"
    for _ in range(3):
        last = _get(s, server, token, soql)
    time.sleep(api_usage.FLUSH_SECONDS + 0.1)  # a write is due at the next request
    last = _get(s, server, token, soql)
    said = int(last.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    key = api_usage._key(server.org.api_usage._day)
    deadline = time.monotonic() + 5
    while api_usage._add(server.org.store, key, 0) != said and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api_usage._add(server.org.store, key, 0) == said
