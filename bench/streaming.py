"""How fast change events reach subscribers of `opencadence serve` (a separate process, plain
HTTP and plaintext gRPC on 127.0.0.1, no worker), in one run:

1. Latency: one CometD subscriber (the raw Bayeux messages aiosfstream-ng sends, long-polling
   /data/ContactChangeEvent) and one Pub/Sub subscriber (the generated gRPC stub, Avro decoded
   with fastavro) while Contacts are created through the REST API at a steady rate (--rate per
   second, four client threads). Latency is from the record's CreatedDate (the server's wall
   clock, stamped in the write transaction just before it commits; ms precision) to the
   subscriber's callback, p50 and p99 per API; also from the moment the create request left
   (which adds the write and REST itself).
2. Throughput: 5 CometD + 5 Pub/Sub subscribers on /data/ChangeEvents while another process
   (this one, through storage, as `opencadence worker` writes) commits --burst Contacts in
   transactions of 500; events/s delivered to all 10 (from the first commit to the last
   delivery) and events lost or repeated (must be 0).

The headline is the p99 goal (100 ms) over the worse p99 of the two APIs.

    python bench/streaming.py [--quick] [--database URL] [--rate N] [--burst N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import json
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

from opencadence import system
from opencadence.api.pubsub_proto import pubsub_api_pb2 as pb
from opencadence.api.pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from opencadence.storage import migrate

PORT, PUBSUB_PORT = 18470, 18471
BASE = f"http://127.0.0.1:{PORT}"
P50_GOAL_MS, P99_GOAL_MS = 20.0, 100.0

#: (record id, time.time() of the callback, of the record's CreatedDate), per subscriber
Arrivals = list[tuple[str, float, float]]


def _iso(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def prepare(db: str) -> str:
    with system.build(system.Settings(database_url=db, worker=False)) as oc:
        user_id, _ = oc.org.accounts.create_user(
            f"streaming-{time.time_ns()}@oc.test", "pw", admin=True
        )
        return oc.org.accounts.open_session(user_id)


def serve(db: str, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "opencadence", "serve", "--database", db, "--no-worker"]
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
                        now, payload = time.time(), reply["data"]["payload"]
                        record = payload["ChangeEventHeader"]["recordIds"][0]
                        self.arrivals[i].append((record, now, _iso(payload["CreatedDate"])))

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
                    created = found["CreatedDate"] / 1000  # type: ignore[index]
                    self.arrivals[i].append((record, now, created))
                wanted.put(pb.FetchRequest(num_requested=len(response.events)))
        except grpc.RpcError:
            return

    def stop(self) -> None:
        for call in self.calls:
            call.cancel()
        for wanted in self.requests:
            wanted.put(None)
        self.channel.close()


def steady_writes(
    token: str, rate: float, seconds: float, round_trips: list[float]
) -> dict[str, float]:
    """Contacts created through REST, one every 1/rate s: record id -> when its request left
    (``round_trips`` gets each create's own time, ms)."""
    sent: dict[str, float] = {}
    total = int(rate * seconds)
    start = time.time() + 0.2
    lock = threading.Lock()
    next_i = [0]

    def writer() -> None:
        http = requests.Session()
        http.trust_env = False
        headers = {"Authorization": f"Bearer {token}"}
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= total:
                return
            time.sleep(max(0.0, start + i / rate - time.time()))
            t0 = time.time()
            reply = http.post(
                f"{BASE}/services/data/v59.0/sobjects/Contact",
                json={"LastName": f"Steady{i}"},
                headers=headers,
            )
            reply.raise_for_status()
            with lock:
                sent[reply.json()["id"]] = t0
                round_trips.append((time.time() - t0) * 1000)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent


def latencies_ms(sent: dict[str, float], arrivals: Arrivals) -> tuple[list[float], list[float]]:
    """(from the record's CreatedDate, stamped in the write transaction just before its commit,
    ms precision; from the moment the create request was sent) to the callback, in ms."""
    mine = [a for a in arrivals if a[0] in sent]
    return [(t - c) * 1000 for _, t, c in mine], [(t - sent[r]) * 1000 for r, t, _ in mine]


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
    parser.add_argument("--rate", type=float, default=100.0, help="creates/s while measuring")
    parser.add_argument("--burst", type=int, default=None, help="events for the throughput part")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 20.0
    n_burst = args.burst or (1_500 if args.quick else 10_000)
    work = Path(tempfile.mkdtemp(prefix="ocstream"))
    db = args.database or f"sqlite:///{work / 'streaming.db'}"
    token = prepare(db)
    server = serve(db, work / "server.log")
    try:
        cometd, pubsub = (
            CometD(token, "/data/ContactChangeEvent", 1),
            PubSub(token, "/data/ContactChangeEvent", 1),
        )
        cometd.start()
        pubsub.start()
        round_trips: list[float] = []
        sent = steady_writes(token, args.rate, seconds, round_trips)
        wait_for(cometd.arrivals + pubsub.arrivals, len(sent), 10)
        cometd.stop()
        pubsub.stop()
        lat = {
            "CometD": latencies_ms(sent, cometd.arrivals[0]),
            "Pub/Sub": latencies_ms(sent, pubsub.arrivals[0]),
        }

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
        f"database: {db.split(':', 1)[0]}; {len(sent)} creates at {args.rate:.0f}/s over REST, "
        f"each create's own round trip p50 {statistics.median(round_trips):.1f} ms"
    )
    worst = 0.0
    for api, (values, requested) in lat.items():
        missing = len(sent) - len(values)
        p50, p99 = statistics.median(values), pct(values, 0.99)
        worst = max(worst, p99)
        print(
            f"{api}: commit-to-callback p50 {p50:.1f} ms (goal < {P50_GOAL_MS:.0f}), "
            f"p99 {p99:.1f} ms (goal < {P99_GOAL_MS:.0f}); from the create request: "
            f"p50 {statistics.median(requested):.1f} ms, p99 {pct(requested, 0.99):.1f} ms; "
            f"{missing} missing"
        )
    print(
        f"10 subscribers (5 CometD, 5 Pub/Sub), {len(ids):,} events committed by another process: "
        f"{delivered / max(1e-9, last - started):,.0f} events/s delivered, "
        f"lost {lost}, out of order or repeated: {wrong} subscriber(s)"
    )
    print(f"ratio={P99_GOAL_MS / worst:.2f} goal>=1.00")


if __name__ == "__main__":
    main()
