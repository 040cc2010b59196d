"""Two ``opencadence serve`` processes on one PostgreSQL database serve one stream: an
aiosfstream-ng (CometD) subscriber and a Pub/Sub subscriber on each see the same events in the
same order, whichever process committed them (the other process is woken by NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
import requests
import sqlalchemy as sa
from aiosfstream_ng import Client, ReplayOption

from opencadence import system
from opencadence.api.pubsub_proto import pubsub_api_pb2 as pb
from opencadence.api.pubsub_proto import pubsub_api_pb2_grpc as pb_grpc

from .conftest import free_port
from .test_pubsub import Subscription, decode, rid
from .test_streaming import LocalAuth

EVENTS = 6
CHANNEL = "/data/ContactChangeEvent"

pytestmark = pytest.mark.postgresql


@contextmanager
def _serve(url: str, log: Path) -> Iterator[tuple[str, int]]:
    """``opencadence serve`` in a subprocess: (its REST base URL, its Pub/Sub port)."""
    port, pubsub_port = free_port(), free_port()
    args = ["serve", "--database", url, "--no-worker", "--port", str(port)]
    args += ["--pubsub-port", str(pubsub_port), "--pubsub-keepalive", "0.5"]
    base = f"http://127.0.0.1:{port}"
    with (
        log.open("w") as err,
        subprocess.Popen(
            [sys.executable, "-m", "opencadence", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as proc,
    ):
        try:
            # as in test_serve_processes: the port is bound before the app serves, so an early
            # request may also time out; a loaded 2-core machine took up to 15 s to start one
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if requests.get(f"{base}/_opencadence/health", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
            yield base, pubsub_port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _cometd(
    token: str, bases: list[str], ready: threading.Event, out: list[list[tuple[int, str]]]
) -> threading.Thread:
    """aiosfstream-ng on each server, in a thread: ``out`` gets (replayId, record id) lists."""

    async def one(base: str, subscribed: Callable[[], None]) -> list[tuple[int, str]]:
        got: list[tuple[int, str]] = []
        async with Client(LocalAuth(token, base), replay=ReplayOption.NEW_EVENTS) as client:
            await client.subscribe(CHANNEL)
            subscribed()
            async for message in client:
                data = message["data"]
                header = data["payload"]["ChangeEventHeader"]
                got.append((int(data["event"]["replayId"]), header["recordIds"][0]))
                if len(got) == EVENTS:
                    return got
        return got

    async def both() -> None:
        count = [0]

        def subscribed() -> None:
            count[0] += 1
            if count[0] == len(bases):
                ready.set()

        found = await asyncio.wait_for(
            asyncio.gather(*(one(b, subscribed) for b in bases)), timeout=30
        )
        out.extend(found)

    thread = threading.Thread(target=asyncio.run, args=(both(),), daemon=True)
    thread.start()
    return thread


def _listening(url: str) -> int:
    """How many connections to the database LISTEN for change events."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND query ILIKE 'LISTEN%'"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _token(url: str) -> str:
    with system.build(system.Settings(database_url=url, upgrade=False, worker=False)) as built:
        user, _ = built.org.accounts.create_user("procs@oc.test", "pw", admin=True)
        return built.org.accounts.open_session(user)


def test_two_server_processes_serve_one_ordered_stream(
    fresh_url: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_url("postgresql")
    token = _token(url)
    with (
        _serve(url, tmp_path / "a.log") as (base_a, ps_a),
        _serve(url, tmp_path / "b.log") as (
            base_b,
            ps_b,
        ),
    ):
        ready = threading.Event()
        cometd: list[list[tuple[int, str]]] = []
        thread = _cometd(token, [base_a, base_b], ready, cometd)
        channels = [grpc.insecure_channel(f"127.0.0.1:{p}") for p in (ps_a, ps_b)]
        stubs = [pb_grpc.PubSubStub(c) for c in channels]
        subs = [
            Subscription(s, token, pb.FetchRequest(topic_name=CHANNEL, num_requested=EVENTS))
            for s in stubs
        ]
        try:
            for sub in subs:
                assert list(sub.next(timeout=10).events) == []  # the first keepalive: set up
            assert ready.wait(20), "aiosfstream-ng did not subscribe"
            time.sleep(1.0)  # the connects that follow the subscriptions are held by now
            # CometD and the Pub/Sub API of one process share one watcher: one LISTEN each
            assert _listening(url) == 2
            made = []
            for i in range(EVENTS):  # commits through either process, in turn
                base = (base_a, base_b)[i % 2]
                reply = requests.post(
                    f"{base}/services/data/v59.0/sobjects/Contact",
                    json={"LastName": f"Proc{i}"},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                assert reply.status_code == 201, reply.text
                made.append(reply.json()["id"])
            pubsub = []
            for stub, sub in zip(stubs, subs, strict=True):
                evs = sub.events(EVENTS, timeout=15)
                pubsub.append(
                    [
                        (
                            rid(ev.replay_id),
                            decode(stub, token, ev)["ChangeEventHeader"]["recordIds"][0],
                        )
                        for ev in evs
                    ]
                )
            thread.join(timeout=30)
            assert not thread.is_alive() and len(cometd) == 2, "CometD subscribers did not finish"
        finally:
            for sub in subs:
                sub.close()
            for channel in channels:
                channel.close()
        expected = pubsub[0]
        assert [record for _, record in expected] == made
        replay_ids = [r for r, _ in expected]
        assert replay_ids == sorted(set(replay_ids))
        assert pubsub[1] == expected and cometd[0] == expected and cometd[1] == expected
