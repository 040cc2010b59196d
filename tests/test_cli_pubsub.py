"""``serve`` and ``demo`` serve the Pub/Sub API on ``--pubsub-port`` (TLS when the API is)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from opencadence import cli
from opencadence.api import server
from opencadence.api.pubsub_proto import pubsub_api_pb2 as pb
from opencadence.api.pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from opencadence.storage import migrate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _topic(channel: grpc.Channel, token: str, tenant: str = migrate.ORG_ID) -> Any:
    with channel:
        return pb_grpc.PubSubStub(channel).GetTopic(
            pb.TopicRequest(topic_name="/data/ActionCadenceStepTrackerChangeEvent"),
            metadata=[("accesstoken", token), ("instanceurl", "https://x"), ("tenantid", tenant)],
            timeout=10,
        )


@pytest.mark.parametrize("tls", [False, True])
def test_serve_answers_pubsub_on_its_port(
    monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path, tls: bool
) -> None:
    port = _free_port()
    answered: list[Any] = []

    def run(built: Any, **kw: Any) -> None:  # while serve would serve REST: call Pub/Sub
        user, _ = built.org.accounts.create_user("cli-ps@oc.test", "pw", admin=True)
        token = built.org.accounts.open_session(user)
        if kw["tls_files"] is None:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        else:
            creds = grpc.ssl_channel_credentials(kw["tls_files"][0].read_bytes())
            channel = grpc.secure_channel(f"127.0.0.1:{port}", creds)
        answered.append(_topic(channel, token))

    monkeypatch.setattr(server, "run", run)
    extra = ["--tls", "--cert-dir", str(tmp_path / "tls")] if tls else []
    args = ["serve", "--database", db_url, "--no-worker", "--port", str(_free_port())]
    assert cli.main([*args, "--pubsub-port", str(port), *extra]) == 0
    assert answered[0].can_subscribe and answered[0].schema_id
    with socket.socket() as s:  # stopped with the server
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_on_a_busy_pubsub_port_says_so_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(server, "run", lambda built, **kw: pytest.fail("served"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "--database", db_url, "--no-worker", "--port", str(_free_port())]
        assert cli.main([*args, "--pubsub-port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_demo_banner_names_a_pubsub_endpoint_that_works_as_printed(tmp_path: Path) -> None:
    port, pubsub_port = _free_port(), _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "opencadence", "demo", "--port", str(port)]
        + ["--pubsub-port", str(pubsub_port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            lines = []
            for _ in range(40):
                lines.append(proc.stdout.readline())  # type: ignore[union-attr]
                if "curl " in lines[-1] or not lines[-1]:
                    break
            token = lines[2].split("access token: ", 1)[1].strip()
            (line,) = [x for x in lines if x.startswith("# Pub/Sub API")]
            found = re.search(r"TLS\): (\S+) .* tenantid (\S+)", line)
            assert found is not None, line
            endpoint, tenant = found.groups()
            assert endpoint == f"127.0.0.1:{pubsub_port}"
            cacert = re.search(r"--cacert (\S+)", lines[-1])
            assert cacert is not None
            creds = grpc.ssl_channel_credentials(Path(cacert.group(1)).read_bytes())
            topic = _topic(grpc.secure_channel(endpoint, creds), token, tenant)
            assert topic.can_subscribe and topic.tenant_guid == migrate.ORG_ID
        finally:
            proc.terminate()
            proc.wait(timeout=20)
