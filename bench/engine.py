"""Cadence engine throughput vs. raw executemany of the same row writes, in one run.

Enrols N targets into a 6-step cadence (call, wait, auto email, branch, task, end) and drives
all of them to completion with a manual clock and the recording test sender: reps complete
the call and task steps through sendSalesCadenceEvent (batches of --batch inputs), the worker
completes the waits, sends the emails and passes the branch. A *transition* is one
ActionCadenceStepTracker row written (created or changed): 10 per target.

The baseline writes the same rows — trackers, step trackers, run-state rows, with the same
columns, the same inserts and updates by Id, the same batch sizes — with plain SQLAlchemy
executemany into a fresh copy of the schema, without the engine (no reads, no decisions, no
change events). ``ratio`` = engine transitions/s ÷ baseline transitions/s.

Counting: the same SQLite run with the metric counters (step counters, cadence target counts,
monthly metric rows, all written in the transitions' transactions) on and off
(``Store.count_metrics``, switched off for that baseline only), best of two each, interleaved;
``counters_ratio`` = on ÷ off (goal >= 0.85).

Then two workers side by side on PostgreSQL drain the same due work: the script checks no
transition was applied twice (no duplicate sends, exactly one step tracker per step) and
prints the two-worker throughput against one.

    python bench/engine.py [--quick] [--targets N] [--batch N] [--pg URL] [--no-pg]
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from opencadence import ids, system
from opencadence.cadence import actions, definition_file, sender
from opencadence.clock import ManualClock
from opencadence.storage import database, migrate, records, schema

GOAL = 0.25
COUNTERS_GOAL = 0.85
START = datetime(2026, 1, 5, 9, tzinfo=UTC)
CADENCE = {
    "cadence": {"Name": "Bench"},
    "state": "Active",
    "steps": [
        {"StepName": "root", "Type": "Root"},
        {"StepName": "call", "Type": "MakeACall", "ParentStepName": "root"},
        {"StepName": "wait", "Type": "Wait", "ParentStepName": "call", "WaitTimeInSeconds": 86400},
        {"StepName": "auto", "Type": "AutoSendAnEmail", "ParentStepName": "wait"},
        {
            "StepName": "branch",
            "Type": "Branch",
            "ParentStepName": "auto",
            "BranchDefaultStepName": "task",
            "rules": [
                {
                    "RuleName": "r",
                    "OutcomeNextStepName": "task",
                    "conditions": [
                        {
                            "RuleConditionName": "c",
                            "Resource": "CallDispositionCategory",
                            "Operator": "Equal",
                            "Value": "CallMeaningfulConnect",
                        }
                    ],
                }
            ],
        },
        {"StepName": "task", "Type": "CreateTask", "ParentStepName": "branch"},
    ],
}
TRANSITIONS_PER_TARGET = 10


def open_system(
    url: str,
    clock: ManualClock,
    batch: int,
    outbox: sender.RecordingSender | None = None,
    upgrade: bool = True,
) -> system.System:
    """The opencadence side, as every entry point builds it; ``outbox`` records the sends."""
    settings = system.Settings(
        database_url=url,
        clock=clock,
        runtime=system.RuntimeConfig(batch_size=batch),
        upgrade=upgrade,
    )
    return system.build(settings, sender=outbox)


def setup(store: records.Store, n: int) -> tuple[str, list[str]]:
    """The cadence, a rep and N contacts (not timed)."""
    with store.transaction() as tx:
        rep = tx.insert(
            "User",
            {
                "Username": f"rep{uuid.uuid4().hex[:6]}@x.com",
                "LastName": "Rep",
                "Alias": "rep",
                "Email": "rep@x.com",
                "TimeZoneSidKey": "America/New_York",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
        )
        # the auto email's template (activation refuses an AutoSendAnEmail step without one;
        # the recording sender sends nothing)
        template = tx.insert(
            "EmailTemplate",
            {
                "Name": "Bench",
                "DeveloperName": f"Bench_{uuid.uuid4().hex[:6]}",
                "TemplateType": "text",
                "IsActive": True,
                "FolderId": migrate.ORG_ID,
                "Subject": "Hi",
                "Body": "Hi",
            },
        )
    targets: list[str] = []
    for i in range(0, n, 5000):
        with store.transaction() as tx:
            targets += tx.insert_many(
                "Contact", [{"LastName": f"T{j}"} for j in range(i, min(n, i + 5000))]
            )
    definition = copy.deepcopy(CADENCE)
    for step in definition["steps"]:
        if step["Type"] == "AutoSendAnEmail":
            step["TemplateId"] = template
    definition_file.import_definition(store, definition)
    return rep, targets


def open_steps(store: records.Store, step_type: str) -> list[str]:
    t = store.meta.tables["ActionCadenceStepTracker"]
    with store.reading() as conn:
        return list(
            conn.execute(
                sa.select(t.c.Id).where(t.c.StepType == step_type, t.c.State == "Active")
            ).scalars()
        )


def drive(
    oc: system.System, clock: ManualClock, rep: str, targets: list[str], batch: int
) -> tuple[float, int]:
    """Enrol everyone and drive all to completion; returns (seconds, transitions)."""
    store, acts, w = oc.store, oc.org.actions, oc.worker
    assert w is not None
    began = time.perf_counter()
    for i in range(0, len(targets), batch):
        res = acts.assignTargetToSalesCadence(
            [{"salesCadenceNameOrId": "Bench", "targetId": t} for t in targets[i : i + batch]], rep
        )
        assert all(r["isSuccess"] for r in res), res[0]
    _complete(acts, rep, open_steps(store, "MakeACall"), batch)
    clock.advance(days=1)
    w.run_until_idle()  # waits end, emails queued
    w.run_until_idle()  # emails sent, branch passed, tasks open
    _complete(acts, rep, open_steps(store, "CreateTask"), batch)
    elapsed = time.perf_counter() - began
    return elapsed, TRANSITIONS_PER_TARGET * len(targets)


def _complete(acts: actions.Actions, rep: str, step_ids: list[str], batch: int) -> None:
    for i in range(0, len(step_ids), batch):
        res = acts.sendSalesCadenceEvent(
            [{"recordId": s, "eventType": "ManualComplete"} for s in step_ids[i : i + batch]], rep
        )
        assert all(r["isSuccess"] for r in res), res[0]


def check_done(store: records.Store, n: int) -> None:
    t = store.meta.tables["ActionCadenceTracker"]
    st = store.meta.tables["ActionCadenceStepTracker"]
    with store.reading() as conn:
        done = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.CompletionReason == "NoMoreSteps")
        ).scalar_one()
        steps = conn.execute(sa.select(sa.func.count()).select_from(st)).scalar_one()
    assert done == n, f"{done} of {n} trackers completed"
    assert steps == 6 * n, f"{steps} step trackers for {n} targets (6 expected each)"


# -- the baseline: the same row writes, raw ------------------------------------------------------


def raw_writes(url: str, n: int, batch: int) -> float:
    """Seconds to write the engine's rows with plain executemany (no engine, no events)."""
    oc = system.build(system.Settings(database_url=url, clock=ManualClock(), worker=False))
    eng, meta = oc.engine, oc.store.meta
    tr, st, run = (
        meta.tables[x]
        for x in ("ActionCadenceTracker", "ActionCadenceStepTracker", schema.CADENCE_RUN)
    )
    now = START.replace(tzinfo=None)
    counter = iter(range(10_000_000, 100_000_000))
    user = records.AUTOMATED_USER
    cad, steps = ids.make_id("77C", 5), [ids.make_id("0cS", 10 + i) for i in range(6)]
    stamp = {
        "IsDeleted": False,
        "CreatedDate": now,
        "CreatedById": user,
        "LastModifiedDate": now,
        "LastModifiedById": user,
        "SystemModstamp": now,
    }
    upd_st = _raw_update(st)
    upd_tr = _raw_update(tr)
    upd_run = (
        run.update()
        .where(run.c.tracker_id == sa.bindparam("p_id"))
        .values(due_at=sa.bindparam("v_due"))
    )
    began = time.perf_counter()
    for i in range(0, n, batch):
        size = min(batch, n - i)
        trackers = [ids.make_id("0cT", next(counter)) for _ in range(size)]
        targets = [ids.make_id("003", 1_000_000 + i + k) for k in range(size)]
        cur: dict[str, str] = {}

        def new_steps(types: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
            rows = []
            for tid, target in zip(trackers, targets):
                for step, typ, state in types:
                    sid = ids.make_id("0cK", next(counter))
                    cur[tid] = sid
                    rows.append(
                        {
                            "Id": sid,
                            "ActionCadenceId": cad,
                            "ActionCadenceName": "Bench",
                            "ActionCadenceStepId": steps[step],
                            "ActionCadenceTrackerId": tid,
                            "StepTitle": typ,
                            "StepType": typ,
                            "TargetId": target,
                            "GoToStepIterationCount": 1,
                            "State": state,
                            "WasEverPaused": False,
                            "ScheduledStartDateTime": now,
                            **stamp,
                        }
                    )
            return rows

        def step_done(extra: dict[str, Any]) -> list[dict[str, Any]]:
            return [
                {
                    "p_id": cur[t],
                    "v_State": "Completed",
                    "v_CompletionReason": "AutomaticallyCompleted",
                    "v_CompletionDate": now,
                    "v_CompletedById": extra.get("by"),
                    "p_now": now,
                    "p_user": user,
                }
                for t in trackers
            ]

        def tracker_moved(state: str) -> list[dict[str, Any]]:
            return [
                {
                    "p_id": t,
                    "v_State": state,
                    "v_CompletionReason": None,
                    "v_CompletionDate": cur[t],
                    "v_CompletedById": cur[t],
                    "p_now": now,
                    "p_user": user,
                }
                for t in trackers
            ]

        with eng.begin() as conn:  # enrol
            conn.execute(
                tr.insert(),
                [
                    {
                        "Id": t,
                        "ActionCadenceId": cad,
                        "TargetId": g,
                        "OwnerId": user,
                        "State": "Initializing",
                        "IsTrackerActive": True,
                        "DaisyChainIteration": 1,
                        **stamp,
                    }
                    for t, g in zip(trackers, targets)
                ],
            )
            conn.execute(
                st.insert(), new_steps([(0, "Root", "Completed"), (1, "MakeACall", "Active")])
            )
            conn.execute(upd_tr, tracker_moved("Running"))
            conn.execute(
                run.insert(),
                [
                    {"tracker_id": t, "target_id": g, "cadence_id": cad}
                    for t, g in zip(trackers, targets)
                ],
            )
        for typ in ("Wait", "AutoSendAnEmail"):  # call done -> wait; wait done -> email
            with eng.begin() as conn:
                conn.execute(upd_st, step_done({"by": user}))
                conn.execute(st.insert(), new_steps([(2, typ, "Active")]))
                conn.execute(upd_tr, tracker_moved("Running"))
                conn.execute(upd_run, [{"p_id": t, "v_due": now} for t in trackers])
        with eng.begin() as conn:  # email sent -> branch -> task
            conn.execute(upd_st, step_done({"by": user}))
            conn.execute(
                st.insert(), new_steps([(4, "Branch", "Completed"), (5, "CreateTask", "Active")])
            )
            conn.execute(upd_tr, tracker_moved("Running"))
            conn.execute(upd_run, [{"p_id": t, "v_due": None} for t in trackers])
        with eng.begin() as conn:  # task done -> end
            conn.execute(upd_st, step_done({"by": user}))
            conn.execute(upd_tr, tracker_moved("Complete"))
            conn.execute(
                run.delete().where(run.c.tracker_id == sa.bindparam("p_id")),
                [{"p_id": t} for t in trackers],
            )
    elapsed = time.perf_counter() - began
    oc.close()
    return elapsed


def _raw_update(table: sa.Table) -> Any:
    """UPDATE of four columns by Id: (State, CompletionReason, CompletionDate, CompletedById)
    of a step tracker; (State, CompletionReason, LastCompletedStepId, CurrentStepId) of a
    tracker, fed by the same four parameters."""
    cols = ("State", "CompletionReason", "CompletionDate", "CompletedById")
    if table.name == "ActionCadenceTracker":
        cols = ("State", "CompletionReason", "LastCompletedStepId", "CurrentStepId")
    names = ("v_State", "v_CompletionReason", "v_CompletionDate", "v_CompletedById")
    values = {c: sa.bindparam(n, type_=table.c[c].type) for c, n in zip(cols, names)}
    values.update(
        LastModifiedDate=sa.bindparam("p_now", type_=sa.DateTime()),
        SystemModstamp=sa.bindparam("p_now", type_=sa.DateTime()),
        LastModifiedById=sa.bindparam("p_user"),
    )
    return table.update().where(table.c.Id == sa.bindparam("p_id")).values(values)


# -- two PostgreSQL workers --------------------------------------------------------------


def pg_workers(url: str, n: int, batch: int) -> tuple[float, float, int]:
    """(one-worker transitions/s, two-worker transitions/s, duplicate sends)."""
    rates = []
    duplicates = 0
    for workers in (1, 2):
        db = _pg_db(url)
        clock = ManualClock(START)
        oc = open_system(db, clock, batch)
        store, acts = oc.store, oc.org.actions
        rep, targets = setup(store, n)
        for i in range(0, n, batch):
            acts.assignTargetToSalesCadence(
                [{"salesCadenceNameOrId": "Bench", "targetId": t} for t in targets[i : i + batch]],
                rep,
            )
        _complete(acts, rep, open_steps(store, "MakeACall"), batch)
        clock.advance(days=1)
        now = clock.now().isoformat()
        results = _processes(workers, db, now, batch)
        elapsed = max(r[0] for r in results)
        moved = sum(r[1] for r in results)
        keys = [k for r in results for k in r[2]]
        duplicates += len(keys) - len(set(keys)) + abs(len(set(keys)) - n)
        t = store.meta.tables["ActionCadenceStepTracker"]
        with store.reading() as conn:
            steps = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        duplicates += steps - 6 * n  # root, call, wait, auto, branch, task: one each
        rates.append(moved / elapsed)
        oc.close()
    return rates[0], rates[1], duplicates


def _processes(workers: int, url: str, now: str, batch: int) -> list[tuple[float, int, list[str]]]:
    """Run ``workers`` worker processes side by side (they start together at a barrier)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=_worker_process, args=(url, now, batch, barrier, out))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def _worker_process(url: str, now: str, batch: int, barrier: Any, out: Any) -> None:
    out.put(_drain(url, now, batch, barrier))


def _drain(url: str, now: str, batch: int, barrier: Any) -> tuple[float, int, list[str]]:
    """One worker process: drain the due work; (seconds, transitions, email keys sent)."""
    outbox = sender.RecordingSender()
    oc = open_system(url, ManualClock(datetime.fromisoformat(now)), batch, outbox, upgrade=False)
    w = oc.worker
    assert w is not None
    with oc.store.reading() as conn:  # warm the connection pool before the clock starts
        conn.exec_driver_sql("SELECT 1")
    barrier.wait()
    began = time.perf_counter()
    w.run_until_idle()
    w.run_until_idle()
    elapsed = time.perf_counter() - began
    oc.close()
    return elapsed, w.transitions, [e.key for e in outbox.sent]


def _pg_db(url: str) -> str:
    admin = sa.create_engine(database.normalize_url(url), isolation_level="AUTOCOMMIT")
    name = f"oc_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    _CREATED.append(name)
    return sa.make_url(database.normalize_url(url)).set(database=name).render_as_string(False)


_CREATED: list[str] = []


def _drop_pg(url: str) -> None:
    admin = sa.create_engine(database.normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in _CREATED:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def sqlite_rate(tmp: str, name: str, n: int, batch: int, counting: bool) -> float:
    """Transitions/s of one SQLite run, with the metric counters on or off."""
    clock = ManualClock(START)
    outbox = sender.RecordingSender()
    with open_system(f"sqlite:///{tmp}/{name}.db", clock, batch, outbox) as oc:
        oc.store.count_metrics = counting
        rep, targets = setup(oc.store, n)
        elapsed, moved = drive(oc, clock, rep, targets, batch)
        check_done(oc.store, n)
        if counting:
            check_counted(oc.store, n)
    return moved / elapsed


def check_counted(store: records.Store, n: int) -> None:
    """The counters of the run equal their recomputation, and count every target."""
    from opencadence.storage import metrics

    with store.transaction() as tx:
        found = metrics.check_tx(tx)
        assert not found, found[0].describe()
    t = store.meta.tables["ActionCadence"]
    with store.reading() as conn:
        total = conn.execute(sa.select(t.c.TotalTargets).where(t.c.Name == "Bench")).scalar()
    assert total == n, f"TotalTargets {total}, {n} expected"


def counters_ratio(n: int, batch: int) -> tuple[float, float]:
    """(transitions/s with counters, without), best of two each, interleaved."""
    on: list[float] = []
    off: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            off.append(sqlite_rate(tmp, f"off{i}", n, batch, False))
            on.append(sqlite_rate(tmp, f"on{i}", n, batch, True))
    return max(on), max(off)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 30 s)")
    parser.add_argument("--targets", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "OPENCADENCE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    n = args.targets or (3000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(START)
        outbox = sender.RecordingSender()
        with open_system(f"sqlite:///{tmp}/engine.db", clock, args.batch, outbox) as oc:
            rep, targets = setup(oc.store, n)
            elapsed, moved = drive(oc, clock, rep, targets, args.batch)
            check_done(oc.store, n)
            assert outbox.duplicates == 0 and len(outbox.sent) == n
        rate = moved / elapsed
        raw = moved / raw_writes(f"sqlite:///{tmp}/raw.db", n, args.batch)
    print(
        f"SQLite: {n} targets, {moved} transitions in {elapsed:.1f} s: "
        f"{rate:,.0f} transitions/s (goal >= 10,000); raw executemany {raw:,.0f} transitions/s"
    )
    if not args.no_pg:
        try:
            one, two, dup = pg_workers(args.pg, max(1000, n // 10), args.batch // 2 or 1)
            print(
                f"PostgreSQL workers: one {one:,.0f} transitions/s, two {two:,.0f} "
                f"transitions/s (x{two / one:.2f}); transitions applied twice: {dup}"
            )
        except sa.exc.OperationalError as exc:
            print(f"PostgreSQL skipped: {str(exc).splitlines()[0]}")
        finally:
            if _CREATED:
                _drop_pg(args.pg)
    on, off = counters_ratio(n, args.batch)
    print(
        f"SQLite with metric counters {on:,.0f} transitions/s, without {off:,.0f}: "
        f"counters_ratio={on / off:.2f} goal>={COUNTERS_GOAL}"
    )
    print(f"ratio={rate / raw:.2f} goal>={GOAL}")


if __name__ == "__main__":
    main()
