"""``opencadence serve --processes N`` and N ``opencadence worker`` processes on one
PostgreSQL database, as real subprocesses on 127.0.0.1.

- two server processes on one port both answer REST (simple-salesforce); the parent's Pub/Sub
  server streams the events committed through either; the parent's worker thread is in every
  child's health;
- CometD clients are shared by the children: a client's messages answered by both children
  (raw Bayeux on connections pinned to each) lose nothing, and unmodified aiosfstream-ng
  clients, whose connections the kernel spreads over the children, receive every event
  committed after their subscription, in order, none twice;
- every worker loop's heartbeat row is listed by ``/_opencadence/health`` of any process
  (the parent's worker thread and a separate ``opencadence worker``), and a stopped worker's
  row goes away;
- two ``opencadence worker`` processes drain due work: no step tracker transitioned twice,
  none left due;
- SQLite and a manual clock refuse ``--processes 2``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
import sqlalchemy as sa
from aiosfstream_ng import Client, ReplayOption
from simple_salesforce import Salesforce

from opencadence import system
from opencadence.api.pubsub_proto import pubsub_api_pb2 as pb
from opencadence.api.pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from opencadence.cadence import definition_file
from opencadence.clock import ManualClock
from opencadence.storage import database, schema

from .conftest import free_port
from .test_pubsub import Subscription, decode
from .test_streaming import LocalAuth

pytestmark = pytest.mark.postgresql

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "opencadence", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=ENV,
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _health(base: str) -> dict[str, Any]:
    # a new connection per request: the kernel hands each to one of the processes
    with requests.Session() as s:
        reply = s.get(f"{base}/_opencadence/health", timeout=5, headers={"Connection": "close"})
    doc: dict[str, Any] = reply.json()
    return doc


@contextmanager
def _serve(url: str, log: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    pubsub = [] if "--pubsub-port" in extra else ["--pubsub-port", "0"]
    proc = _cli("serve", "--database", url, "--port", str(port), *pubsub, *extra, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if requests.get(f"{base}/_opencadence/health", timeout=5).ok:
                    break
            except requests.RequestException:  # not listening yet, or children starting
                pass
            assert time.monotonic() < deadline, "the server did not start: " + log.read_text()
            time.sleep(0.3)
        yield base, proc
    finally:
        # uvicorn re-raises the SIGTERM it handled once it has shut down
        assert _stop(proc) in (0, -signal.SIGTERM), log.read_text()


def _user(url: str) -> tuple[str, str]:
    """(username, access token) of a new admin."""
    with system.build(system.Settings(database_url=url, upgrade=False, worker=False)) as built:
        user, _ = built.org.accounts.create_user("procs@oc.test", "pw", admin=True)
        return "procs@oc.test", built.org.accounts.open_session(user)


class _PlainHttp(requests.Session):
    """simple-salesforce speaks https only; this session sends its requests over plain http
    to the local server (the client code is untouched)."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text = url.decode() if isinstance(url, bytes) else url
        kwargs.setdefault("headers", {})["Connection"] = "close"  # a new connection each
        return super().request(method, text.replace("https://", "http://", 1), *args, **kwargs)


def _pids(base: str, want: int, tries: int = 200) -> set[int]:
    pids: set[int] = set()
    for _ in range(tries):
        pids.add(_health(base)["pid"])
        if len(pids) >= want:
            break
    return pids


def test_sqlite_and_manual_clock_refuse_processes(tmp_path: Path) -> None:
    for args, said in (
        (["--database", f"sqlite:///{tmp_path}/x.db"], "SQLite has a single writer"),
        (["--database", "postgresql://u@127.0.0.1/x", "--clock", "manual"], "manual clock"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "opencadence", "serve", "--processes", "2", *args],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=60,
        )
        assert done.returncode == 2 and said in done.stderr, done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before the database is touched


def test_two_server_processes_answer_rest_pubsub_and_cometd(
    fresh_url: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_url("postgresql")
    username, token = _user(url)
    pubsub_port = free_port()
    with _serve(
        url, tmp_path / "serve.log", "--processes", "2", "--pubsub-port", str(pubsub_port)
    ) as (base, parent):
        pids = _pids(base, 2)
        assert len(pids) == 2 and parent.pid not in pids, pids  # two children answer
        # the worker thread runs in the parent; every child lists its heartbeat
        [beat] = _health(base)["workerProcesses"]
        assert beat["pid"] == parent.pid and beat["role"] == "server" and beat["alive"]
        # REST through each: simple-salesforce, a new connection per client
        seen: set[int] = set()
        made: list[str] = []
        for i in range(40):
            sf = Salesforce(
                instance=base.removeprefix("http://"),
                session_id=token,
                version="59.0",
                session=_PlainHttp(),
            )
            made.append(sf.Contact.create({"LastName": f"Proc{i}"})["id"])
            found = sf.query(f"SELECT Id, LastName FROM Contact WHERE Id = '{made[-1]}'")
            assert found["records"][0]["LastName"] == f"Proc{i}"
            sf.session.close()
            seen.add(_health(base)["pid"])
        assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 40
        # Pub/Sub: the parent's gRPC server, woken by commits in the children
        channel = grpc.insecure_channel(f"127.0.0.1:{pubsub_port}")
        stub = pb_grpc.PubSubStub(channel)
        sub = Subscription(
            stub,
            token,
            # from the start of the log: the 40 creates above, then the 6 below, however soon
            # the stream opens
            pb.FetchRequest(
                topic_name="/data/ContactChangeEvent", replay_preset=pb.EARLIEST, num_requested=46
            ),
        )
        new = []
        for i in range(6):
            reply = requests.post(
                f"{base}/services/data/v59.0/sobjects/Contact",
                json={"LastName": f"Streamed{i}"},
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                timeout=10,
            )
            assert reply.status_code == 201, reply.text
            new.append(reply.json()["id"])
        try:
            evs = sub.events(46, timeout=30)
            streamed = [decode(stub, token, ev)["ChangeEventHeader"]["recordIds"][0] for ev in evs]
            assert streamed[:40] == made  # in commit order, whichever child committed them
            streamed = streamed[40:]
        finally:
            sub.close()
            channel.close()
        # an event committed through either child reaches the parent's Pub/Sub stream
        assert streamed == new
        del username
        _cometd_across_children(base, token, pids)
        _aiosfstream_across_children(base, token)


def _create(base: str, token: str, name: str) -> str:
    """A Contact through whichever child takes the (new) connection; its id."""
    reply = requests.post(
        f"{base}/services/data/v59.0/sobjects/Contact",
        json={"LastName": name},
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def _pinned(base: str, pids: set[int]) -> dict[int, requests.Session]:
    """A keep-alive session per child: each sends its requests over one connection, which
    the child that accepted it answers (its health tells which)."""
    found: dict[int, requests.Session] = {}
    for _ in range(200):
        session = requests.Session()
        session.trust_env = False
        pid = session.get(f"{base}/_opencadence/health", timeout=5).json()["pid"]
        if pid in found:
            session.close()
        else:
            found[pid] = session
        if len(found) == len(pids):
            return found
    raise AssertionError(f"no connection reached every child: {set(found)} of {pids}")


def _cometd_across_children(base: str, token: str, pids: set[int]) -> None:
    """One client's Bayeux messages, each through a chosen child: handshake and the held
    connects on one, subscription and commits through the other, then the other way round."""
    one, other = _pinned(base, pids).values()
    auth = {"Authorization": f"Bearer {token}"}

    def post(session: requests.Session, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        reply = session.post(f"{base}/cometd/59.0", json=list(messages), headers=auth, timeout=60)
        assert reply.status_code == 200, reply.text
        found: list[dict[str, Any]] = reply.json()
        return found

    def pid(session: requests.Session) -> int:
        return int(session.get(f"{base}/_opencadence/health", timeout=5).json()["pid"])

    pid_one, pid_other = pid(one), pid(other)
    assert pid_one != pid_other
    shake = post(one, {"channel": "/meta/handshake"})[0]
    client_id = shake["clientId"]
    connect = {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"}
    assert post(one, connect)[-1]["successful"]
    got: list[str] = []
    made: list[str] = []
    for holder, via in ((one, other), (other, one), (one, other)):
        out: list[list[dict[str, Any]]] = []

        def held(s: requests.Session = holder, out: list[Any] = out) -> None:
            out.append(post(s, connect))

        thread = threading.Thread(target=held)
        thread.start()
        time.sleep(0.5)  # held by now
        if not made:  # subscribed through the child not holding the connect, which learns it
            sub = post(
                via,
                {
                    "channel": "/meta/subscribe",
                    "clientId": client_id,
                    "subscription": "/data/ContactChangeEvent",
                },
            )[0]
            assert sub["successful"], sub
        made.append(_create(base, token, f"Cometd{len(made)}"))
        thread.join(timeout=10)
        assert not thread.is_alive(), "the held connect was not woken"
        assert out[0][-1]["successful"], out[0]
        got += [m["data"]["payload"]["ChangeEventHeader"]["recordIds"][0] for m in out[0][:-1]]
    assert got == made
    # every message of the client went over these two connections, each to its own child
    assert (pid(one), pid(other)) == (pid_one, pid_other)
    one.close()
    other.close()


def _aiosfstream_across_children(base: str, token: str) -> None:
    """Unmodified aiosfstream-ng clients (their connections spread over the children by the
    kernel, several at a time each): every event committed after they subscribed, in order,
    none twice."""
    clients, events = 3, 12
    ready = threading.Event()
    out: list[list[str]] = []

    async def one(subscribed: Any) -> list[str]:
        got: list[str] = []
        async with Client(LocalAuth(token, base), replay=ReplayOption.NEW_EVENTS) as client:
            await client.subscribe("/data/ContactChangeEvent")
            subscribed()
            async for message in client:
                got.append(message["data"]["payload"]["ChangeEventHeader"]["recordIds"][0])
                if len(got) == events:
                    return got
        return got

    async def all_of_them() -> None:
        count = [0]

        def subscribed() -> None:
            count[0] += 1
            if count[0] == clients:
                ready.set()

        found = await asyncio.wait_for(
            asyncio.gather(*(one(subscribed) for _ in range(clients))), timeout=60
        )
        out.extend(found)

    thread = threading.Thread(target=asyncio.run, args=(all_of_them(),), daemon=True)
    thread.start()
    assert ready.wait(30), "aiosfstream-ng did not subscribe"
    made = []
    for i in range(events):
        made.append(_create(base, token, f"Sfstream{i}"))
        time.sleep(0.2)  # a connect cycle or two between commits
    thread.join(timeout=60)
    assert not thread.is_alive() and len(out) == clients, "aiosfstream-ng did not finish"
    for got in out:
        assert got == made


def _seed_waits(url: str, targets: int) -> None:
    """A cadence root -> wait -> wait, and ``targets`` trackers on the first wait, due in a
    day (the test makes them due once the workers run)."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    settings = system.Settings(
        database_url=url, upgrade=False, worker=False, clock=ManualClock(start)
    )
    with system.build(settings) as built:
        store = built.store
        definition_file.import_definition(
            store,
            {
                "cadence": {"Name": "Procs"},
                "state": "Active",
                "steps": [
                    {"StepName": "root", "Type": "Root"},
                    {
                        "StepName": "w1",
                        "Type": "Wait",
                        "ParentStepName": "root",
                        "WaitTimeInSeconds": 86400,
                    },
                    {
                        "StepName": "w2",
                        "Type": "Wait",
                        "ParentStepName": "w1",
                        "WaitTimeInSeconds": 86400,
                    },
                ],
            },
        )
        user, _ = built.org.accounts.create_user("rep@oc.test", "pw", admin=True)
        with store.transaction() as tx:
            ids = tx.insert_many("Contact", [{"LastName": f"T{i}"} for i in range(targets)])
        for i in range(0, targets, 200):
            res = built.org.actions.assignTargetToSalesCadence(
                [{"salesCadenceNameOrId": "Procs", "targetId": t} for t in ids[i : i + 200]], user
            )
            assert all(r["isSuccess"] for r in res), res[0]


def test_worker_processes_drain_due_work_once_and_health_lists_them(
    fresh_url: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_url("postgresql")
    n = 1500
    _seed_waits(url, n)
    eng = database.create_engine(url)
    run = sa.table(schema.CADENCE_RUN, sa.column("due_at"), sa.column("tracker_id"))
    st = sa.table(
        "ActionCadenceStepTracker",
        sa.column("ActionCadenceTrackerId"),
        sa.column("StepType"),
        sa.column("State"),
    )
    workers = [
        _cli("worker", "--database", url, "--poll", "0.2", log=tmp_path / f"w{i}.log")
        for i in range(2)
    ]
    try:
        with _serve(url, tmp_path / "serve.log", "--no-worker") as (base, _):
            deadline = time.monotonic() + 60
            while len(_health(base)["workerProcesses"]) < 2:  # both loops have started
                assert time.monotonic() < deadline, [
                    (tmp_path / f"w{i}.log").read_text() for i in range(2)
                ]
                time.sleep(0.3)
            listed = _health(base)["workerProcesses"]
            assert {w["pid"] for w in listed} == {w.pid for w in workers}
            assert all(w["alive"] and w["role"] == "worker" for w in listed)
            with eng.begin() as conn:  # everything due now, at once
                conn.execute(
                    run.update().values(due_at=sa.func.now() - sa.text("interval '1 second'"))
                )
            deadline = time.monotonic() + 120
            while True:
                with eng.connect() as conn:
                    left = conn.execute(
                        sa.select(sa.func.count())
                        .select_from(run)
                        .where(run.c.due_at <= sa.func.now())
                    ).scalar_one()
                if left == 0:
                    break
                assert time.monotonic() < deadline, f"{left} trackers still due"
                time.sleep(0.3)
            time.sleep(6)  # a heartbeat is written at most every 5 s
            listed = _health(base)["workerProcesses"]
            moved = {w["pid"]: w["transitions"] for w in listed}
            assert sum(moved.values()) == 2 * n, moved  # wait 1 completed, wait 2 created
            assert all(v > 0 for v in moved.values()), moved  # both took a share
            assert _stop(workers[0]) == 0
            remaining = _health(base)["workerProcesses"]
            assert [w["pid"] for w in remaining] == [workers[1].pid]  # a stopped loop's row goes
    finally:
        for w in workers:
            _stop(w)
    with eng.connect() as conn:
        rows = conn.execute(sa.select(st.c.ActionCadenceTrackerId, st.c.StepType, st.c.State)).all()
    eng.dispose()
    per: dict[str, list[tuple[str, str]]] = {}
    for tracker, title, state in rows:
        per.setdefault(tracker, []).append((title, state))
    assert len(per) == n
    for steps in per.values():  # root and wait 1 completed once, wait 2 opened once
        assert sorted(steps) == [("Root", "Completed"), ("Wait", "Active"), ("Wait", "Completed")]
