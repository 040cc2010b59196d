"""A real opencadence server on 127.0.0.1 (TLS, manual clock) for unmodified clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import uvicorn
from requests.adapters import HTTPAdapter

from opencadence.api import app as api_app
from opencadence.api import tls
from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import tracking as email_tracking
from opencadence.org import Org
from opencadence.storage import records


@dataclass
class Server:
    org: Org
    clock: ManualClock
    port: int
    cert: Path
    admin: str
    admin_password: str
    admin_token: str

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    def session(self) -> requests.Session:
        """A requests session that trusts the server's certificate and sends the login hosts to it."""
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.cert)
        s.mount("https://login.salesforce.com", _Redirect(self.port))
        s.mount("https://test.salesforce.com", _Redirect(self.port))
        return s


class _Redirect(HTTPAdapter):
    """Sends requests for a Salesforce login host to the local server (client code untouched)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        parts = urlsplit(request.url)
        request.url = urlunsplit(
            (parts.scheme, f"127.0.0.1:{self.port}", parts.path, parts.query, parts.fragment)
        )
        return super().send(request, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(store: records.Store, clock: ManualClock, tmp_path: Path) -> Iterator[Server]:
    org = Org(store)
    admin_id, token = org.accounts.create_user(
        "admin@oc.test", "s3cret!", admin=True, time_zone="America/Los_Angeles"
    )
    cert, key = tls.self_signed(tmp_path / "tls")
    port = _free_port()
    settle = worker.Worker(store).run_until_idle  # the clock endpoint answers once due work is done
    tracker = email_tracking.Tracker(store, org.accounts.secret("tracking"))
    app = api_app.build_app(org, manual_clock=clock, settle=settle, tracker=tracker)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    yield Server(org, clock, port, cert, "admin@oc.test", "s3cret!", token)
    srv.should_exit = True
    thread.join(timeout=10)
