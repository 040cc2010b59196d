"""How fast change events reach subscribers of `opencadence serve` (a separate process, plain
HTTP and plaintext gRPC on 127.0.0.1), in one run:

1. Latency under engine load: one CometD subscriber (the raw Bayeux messages aiosfstream-ng
   sends, long-polling /data/ActionCadenceStepTrackerChangeEvent, the seed's object) and one
   Pub/Sub subscriber (the generated gRPC stub, Avro decoded with fastavro) while the cadence
   engine commits --transitions step-tracker transitions per second in another process, as
   `opencadence worker` does (reps completing call steps through sendSalesCadenceEvent and
   targets enrolled through assignTargetToSalesCadence, paced every 50 ms, a transaction per
   action call). Latency is from the moment each transaction's COMMIT returned in the engine
   process (``Store.event_listeners``, wall clock) to the subscriber's callback for each of its
   events, p50 and p99 per API, over the events of the measured seconds: the first WARMUP
   seconds of load are left out (first reads and schemas of the step-tracker events, the
   engine's own first statements); the transitions/s achieved is counted from the log.
2. Throughput: 5 CometD + 5 Pub/Sub subscribers on /data/ChangeEvents while another process
   (this one, through storage, as `opencadence worker` writes) commits --burst Contacts in
   transactions of 500; events/s delivered to all 10 (from the first commit to the last
   delivery) and events lost or repeated (must be 0).

The headline is the worse of p50 goal / worst p50 and p99 goal / worst p99 (both APIs).

With ``--processes N`` (PostgreSQL) the server is ``serve --processes N``: the CometD
subscribers' connections spread over N children, which share the clients through the database
(``storage.cometd_clients``: a read and a compare-and-set write per delivery).

    python bench/streaming.py [--quick] [--database URL] [--transitions N] [--burst N]
                              [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import io
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import fastavro
import grpc
import requests
import sqlalchemy as sa

from opencadence import system
from opencadence.api.pubsub_proto import pubsub_api_pb2 as pb
from opencadence.api.pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from opencadence.cadence import definition_file
from opencadence.storage import migrate, records, schema

PORT, PUBSUB_PORT = 18470, 18471
BASE = f"http://127.0.0.1:{PORT}"
P50_GOAL_MS, P99_GOAL_MS = 20.0, 100.0

#: (record id, time.time() of the callback, replay id), per subscriber
Arrivals = list[tuple[str, float, int]]
STEP_CHANNEL = "/data/ActionCadenceStepTrackerChangeEvent"
CALLS = 5  # call steps in a row: enrolment 1 transition, each completion 2 (the last one 1)
CADENCE = "StreamingBench"
#: Seconds of engine load before the measured ones.
WARMUP = 1.0


def prepare(db: str, targets: int) -> str:
    """An admin's session, a cadence of CALLS call steps and ``targets`` Contacts."""
    with system.build(system.Settings(database_url=db, worker=False)) as oc:
        user_id, _ = oc.org.accounts.create_user(
            f"streaming-{time.time_ns()}@oc.test", "pw", admin=True
        )
        steps: list[dict[str, Any]] = [{"StepName": "root", "Type": "Root"}]
        for i in range(CALLS):
            parent = steps[-1]["StepName"]
            steps.append({"StepName": f"call{i}", "Type": "MakeACall", "ParentStepName": parent})
        definition = {"cadence": {"Name": CADENCE}, "state": "Active", "steps": steps}
        definition_file.import_definition(oc.store, definition)
        for lo in range(0, targets, 5000):
            with oc.store.transaction() as tx:
                tx.insert_many(
                    "Contact",
                    [{"LastName": f"Target{j}"} for j in range(lo, min(targets, lo + 5000))],
                )
        return oc.org.accounts.open_session(user_id)


def _targets(store: records.Store) -> list[str]:
    t = store.meta.tables["Contact"]
    with store.reading() as conn:
        return list(conn.execute(sa.select(t.c.Id).where(t.c.LastName.like("Target%"))).scalars())


def _open_calls(store: records.Store, limit: int) -> list[str]:
    t = store.meta.tables["ActionCadenceStepTracker"]
    with store.reading() as conn:
        return list(
            conn.execute(
                sa.select(t.c.Id)
                .where(t.c.StepType == "MakeACall", t.c.State == "Active")
                .limit(limit)
            ).scalars()
        )


def engine_load(db: str, rate: float, seconds: float, out: Path) -> None:
    """The engine committing about ``rate`` transitions/s for ``seconds`` (run in a process of
    its own); writes [[last replay id of a transaction, time.time() its commit returned], ...]
    to ``out``."""
    commits: list[tuple[int, float]] = []
    with system.build(system.Settings(database_url=db, worker=False, upgrade=False)) as oc:
        oc.store.event_listeners.append(lambda last: commits.append((last, time.time())))
        admin = _admin(oc.store)
        targets = iter(_targets(oc.store))
        acts = oc.org.actions
        tick, done = 0.05, 0.0
        start = time.monotonic()
        while (now := time.monotonic()) < start + seconds:
            owed = (now - start) * rate - done
            if owed >= 2:
                steps = _open_calls(oc.store, min(200, int(owed // 2)))
                if steps:
                    res = acts.sendSalesCadenceEvent(
                        [{"recordId": s, "eventType": "ManualComplete"} for s in steps], admin
                    )
                    assert all(r["isSuccess"] for r in res), res[0]
                    done += 2 * len(steps)
                    owed -= 2 * len(steps)
                if owed >= 1:
                    batch = [t for _, t in zip(range(min(200, int(owed))), targets, strict=False)]
                    if batch:
                        res = acts.assignTargetToSalesCadence(
                            [{"salesCadenceNameOrId": CADENCE, "targetId": t} for t in batch],
                            admin,
                        )
                        assert all(r["isSuccess"] for r in res), res[0]
                        done += len(batch)
            time.sleep(max(0.0, tick - (time.monotonic() - now)))
    out.write_text(json.dumps(commits))


def _admin(store: records.Store) -> str:
    t = store.meta.tables["User"]
    with store.reading() as conn:
        return str(
            conn.execute(
                sa.select(t.c.Id).where(t.c.Username.like("streaming-%")).order_by(t.c.Id.desc())
            )
            .scalars()
            .first()
        )


def serve(db: str, log: Path, processes: int = 1) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "opencadence", "serve", "--database", db, "--no-worker"]
    if processes > 1:  # N children on one socket, CometD clients shared through the database
        args += ["--processes", str(processes)]
    args += ["--port", str(PORT), "--pubsub-port", str(PUBSUB_PORT), "--pubsub-keepalive", "1"]
    with log.open("wb") as out:  # a file: an unread pipe would stop the server once full
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{BASE}/_opencadence/health", timeout=1).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


class CometD:
    """Bayeux long-polling subscribers on a loop of their own (a thread of this process)."""

    def __init__(self, token: str, channel: str, n: int) -> None:
        self.token, self.channel, self.n = token, channel, n
        self.arrivals: list[Arrivals] = [[] for _ in range(n)]
        self.ready = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[asyncio.Future[None]] = []

    def start(self) -> None:
        self.thread.start()
        self.tasks = [
            asyncio.run_coroutine_threadsafe(self._one(i), self.loop) for i in range(self.n)
        ]
        deadline = time.monotonic() + 30
        while self.ready < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.ready} of {self.n} CometD subscribers ready")
            time.sleep(0.02)

    async def _one(self, i: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:

            async def post(*messages: dict[str, Any]) -> list[dict[str, Any]]:
                async with http.post(f"{BASE}/cometd/59.0", json=list(messages)) as response:
                    return await response.json()  # type: ignore[no-any-return]

            cid = (await post({"channel": "/meta/handshake"}))[0]["clientId"]
            await post(
                {"channel": "/meta/subscribe", "clientId": cid, "subscription": self.channel}
            )
            await post({"channel": "/meta/connect", "clientId": cid})
            self.ready += 1
            while True:
                for reply in await post({"channel": "/meta/connect", "clientId": cid}):
                    if "data" in reply:
                        now, data = time.time(), reply["data"]
                        record = data["payload"]["ChangeEventHeader"]["recordIds"][0]
                        self.arrivals[i].append((record, now, int(data["event"]["replayId"])))

    def stop(self) -> None:
        for task in self.tasks:
            self.loop.call_soon_threadsafe(task.cancel)
        time.sleep(0.2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class PubSub:
    """Pub/Sub subscribers, one thread each, keeping 100 events requested."""

    def __init__(self, token: str, topic: str, n: int) -> None:
        self.token, self.topic, self.n = token, topic, n
        self.arrivals: list[Arrivals] = [[] for _ in range(n)]
        self.ready = 0
        self.channel = grpc.insecure_channel(f"127.0.0.1:{PUBSUB_PORT}")
        self.stub = pb_grpc.PubSubStub(self.channel)
        self.metadata = [
            ("accesstoken", token),
            ("instanceurl", BASE),
            ("tenantid", migrate.ORG_ID),
        ]
        self.schemas: dict[str, Any] = {}
        self.calls: list[Any] = []
        self.requests: list[queue.Queue[Any]] = [queue.Queue() for _ in range(n)]

    def start(self) -> None:
        for i in range(self.n):
            threading.Thread(target=self._one, args=(i,), daemon=True).start()
        deadline = time.monotonic() + 30
        while self.ready < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.ready} of {self.n} Pub/Sub subscribers ready")
            time.sleep(0.02)

    def _schema(self, schema_id: str) -> Any:
        if schema_id not in self.schemas:
            info = self.stub.GetSchema(
                pb.SchemaRequest(schema_id=schema_id), metadata=self.metadata
            )
            self.schemas[schema_id] = fastavro.parse_schema(json.loads(info.schema_json))
        return self.schemas[schema_id]

    def _one(self, i: int) -> None:
        wanted = self.requests[i]
        wanted.put(pb.FetchRequest(topic_name=self.topic, num_requested=100))

        def more() -> Iterator[Any]:
            while (item := wanted.get()) is not None:
                yield item

        call = self.stub.Subscribe(more(), metadata=self.metadata)
        self.calls.append(call)
        ready = False
        try:
            for response in call:
                if not response.events:  # a keepalive: the stream is set up and waits
                    if not ready:
                        ready, self.ready = True, self.ready + 1
                    continue
                now = time.time()
                for ev in response.events:
                    schema = self._schema(ev.event.schema_id)
                    found = fastavro.schemaless_reader(io.BytesIO(ev.event.payload), schema, None)
                    record = found["ChangeEventHeader"]["recordIds"][0]  # type: ignore[index]
                    replay_id = int.from_bytes(ev.replay_id, "big")
                    self.arrivals[i].append((record, now, replay_id))
                wanted.put(pb.FetchRequest(num_requested=len(response.events)))
        except grpc.RpcError:
            return

    def stop(self) -> None:
        for call in self.calls:
            call.cancel()
        for wanted in self.requests:
            wanted.put(None)
        self.channel.close()


def latencies_ms(commits: list[tuple[int, float]], arrivals: Arrivals) -> list[float]:
    """Commit (the engine's COMMIT returned) to callback, ms, for each event of the engine's
    transactions; ``commits`` is sorted by last replay id."""
    lasts = [last for last, _ in commits]
    out = []
    for _, when, replay_id in arrivals:
        i = bisect.bisect_left(lasts, replay_id)
        if i < len(commits):
            out.append((when - commits[i][1]) * 1000)
    return out


def step_events(db: str, lo: int, hi: int) -> int:
    """ActionCadenceStepTracker events (transitions) with replay ids in [lo, hi]."""
    with system.build(system.Settings(database_url=db, worker=False, upgrade=False)) as oc:
        t = oc.store.meta.tables[schema.EVENTS]
        with oc.store.reading() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t)
                    .where(t.c.entity == "ActionCadenceStepTracker", t.c.replay_id.between(lo, hi))
                ).scalar_one()
            )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_for(subscribers: list[Arrivals], want: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(len(a) < want for a in subscribers) and time.monotonic() < deadline:
        time.sleep(0.01)


def burst(db: str, n: int) -> tuple[list[str], float]:
    """``n`` Contacts committed by this process through storage, 500 per transaction."""
    ids: list[str] = []
    with system.build(system.Settings(database_url=db, worker=False, upgrade=False)) as oc:
        start = time.time()
        for lo in range(0, n, 500):
            with oc.store.transaction() as tx:
                rows = [{"LastName": f"Burst{i}"} for i in range(lo, min(n, lo + 500))]
                ids += tx.insert_many("Contact", rows)
    return ids, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurement, small sizes")
    parser.add_argument("--database", help="database URL (default: a new SQLite file)")
    parser.add_argument(
        "--transitions", type=float, default=2000.0, help="engine transitions/s while measuring"
    )
    parser.add_argument("--burst", type=int, default=None, help="events for the throughput part")
    parser.add_argument(
        "--processes", type=int, default=1, help="serve --processes N (PostgreSQL only)"
    )
    parser.add_argument(
        "--engine-load", nargs=3, metavar=("DB", "SECONDS", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.engine_load:  # the engine's process
        db, seconds, out = args.engine_load
        engine_load(db, args.transitions, WARMUP + float(seconds), Path(out))
        return
    seconds = 5.0 if args.quick else 30.0
    n_burst = args.burst or (1_500 if args.quick else 10_000)
    work = Path(tempfile.mkdtemp(prefix="ocstream"))
    db = args.database or f"sqlite:///{work / 'streaming.db'}"
    token = prepare(db, int(args.transitions * (WARMUP + seconds) / (2 * CALLS - 1)) + 200)
    server = serve(db, work / "server.log", args.processes)
    try:
        cometd, pubsub = CometD(token, STEP_CHANNEL, 1), PubSub(token, STEP_CHANNEL, 1)
        cometd.start()
        pubsub.start()
        out = work / "commits.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--transitions",
                str(args.transitions),
                "--engine-load",
                db,
                str(seconds),
                str(out),
            ],
            check=True,
        )
        every = sorted((int(a), float(b)) for a, b in json.loads(out.read_text()))
        hi = every[-1][0] if every else 0
        measured_from = every[0][1] + WARMUP if every else 0.0
        commits = [c for c in every if c[1] >= measured_from]
        before = [c for c in every if c[1] < measured_from]
        lo = before[-1][0] + 1 if before else 1
        transitions = step_events(db, lo, hi) if commits else 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = [max((r for _, _, r in a), default=0) for a in cometd.arrivals + pubsub.arrivals]
            if min(got) >= hi:
                break
            time.sleep(0.05)
        cometd.stop()
        pubsub.stop()
        lat = {
            "CometD": latencies_ms(commits, [a for a in cometd.arrivals[0] if a[2] >= lo]),
            "Pub/Sub": latencies_ms(commits, [a for a in pubsub.arrivals[0] if a[2] >= lo]),
        }
        received = {api: len(v) for api, v in lat.items()}
        (work / "arrivals.json").write_text(
            json.dumps(
                {"commits": commits, "cometd": cometd.arrivals[0], "pubsub": pubsub.arrivals[0]}
            )
        )

        many_c, many_p = (
            CometD(token, "/data/ChangeEvents", 5),
            PubSub(token, "/data/ChangeEvents", 5),
        )
        many_c.start()
        many_p.start()
        ids, started = burst(db, n_burst)
        everyone = many_c.arrivals + many_p.arrivals
        wait_for(everyone, len(ids), 60)
        last = max((a[-1][1] for a in everyone if a), default=time.time())
        many_c.stop()
        many_p.stop()
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    lost = sum(max(0, len(ids) - len(a)) for a in everyone)
    wrong = sum(1 for a in everyone if [r for r, _, _ in a] != ids)
    delivered = sum(len(a) for a in everyone)
    print(
        f"database: {db.split(':', 1)[0]}, {args.processes} server process(es); the engine (another process) committed "
        f"{transitions:,} transitions in {len(commits):,} transactions over {seconds:.0f} s "
        f"(after {WARMUP:.0f} s of warm-up): {transitions / seconds:,.0f} transitions/s "
        f"(asked {args.transitions:,.0f})"
    )
    gaps = sorted(b[1] - a[1] for a, b in zip(commits, commits[1:], strict=False))
    if gaps:
        # the engine asks to commit every 50 ms: a longer gap is the load generator itself
        # kept off the CPU, and the subscribers' tail latencies line up with those moments
        print(
            f"machine: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; the "
            f"engine's gaps between commits p50 {1000 * gaps[len(gaps) // 2]:.0f} ms, max "
            f"{1000 * gaps[-1]:.0f} ms (it asks for one every 50 ms)"
        )
    ratio = float("inf")
    for api, values in lat.items():
        p50, p99 = statistics.median(values), pct(values, 0.99)
        ratio = min(ratio, P50_GOAL_MS / p50, P99_GOAL_MS / p99)
        print(
            f"{api}: commit-to-callback p50 {p50:.1f} ms (goal < {P50_GOAL_MS:.0f}), "
            f"p99 {p99:.1f} ms (goal < {P99_GOAL_MS:.0f}), max {max(values):.1f} ms; "
            f"{received[api]:,} events received, {transitions - received[api]} missing"
        )
    print(
        f"10 subscribers (5 CometD, 5 Pub/Sub), {len(ids):,} events committed by another process: "
        f"{delivered / max(1e-9, last - started):,.0f} events/s delivered, "
        f"lost {lost}, out of order or repeated: {wrong} subscriber(s)"
    )
    print(f"(raw arrivals and commits: {work / 'arrivals.json'})")
    print(f"ratio={ratio:.2f} goal>=1.00")


if __name__ == "__main__":
    main()
