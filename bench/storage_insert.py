"""Storage-layer insert throughput vs. a raw SQLAlchemy executemany, in one run.

Inserts N ActionCadenceStepTracker rows through ``Store.insert_many`` (validation, system
fields, IDs, change events) and the same rows through a plain ``conn.execute(insert, rows)``
into a fresh copy of the same schema, both in transactions of --batch rows, on SQLite and on
PostgreSQL. Prints rows/s for both and their ratio; the last line is the headline (the worse
of the two backends).

    python bench/storage_insert.py [--quick] [--rows N] [--pg URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from opencadence import ids, system
from opencadence.clock import ManualClock
from opencadence.storage import database, dialect, records

GOAL = 0.5
STATES = ["Active", "Completed", "Queued", "Scheduled", "InProgress"]
TYPES = ["MakeACall", "AutoSendAnEmail", "Wait", "SendAnEmail", "CreateTask"]


def make_rows(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)
    base = datetime(2026, 1, 5, 9)
    return [
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
            "ScheduledStartDateTime": base + timedelta(minutes=i - 60),
            "GoToStepIterationCount": 1,
        }
        for i in range(n)
    ]


def fresh(url: str) -> system.System:
    """A new database with the schema, as every entry point builds it."""
    return system.build(system.Settings(database_url=url, clock=ManualClock(), worker=False))


def run_store(url: str, rows: list[dict[str, Any]], batch: int) -> float:
    oc = fresh(url)
    store = oc.store
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        with store.transaction() as tx:
            tx.insert_many("ActionCadenceStepTracker", rows[i : i + batch], system=True)
    elapsed = time.perf_counter() - start
    oc.close()
    return len(rows) / elapsed


def run_raw(url: str, rows: list[dict[str, Any]], batch: int) -> float:
    oc = fresh(url)
    eng, table = oc.engine, oc.store.meta.tables["ActionCadenceStepTracker"]
    now = datetime(2026, 1, 5, 9)
    user = records.AUTOMATED_USER
    full = [
        {
            **r,
            "Id": ids.make_id("0cK", 5000 + n),
            "IsDeleted": False,
            "WasEverPaused": False,
            "CreatedDate": now,
            "CreatedById": user,
            "LastModifiedDate": now,
            "LastModifiedById": user,
            "SystemModstamp": now,
        }
        for n, r in enumerate(rows)
    ]
    start = time.perf_counter()
    for i in range(0, len(full), batch):
        with eng.connect() as conn:
            conn = conn.execution_options(**{dialect.WRITE_OPTION: True})
            with conn.begin():
                conn.execute(table.insert(), full[i : i + batch])
    elapsed = time.perf_counter() - start
    oc.close()
    return len(rows) / elapsed


def with_pg_database(admin_url: str, fn: Callable[[str], float]) -> float:
    admin = sa.create_engine(database.normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"oc_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sa.make_url(database.normalize_url(admin_url)).set(database=name)
        return fn(url.render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def measure(backend: str, rows: list[dict[str, Any]], batch: int, pg: str) -> float:
    def sqlite_url() -> str:
        return f"sqlite:///{tempfile.mkdtemp(prefix='ocbench')}/bench.db"

    if backend == "sqlite":
        raw = run_raw(sqlite_url(), rows, batch)
        ours = run_store(sqlite_url(), rows, batch)
    else:
        raw = with_pg_database(pg, lambda url: run_raw(url, rows, batch))
        ours = with_pg_database(pg, lambda url: run_store(url, rows, batch))
    ratio = ours / raw
    print(
        f"{backend:10s} storage {ours:10,.0f} rows/s   raw executemany {raw:10,.0f} rows/s   ratio {ratio:.2f}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurement, 5,000 rows")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1000, help="rows per transaction")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "OPENCADENCE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    n = args.rows or (5_000 if args.quick else 100_000)
    rows = make_rows(n)
    print(f"inserting {n:,} ActionCadenceStepTracker rows, {args.batch} per transaction")
    ratios = [measure("sqlite", rows, args.batch, args.pg)]
    if not args.no_pg:
        ratios.append(measure("postgresql", rows, args.batch, args.pg))
    print(f"ratio={min(ratios):.2f} goal>={GOAL:.2f}")


if __name__ == "__main__":
    main()
