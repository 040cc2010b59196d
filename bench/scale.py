"""A large active population on PostgreSQL, worked by 1, 2 and 4 ``opencadence worker``
processes while the API serves queries.

Seeding (not timed in the figures): a cadence of twelve Wait steps (a day each) and one target
driven through the real API and worker to its ninth wait, so its rows are exactly what the
runtime writes; then that target, its tracker, its ten step trackers and its run-state row are
cloned N times by ``INSERT ... SELECT ... FROM generate_series`` (IDs minted in SQL: the
template's key prefix and instance, then 'z' and eight decimal digits, whose case-safe suffix
is the same for every clone), with the secondary indexes of Contact and the two tracker tables
dropped during the load and rebuilt after it, then VACUUM ANALYZE. N active trackers on a Wait
step, 10 N step trackers.

Measured in rounds of W = 1, 2, 4, 1, 2 worker processes (``--quick``: 1, 2; the best round of each W is shown,
every round listed): four real ``opencadence worker --poll 0.1`` processes are started once;
those not in a round are frozen with SIGSTOP while idle, so they hold nothing. Each round:

- throughput: B trackers of a fresh slice made due at once; trackers/s until none is due, and
  transitions/s (step-tracker rows written: the wait completed, the next one created);
- lag: trackers made due one after another at half the one-worker rate over D seconds; the
  lag of each transition is its step's CompletionDate (the worker's time at the batch that
  applied it) minus its due time, p50 and p99;
- API: meanwhile one ``opencadence serve --no-worker`` process answers paced REST queries
  (a target's tracker, a tracker's step trackers, 20 a second); p50/p99 of their latency;
- memory: each worker process's RSS before and after its rounds; worker CPU per tracker moved
  and the machine's load average (the machine is shared: a round that got less CPU is slower);
- checks: every tracker of a slice has exactly one more step tracker (no double transition)
  and none of the slice is still due.

- profile (the throughput phase): CPU per tracker moved of every process by role (worker
  processes, their PostgreSQL sessions, the server and its sessions, PostgreSQL's background;
  sessions told apart by ``application_name``), the worker sessions' state and wait event
  (pg_stat_activity sampled every SAMPLE_SECONDS).

Then the statements of one batch applied in this process (round trips and statements
PostgreSQL executes, per tracker) and the database size per million trackers. The headline,
last: ``ratio`` = two-worker / one-worker transitions/s.

    python bench/scale.py [--quick] [--trackers N] [--pg URL] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa

from opencadence import ids, system
from opencadence.cadence import definition_file
from opencadence.clock import ManualClock
from opencadence.storage import counts, database, schema

GOAL = 1.5
WAITS = 12
HISTORY = 10  # step trackers per tracker: root + waits 1..9 (the ninth active)
STEP_SLOTS = 16  # step tracker counters per tracker in the minted IDs
TABLES = ("Contact", "ActionCadenceTracker", "ActionCadenceStepTracker", schema.CADENCE_RUN)
API_RATE = 20.0  # queries a second while measuring
#: The workers' idle poll (``opencadence worker --poll``; default 1 s): a round's due work is
#: found within this long, which would otherwise weigh on rounds of a second or two.
POLL = 0.1


def _pg_url(args: argparse.Namespace) -> str:
    return str(args.pg)


def create_database(url: str) -> str:
    admin = sa.create_engine(database.normalize_url(url), isolation_level="AUTOCOMMIT")
    name = f"oc_scale_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.make_url(database.normalize_url(url)).set(database=name).render_as_string(False)


def drop_database(url: str) -> None:
    parsed = sa.make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    admin.dispose()


# -- seeding -------------------------------------------------------------------------------


@dataclass
class Template:
    contact: str
    tracker: str
    steps: list[str]  # the ten step trackers, oldest first
    token: str


def template(url: str) -> Template:
    """One target driven by the real API and worker to its ninth wait (due in about a day)."""
    wall = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(wall - timedelta(days=HISTORY - 2, hours=1))
    with system.build(system.Settings(database_url=url, clock=clock)) as oc:
        steps: list[dict[str, Any]] = [{"StepName": "root", "Type": "Root"}]
        for i in range(1, WAITS + 1):
            parent = "root" if i == 1 else f"w{i - 1}"
            steps.append(
                {
                    "StepName": f"w{i}",
                    "StepTitle": f"Wait {i}",
                    "Type": "Wait",
                    "ParentStepName": parent,
                    "WaitTimeInSeconds": 86400,
                }
            )
        definition_file.import_definition(
            oc.store, {"cadence": {"Name": "Scale"}, "state": "Active", "steps": steps}
        )
        rep, _ = oc.org.accounts.create_user("scale@oc.test", "pw", admin=True)
        token = oc.org.accounts.open_session(rep)
        with oc.store.transaction() as tx:
            contact = tx.insert("Contact", {"LastName": "Scale", "Email": "scale@example.com"})
        res = oc.org.actions.assignTargetToSalesCadence(
            [{"salesCadenceNameOrId": "Scale", "targetId": contact}], rep
        )
        assert res[0]["isSuccess"], res
        worker = oc.worker
        assert worker is not None
        for _ in range(HISTORY - 2):  # waits 1..8 complete; the ninth is active
            clock.advance(days=1)
            worker.run_until_idle()
        meta = oc.store.meta
        tr, st = meta.tables["ActionCadenceTracker"], meta.tables["ActionCadenceStepTracker"]
        with oc.store.reading() as conn:
            tracker = conn.execute(sa.select(tr.c.Id).where(tr.c.TargetId == contact)).scalar_one()
            step_ids = list(
                conn.execute(
                    sa.select(st.c.Id)
                    .where(st.c.ActionCadenceTrackerId == tracker)
                    .order_by(st.c.CreatedDate, st.c.Id)
                ).scalars()
            )
    assert len(step_ids) == HISTORY, step_ids
    return Template(contact, tracker, step_ids, token)


def minted(prefix: str, counter_sql: str) -> str:
    """SQL for an 18-character ID of ``prefix``: instance, 'z', eight decimal digits of the
    counter; only the prefix and instance can hold capitals, so one suffix fits all."""
    body = f"{prefix}{ids.INSTANCE}0z"
    suffix = ids.checksum(body + "00000000")
    return f"('{body}' || lpad(({counter_sql})::text, 8, '0') || '{suffix}')"


def clone_sql(
    conn: sa.Connection, table: str, key: str, key_value: str, ids_map: dict[str, str]
) -> str:
    """INSERT ... SELECT of ``table``'s template row (``key`` = ``key_value``) for every g of
    the batch, each column whose value is a template ID replaced by the clone's."""
    t = sa.Table(table, sa.MetaData(), autoload_with=conn)
    row = conn.execute(sa.select(t).where(t.c[key] == key_value)).mappings().one()
    exprs = []
    for col in t.columns:
        value = row[col.name]
        if isinstance(value, str) and value in ids_map:
            exprs.append(ids_map[value])
        else:
            exprs.append(f'tpl."{col.name}"')
    cols = ", ".join(f'"{c.name}"' for c in t.columns)
    return (
        f'INSERT INTO "{table}" ({cols}) SELECT {", ".join(exprs)} FROM "{table}" tpl, '
        f'generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) g WHERE tpl."{key}" = :tpl'
    )


def seed(url: str, n: int, say: Any, tpl: Template) -> None:
    ids_map = {
        tpl.contact: minted("003", "g"),
        tpl.tracker: minted(tpl.tracker[:3], "g"),
        **{s: minted(s[:3], f"g * {STEP_SLOTS} + {k}") for k, s in enumerate(tpl.steps)},
    }
    eng = sa.create_engine(database.normalize_url(url))
    began = time.perf_counter()
    with eng.begin() as conn:
        indexes = conn.execute(
            sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t) "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            ),
            {"t": list(TABLES[:3])},  # the run table keeps its: the idle workers claim on it
        ).all()
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        plans = [
            ("Contact", "Id", tpl.contact),
            ("ActionCadenceTracker", "Id", tpl.tracker),
            *[("ActionCadenceStepTracker", "Id", s) for s in tpl.steps],
            (schema.CADENCE_RUN, "tracker_id", tpl.tracker),
        ]
        stmts = [(clone_sql(conn, t, k, v, ids_map), v) for t, k, v in plans]
    chunk = 100_000
    for lo in range(1, n, chunk):
        hi = min(n - 1, lo + chunk - 1)
        with eng.begin() as conn:
            for stmt, value in stmts:
                conn.execute(sa.text(stmt), {"lo": lo, "hi": hi, "tpl": value})
        if n > chunk:
            say(f"cloned {hi:,} of {n:,} trackers")
    loaded = time.perf_counter() - began
    say(f"rows written in {loaded:.1f} s; rebuilding {len(indexes)} indexes")
    began = time.perf_counter()
    with eng.begin() as conn:
        conn.exec_driver_sql("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            conn.exec_driver_sql(definition)
    indexed = time.perf_counter() - began
    with eng.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for t in TABLES:
            conn.exec_driver_sql(f'VACUUM ANALYZE "{t}"')
    with system.build(system.Settings(database_url=url, worker=False, upgrade=False)) as oc:
        with oc.store.engine.begin() as conn:
            counts.recount(conn, oc.store.meta, list(TABLES[:3]))
    eng.dispose()
    say(
        f"cloned {n:,} trackers, {n * HISTORY:,} step trackers: rows {loaded:.1f} s, "
        f"{len(indexes)} indexes rebuilt {indexed:.1f} s"
    )


def tracker_id(tpl: Template, g: int) -> str:
    """The id the seeding minted for clone ``g`` (the same rule as ``minted``, in Python)."""
    body = f"{tpl.tracker[:3]}{ids.INSTANCE}0z"
    return f"{body}{g:08d}{ids.checksum(body + '00000000')}"


def target_id(g: int) -> str:
    body = f"003{ids.INSTANCE}0z"
    return f"{body}{g:08d}{ids.checksum(body + '00000000')}"


# -- processes ---------------------------------------------------------------------------


def cli(*args: str, log: str, app: str) -> subprocess.Popen[bytes]:
    """``opencadence *args``; its database sessions carry ``app`` as their application_name
    (libpq's PGAPPNAME), which is how the profile tells workers' backends from the server's."""
    with open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "opencadence", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PGAPPNAME": app},
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class ApiLoad:
    """Paced REST queries against the server, latency recorded per phase."""

    base: str
    token: str
    n: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token}"
        i = 0
        nxt = time.perf_counter()
        while not self.stop.is_set():
            g = (i * 7919) % (self.n - 1) + 1
            if i % 2:
                q = f"SELECT Id, State, CurrentStepId FROM ActionCadenceTracker WHERE TargetId = '{target_id(g)}'"
            else:
                q = (
                    "SELECT Id, StepTitle, State, CompletionDate FROM ActionCadenceStepTracker "
                    f"WHERE ActionCadenceTrackerId = '{self.tracker(g)}' ORDER BY CreatedDate"
                )
            began = time.perf_counter()
            try:
                r = s.get(f"{self.base}/services/data/v59.0/query", params={"q": q}, timeout=30)
                ok = r.status_code == 200 and r.json()["totalSize"] >= 1
            except requests.RequestException:
                ok = False
            self.latencies.append(time.perf_counter() - began)
            self.errors += not ok
            i += 1
            nxt += 1 / API_RATE
            self.stop.wait(max(0.0, nxt - time.perf_counter()))

    tracker: Any = None


#: application_name prefix of the benchmark's processes' database sessions
APP = "oc-scale-"
#: how often the profile looks at pg_stat_activity
SAMPLE_SECONDS = 0.02


def role_of(app: str, backend_type: str) -> str:
    """Whose a PostgreSQL process is: a worker's session, the server's, the benchmark's own,
    or PostgreSQL's own background (WAL writer, checkpointer, autovacuum...)."""
    if backend_type != "client backend":
        return "pg background"
    if app.startswith(f"{APP}worker"):
        return "worker sessions"
    if app.startswith(f"{APP}serve"):
        return "serve sessions"
    return "bench sessions"


@dataclass
class Profile:
    """What PostgreSQL does while one phase runs: pg_stat_activity sampled every
    SAMPLE_SECONDS (state and wait event of each worker session) and the CPU time of every
    process of this database and of PostgreSQL's background, by role (``role_of``)."""

    url: str
    apps: frozenset[str]  # the application_names whose sessions' waits are sampled
    samples: dict[str, int] = field(default_factory=dict)
    taken: int = 0
    cpu0: dict[int, tuple[str, float]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    QUERY = (
        "SELECT pid, coalesce(application_name, ''), coalesce(backend_type, ''), "
        "coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, '') "
        "FROM pg_stat_activity WHERE (datname = current_database() OR datname IS NULL) "
        "AND pid <> pg_backend_pid()"
    )

    def processes(self, conn: Any) -> dict[int, str]:
        return {r[0]: role_of(r[1], r[2]) for r in conn.execute(self.QUERY).fetchall()}

    def start(self) -> None:
        import psycopg

        conn = psycopg.connect(
            self.url.replace("postgresql+psycopg", "postgresql"), autocommit=True
        )
        self.cpu0 = {pid: (role, proc_cpu(pid)) for pid, role in self.processes(conn).items()}

        def run() -> None:
            with conn:
                while not self.stop.wait(SAMPLE_SECONDS):
                    self.taken += 1
                    for _pid, app, kind, state, wtype, wait in conn.execute(self.QUERY):
                        if app not in self.apps or kind != "client backend":
                            continue
                        if state == "active":
                            what = f"{wtype}:{wait}" if wtype else "active (CPU)"
                        else:
                            what = state
                        self.samples[what] = self.samples.get(what, 0) + 1
                for pid, role in self.processes(conn).items():
                    was = self.cpu0.get(pid, (role, 0.0))[1]
                    self.cpu[role] = self.cpu.get(role, 0.0) + proc_cpu(pid) - was

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)

    def waits(self, top: int = 6) -> str:
        """Worker sessions' states as shares of the samples (summed over sessions)."""
        total = sum(self.samples.values()) or 1
        ordered = sorted(self.samples.items(), key=lambda kv: -kv[1])[:top]
        return ", ".join(f"{k} {v * 100 / total:.0f}%" for k, v in ordered)


def proc_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError):
        return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# -- rounds ------------------------------------------------------------------------------


def naive_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def due_left(conn: sa.Connection, lo: int, hi: int, tpl: Template) -> int:
    return int(
        conn.execute(
            sa.text(
                f'SELECT count(*) FROM "{schema.CADENCE_RUN}" WHERE due_at <= now() AT TIME ZONE '
                "'UTC' AND tracker_id BETWEEN :a AND :b"
            ),
            {"a": tracker_id(tpl, lo), "b": tracker_id(tpl, hi)},
        ).scalar_one()
    )


def make_due(
    conn: sa.Connection, tpl: Template, lo: int, hi: int, at: datetime, spread: float
) -> None:
    """Trackers lo..hi due from ``at``, one after another over ``spread`` seconds."""
    conn.execute(
        sa.text(
            f'UPDATE "{schema.CADENCE_RUN}" SET due_at = :at + make_interval(secs => '
            "(substr(tracker_id, 8, 8)::int - :lo) * :step) WHERE tracker_id BETWEEN :a AND :b"
        ),
        {
            "at": at,
            "lo": lo,
            "step": spread / max(1, hi - lo),
            "a": tracker_id(tpl, lo),
            "b": tracker_id(tpl, hi),
        },
    )


def wait_drained(
    eng: sa.Engine, tpl: Template, lo: int, hi: int, until: float, limit: float
) -> float:
    """Seconds (perf_counter) when no tracker of lo..hi is due any more, after ``until``."""
    deadline = time.perf_counter() + limit
    while True:
        now = time.perf_counter()
        if now >= until:
            with eng.connect() as conn:
                if due_left(conn, lo, hi, tpl) == 0:
                    return now
        if now > deadline:
            raise RuntimeError(f"trackers {lo}..{hi} still due after {limit:.0f} s")
        time.sleep(0.05)


def check_slice(eng: sa.Engine, tpl: Template, lo: int, hi: int) -> tuple[int, int]:
    """(trackers without exactly HISTORY + 1 step trackers, step trackers transitioned twice)."""
    a, b = tracker_id(tpl, lo), tracker_id(tpl, hi)
    with eng.connect() as conn:
        wrong = conn.execute(
            sa.text(
                'SELECT count(*) FROM (SELECT "ActionCadenceTrackerId", count(*) c FROM '
                '"ActionCadenceStepTracker" WHERE "ActionCadenceTrackerId" BETWEEN :a AND :b '
                "GROUP BY 1) x WHERE c <> :want"
            ),
            {"a": a, "b": b, "want": HISTORY + 1},
        ).scalar_one()
        twice = conn.execute(
            sa.text(
                'SELECT count(*) FROM (SELECT "ActionCadenceTrackerId", "StepTitle", count(*) c '
                'FROM "ActionCadenceStepTracker" WHERE "ActionCadenceTrackerId" BETWEEN :a AND :b '
                "GROUP BY 1, 2) x WHERE c > 1"
            ),
            {"a": a, "b": b},
        ).scalar_one()
    return int(wrong), int(twice)


def lags(
    eng: sa.Engine, tpl: Template, lo: int, hi: int, at: datetime, spread: float
) -> list[float]:
    step = spread / max(1, hi - lo)
    with eng.connect() as conn:
        rows = conn.execute(
            sa.text(
                'SELECT substr("ActionCadenceTrackerId", 8, 8)::int, "CompletionDate" FROM '
                '"ActionCadenceStepTracker" WHERE "ActionCadenceTrackerId" BETWEEN :a AND :b '
                'AND "StepTitle" = :title AND "State" = \'Completed\''
            ),
            {"a": tracker_id(tpl, lo), "b": tracker_id(tpl, hi), "title": f"Wait {HISTORY - 1}"},
        ).all()
    return [
        max(0.0, (done - (at + timedelta(seconds=(g - lo) * step))).total_seconds())
        for g, done in rows
    ]


@dataclass
class Round:
    workers: int
    trackers_s: float
    lag: list[float]
    api: list[float]
    api_errors: int
    rss: list[tuple[float, float]]
    wrong: int
    twice: int
    cpu_ms: float  # worker CPU per tracker moved (all active workers, both phases)
    load: float  # the machine's 1-minute load average as the round began
    #: the throughput phase: CPU ms per tracker by role (worker processes, serve, PostgreSQL
    #: sessions and background) and its wall ms per tracker; the worker sessions' waits
    burst_cpu: dict[str, float] = field(default_factory=dict)
    burst_wall_ms: float = 0.0
    waits: str = ""

    @property
    def transitions_s(self) -> float:
        return 2 * self.trackers_s  # a wait completed, the next one created


@dataclass
class Bench:
    eng: sa.Engine
    tpl: Template
    n: int
    base: str
    workers: list[subprocess.Popen[bytes]]
    rss0: list[float]
    burst: int
    spread: float
    serve: int = 0  # the server's pid
    plan: tuple[int, ...] = (1, 2, 4, 1, 2)  # the rounds: how many workers each
    offset: int = 1
    lag_rate: float = 0.0

    def take(self, count: int) -> tuple[int, int]:
        lo, hi = self.offset, self.offset + count - 1
        if hi >= self.n:
            raise RuntimeError("the population is too small for these rounds")
        self.offset = hi + 1
        return lo, hi

    def round(self, count: int) -> Round:
        for i, w in enumerate(self.workers):  # idle now: a frozen one holds nothing
            os.kill(w.pid, signal.SIGCONT if i < count else signal.SIGSTOP)
        time.sleep(0.2)
        machine_load = os.getloadavg()[0]
        active = self.workers[:count]
        cpu0 = sum(cpu_seconds(w.pid) for w in active)
        load = ApiLoad(self.base, self.tpl.token, self.n)
        load.tracker = lambda g: tracker_id(self.tpl, g)
        thread = threading.Thread(target=load.run, daemon=True)
        thread.start()
        lo, hi = self.take(self.burst)
        apps = frozenset(f"{APP}worker{i}" for i in range(count))
        profile = Profile(self.eng.url.render_as_string(False), apps)
        profile.start()
        own0 = [cpu_seconds(w.pid) for w in active] + [cpu_seconds(self.serve)]
        with self.eng.begin() as conn:
            make_due(conn, self.tpl, lo, hi, naive_now() - timedelta(seconds=1), 0.0)
        t0 = time.perf_counter()
        t1 = wait_drained(self.eng, self.tpl, lo, hi, t0, 900)
        rate = self.burst / (t1 - t0)
        own1 = [cpu_seconds(w.pid) for w in active] + [cpu_seconds(self.serve)]
        profile.finish()
        per = 1000 / self.burst
        burst_cpu = {
            "worker processes": (sum(own1[:-1]) - sum(own0[:-1])) * per,
            "serve process": (own1[-1] - own0[-1]) * per,
            **{k: v * per for k, v in sorted(profile.cpu.items())},
        }
        if not self.lag_rate:  # the first round (one worker) sets the offered rate
            self.lag_rate = rate / 2
        llo, lhi = self.take(max(10, min(self.burst // 2, int(self.lag_rate * self.spread))))
        at = naive_now() + timedelta(seconds=0.5)
        with self.eng.begin() as conn:
            make_due(conn, self.tpl, llo, lhi, at, self.spread)
        wait_drained(self.eng, self.tpl, llo, lhi, time.perf_counter() + 0.5 + self.spread, 900)
        load.stop.set()
        thread.join(30)
        cpu = sum(cpu_seconds(w.pid) for w in active) - cpu0
        w1, d1 = check_slice(self.eng, self.tpl, lo, hi)
        w2, d2 = check_slice(self.eng, self.tpl, llo, lhi)
        return Round(
            count,
            rate,
            lags(self.eng, self.tpl, llo, lhi, at, self.spread),
            load.latencies,
            load.errors,
            [(self.rss0[i], rss_mb(w.pid)) for i, w in enumerate(self.workers[:count])],
            w1 + w2,
            d1 + d2,
            cpu * 1000 / (hi - lo + 1 + lhi - llo + 1),
            machine_load,
            burst_cpu,
            (t1 - t0) * per,
            profile.waits(),
        )


def statements(url: str, b: Bench, count: int) -> str:
    """One batch of ``count`` due trackers applied by a worker in this process, its
    statements counted at the driver (SQLAlchemy's before_cursor_execute): round trips, and
    statements PostgreSQL executes (an executemany runs one per row), by kind."""
    from opencadence.cadence.worker import Worker

    lo, hi = b.take(count)
    with b.eng.begin() as conn:
        make_due(conn, b.tpl, lo, hi, naive_now() - timedelta(seconds=1), 0.0)
    calls: dict[str, list[int]] = {}
    with system.build(system.Settings(database_url=url, worker=False, upgrade=False)) as oc:

        def seen(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
            found = re.search(r"(?:INTO|UPDATE|FROM|COPY)\s+\"?(\w+)", stmt)
            kind = f"{stmt.split(None, 1)[0]} {found.group(1) if found else ''}".strip()
            entry = calls.setdefault(kind, [0, 0])
            entry[0] += 1
            entry[1] += len(params) if many else 1

        import psycopg

        copy = psycopg.Cursor.copy

        def copied(cur: Any, stmt: str, *args: Any, **kwargs: Any) -> Any:
            seen(None, cur, stmt, None, None, False)  # one statement, however many rows
            return copy(cur, stmt, *args, **kwargs)

        sa.event.listen(oc.store.engine, "before_cursor_execute", seen)
        psycopg.Cursor.copy = copied  # type: ignore[method-assign]
        try:
            moved = Worker(oc.store).run_once()
        finally:
            psycopg.Cursor.copy = copy  # type: ignore[method-assign]
            sa.event.remove(oc.store.engine, "before_cursor_execute", seen)
    trips = sum(c[0] for c in calls.values())
    executed = sum(c[1] for c in calls.values())
    top = sorted(calls.items(), key=lambda kv: -kv[1][1])[:8]
    kinds = ", ".join(f"{k} {v[1] / moved:.2f}" for k, v in top)
    return (
        f"statements per tracker moved (one batch of {moved}): {trips / moved:.3f} round trips, "
        f"{executed / moved:.2f} executed; per tracker: {kinds}"
    )


def start_processes(url: str, logdir: str) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """``opencadence serve --no-worker`` and four ``opencadence worker`` processes."""
    port = free_port()
    serve = cli(
        "serve",
        "--database",
        url,
        "--no-worker",
        "--pubsub-port",
        "0",
        "--port",
        str(port),
        log=f"{logdir}/serve.log",
        app=f"{APP}serve",
    )
    workers = [
        cli(
            "worker",
            "--database",
            url,
            "--poll",
            str(POLL),
            log=f"{logdir}/w{i}.log",
            app=f"{APP}worker{i}",
        )
        for i in range(4)
    ]
    return f"http://127.0.0.1:{port}", [serve, *workers]


def wait_up(base: str, logdir: str) -> None:
    deadline = time.perf_counter() + 180
    while True:
        try:
            doc = requests.get(f"{base}/_opencadence/health", timeout=2).json()
            if len(doc.get("workerProcesses") or []) >= 4:
                return
        except requests.RequestException:
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"server or workers did not start (see {logdir})")
        time.sleep(0.2)


def sizes(eng: sa.Engine) -> tuple[int, dict[str, int]]:
    with eng.connect() as conn:
        db = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        tables = {
            t: conn.execute(
                sa.text("SELECT pg_total_relation_size(:t)"), {"t": f'"{t}"'}
            ).scalar_one()
            for t in TABLES
        }
    return int(db), {t: int(v) for t, v in tables.items()}


def report(b: Bench, rounds: list[Round], db: int, tables: dict[str, int], stmts: str) -> float:
    """Print the table; returns the headline ratio."""
    best: dict[int, Round] = {}
    for r in rounds:
        if r.workers not in best or r.trackers_s > best[r.workers].trackers_s:
            best[r.workers] = r
    print(
        f"PostgreSQL, {b.n:,} active trackers, {b.n * HISTORY:,} step trackers in history; "
        f"rounds {','.join(map(str, b.plan))} workers (best of each shown): {b.burst:,} trackers due at once, "
        f"then {b.lag_rate:,.0f} due/s for {b.spread:.0f} s (lag); API {API_RATE:.0f} queries/s"
    )
    print(
        "workers  trackers/s  transitions/s  lag p50  lag p99  API p50  API p99  "
        "worker CPU/tracker  load  worker RSS MB (start->end)"
    )
    for count in sorted(best):
        r = best[count]
        api = [x for q in rounds if q.workers == count for x in q.api]
        rss = ", ".join(f"{a:.0f}->{z:.0f}" for a, z in r.rss)
        errors = sum(q.api_errors for q in rounds if q.workers == count)
        print(
            f"{count:>7}  {r.trackers_s:>10,.0f}  {r.transitions_s:>13,.0f}  "
            f"{pct(r.lag, 0.5):>6.2f}s  {pct(r.lag, 0.99):>6.2f}s  {pct(api, 0.5) * 1000:>5.0f}ms  "
            f"{pct(api, 0.99) * 1000:>5.0f}ms  {r.cpu_ms:>16.2f}ms  {r.load:>4.1f}  {rss}"
            + (f"  ({errors} API errors)" if errors else "")
        )
    print("profile of the throughput phase of each best round (CPU ms per tracker moved):")
    for count in sorted(best):
        r = best[count]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in r.burst_cpu.items())
        print(f"  {count} worker(s): wall {r.burst_wall_ms:.2f} ms/tracker; CPU {parts}")
        print(f"    worker sessions (sampled every {SAMPLE_SECONDS * 1000:.0f} ms): {r.waits}")
    print(stmts)
    all_runs = ", ".join(f"{r.workers}:{r.trackers_s:,.0f}@{r.load:.1f}" for r in rounds)
    print(f"every round (workers:trackers/s@load average): {all_runs}")
    twice = sum(r.twice for r in rounds)
    wrong = sum(r.wrong for r in rounds)
    print(
        f"checks: step trackers transitioned twice {twice}, trackers without exactly one new "
        f"step (double or lost) {wrong}, still due 0"
    )
    per_m = 1_000_000 / b.n
    parts = ", ".join(f"{t} {v * per_m / 2**30:.2f}" for t, v in tables.items())
    print(
        f"database size: {db / 2**30:.2f} GiB, {db * per_m / 2**30:.2f} GiB per million "
        f"trackers (per million, GiB with indexes: {parts})"
    )
    if twice or wrong:
        print("CHECK FAILED")
    return best[2].transitions_s / best[1].transitions_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="12,000 trackers, rounds of 1 and 2 workers (< 30 s)"
    )
    parser.add_argument("--trackers", type=int, default=None)
    parser.add_argument("--burst", type=int, default=None, help="trackers due at once a round")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "OPENCADENCE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    n = args.trackers or (12_000 if args.quick else 1_000_000)
    burst = args.burst or (1500 if args.quick else 20_000)
    spread = 1.0 if args.quick else 15.0  # seconds of the lag phase
    started = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {line}", file=sys.stderr, flush=True)

    url = create_database(str(args.pg))
    procs: list[subprocess.Popen[bytes]] = []
    logdir = f"/tmp/oc_scale_{os.getpid()}"
    os.makedirs(logdir, exist_ok=True)
    try:
        began = time.perf_counter()
        tpl = template(url)
        say(f"template through the API and worker: {time.perf_counter() - began:.1f} s")
        # the processes start while the clones are written (nothing of theirs is due)
        base, procs = start_processes(url, logdir)
        seed(url, n, say, tpl)
        eng = sa.create_engine(database.normalize_url(url))
        db, tables = sizes(eng)
        wait_up(base, logdir)
        workers = procs[1:]
        say("server and 4 worker processes up")
        b = Bench(eng, tpl, n, base, workers, [rss_mb(w.pid) for w in workers], burst, spread)
        b.serve = procs[0].pid
        # --quick: one round of 1 and of 2 workers, to stay under 30 s (start-up, seeding and
        # the statement count take ~20 s of it); the full run: best of 1, 2, 4, 1, 2
        b.plan = (1, 2) if args.quick else (1, 2, 4, 1, 2)
        rounds = []
        for count in b.plan:
            rounds.append(b.round(count))
            r = rounds[-1]
            say(
                f"{count} worker(s): {r.trackers_s:,.0f} trackers/s, lag p99 {pct(r.lag, 0.99):.2f} s"
            )
        for w in workers:  # the in-process batch below must have the due slice to itself
            os.kill(w.pid, signal.SIGSTOP)
        stmts = statements(url, b, min(burst, 500))
        ratio = report(b, rounds, db, tables, stmts)
        eng.dispose()
        print(f"ratio={ratio:.2f} goal>={GOAL}")
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
