"""CometD on a real server: who receives which change events, and what a waiting client costs.

Two reps (A and B) and an admin, each with their own records. A receives the events of the
records A can see and nothing of B's, on every channel, and no User events; the admin receives
everything. A held /meta/connect runs no SQL until a commit wakes it (within a second, also
for a commit made through another engine, as another process would), ends when its HTTP client
goes away, and a client that does not come back within the reconnect timeout is dropped.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from aiosfstream_ng import Client, ReplayOption
from starlette.applications import Starlette

from opencadence.api import app as api_app
from opencadence.api import server as api_server
from opencadence.api import streaming
from opencadence.org import Org
from opencadence.storage import database, records, visibility

from .conftest import free_port, serving
from .test_streaming import LocalAuth


@dataclass
class Org3:
    org: Org
    app: Starlette
    url: str
    admin: str
    a: str
    b: str
    tokens: dict[str, str]

    @property
    def streaming(self) -> streaming.Streaming:
        return self.app.state.streaming  # type: ignore[no-any-return]


@pytest.fixture(params=[False, True], ids=["memory", "shared"])
def org3(store: records.Store, request: pytest.FixtureRequest) -> Iterator[Org3]:
    """The server with its clients in memory, and with them in the database (what each child
    of ``serve --processes N`` runs): every test here holds for both."""
    if request.param and store.engine.dialect.name == "sqlite":
        # shared clients serve `serve --processes N`, which runs on PostgreSQL only (their
        # storage is tested on both databases in tests/integration/storage/test_cometd_clients.py)
        pytest.skip("shared CometD clients: PostgreSQL only, as serve --processes N")
    org = Org(store)
    users = {
        "admin": org.accounts.create_user("admin@stream.test", "pw", admin=True)[0],
        "a": org.accounts.create_user("a@stream.test", "pw")[0],
        "b": org.accounts.create_user("b@stream.test", "pw")[0],
    }
    tokens = {name: org.accounts.open_session(uid) for name, uid in users.items()}
    port = free_port()
    app = api_app.build_app(org, streaming_timeout=30.0, shared_streaming=request.param)
    config = api_server.config(app, host="127.0.0.1", port=port, tls_files=None, log_level="error")
    with serving(config):
        yield Org3(
            org, app, f"http://127.0.0.1:{port}", users["admin"], users["a"], users["b"], tokens
        )


def _records_of(store: records.Store, user_id: str, tag: str) -> dict[str, str]:
    """A contact, a lead, a task and (when EmailMessage has a visibility rule) an email of
    ``user_id``; the contact is updated and a second one deleted. Returns {record id: object}."""
    made: dict[str, str] = {}
    with store.transaction(user_id) as tx:
        contact = tx.insert("Contact", {"LastName": f"{tag}-contact"})
        made[contact] = "Contact"
        made[tx.insert("Lead", {"LastName": f"{tag}-lead", "Company": "Co"})] = "Lead"
        made[tx.insert("Task", {"Subject": f"{tag}-task", "WhoId": contact})] = "Task"
        if _email_has_rule(store):
            email = {"Subject": f"{tag}-secret", "TextBody": "body", "Status": "3"}
            made[tx.insert("EmailMessage", email)] = "EmailMessage"
        gone = tx.insert("Contact", {"LastName": f"{tag}-gone"})
        made[gone] = "Contact"
    with store.transaction(user_id) as tx:
        tx.update("Contact", contact, {"Title": "CEO"})
        tx.delete("Contact", gone)
    return made


def _email_has_rule(store: records.Store) -> bool:
    table = store.meta.tables["EmailMessage"]
    return visibility.predicate("EmailMessage", table, store.meta, "005000000000001AAA") is not None


def _visible_to(store: records.Store, user_id: str, made: dict[str, str]) -> set[str]:
    """Which of ``made`` the record rules let ``user_id`` see (deleted rows included)."""
    seen: set[str] = set()
    with store.reading() as conn:
        for record_id, name in made.items():
            table = store.meta.tables[name]
            rule = visibility.predicate(name, table, store.meta, user_id)
            stmt = sa.select(table.c.Id).where(table.c.Id == record_id)
            if rule is not None:
                stmt = stmt.where(rule)
            seen.update(conn.execute(stmt).scalars())
    return seen


def _sentinel(store: records.Store, user_id: str) -> str:
    """A last contact of ``user_id``: its event ends a subscriber's collection."""
    with store.transaction(user_id) as tx:
        return tx.insert("Contact", {"LastName": "sentinel"})


async def _until(token: str, url: str, channel: str, last: str) -> list[dict[str, Any]]:
    """Every event from the start of the log up to the one of record ``last``."""
    got: list[dict[str, Any]] = []
    async with Client(LocalAuth(token, url), replay=ReplayOption.ALL_EVENTS) as client:
        await client.subscribe(channel)
        async for message in client:
            got.append(message)
            if message["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [last]:
                break
    return got


def _collect(o: Org3, who: str, channel: str, last: str) -> list[tuple[str, str, str]]:
    got = asyncio.run(asyncio.wait_for(_until(o.tokens[who], o.url, channel, last), 30))
    return [
        (
            m["data"]["payload"]["ChangeEventHeader"]["entityName"],
            m["data"]["payload"]["ChangeEventHeader"]["changeType"],
            m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0],
        )
        for m in got
    ]


def test_rep_receives_only_events_of_records_they_can_see(org3: Org3) -> None:
    store = org3.org.store
    mine = _records_of(store, org3.a, "A")
    theirs = _records_of(store, org3.b, "B")
    last = _sentinel(store, org3.a)
    mine[last] = "Contact"

    assert {"Contact", "Lead", "Task"} <= {mine[r] for r in _visible_to(store, org3.a, mine)}

    events = _collect(org3, "a", "/data/ChangeEvents", last)
    ids = {record_id for _, _, record_id in events}
    assert ids == _visible_to(store, org3.a, mine), "A gets the events of what A can see"
    assert not ids & set(theirs), "and nothing of B's"
    assert not [e for e in events if e[0] == "User"], "no User events without View All Users"
    kinds = {(entity, kind) for entity, kind, _ in events}
    assert {("Contact", "CREATE"), ("Contact", "UPDATE"), ("Contact", "DELETE")} <= kinds

    contacts = _collect(org3, "a", "/data/ContactChangeEvent", last)
    assert {r for _, _, r in contacts} == {r for r in ids if mine[r] == "Contact"}
    leads_seen = [e for e in events if e[0] == "Lead"]
    assert len(leads_seen) == 1 and leads_seen[0][2] in mine


def test_a_new_visibility_rule_applies_to_streams(
    org3: Org3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams ask ``visibility.predicate`` for every object: an EmailMessage rule (here a
    stand-in, "emails the user created") keeps B's email bodies away from A's stream."""
    original = visibility.predicate

    def with_email_rule(name: str, table: Any, meta: Any, user_id: str | None) -> Any:
        found = original(name, table, meta, user_id)
        if name == "EmailMessage" and found is None and user_id is not None:
            return table.c.CreatedById == user_id
        return found

    monkeypatch.setattr(visibility, "predicate", with_email_rule)
    store = org3.org.store
    emails = {}
    for who in (org3.b, org3.a):  # A's last: its event ends the collection
        with store.transaction(who) as tx:
            body = {"Subject": "secret", "TextBody": f"body of {who}", "Status": "3"}
            emails[who] = tx.insert("EmailMessage", body)
    last = _sentinel(store, org3.a)
    events = _collect(org3, "a", "/data/EmailMessageChangeEvent", emails[org3.a])
    assert [r for _, _, r in events] == [emails[org3.a]]
    everything = _collect(org3, "a", "/data/ChangeEvents", last)
    assert emails[org3.b] not in {r for _, _, r in everything}


def test_admin_receives_every_event(org3: Org3) -> None:
    store = org3.org.store
    mine = _records_of(store, org3.a, "A")
    theirs = _records_of(store, org3.b, "B")
    last = _sentinel(store, org3.b)
    events = _collect(org3, "admin", "/data/ChangeEvents", last)
    ids = {record_id for _, _, record_id in events}
    assert set(mine) | set(theirs) | {last} <= ids
    users = {r for entity, _, r in events if entity == "User"}
    assert {org3.a, org3.b, org3.admin} <= users


# --- what waiting costs ------------------------------------------------------------------------


class Bayeux:
    """Raw Bayeux messages over HTTP, one client id."""

    def __init__(self, o: Org3, who: str = "a") -> None:
        self.o, self.who = o, who
        self.http = requests.Session()
        self.http.trust_env = False
        shake = self.post({"channel": "/meta/handshake"})[0]
        assert shake["successful"], shake
        self.client_id = shake["clientId"]

    def post(self, *messages: dict[str, Any], timeout: float = 60) -> list[dict[str, Any]]:
        response = self.http.post(
            f"{self.o.url}/cometd/59.0",
            json=list(messages),
            headers={"Authorization": f"Bearer {self.o.tokens[self.who]}"},
            timeout=timeout,
        )
        return response.json()  # type: ignore[no-any-return]

    def subscribe(self, channel: str = "/data/ChangeEvents") -> None:
        reply = self.post(
            {"channel": "/meta/subscribe", "clientId": self.client_id, "subscription": channel}
        )
        assert reply[0]["successful"], reply

    def connect(self, timeout: float = 60) -> list[dict[str, Any]]:
        return self.post(
            {
                "channel": "/meta/connect",
                "clientId": self.client_id,
                "connectionType": "long-polling",
            },
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def statements(org3: Org3) -> Iterator[list[str]]:
    """Every SQL statement the server's engine runs from now on."""
    seen: list[str] = []
    engine = org3.org.store.engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", count)


def _held_connect(bayeux: Bayeux) -> tuple[threading.Thread, list[Any]]:
    """A /meta/connect in a thread: ``out`` gets its reply, then when it arrived."""
    out: list[Any] = []

    def run() -> None:
        out.append(bayeux.connect())
        out.append(time.monotonic())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _client(o: Org3, client_id: str) -> streaming.Client | None:
    """The client as its registry has it now (memory or database)."""
    registry = o.streaming.registry
    if isinstance(registry, streaming.MemoryClients):
        return registry.clients.get(client_id)
    assert isinstance(registry, streaming.SharedClients)
    row = registry.rows.get(client_id, idle=registry._idle())
    return None if row is None else streaming.Client(row.user_id, row.viewer, holder=row.holder)


def _count(o: Org3) -> int:
    registry = o.streaming.registry
    if isinstance(registry, streaming.MemoryClients):
        return len(registry.clients)
    assert isinstance(registry, streaming.SharedClients)
    return registry.rows.count(idle=registry._idle())


def _waiting(o: Org3, client_id: str) -> int:
    client = _client(o, client_id)
    assert client is not None
    return client.waiting


def _wait_held(o: Org3, client_id: str) -> None:
    deadline = time.monotonic() + 10
    while _waiting(o, client_id) == 0:
        assert time.monotonic() < deadline, "the connect was not held"
        time.sleep(0.02)


def test_idle_long_poll_runs_no_sql_and_a_commit_wakes_it(
    org3: Org3, statements: list[str]
) -> None:
    bayeux = Bayeux(org3)
    bayeux.subscribe()
    bayeux.connect()  # the first connect is answered at once
    thread, out = _held_connect(bayeux)
    _wait_held(org3, bayeux.client_id)
    time.sleep(1.5)  # the connect's own reads, and the SQLite watcher's look at them, are done
    before = len(statements)
    time.sleep(3.0)
    assert statements[before:] == [], "an idle long-poll must not query the database"

    made = _sentinel(org3.org.store, org3.a)
    committed = time.monotonic()
    thread.join(timeout=5)
    assert not thread.is_alive()
    woken = out[1] - committed
    data = [m for m in out[0] if "data" in m]
    assert [m["data"]["payload"]["ChangeEventHeader"]["recordIds"] for m in data] == [[made]]
    assert woken < 1.0, f"woken after {woken:.2f} s"
    bayeux.close()


def test_subscription_made_while_a_connect_is_held_is_read_at_once(org3: Org3) -> None:
    """aiosfstream-ng subscribes while its second /meta/connect is already held."""
    made = _sentinel(org3.org.store, org3.a)
    bayeux = Bayeux(org3)
    bayeux.connect()
    thread, out = _held_connect(bayeux)
    _wait_held(org3, bayeux.client_id)
    started = time.monotonic()
    reply = bayeux.post(
        {
            "channel": "/meta/subscribe",
            "clientId": bayeux.client_id,
            "subscription": "/data/ContactChangeEvent",
            "ext": {"replay": {"/data/ContactChangeEvent": -2}},
        }
    )
    assert reply[0]["successful"], reply
    thread.join(timeout=5)
    assert not thread.is_alive() and out[1] - started < 2.0
    data = [m for m in out[0] if "data" in m]
    assert [m["data"]["payload"]["ChangeEventHeader"]["recordIds"] for m in data] == [[made]]
    bayeux.close()


def test_commit_by_another_process_wakes_a_long_poll(org3: Org3, db_url: str) -> None:
    bayeux = Bayeux(org3)
    bayeux.subscribe()
    bayeux.connect()
    thread, out = _held_connect(bayeux)
    _wait_held(org3, bayeux.client_id)
    other = database.create_engine(db_url)  # another process's engine: no in-process wake-up
    try:
        elsewhere = records.Store(other, org3.org.store.registry)
        started = time.monotonic()
        made = _sentinel(elsewhere, org3.a)
        thread.join(timeout=10)
        assert not thread.is_alive()
        woken = time.monotonic() - started
    finally:
        other.dispose()
    data = [m for m in out[0] if "data" in m]
    assert [m["data"]["payload"]["ChangeEventHeader"]["recordIds"] for m in data] == [[made]]
    assert woken < 3.0, f"woken after {woken:.2f} s"
    bayeux.close()


def test_long_poll_ends_when_its_client_goes(org3: Org3, statements: list[str]) -> None:
    bayeux = Bayeux(org3)
    bayeux.subscribe()
    bayeux.connect()
    port = int(org3.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps([{"channel": "/meta/connect", "clientId": bayeux.client_id}])
    conn.request(
        "POST",
        "/cometd/59.0",
        body=body,
        headers={
            "Authorization": f"Bearer {org3.tokens['a']}",
            "Content-Type": "application/json",
        },
    )
    _wait_held(org3, bayeux.client_id)
    conn.close()  # the client goes away without an answer
    deadline = time.monotonic() + 2
    while _waiting(org3, bayeux.client_id):
        assert time.monotonic() < deadline, "the abandoned long-poll is still held"
        time.sleep(0.02)
    bayeux.close()


def test_meta_disconnect_ends_the_held_connect(org3: Org3) -> None:
    bayeux = Bayeux(org3)
    bayeux.subscribe()
    bayeux.connect()
    thread, out = _held_connect(bayeux)
    _wait_held(org3, bayeux.client_id)
    started = time.monotonic()
    reply = bayeux.post({"channel": "/meta/disconnect", "clientId": bayeux.client_id})
    assert reply[0]["successful"]
    thread.join(timeout=5)
    assert not thread.is_alive() and out[1] - started < 2.0
    assert _client(org3, bayeux.client_id) is None
    bayeux.close()


def test_idle_clients_expire_and_handshakes_are_capped(org3: Org3) -> None:
    hub = org3.streaming
    hub.idle_timeout, hub.max_clients = 0.5, 3
    clients = [Bayeux(org3) for _ in range(3)]
    refused = requests.post(
        f"{org3.url}/cometd/59.0",
        json=[{"channel": "/meta/handshake"}],
        headers={"Authorization": f"Bearer {org3.tokens['a']}"},
        timeout=10,
    ).json()[0]
    assert not refused["successful"]
    assert refused["error"] == "403::Organization concurrent user limit exceeded"
    assert _count(org3) == 3

    time.sleep(0.7)  # past the reconnect timeout
    gone = clients[0].connect()[0]
    assert gone["error"] == "403::Unknown client"
    assert gone["advice"]["reconnect"] == "handshake"
    assert _count(org3) == 0

    fresh = Bayeux(org3)  # room again; a client that keeps coming back stays
    for _ in range(4):
        time.sleep(0.2)
        assert fresh.post(
            {
                "channel": "/meta/subscribe",
                "clientId": fresh.client_id,
                "subscription": "/data/ChangeEvents",
            }
        )[0]["successful"]
    assert _client(org3, fresh.client_id) is not None
    for c in [*clients, fresh]:
        c.close()
