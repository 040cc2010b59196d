"""Chaos, short form (issue 10): on PostgreSQL, two ``opencadence worker`` processes send a
run of automated emails to an aiosmtpd relay while they are killed (``kill -9``) and
restarted and every database connection is terminated, over and over. At the end: no email
lost, every email the relay got twice was reported ``unknown`` (in flight at a kill), every
tracker consistent, both workers alive. Bounded: about 25 s."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from opencadence.cadence import actions, definition_file
from opencadence.storage import mail, records, schema
from tests.integration.cadence import invariants
from tests.integration.email.conftest import Relay, Template, free_port
from tests.integration.email.test_send import auto_step

EMAILS = 120
#: The relay takes this long per message, so the kills land in the middle of deliveries.
RELAY_DELAY = 0.04
CHAOS_SECONDS = float(os.environ.get("OC_CHAOS_SECONDS", "8"))
SETTLE_SECONDS = 30.0
#: A worker process starts in about a second (several on a loaded machine).
STARTUP_SECONDS = 30.0
LEASE_SECONDS = "1"


class Workers:
    """``opencadence worker`` processes on one database and relay, killable and restartable."""

    def __init__(self, url: str, relay_port: int, log_dir: Path) -> None:
        self.url, self.port, self.log_dir = url, relay_port, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "OPENCADENCE_SMTP_LEASE_SECONDS": LEASE_SECONDS}
        self.started += 1
        log = open(self.log_dir / f"worker-{self.started}.log", "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "opencadence.cli", "worker", "--database", self.url]
        cmd += ["--smtp-relay", f"127.0.0.1:{self.port}", "--smtp-tls", "none", "--poll", "0.1"]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def kill_one(self, rng: random.Random) -> None:
        live = [p for p in self.procs if p.poll() is None]
        victim = rng.choice(live)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.procs.remove(victim)
        self.start()

    def alive(self) -> list[bool]:
        return [p.poll() is None for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


class SlowRelay(Relay):
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(RELAY_DELAY)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_relay() -> Iterator[Relay]:
    r = SlowRelay(port=free_port())
    ctl = Controller(r, hostname="127.0.0.1", port=r.port)
    ctl.start()
    yield r
    ctl.stop()


@pytest.fixture
def workers(store: records.Store, slow_relay: Relay, tmp_path: Path) -> Iterator[Workers]:
    url = store.engine.url.render_as_string(hide_password=False)
    w = Workers(url, slow_relay.port, Path(os.environ.get("OC_CHAOS_LOGS", str(tmp_path))))
    yield w
    w.stop()


def _enrol_all(
    store: records.Store, acts: actions.Actions, rep: str, template_id: str
) -> list[str]:
    """One AutoSendAnEmail cadence, EMAILS contacts in it."""
    data = {
        "cadence": {"Name": "Chaos"},
        "state": "Active",
        "steps": [
            {"StepName": "root", "Type": "Root", "StepTitle": "root"},
            {
                "StepName": "auto",
                "Type": "AutoSendAnEmail",
                "StepTitle": "auto",
                "ParentStepName": "root",
                "TemplateId": template_id,
            },
        ],
    }
    cadence = definition_file.import_definition(store, data)
    with store.transaction() as tx:
        targets = [
            tx.insert("Contact", {"LastName": f"C{i}", "Email": f"c{i}@example.com"})
            for i in range(EMAILS)
        ]
    inputs = [{"salesCadenceNameOrId": cadence, "targetId": t, "userId": rep} for t in targets]
    results = acts.assignTargetToSalesCadence(inputs, rep)
    assert all(r["isSuccess"] for r in results)
    return targets


def _terminate_all(admin: sa.Engine, database: str) -> int:
    with admin.connect() as conn:
        return len(
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": database},
            ).all()
        )


def _outbox(store: records.Store) -> list[dict[str, object]]:
    ob = store.meta.tables[schema.EMAIL_OUTBOX]
    with store.reading() as conn:
        return [dict(r) for r in conn.execute(sa.select(ob)).mappings()]


def test_chaos_kills_and_connection_losses(
    store: records.Store,
    slow_relay: Relay,
    template: Template,
    acts: actions.Actions,
    rep: str,
    workers: Workers,
    request: pytest.FixtureRequest,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the chaos run terminates PostgreSQL backends")
    admin: sa.Engine = request.getfixturevalue("pg_admin")
    database = str(store.engine.url.database)
    relay = slow_relay
    targets = _enrol_all(store, acts, rep, template())
    store.engine.dispose()  # the test's own connections: none in use during the chaos
    rng = random.Random(10)
    workers.start()
    workers.start()
    ready = time.monotonic() + STARTUP_SECONDS
    while not relay.received and time.monotonic() < ready:  # both processes are up
        time.sleep(0.1)
    assert relay.received, "no worker started"
    kills = terminations = 0
    began = time.monotonic()
    while time.monotonic() - began < CHAOS_SECONDS:
        time.sleep(rng.uniform(0.3, 0.9))
        if rng.random() < 0.5:
            workers.kill_one(rng)
            kills += 1
        else:
            terminations += _terminate_all(admin, database)
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if {auto_step(store, t)["State"] for t in targets} == {"Completed"}:
            break
    steps = {t: auto_step(store, t) for t in targets}
    states = Counter(s["State"] for s in steps.values())
    if states != {"Completed": EMAILS}:  # say why, for a failure on CI
        by_key = {str(r["key"]): r for r in _outbox(store)}
        stuck = [
            (s["ErrorCode"], by_key.get(s["Id"], {}).get("status"))
            for s in steps.values()
            if s["State"] != "Completed"
        ]
        pytest.fail(f"{states}: (ErrorCode, outbox status) of the others: {Counter(stuck)}")
    rows = _outbox(store)
    assert len(rows) == EMAILS and {r["status"] for r in rows} == {"sent"}
    received = Counter(relay.message_ids())
    expected = {str(r["message_id"]) for r in rows}
    lost = expected - set(received)
    assert not lost, f"{len(lost)} lost"
    with store.reading() as conn:
        unknown_keys = set(mail.event_log(store.meta).keys_of_kind(conn, mail.UNKNOWN_EVENT))
    unknown_ids = {str(r["message_id"]) for r in rows if r["key"] in unknown_keys}
    twice = {m for m, n in received.items() if n > 1}
    assert twice <= unknown_ids, "a duplicate that was never reported unknown"
    invariants.check(store)
    assert workers.alive() == [True, True]
    assert kills + terminations > 0
    print(
        f"chaos: {kills} kills, {terminations} backends terminated, {EMAILS} emails, "
        f"0 lost, {len(twice)} resent after an unknown outcome ({len(unknown_ids)} reported)"
    )
