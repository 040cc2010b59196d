"""What idle CometD subscribers cost the rest of the server, in one run:

the p50 of a 10-record SOQL query (REST, one keep-alive client) against `opencadence serve`
(a separate process, plain HTTP on 127.0.0.1, no worker) with no subscriber and with N
subscribers (default 100) each holding a /meta/connect (handshake, subscribe to
/data/ChangeEvents, connect: the raw Bayeux messages aiosfstream-ng sends), in alternating
rounds; then the server's CPU while the subscribers wait and nothing else happens, and the time
one commit by another process takes to reach all of them. The headline is the p50 with
subscribers / the p50 without.

    python bench/streaming_idle.py [--quick] [--database URL] [--subscribers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import requests

from opencadence import system

QUERY = "SELECT Id, LastName, Email FROM Contact WHERE FirstName = 'G7'"
PORT = 18460


def prepare(db: str, n_contacts: int) -> str:
    with system.build(system.Settings(database_url=db, worker=False)) as oc:
        with oc.store.transaction() as tx:
            tx.insert_many(
                "Contact",
                [
                    {"FirstName": f"G{i % (n_contacts // 10)}", "LastName": f"P{i}"}
                    for i in range(n_contacts)
                ],
            )
        user_id, _ = oc.org.accounts.create_user("idle@oc.test", "pw", admin=True)
        return oc.org.accounts.open_session(user_id)


def serve(db: str, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "opencadence", "serve", "--database", db]
    args += ["--port", str(PORT), "--no-worker"]
    # its log goes to a file: an unread pipe would stop the server once it filled up
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{PORT}/services/data/", timeout=1)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(
        f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
    )


def query_ms(session: requests.Session, token: str, reps: int) -> list[float]:
    url = f"http://127.0.0.1:{PORT}/services/data/v59.0/query/"
    headers = {"Authorization": f"Bearer {token}"}
    session.get(url, params={"q": QUERY}, headers=headers).raise_for_status()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        response = session.get(url, params={"q": QUERY}, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.json()["totalSize"] == 10
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_share(pid: int, seconds: float) -> float:
    """The share of one core process ``pid`` uses over ``seconds`` while nobody queries."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


class Subscribers:
    """N Bayeux long-polling clients on a loop of their own (a thread of this process)."""

    def __init__(self, token: str, n: int) -> None:
        self.token, self.n = token, n
        self.held = 0
        self.received = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stopping: asyncio.Event | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        deadline = time.monotonic() + 60
        while self.held < self.n:  # every subscriber is waiting in a held /meta/connect
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.held} of {self.n} subscribers held")
            time.sleep(0.05)
        time.sleep(0.5)  # their first reads are done

    async def _start(self) -> None:
        self.stopping = asyncio.Event()
        limits = aiohttp.TCPConnector(limit=0)
        self.http = aiohttp.ClientSession(
            connector=limits, headers={"Authorization": f"Bearer {self.token}"}
        )
        self.tasks = [asyncio.create_task(self._one()) for _ in range(self.n)]

    async def _post(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{PORT}/cometd/59.0"
        async with self.http.post(url, json=list(messages)) as response:
            return await response.json()  # type: ignore[no-any-return]

    async def _one(self) -> None:
        shake = (await self._post({"channel": "/meta/handshake"}))[0]
        cid = shake["clientId"]
        channel = "/data/ChangeEvents"
        await self._post({"channel": "/meta/subscribe", "clientId": cid, "subscription": channel})
        await self._post({"channel": "/meta/connect", "clientId": cid})
        while True:
            self.held += 1
            try:
                replies = await self._post({"channel": "/meta/connect", "clientId": cid})
            finally:
                self.held -= 1
            self.received += sum(1 for r in replies if "data" in r)

    def stop(self) -> None:
        async def close() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.http.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def one_commit_reaches_all(db: str, subs: Subscribers) -> float:
    """Seconds from one commit (by this process: another process to the server) until every
    subscriber has its event."""
    before = subs.received
    with system.build(system.Settings(database_url=db, worker=False, upgrade=False)) as oc:
        start = time.monotonic()
        with oc.store.transaction() as tx:
            tx.insert("Contact", {"LastName": "wake"})
    deadline = start + 30
    while subs.received < before + subs.n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert subs.received >= before + subs.n, (subs.received - before, subs.n)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurement, small sizes")
    parser.add_argument("--database", help="database URL (default: a new SQLite file)")
    parser.add_argument("--subscribers", type=int, default=100)
    args = parser.parse_args()
    n_contacts = 2_000 if args.quick else 10_000
    reps = 40 if args.quick else 200
    rounds = 2 if args.quick else 5
    work = Path(tempfile.mkdtemp(prefix="ocidle"))
    db = args.database or f"sqlite:///{work / 'idle.db'}"
    token = prepare(db, n_contacts)
    server = serve(db, work / "server.log")
    alone: list[float] = []
    crowded: list[float] = []
    try:
        session = requests.Session()
        session.trust_env = False
        for _ in range(rounds):  # alternating, so the machine's drift falls on both sides
            alone += query_ms(session, token, reps)
            subs = Subscribers(token, args.subscribers)
            subs.start()
            crowded += query_ms(session, token, reps)
            subs.stop()
        alone += query_ms(session, token, reps)
        subs = Subscribers(token, args.subscribers)
        subs.start()
        idle_cpu = idle_cpu_share(server.pid, 3.0)
        wake = one_commit_reaches_all(db, subs)
        subs.stop()
    finally:
        server.kill()
        server.wait()
    without, with_ = statistics.median(alone), statistics.median(crowded)
    print(
        f"database: {db.split(':', 1)[0]}; {n_contacts:,} contacts; {rounds} rounds of {reps} queries"
    )
    print(
        f"query p50 without subscribers {without:.2f} ms, "
        f"with {args.subscribers} idle subscribers {with_:.2f} ms"
    )
    print(
        f"server CPU while {args.subscribers} subscribers wait, no queries: {idle_cpu:.1%} of a core"
    )
    print(f"one commit (another process) reached all {args.subscribers} in {wake:.2f} s")
    print(f"ratio={with_ / without:.2f} goal<=1.2")


if __name__ == "__main__":
    main()
