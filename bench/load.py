"""Mixed load through `opencadence serve` (a separate process, its worker thread running) on
SQLite and on PostgreSQL: C concurrent clients for S seconds, each a keep-alive HTTP session
looping over SOQL queries, Contact creates and updates, enrolments (the
assignTargetToSalesCadence action) and logged calls (a Task with TaskSubtype 'Call' on an
enrolled target, which moves its cadence in the same request).

Per database: requests/s, p50/p99 latency, 5xx count and the 4xx errorCodes (a lock not
obtained is UNABLE_TO_LOCK_ROW, 400, never a 500). Goals (issue 10): 0 5xx on both,
p99 under 1 s on PostgreSQL. The headline ``ratio`` = 1 s / PostgreSQL p99 (0 if any request
failed with a 5xx on either database).

    python bench/load.py [--quick] [--clients C] [--seconds S]

PostgreSQL: $OPENCADENCE_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
where a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from opencadence import system
from opencadence.cadence import definition_file
from opencadence.storage import database

API = "/services/data/v60.0"
PG_ADMIN = os.environ.get(
    "OPENCADENCE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: operation -> weight in the mix
MIX = {"query": 40, "create": 20, "update": 15, "enrol": 15, "call": 10}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Org:
    token: str
    cadence: str
    user: str
    contacts: list[str]


def prepare(url: str, n_contacts: int) -> Org:
    with system.build(system.Settings(database_url=url, worker=False)) as oc:
        user, _ = oc.org.accounts.create_user("load@oc.test", "pw", admin=True)
        token = oc.org.accounts.open_session(user)
        data = {
            "cadence": {"Name": "Load"},
            "state": "Active",
            "steps": [
                {"StepName": "root", "Type": "Root", "StepTitle": "root"},
                {
                    "StepName": "call",
                    "Type": "MakeACall",
                    "StepTitle": "c",
                    "ParentStepName": "root",
                },
                {
                    "StepName": "task",
                    "Type": "CreateTask",
                    "StepTitle": "t",
                    "ParentStepName": "call",
                },
            ],
        }
        cadence = definition_file.import_definition(oc.store, data)
        with oc.store.transaction() as tx:
            rows = [{"LastName": f"L{i}", "Email": f"l{i}@example.com"} for i in range(n_contacts)]
            contacts = tx.insert_many("Contact", rows)
    return Org(token, cadence, user, contacts)


def serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "opencadence", "serve", "--database", url, "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/services/data/", timeout=1)
            return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    lock = threading.Lock()

    def add(self, took: float, response: requests.Response | None) -> None:
        with self.lock:
            self.latencies.append(took)
            if response is None:
                self.statuses[0] += 1
                return
            self.statuses[response.status_code] += 1
            if response.status_code >= 400:
                try:
                    self.codes[response.json()[0]["errorCode"]] += 1
                except Exception:
                    self.codes["(no JSON)"] += 1


class Client:
    """One keep-alive session working through the mix on its own slice of contacts."""

    def __init__(self, base: str, org: Org, contacts: list[str], seed: int) -> None:
        self.base, self.org = base, org
        self.free = list(contacts)  # not enrolled yet
        self.enrolled: list[str] = []
        self.mine: list[str] = []  # created by this client (updated later)
        self.rng = random.Random(seed)
        self.s = requests.Session()
        self.s.trust_env = False
        self.s.headers["Authorization"] = f"Bearer {org.token}"

    def one(self) -> requests.Response:
        op = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if op == "update" and not self.mine:
            op = "create"
        if op == "enrol" and not self.free:
            op = "query"
        if op == "call" and not self.enrolled:
            op = "enrol" if self.free else "query"
        return getattr(self, op)()

    def query(self) -> requests.Response:
        n = self.rng.randrange(len(self.org.contacts))
        q = f"SELECT Id, LastName, Email FROM Contact WHERE LastName = 'L{n}' LIMIT 10"
        return self.s.get(f"{self.base}{API}/query/", params={"q": q}, timeout=120)

    def create(self) -> requests.Response:
        r = self.s.post(
            f"{self.base}{API}/sobjects/Contact/",
            json={"LastName": f"N{uuid.uuid4().hex[:8]}"},
            timeout=120,
        )
        if r.status_code == 201:
            self.mine.append(r.json()["id"])
        return r

    def update(self) -> requests.Response:
        cid = self.rng.choice(self.mine)
        return self.s.patch(
            f"{self.base}{API}/sobjects/Contact/{cid}",
            json={"Title": f"T{self.rng.randrange(1000)}"},
            timeout=120,
        )

    def enrol(self) -> requests.Response:
        target = self.free.pop()
        body = {"inputs": [{"salesCadenceNameOrId": self.org.cadence, "targetId": target}]}
        r = self.s.post(
            f"{self.base}{API}/actions/standard/assignTargetToSalesCadence", json=body, timeout=120
        )
        if r.status_code == 200 and r.json()[0].get("isSuccess"):
            self.enrolled.append(target)
        return r

    def call(self) -> requests.Response:
        target = self.enrolled.pop()
        return self.s.post(
            f"{self.base}{API}/sobjects/Task/",
            json={"Subject": "Call", "WhoId": target, "TaskSubtype": "Call", "Status": "Completed"},
            timeout=120,
        )


def run_load(base: str, org: Org, clients: int, seconds: float) -> tuple[Results, float]:
    results = Results()
    per = len(org.contacts) // clients
    workers = [
        Client(base, org, org.contacts[i * per : (i + 1) * per], seed=i) for i in range(clients)
    ]
    start = threading.Barrier(clients + 1)
    end_at: list[float] = []

    def loop(c: Client) -> None:
        start.wait()
        while time.monotonic() < end_at[0]:
            began = time.perf_counter()
            try:
                r: requests.Response | None = c.one()
            except requests.RequestException:
                r = None
            results.add(time.perf_counter() - began, r)

    threads = [threading.Thread(target=loop, args=(c,)) for c in workers]
    for t in threads:
        t.start()
    end_at.append(time.monotonic() + seconds)
    began = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    return results, time.monotonic() - began


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def measure(name: str, url: str, clients: int, seconds: float, work: Path) -> dict[str, Any]:
    org = prepare(url, n_contacts=clients * 200)
    port = free_port()
    server = serve(url, port, work / f"{name}.log")
    try:
        results, took = run_load(f"http://127.0.0.1:{port}", org, clients, seconds)
        health = requests.get(f"http://127.0.0.1:{port}/_opencadence/health", timeout=30)
    finally:
        server.terminate()
        server.wait(30)
    lat = results.latencies
    fivexx = sum(n for s, n in results.statuses.items() if s >= 500 or s == 0)
    out = {
        "rps": len(lat) / took,
        "p50": statistics.median(lat) if lat else 0.0,
        "p99": percentile(lat, 0.99),
        "5xx": fivexx,
        "n": len(lat),
        "codes": dict(results.codes),
        "health": health.status_code,
    }
    print(
        f"{name}: {clients} clients x {seconds:.0f} s: {out['n']:,} requests, "
        f"{out['rps']:,.0f} req/s, p50 {out['p50'] * 1000:.0f} ms, p99 {out['p99'] * 1000:.0f} ms, "
        f"5xx {fivexx}, 4xx codes {out['codes'] or '{}'}, health {out['health']} "
        f"(goal: 0 5xx{', p99 < 1 s' if name == 'postgresql' else ''})",
        flush=True,
    )
    return out


def pg_database() -> tuple[str, sa.Engine, str]:
    admin = sa.create_engine(database.normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    name = f"oc_bench_load_{os.getpid()}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(database.normalize_url(PG_ADMIN)).set(database=name)
    return url.render_as_string(hide_password=False), admin, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurement, small sizes")
    parser.add_argument("--clients", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    args = parser.parse_args()
    clients = args.clients or (20 if args.quick else 50)
    seconds = args.seconds or (4.0 if args.quick else 60.0)
    work = Path(tempfile.mkdtemp(prefix="ocload"))
    runs: dict[str, dict[str, Any]] = {}
    if args.only != "postgresql":
        runs["sqlite"] = measure("sqlite", f"sqlite:///{work / 'load.db'}", clients, seconds, work)
    if args.only != "sqlite":
        url, admin, name = pg_database()
        try:
            runs["postgresql"] = measure("postgresql", url, clients, seconds, work)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    failed = sum(r["5xx"] for r in runs.values())
    headline = runs.get("postgresql") or runs["sqlite"]  # the p99 goal is PostgreSQL's
    ratio = 0.0 if failed else 1.0 / max(headline["p99"], 1e-6)
    print(f"ratio={ratio:.2f} goal>=1.00")


if __name__ == "__main__":
    main()
