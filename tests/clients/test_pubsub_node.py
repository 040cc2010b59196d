"""The npm registry's unmodified ``salesforce-pubsub-api-client`` against the local Pub/Sub server.

The client is installed once into a cache folder (``$OPENCADENCE_NODE_CLIENTS``, default
``~/.cache/opencadence/node-clients``; ``.ci/run`` installs it first) from
``tests/clients/node/package.json``, which pins its version. ``node/pubsub_subscribe.mjs``
subscribes with the client's ``user-supplied`` auth (accessToken, instanceUrl, organizationId)
and prints one JSON line per callback.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opencadence.api import pubsub, tls
from opencadence.clock import ManualClock
from opencadence.org import Org
from opencadence.storage import events, migrate, records

from .conftest import Server, free_port

HERE = Path(__file__).parent / "node"
PACKAGE = "salesforce-pubsub-api-client"


def node_clients_dir() -> Path:
    default = Path.home() / ".cache" / "opencadence" / "node-clients"
    return Path(os.environ.get("OPENCADENCE_NODE_CLIENTS", default))


def install(folder: Path) -> None:
    """``npm install`` of node/package.json into ``folder`` unless that version is there."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = (HERE / "package.json").read_text()
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers install once between them
        # every pinned package present, at its pinned version: a cache another checkout
        # installed with a different package.json may lack one (npm prunes what it omits)
        if (folder / "package.json").exists() and (folder / "package.json").read_text() == wanted:
            pins = json.loads(wanted)["dependencies"]
            if all(_installed_version(folder, name) == pin for name, pin in pins.items()):
                return
        (folder / "package.json").write_text(wanted)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=600,
        )


def _installed_version(folder: Path, name: str) -> str | None:
    manifest = folder / "node_modules" / name / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text()).get("version"))


@pytest.fixture(scope="session")
def node_dir() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed for the npm client tests")
        pytest.skip("node/npm not installed")
    folder = node_clients_dir()
    install(folder)
    for script in ("pubsub_subscribe.mjs", "pubsub_reauth.mjs"):
        shutil.copy(HERE / script, folder / script)
    return folder


@pytest.fixture
def running(store: records.Store, tmp_path: Path) -> Iterator[tuple[Org, int, str]]:
    org = Org(store)
    admin_id, _ = org.accounts.create_user("node-ps@oc.test", "pw", admin=True)
    cert, key = tls.self_signed(tmp_path / "tls")
    server = pubsub.start(
        org, host="127.0.0.1", port=free_port(), tls_files=(cert, key), keepalive=0.3
    )
    try:
        yield org, server.port, org.accounts.open_session(admin_id)
    finally:
        server.stop()


class NodeSubscriber:
    def __init__(self, node_dir: Path, port: int, token: str, topic: str, count: int, *extra: str):
        self.proc = subprocess.Popen(
            [
                "node",
                str(node_dir / "pubsub_subscribe.mjs"),
                f"127.0.0.1:{port}",
                "https://127.0.0.1:8443",
                token,
                migrate.ORG_ID,
                topic,
                str(count),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=node_dir,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next line of type ``kind`` (other types skipped)."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"client exited ({self.proc.wait()}): {err}")
            if line["type"] == kind:
                return line
            if line["type"] == "error" and kind != "error":
                raise AssertionError(f"client error: {line}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _contact(store: records.Store, name: str) -> str:
    with store.transaction() as tx:
        return tx.insert("Contact", {"LastName": name})


def _replay_ids(store: records.Store) -> list[int]:
    with store.reading() as conn:
        return [e["event"]["replayId"] for e in events.read(conn, store.meta, entity="Contact")]


def test_npm_client_receives_a_created_and_an_updated_contact(
    node_dir: Path, running: tuple[Org, int, str]
) -> None:
    org, port, token = running
    sub = NodeSubscriber(node_dir, port, token, "/data/ContactChangeEvent", 2)
    try:
        sub.next("grpcKeepAlive")  # subscribed: only new events come (LATEST)
        cid = _contact(org.store, "NodeCreated")
        with org.store.transaction() as tx:
            tx.update("Contact", cid, {"Title": "VP Sales", "FirstName": "Grace"})
        got = [sub.next("event")["event"] for _ in range(2)]
    finally:
        sub.close()
    # the server sends them in replay order, in one FetchResponse or two; the npm client
    # handles each response in an async callback that awaits the schema of its first event,
    # so two responses arriving before the schema is cached may reach the callback swapped
    created, updated = sorted(got, key=lambda e: int(e["replayId"]))
    header = created["payload"]["ChangeEventHeader"]
    assert (header["entityName"], header["changeType"], header["recordIds"]) == (
        "Contact",
        "CREATE",
        [cid],
    )
    assert created["payload"]["Name"]["LastName"] == "NodeCreated"  # compound, as Salesforce
    assert isinstance(created["payload"]["CreatedDate"], int)  # epoch ms, as Salesforce sends
    assert [created["replayId"], updated["replayId"]] == _replay_ids(org.store)
    changed = updated["payload"]["ChangeEventHeader"]["changedFields"]
    assert {"Title", "Name.FirstName"} <= set(changed)  # the client decoded the bitmaps
    assert "Name.LastName" not in changed
    assert updated["payload"]["Title"] == "VP Sales" and updated["payload"]["Email"] is None
    assert updated["payload"]["Name"]["FirstName"] == "Grace"


def test_npm_client_resumes_after_its_last_replay_id(
    node_dir: Path, running: tuple[Org, int, str]
) -> None:
    org, port, token = running
    _contact(org.store, "Seen")
    missed = _contact(org.store, "Missed")
    first, _ = _replay_ids(org.store)
    sub = NodeSubscriber(node_dir, port, token, "/data/ContactChangeEvent", 1, str(first))
    try:
        event = sub.next("event")["event"]
    finally:
        sub.close()
    assert event["payload"]["ChangeEventHeader"]["recordIds"] == [missed]


def test_npm_client_with_a_bad_token_is_unauthenticated(
    node_dir: Path, running: tuple[Org, int, str]
) -> None:
    _, port, _ = running
    sub = NodeSubscriber(node_dir, port, "00D000000000001!bad", "/data/ContactChangeEvent", 1)
    try:
        error = sub.next("error")
    finally:
        sub.close()
    assert error["code"] == 16  # UNAUTHENTICATED
    assert error["details"].startswith("An authentication exception occurred.")


def test_npm_client_carries_on_across_its_session_ending_with_no_gap(
    node_dir: Path, server: Server, session_clock: ManualClock, tmp_path: Path
) -> None:
    """The session of an open stream ends (here: the server's session clock passes its
    2-hour inactivity timeout). The stream ends with UNAUTHENTICATED and Salesforce's auth
    error code; the unmodified client, with username-password auth, logs in again, subscribes
    from after the last event it processed, and receives everything after it: no gap, no
    repeat."""
    org = server.org
    cert, key = tls.self_signed(tmp_path / "grpc-tls")
    grpc_server = pubsub.start(
        org,
        host="127.0.0.1",
        port=free_port(),
        tls_files=(cert, key),
        keepalive=0.3,
        session_check=0.2,
    )
    _contact(org.store, "Before")
    start = _replay_ids(org.store)[-1]
    proc = subprocess.Popen(
        [
            "node",
            str(node_dir / "pubsub_reauth.mjs"),
            f"127.0.0.1:{grpc_server.port}",
            f"https://{server.instance}",
            server.admin,
            server.admin_password + server.admin_token,
            "/data/ContactChangeEvent",
            "6",
            str(start),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=node_dir,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(server.cert)},
    )
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                lines.put(json.loads(line))
        lines.put(None)

    def until(kind: str) -> list[dict[str, Any]]:
        seen = []
        while True:
            line = lines.get(timeout=30)
            assert line is not None, f"client exited ({proc.wait()}): {proc.stderr.read()}"  # type: ignore[union-attr]
            seen.append(line)
            if line["type"] == kind:
                return seen

    threading.Thread(target=read, daemon=True).start()
    try:
        until("grpcKeepAlive")  # subscribed, waiting
        made = [_contact(org.store, f"Early{i}") for i in range(3)]
        early = until("event") + until("event") + until("event")
        session_clock.advance(hours=3)  # sessions only: the org's clock stays
        # committed while the stream ends: delivered before the end or after the new login
        made.append(_contact(org.store, "WhileEnding"))
        late = until("reconnected")
        made += [_contact(org.store, f"Late{i}") for i in range(2)]
        while len([line for line in early + late if line["type"] == "event"]) < 6:
            late += until("event")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        grpc_server.stop()
    got = [line for line in early + late if line["type"] == "event"]
    # the client's callback awaits each response's schema, so the events of two responses
    # that arrive before the schema is cached can reach it swapped: compared in replay order
    got.sort(key=lambda line: int(line["replayId"]))
    assert [line["recordIds"] for line in got] == [[m] for m in made]  # no gap, no repeat
    replay_ids = [int(line["replayId"]) for line in got]
    assert replay_ids == sorted(set(replay_ids)) and replay_ids[0] > start
    errors = [line for line in late if line["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == 16  # UNAUTHENTICATED
    assert errors[0]["errorCode"] == pubsub.AUTH_CODE
    assert errors[0]["details"].startswith("An authentication exception occurred.")
