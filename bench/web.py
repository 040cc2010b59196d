"""The web app's My Work page for a rep with 10,000 open steps: server time (p50, p95) of the
page vs the SOQL query behind it through the REST API, same data, same run; and the time to
first paint of My Work in headless Chromium (goal < 300 ms).

The server runs in this process (uvicorn in a thread, HTTP on 127.0.0.1, SQLite); a timing
wrapper around the ASGI app measures each request from its first byte received to its last
byte sent. Goal: page p50 <= 1.5 x query p50. Headline: ``ratio = 1.5 / (page/query)``
(bigger is better; goal >= 1.00).

    python bench/web.py [--quick]      (--quick: 2,000 open steps, fewer repetitions)
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import uvicorn

from opencadence import system
from opencadence.api import server as api_server
from opencadence.cadence import definition_file
from opencadence.clock import ManualClock
from opencadence.web import work

GOAL = 1.5
PAINT_GOAL_MS = 300.0
CHROMIUM = "/usr/bin/chromium"


class Timed:
    """ASGI wrapper: server-side milliseconds of each request, by kind (page | query)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: dict[str, list[float]] = {"page": [], "query": []}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        await self.app(scope, receive, send)
        path = scope["path"]
        kind = "page" if path == "/app/work" else "query" if path.endswith("/query") else None
        if kind:
            self.times[kind].append((time.perf_counter() - start) * 1000)


def seed(built: system.System, steps: int) -> tuple[str, str]:
    """A rep with ``steps`` open call steps (one per contact); returns (rep id, admin id)."""
    org = built.org
    admin, _ = org.accounts.create_user("admin@bench.test", "pw-admin", admin=True)
    rep, _ = org.accounts.create_user("rep@bench.test", "pw-rep", time_zone="America/New_York")
    definition = {
        "cadence": {"Name": "Bench calls"},
        "state": "Active",
        "steps": [
            {"StepName": "start", "Type": "Root"},
            {
                "StepName": "call",
                "StepTitle": "Call",
                "Type": "MakeACall",
                "ParentStepName": "start",
                "ScheduledDaysUntilDue": 1,
            },
        ],
    }
    definition_file.import_definition(built.store, definition, admin)
    for lo in range(0, steps, 1000):
        with built.store.transaction(admin) as tx:
            contacts = tx.insert_many(
                "Contact",
                [
                    {"FirstName": "T", "LastName": f"Target{i:05d}", "OwnerId": rep}
                    for i in range(lo, min(lo + 1000, steps))
                ],
            )
        results = org.actions.invoke(
            "assignTargetToSalesCadence",
            [
                {"salesCadenceNameOrId": "Bench calls", "targetId": c, "userId": rep}
                for c in contacts
            ],
            admin,
        )
        assert all(r["isSuccess"] for r in results), results[0]
    return rep, admin


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def log_in(base: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    page = s.get(f"{base}/app/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = s.post(
        f"{base}/app/login",
        data={"csrf": csrf.group(1), "username": "rep@bench.test", "password": "pw-rep"},
    )
    assert answer.url.endswith("/app/work"), answer.url
    return s


def first_paint(base: str, cookies: list[dict[str, Any]], reps: int) -> list[float]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return []
    if shutil.which(CHROMIUM) is None:
        return []
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        ctx.add_cookies(cookies)
        page = ctx.new_page()
        for i in range(reps + 1):
            page.goto(f"{base}/app/work")
            page.wait_for_function(
                "performance.getEntriesByName('first-contentful-paint').length > 0"
            )
            fcp = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0].startTime"
            )
            if i:  # the first load also fetches (then caches) the static assets
                out.append(float(fcp))
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 steps, fewer repetitions")
    args = parser.parse_args()
    steps, reps, paints = (2_000, 15, 3) if args.quick else (10_000, 60, 10)
    work_dir = Path(tempfile.mkdtemp(prefix="ocweb"))
    clock = ManualClock(datetime(2026, 12, 1, 15, tzinfo=UTC))
    settings = system.Settings(
        database_url=f"sqlite:///{work_dir / 'web.db'}", worker=False, clock=clock
    )
    with system.build(settings) as built:
        started = time.perf_counter()
        rep, _ = seed(built, steps)
        print(f"seeded {steps:,} open steps in {time.perf_counter() - started:.1f} s")
        timed = Timed(api_server.app(built))
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = uvicorn.Config(timed, host="127.0.0.1", port=port, log_level="error")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            s = log_in(base)
            token = built.org.accounts.open_session(rep)
            session = built.org.accounts.session(token)
            soql = work.soql(session, work.Filters({}))
            api = requests.Session()
            api.trust_env = False
            api.headers["Authorization"] = f"Bearer {token}"
            query_url = f"{base}/services/data/v62.0/query"
            for _ in range(3):  # warm both
                assert s.get(f"{base}/app/work").status_code == 200
                assert api.get(query_url, params={"q": soql}).status_code == 200
            timed.times = {"page": [], "query": []}
            for _ in range(reps):  # interleaved: the same machine load for both
                page = s.get(f"{base}/app/work")
                assert page.status_code == 200 and page.text.count('class="step') == work.PAGE_SIZE
                found = api.get(query_url, params={"q": soql})
                assert (
                    found.status_code == 200 and len(found.json()["records"]) == work.PAGE_SIZE + 1
                )
            pages, queries = timed.times["page"], timed.times["query"]
            cookies = [{"name": c.name, "value": c.value or "", "url": base} for c in s.cookies]
            fcp = first_paint(base, cookies, paints)
        finally:
            server.should_exit = True
            thread.join(10)
    page50, page95 = statistics.median(pages), pct(pages, 0.95)
    query50, query95 = statistics.median(queries), pct(queries, 0.95)
    actual = page50 / query50
    print(f"open steps: {steps:,}; page size {work.PAGE_SIZE}; {reps} requests each")
    print(f"My Work page  server p50 {page50:7.2f} ms  p95 {page95:7.2f} ms")
    print(f"SOQL via API  server p50 {query50:7.2f} ms  p95 {query95:7.2f} ms")
    print(f"page / query p50 = {actual:.2f} (goal <= {GOAL})")
    if fcp:
        med = statistics.median(fcp)
        print(
            f"first contentful paint (headless Chromium): p50 {med:.0f} ms, max {max(fcp):.0f} ms "
            f"(goal < {PAINT_GOAL_MS:.0f} ms) {'ok' if med < PAINT_GOAL_MS else 'MISSED'}"
        )
    else:
        print("first paint: not measured (no playwright or no /usr/bin/chromium)")
    print(f"ratio={GOAL / actual:.2f} goal>=1.00")
    shutil.rmtree(work_dir, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
