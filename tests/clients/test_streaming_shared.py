"""CometD clients shared by two server processes on one PostgreSQL database (what each child
of ``serve --processes N`` runs): two servers here, each with its own engine, store and
LISTEN connection, as two processes have. Any message of a client may reach either:

- a subscription or a disconnect through one ends, at once, the connect the other holds;
- a second connect through one answers, at once, the connect the other holds (Bayeux holds
  one per client), and only the newer one hands over what is committed next;
- connects racing through both for the same client deliver every event once, none twice;
- the client limit counts both processes' clients.

With each process keeping its clients in its memory (``shared=False``), the same client is
unknown to the other process: the last test shows what these would meet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from opencadence import system
from opencadence.api import app as api_app
from opencadence.api import server as api_server
from opencadence.api import streaming

from .conftest import free_port, serving

pytestmark = pytest.mark.postgresql

CHANNEL = "/data/ContactChangeEvent"


@dataclass
class Pair:
    """Two server processes on one database: their systems, apps and base URLs."""

    systems: list[system.System]
    hubs: list[streaming.Streaming]
    bases: list[str]
    token: str
    user_id: str

    def commit(self, i: int, name: str) -> str:
        """A Contact created through process ``i``'s store; its id."""
        with self.systems[i].store.transaction(self.user_id) as tx:
            return tx.insert("Contact", {"LastName": name})


def _pair(url: str, *, shared: bool) -> Iterator[Pair]:
    with ExitStack() as stack:
        systems = [
            stack.enter_context(
                system.build(system.Settings(database_url=url, upgrade=False, worker=False))
            )
            for _ in range(2)
        ]
        user_id, _ = systems[0].org.accounts.create_user("shared@oc.test", "pw", admin=True)
        token = systems[0].org.accounts.open_session(user_id)
        hubs, bases = [], []
        for built in systems:
            port = free_port()
            app = api_app.build_app(built.org, streaming_timeout=30.0, shared_streaming=shared)
            config = api_server.config(
                app, host="127.0.0.1", port=port, tls_files=None, log_level="error"
            )
            stack.enter_context(serving(config))
            hubs.append(app.state.streaming)
            bases.append(f"http://127.0.0.1:{port}")
        yield Pair(systems, hubs, bases, token, user_id)


@pytest.fixture
def pair(fresh_url: Callable[[str], str]) -> Iterator[Pair]:
    yield from _pair(fresh_url("postgresql"), shared=True)


class Bayeux:
    """One client id, its messages sent to whichever process the caller names."""

    def __init__(self, p: Pair, at: int = 0) -> None:
        self.p = p
        self.http = [requests.Session() for _ in p.bases]
        for s in self.http:
            s.trust_env = False
        shake = self.post(at, {"channel": "/meta/handshake"})[0]
        assert shake["successful"], shake
        self.client_id = shake["clientId"]

    def post(self, at: int, *messages: dict[str, Any], timeout: float = 60) -> list[dict[str, Any]]:
        reply = self.http[at].post(
            f"{self.p.bases[at]}/cometd/59.0",
            json=list(messages),
            headers={"Authorization": f"Bearer {self.p.token}"},
            timeout=timeout,
        )
        return reply.json()  # type: ignore[no-any-return]

    def subscribe(self, at: int, replay: int = -1) -> dict[str, Any]:
        return self.post(
            at,
            {
                "channel": "/meta/subscribe",
                "clientId": self.client_id,
                "subscription": CHANNEL,
                "ext": {"replay": {CHANNEL: replay}},
            },
        )[0]

    def connect(self, at: int) -> list[dict[str, Any]]:
        return self.post(
            at,
            {
                "channel": "/meta/connect",
                "clientId": self.client_id,
                "connectionType": "long-polling",
            },
        )

    def close(self) -> None:
        for s in self.http:
            s.close()


def _held(bayeux: Bayeux, at: int) -> tuple[threading.Thread, list[Any]]:
    """A /meta/connect through process ``at``, in a thread: ``out`` gets its reply, then when
    it arrived; returns once the connect is held (its hold is in the client's row)."""
    out: list[Any] = []

    def run() -> None:
        out.append(bayeux.connect(at))
        out.append(time.monotonic())

    before = _holder(bayeux)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while _holder(bayeux) in (None, before):
        assert time.monotonic() < deadline, "the connect was not held"
        time.sleep(0.02)
    return thread, out


def _answered_soon(held: tuple[threading.Thread, list[Any]], since: float, why: str) -> None:
    """The held connect ``held`` was answered within two seconds of ``since`` (``why``, if
    not)."""
    thread, out = held
    thread.join(timeout=5)
    assert not thread.is_alive() and out[1] - since < 2.0, why


def _holder(bayeux: Bayeux) -> str | None:
    registry = bayeux.p.hubs[0].registry
    assert isinstance(registry, streaming.SharedClients)
    row = registry.rows.get(bayeux.client_id, idle=registry._idle())
    return None if row is None else row.holder


def _records(reply: list[dict[str, Any]]) -> list[str]:
    return [m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0] for m in reply if "data" in m]


def test_a_subscription_through_one_process_wakes_the_connect_held_by_the_other(
    pair: Pair,
) -> None:
    made = pair.commit(1, "Before")
    bayeux = Bayeux(pair, at=0)
    assert bayeux.connect(0)[-1]["successful"]  # the first connect is answered at once
    held = _held(bayeux, at=0)
    started = time.monotonic()
    assert bayeux.subscribe(1, replay=-2)["successful"]  # through the other process
    _answered_soon(held, started, "not woken by the subscription")
    assert _records(held[1][0]) == [made]
    # and what is committed next, through either process, reaches a connect held by either
    for at, via in ((1, 0), (0, 1)):
        thread, out = _held(bayeux, at=at)
        made = pair.commit(via, f"Next{at}")
        thread.join(timeout=5)
        assert not thread.is_alive() and _records(out[0]) == [made]
    bayeux.close()


def test_a_disconnect_through_one_process_ends_the_connect_held_by_the_other(
    pair: Pair,
) -> None:
    bayeux = Bayeux(pair, at=1)
    assert bayeux.subscribe(0)["successful"]
    bayeux.connect(1)
    held = _held(bayeux, at=1)
    started = time.monotonic()
    reply = bayeux.post(0, {"channel": "/meta/disconnect", "clientId": bayeux.client_id})
    assert reply[0]["successful"]
    _answered_soon(held, started, "the held connect did not end")
    gone = bayeux.connect(1)[0]
    assert gone["error"] == "403::Unknown client"
    assert gone["advice"]["reconnect"] == "handshake"
    bayeux.close()


def test_a_second_connect_answers_the_one_held_by_the_other_process_at_once(
    pair: Pair,
) -> None:
    bayeux = Bayeux(pair, at=0)
    assert bayeux.subscribe(0)["successful"]
    bayeux.connect(0)
    first = _held(bayeux, at=0)
    first_out = first[1]
    started = time.monotonic()
    second, second_out = _held(bayeux, at=1)  # takes over
    _answered_soon(first, started, "the older connect is held")
    assert _records(first_out[0]) == []
    assert first_out[0][-1]["channel"] == "/meta/connect" and first_out[0][-1]["successful"]
    made = pair.commit(0, "AfterTakeover")
    second.join(timeout=5)
    assert not second.is_alive() and _records(second_out[0]) == [made]
    bayeux.close()


def test_connects_racing_through_both_processes_deliver_every_event_once(pair: Pair) -> None:
    """Two connects at a time for one client, through either process, each taking over from
    the other, while events are committed through both: every event once, in order."""
    bayeux = Bayeux(pair, at=0)
    assert bayeux.subscribe(1)["successful"]
    bayeux.connect(0)
    want = 40
    got: list[list[str]] = [[], []]
    done = threading.Event()
    failures: list[BaseException] = []

    def poll(at: int) -> None:
        try:
            while not done.is_set():
                got[at].extend(_records(bayeux.connect(at)))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=poll, args=(at,), daemon=True) for at in (0, 1)]
    for t in threads:
        t.start()
    made = []
    for i in range(want):
        made.append(pair.commit(i % 2, f"Race{i}"))
        time.sleep(0.02)
    deadline = time.monotonic() + 20
    while len(got[0]) + len(got[1]) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    # the connect held last ends with the client (a connect after it is refused)
    left = requests.post(
        f"{pair.bases[1]}/cometd/59.0",
        json=[{"channel": "/meta/disconnect", "clientId": bayeux.client_id}],
        headers={"Authorization": f"Bearer {pair.token}"},
        timeout=10,
    ).json()
    assert left[0]["successful"], left
    for t in threads:
        t.join(timeout=10)
    assert not failures, failures
    delivered = got[0] + got[1]
    assert sorted(delivered) == sorted(made), "every event, none twice"
    assert len(delivered) == len(set(delivered)) == want
    for one in got:  # each connect's share keeps commit order
        assert one == [r for r in made if r in set(one)]
    assert got[0] and got[1], "both processes delivered some"
    bayeux.close()


def test_the_client_limit_and_idle_expiry_count_both_processes(pair: Pair) -> None:
    for hub in pair.hubs:
        hub.max_clients, hub.idle_timeout = 2, 0.5
    first, second = Bayeux(pair, at=0), Bayeux(pair, at=1)
    refused = second.post(0, {"channel": "/meta/handshake"})[0]
    assert refused["error"] == "403::Organization concurrent user limit exceeded"
    time.sleep(0.7)  # both past the reconnect timeout, wherever they handshook
    assert first.connect(1)[0]["error"] == "403::Unknown client"
    third = Bayeux(pair, at=1)  # room again
    assert third.subscribe(0)["successful"]
    for c in (first, second, third):
        c.close()


def test_with_clients_in_each_process_s_memory_the_other_process_does_not_know_them(
    fresh_url: Callable[[str], str],
) -> None:
    """What the tests above would meet without sharing (each would fail on this reply)."""
    for p in _pair(fresh_url("postgresql"), shared=False):
        bayeux = Bayeux(p, at=0)
        reply = bayeux.subscribe(1)
        assert reply["error"] == "403::Unknown client", reply
        bayeux.close()
