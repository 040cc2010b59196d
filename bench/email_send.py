"""Automated email throughput vs. plain smtplib, and duplicates/missing after a killed worker.

N targets enter a one-step AutoSendAnEmail cadence at once (SQLite); a local aiosmtpd relay
receives, in a process of its own (``--relay``): in the bench's process its event loop thread
would hold the GIL the measured side needs, and the ratio would track that contention and the
machine's load rather than our code. Timed: the cadence worker with the SMTP sender draining all N
sends (checks, rendering, outbox rows, one worker transition per email — the step completes
in the commit recording its send —, one SMTP transaction each over a kept-open connection). Baseline: plain smtplib sending the same
rendered messages (the outbox's MIME) over one connection, in the same run.
``ratio`` = worker messages/s ÷ smtplib messages/s.

Then a fresh database: a worker *process* drains N sends and is killed (SIGKILL) once a third
of them reached the relay; a new process reconciles and finishes. The relay counts messages
per step tracker (the key inside each Message-ID; the relay process answers its counts over a
pipe): duplicates and missing must be 0 and 0 (at most one duplicate: the message whose
end-of-data reply the killed worker had not recorded yet, resent with its Message-ID).

    python bench/email_send.py [--quick] [--steps N]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiosmtpd.controller import Controller

from opencadence import system
from opencadence.cadence import definition_file
from opencadence.clock import ManualClock
from opencadence.email import settings, smtp_sender
from opencadence.metadata.registry import default_registry
from opencadence.storage import database, schema

GOAL = 0.50
START = datetime(2026, 1, 5, 14, tzinfo=UTC)
BATCH = 1000


class Sink:
    """The relay's handler: counts messages per step tracker key (thread-safe enough: one
    event loop thread appends)."""

    def __init__(self) -> None:
        self.keys: collections.Counter[str] = collections.Counter()
        self.total = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or b""
        key = ""
        for line in content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                key = line.split(b"<", 1)[1].split(b".", 1)[0].decode()
                break
            if not line:
                break
        with self.lock:
            self.keys[key] += 1
            self.total += 1
        return "250 OK"


class Relay:
    """The relay process (``--relay``: aiosmtpd with a Sink); asked over its stdin/stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--relay"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.port = int(self.proc.stdout.readline())

    def _ask(self, what: str) -> str:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    @property
    def total(self) -> int:
        return int(self._ask("total"))

    def keys(self) -> collections.Counter[str]:
        return collections.Counter(json.loads(self._ask("keys")))

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def serve_relay() -> None:
    """``--relay``: a local relay counting per key; prints its port, then answers ``total``
    and ``keys`` lines on stdin until stdin closes."""
    sink, port = Sink(), free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        print(port, flush=True)
        for line in sys.stdin:
            with sink.lock:
                answer = str(sink.total) if line.strip() == "total" else json.dumps(sink.keys)
            print(answer, flush=True)
    finally:
        ctl.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(url: str, n: int) -> None:
    """Rep, template, N contacts, the cadence, everyone enrolled (not timed)."""
    oc = system.build(
        system.Settings(
            database_url=url,
            clock=ManualClock(START),
            runtime=system.RuntimeConfig(batch_size=BATCH),
            worker=False,
        )
    )
    store = oc.store
    with store.transaction() as tx:
        rep = tx.insert(
            "User",
            {
                "Username": "rep@bench.example.com",
                "FirstName": "Rita",
                "LastName": "Rep",
                "Alias": "rep",
                "Email": "rep@bench.example.com",
                "TimeZoneSidKey": "GMT",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
        )
        folder = tx.insert(
            "Folder",
            {"Name": "B", "DeveloperName": "B", "Type": "EmailTemplate", "AccessType": "Public"},
        )
        template = tx.insert(
            "EmailTemplate",
            {
                "Name": "B",
                "DeveloperName": "B",
                "TemplateType": "text",
                "IsActive": True,
                "FolderId": folder,
                "Subject": "Quick question, {!Contact.FirstName, there}",
                "Body": "Hi {!Contact.FirstName, there},\n\nDo you have 15 minutes this week?\n\n"
                "{!User.Name}",
            },
        )
        # caps out of the way: this measures throughput, not the daily limits
        for name in ("user_daily_auto_cap", "org_daily_auto_cap", "org_daily_email_cap"):
            settings.put(tx.conn, name, 10 * n)
    targets: list[str] = []
    for i in range(0, n, 5000):
        with store.transaction() as tx:
            targets += tx.insert_many(
                "Contact",
                [
                    {"FirstName": f"F{j}", "LastName": f"T{j}", "Email": f"t{j}@bench.example.org"}
                    for j in range(i, min(n, i + 5000))
                ],
            )
    definition_file.import_definition(
        store,
        {
            "cadence": {"Name": "Bench"},
            "state": "Active",
            "steps": [
                {"StepName": "root", "Type": "Root"},
                {
                    "StepName": "auto",
                    "Type": "AutoSendAnEmail",
                    "ParentStepName": "root",
                    "TemplateId": template,
                },
            ],
        },
    )
    acts = oc.org.actions
    for i in range(0, n, BATCH):
        res = acts.assignTargetToSalesCadence(
            [{"salesCadenceNameOrId": "Bench", "targetId": t} for t in targets[i : i + BATCH]], rep
        )
        assert all(r["isSuccess"] for r in res), res[0]
    oc.close()


def drain(url: str, port: int, now: datetime) -> float:
    """Run the worker with the SMTP sender until nothing is due; seconds taken."""
    oc = system.build(
        system.Settings(
            database_url=url,
            clock=ManualClock(now),
            runtime=system.RuntimeConfig(batch_size=BATCH),
            upgrade=False,
            relay=system.SmtpRelay(f"127.0.0.1:{port}", tls="none"),
        )
    )
    assert oc.worker is not None and oc.smtp is not None  # the relay's sender, reconciled
    began = time.perf_counter()
    oc.worker.run_until_idle()
    elapsed = time.perf_counter() - began
    oc.smtp.close()
    oc.close()
    return elapsed


def plain_smtplib(url: str, port: int) -> tuple[float, int]:
    """The same rendered messages over one connection with plain smtplib."""
    eng = database.create_engine(url)
    meta = schema.metadata_for(default_registry())
    ob = meta.tables[schema.EMAIL_OUTBOX]
    with eng.connect() as conn:
        rows = conn.execute(sa.select(ob.c.sender, ob.c.recipient, ob.c.mime)).all()
    eng.dispose()
    began = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as s:
        for sender, recipient, mime in rows:
            s.sendmail(sender, [recipient], mime.encode("utf-8"))
    return time.perf_counter() - began, len(rows)


def states(url: str) -> collections.Counter[str]:
    eng = database.create_engine(url)
    st = schema.metadata_for(default_registry()).tables["ActionCadenceStepTracker"]
    with eng.connect() as conn:
        got = collections.Counter(
            {
                str(s): int(c)
                for s, c in conn.execute(
                    sa.select(st.c.State, sa.func.count())
                    .where(st.c.StepType == "AutoSendAnEmail")
                    .group_by(st.c.State)
                )
            }
        )
    eng.dispose()
    return got


def killed_run(folder: str, n: int) -> tuple[int, int, int, collections.Counter[str]]:
    """(duplicates, missing, messages received before the kill, step states)."""
    url = f"sqlite:///{folder}/kill.db"
    setup(url, n)
    relay = Relay()
    try:
        cmd = [sys.executable, __file__, "--worker", url, str(relay.port)]
        first = subprocess.Popen(cmd + [START.isoformat()])
        while relay.total < n // 3 and first.poll() is None:
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        at_kill = relay.total
        # the restart comes after the dead worker's leases ran out
        later = START + smtp_sender.LEASE + timedelta(seconds=1)
        subprocess.run(cmd + [later.isoformat()], check=True)
        keys = relay.keys()
    finally:
        relay.stop()
    expected = n
    duplicates = sum(c - 1 for c in keys.values() if c > 1)
    missing = expected - len(keys)
    return duplicates, missing, at_kill, states(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 steps (about 20 s)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--worker", nargs=3, metavar=("URL", "PORT", "NOW"), help=argparse.SUPPRESS)
    parser.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        serve_relay()
        return
    if args.worker:
        drain(args.worker[0], int(args.worker[1]), datetime.fromisoformat(args.worker[2]))
        return
    n = args.steps or (1000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/email.db"
        setup(url, n)
        relay = Relay()
        try:
            ours = drain(url, relay.port, START)
            keys = relay.keys()
            assert sum(keys.values()) == n and len(keys) == n, (sum(keys.values()), len(keys))
            done = states(url)
            assert done == {"Completed": n}, done
            base, sent = plain_smtplib(url, relay.port)
            assert sent == n and relay.total == 2 * n
        finally:
            relay.stop()
        rate, base_rate = n / ours, n / base
        print(
            f"steps={n} worker+smtp: {ours:.2f}s {rate:,.0f} msg/s | plain smtplib, one "
            f"connection: {base:.2f}s {base_rate:,.0f} msg/s"
        )
        dup, missing, at_kill, st = killed_run(folder, n)
        print(
            f"killed worker after {at_kill} of {n} messages, restarted: duplicates={dup} "
            f"missing={missing} step states={dict(st)}"
        )
    sys.stderr.flush()
    print(
        f"ratio={rate / base_rate:.2f} goal>={GOAL:.2f} duplicates={dup} missing={missing}",
        flush=True,
    )


if __name__ == "__main__":
    main()
