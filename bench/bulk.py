"""Bulk API 2.0 through ``opencadence serve`` vs the storage layer and hand-written SQL, one run.

(a) Ingest: N contacts loaded from a CSV file by unmodified simple-salesforce
    (``sf.bulk2.Contact.insert``: create the job, upload, UploadComplete, poll until
    JobComplete) into a server whose worker runs the job, vs the storage layer inserting the
    same contacts (``Tx.insert`` per record, 2,000 per transaction: the job's chunk size) into
    a fresh database of the same kind, before and after (the mean). Goal: ratio >= 0.7.
(b) Extract: M step trackers queried to a CSV file through Bulk 2.0 (``sf.bulk2...download``:
    the query job runs in the server's worker, pages of 50,000 records fetched with locators)
    vs the same SQL run by hand and written with ``csv.writer``. Goal: ratio >= 0.5, with the
    server's RSS sampled while it runs (flat: the results are streamed both ways).

    python bench/bulk.py [--quick] [--database sqlite|URL]

The last line is the headline, the worse of the two against its goal: ``ratio=X goal>=Y``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from opencadence import ids, system
from opencadence.storage import database

INGEST_GOAL, QUERY_GOAL = 0.7, 0.5
QUERY = "SELECT Id, State, StepType, StepTitle, DueDateTime, TargetId FROM ActionCadenceStepTracker"
SQL = (
    'SELECT "Id", "State", "StepType", "StepTitle", "DueDateTime", "TargetId" '
    'FROM "ActionCadenceStepTracker" WHERE "IsDeleted" = false'
)
STATES = ["Active", "Completed", "Queued", "Scheduled", "InProgress"]
TYPES = ["MakeACall", "AutoSendAnEmail", "Wait", "SendAnEmail", "CreateTask"]


def contact_rows(n: int) -> list[dict[str, Any]]:
    return [
        {"FirstName": f"Ada{i}", "LastName": f"Bulk{i:07d}", "Email": f"bulk{i}@example.com"}
        for i in range(n)
    ]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


#: PostgreSQL databases this run made (dropped at the end).
MADE: list[str] = []


def fresh_url(kind: str, work: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{work / (name + '.db')}"
    admin = sa.create_engine(kind, isolation_level="AUTOCOMMIT")
    db = f"oc_bench_{name}_{os.getpid()}"
    MADE.append(db)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return kind.rsplit("/", 1)[0] + "/" + db


def build(url: str) -> system.System:
    return system.build(system.Settings(database_url=url, worker=False))


def token_for(url: str) -> str:
    with build(url) as oc:
        user_id, _ = oc.org.accounts.create_user("bench@oc.test", "pw-bench-1", admin=True)
        return oc.org.accounts.open_session(user_id)


def serve(url: str, port: int, certs: Path) -> subprocess.Popen[bytes]:
    """``opencadence serve`` with its worker thread (it runs the jobs), TLS: simple-salesforce
    builds https URLs for the Bulk APIs."""
    command = [sys.executable, "-m", "opencadence", "serve", "--database", url]
    command += ["--port", str(port), "--tls", "--cert-dir", str(certs), "--pubsub-port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"https://127.0.0.1:{port}/services/data/", timeout=1, verify=False)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [rss_mb(pid)], threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.samples.append(rss_mb(self.pid))


def client(port: int, token: str, certs: Path) -> Any:
    from simple_salesforce import Salesforce

    session = requests.Session()
    session.trust_env = False
    session.verify = str(certs / "cert.pem")
    return Salesforce(session_id=token, instance=f"127.0.0.1:{port}", session=session)


# --- (a) ingest ---------------------------------------------------------------------------------


def storage_rate(url: str, rows: list[dict[str, Any]], chunk: int = 2000) -> float:
    with build(url) as oc:
        store = oc.store
        start = time.perf_counter()
        for i in range(0, len(rows), chunk):
            with store.transaction() as tx:
                for row in rows[i : i + chunk]:
                    tx.insert("Contact", row)
        return len(rows) / (time.perf_counter() - start)


def bulk_rate(sf: Any, csv_path: Path, n: int) -> float:
    start = time.perf_counter()
    [result] = sf.bulk2.Contact.insert(csv_file=str(csv_path), wait=0.05)
    elapsed = time.perf_counter() - start
    assert result["numberRecordsProcessed"] == n, result
    assert result["numberRecordsFailed"] == 0, result
    return n / elapsed


# --- (b) extract --------------------------------------------------------------------------------


def seed_trackers(url: str, m: int) -> None:
    rnd = random.Random(7)
    base = datetime(2026, 1, 5, 9)
    with build(url) as oc:
        for start in range(0, m, 10_000):
            rows = [
                {
                    "ActionCadenceId": ids.make_id("77C", 10 + i % 50),
                    "ActionCadenceName": f"Cadence {i % 50}",
                    "ActionCadenceStepId": ids.make_id("0cS", 10 + i % 300),
                    "ActionCadenceTrackerId": ids.make_id("0cT", 10 + i // 6),
                    "TargetId": ids.make_id("003", 10 + i // 10),
                    "State": rnd.choice(STATES),
                    "StepType": rnd.choice(TYPES),
                    "StepTitle": f"Step {i % 6}",
                    "DueDateTime": base + timedelta(minutes=i),
                    "GoToStepIterationCount": 1,
                }
                for i in range(start, min(m, start + 10_000))
            ]
            with oc.store.transaction() as tx:
                tx.insert_many("ActionCadenceStepTracker", rows, system=True)


def sql_to_csv(url: str, out: Path) -> float:
    engine = database.create_engine(url)
    start = time.perf_counter()
    with engine.connect() as conn, out.open("w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(["Id", "State", "StepType", "StepTitle", "DueDateTime", "TargetId"])
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(sa.text(SQL))
        for row in result:
            w.writerow(row)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def bulk_query(sf: Any, m: int, pid: int, work: Path) -> tuple[float, list[float]]:
    sampler = RssSampler(pid)
    sampler.start()
    try:
        start = time.perf_counter()
        pages = sf.bulk2.ActionCadenceStepTracker.download(QUERY, str(work), wait=0.05)
        elapsed = time.perf_counter() - start
    finally:
        sampler.done.set()
    got = sum(p["number_of_records"] for p in pages)
    assert got == m, (got, m)
    return elapsed, sampler.samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurements, small sizes")
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--contacts", type=int)
    parser.add_argument("--trackers", type=int)
    args = parser.parse_args()
    import urllib3

    urllib3.disable_warnings()  # the start-up probe does not check the fresh certificate
    n = args.contacts or (10_000 if args.quick else 100_000)
    m = args.trackers or (50_000 if args.quick else 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="ocbulk"))
    rows = contact_rows(n)
    csv_path = work / "contacts.csv"
    write_csv(csv_path, rows)

    # the storage baseline runs before and after the server's run (the mean is used): on a
    # shared machine the load moves between them
    before = storage_rate(fresh_url(args.database, work, "storage1"), rows)
    url = fresh_url(args.database, work, "bulk")
    seed_trackers(url, m)
    token = token_for(url)
    certs = work / "tls"
    server = serve(url, 18491, certs)
    try:
        sf = client(18491, token, certs)
        ours = bulk_rate(sf, csv_path, n)
        bulk_s, rss = bulk_query(sf, m, server.pid, work)
    finally:
        stop(server)
    sql_s = sql_to_csv(url, work / "by-hand.csv")
    after = storage_rate(fresh_url(args.database, work, "storage2"), rows)
    base = (before + after) / 2
    ingest = ours / base
    query = sql_s / bulk_s
    print(
        f"(a) ingest {n:,} contacts ({args.database}): Bulk 2.0 via simple-salesforce "
        f"{ours:,.0f} rows/s, storage layer Tx.insert {base:,.0f} rows/s "
        f"({before:,.0f} before, {after:,.0f} after), "
        f"ratio {ingest:.2f} (goal >= {INGEST_GOAL})"
    )
    print(
        f"(b) extract {m:,} step trackers to CSV ({args.database}): Bulk 2.0 {bulk_s:.2f} s "
        f"({m / bulk_s:,.0f} rows/s), hand-written SQL {sql_s:.2f} s, ratio {query:.2f} "
        f"(goal >= {QUERY_GOAL}); server RSS {rss[0]:.0f} MB at start, {max(rss):.0f} MB peak"
    )
    if MADE:
        admin = sa.create_engine(args.database, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for db in MADE:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
    worse = min((ingest, INGEST_GOAL), (query, QUERY_GOAL), key=lambda p: p[0] / p[1])
    print(f"ratio={worse[0]:.2f} goal>={worse[1]}")


if __name__ == "__main__":
    main()
