"""Would records built as JSON by the database make a REST query page cheaper? Measured.

The 2,000-record page of ``bench/soql.py`` (Id, State, StepType, DueDateTime, TargetId of
ActionCadenceStepTracker), rendered to the bytes of a REST response's ``records`` array, three
ways on the same connection, timed in alternation (best of many runs: the machine is shared):

- ``python``: the fast path as it is: the compiled page SELECT run on the driver (dateTime text
  from the database), records shaped as dicts by ``ShapePlan.records``, rendered by orjson;
- ``concat``: one JSON text per row built by the database with ``||`` and the engine's JSON
  string quoting (SQLite ``json_quote``, PostgreSQL ``to_json(..)::text``; byte-identical to
  orjson's for every character, checked), joined by Python;
- ``object``: SQLite ``json_object`` / PostgreSQL ``json_build_object`` per row (PostgreSQL's
  puts spaces after ``:`` and ``,``: not the API's bytes, timed only as the engine's own
  constructor's cost).

Prints each way's time and its ratio to ``python``; the headline is the best database-built
way's ratio (below 1.0 would mean the database building records pays).

    python bench/soql_dbjson.py [--quick] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))

import soql as bench  # noqa: E402  (bench/soql.py: the data set and the page query)
from opencadence import system  # noqa: E402
from opencadence.clock import ManualClock  # noqa: E402
from opencadence.storage import fastread  # noqa: E402

OBJECT = "ActionCadenceStepTracker"
FIELDS = ("Id", "State", "StepType", "DueDateTime", "TargetId")


def _sql(sqlite: bool, how: str, base: str) -> str:
    prefix = f"{base}{OBJECT}/"
    stored = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]000"
    if sqlite:
        due = (
            f"""CASE WHEN "DueDateTime" GLOB '{stored}' THEN substr("DueDateTime", 1, 10) || 'T' """
            """|| substr("DueDateTime", 12, 12) || '+0000' ELSE """
            """strftime('%Y-%m-%dT%H:%M:%f+0000', "DueDateTime") END"""
        )
    else:
        due = """to_char("DueDateTime", 'YYYY-MM-DD"T"HH24:MI:SS.MS"+0000"')"""
    value = {f: f'"{f}"' for f in FIELDS} | {"DueDateTime": due}
    tail = f'FROM "{OBJECT}" WHERE "IsDeleted" = false ORDER BY "Id" LIMIT 2001'
    if how == "concat":
        quote = "json_quote({})" if sqlite else "coalesce(to_json({})::text, 'null')"
        parts = " || ',' || ".join(f"""'"{f}":' || {quote.format(value[f])}""" for f in FIELDS)
        head = f"""'{{"attributes":{{"type":"{OBJECT}","url":"{prefix}' || "Id" || '"}},'"""
        return f"""SELECT {head} || {parts} || '}}', "Id" {tail}"""
    build = "json_object" if sqlite else "json_build_object"
    pairs = ", ".join(f"'{f}', {value[f]}" for f in FIELDS)
    attrs = f"{build}('type', '{OBJECT}', 'url', '{prefix}' || \"Id\")"
    return f"""SELECT {build}('attributes', {attrs}, {pairs}){"" if sqlite else "::text"}, "Id" {tail}"""


def run(url: str, rows: int, rounds: int) -> list[float]:
    oc = system.build(system.Settings(database_url=url, clock=ManualClock(bench.NOW), worker=False))
    label = oc.engine.dialect.name
    print(f"{label}: loading {rows:,} step trackers...", file=sys.stderr)
    keys = bench.load(oc.engine, rows)
    if label == "postgresql":
        with oc.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    service = oc.org.queries
    soql = next(q for name, q, _sql_text in bench.queries(keys) if name == "page")
    service.query(soql)
    compiled = next(iter(service._cache.values()))
    page = compiled.fast[2000]  # the fast path's own prepared page statement
    plan = compiled.plan
    sqlite = label == "sqlite"
    raw = oc.engine.raw_connection()
    driver: Any = raw.driver_connection
    if sqlite:
        driver.execute("BEGIN")
    else:
        driver.autocommit = True
    lent = fastread.Light(oc.engine, driver)

    def fetch(sql: str) -> list[Any]:
        cursor = driver.cursor()
        cursor.execute(sql)
        out: list[Any] = cursor.fetchall()
        cursor.close()
        return out

    def python() -> bytes:
        return orjson.dumps(plan.records(lent.rows(page)[:2000]))

    def by_database(sql: str) -> Callable[[], bytes]:
        return lambda: ("[" + ",".join([r[0] for r in fetch(sql)[:2000]]) + "]").encode()

    ways = {
        "python": python,
        "concat": by_database(_sql(sqlite, "concat", plan.base)),
        "object": by_database(_sql(sqlite, "object", plan.base)),
    }
    assert ways["concat"]() == python(), "the database's JSON differs from the API's"
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for name, fn in ways.items():
            for _ in range(5):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    raw.close()
    oc.close()
    for name, seconds in best.items():
        print(
            f"{label:10s} {name:8s} best {seconds * 1000:6.2f} ms   "
            f"ratio to python {seconds / best['python']:5.2f}"
        )
    return [min(best["concat"], best["object"]) / best["python"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows, fewer rounds")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "OPENCADENCE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    rounds = 8 if args.quick else 30
    folder = tempfile.mkdtemp(prefix="ocdbjson")
    ratios = run(f"sqlite:///{folder}/bench.db", 20_000, rounds)
    if not args.no_pg:
        ratios += bench.with_pg(args.pg, lambda url: run(url, 20_000, rounds))
    print(f"ratio={min(ratios):.2f} goal<=1.00")


if __name__ == "__main__":
    main()
