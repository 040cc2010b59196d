"""A real opencadence server on 127.0.0.1 (TLS, manual clock) for unmodified clients.

Stopping a server must not wait. uvicorn's graceful shutdown waits for every open connection to
close, and a TLS connection closes only when its client closes its socket (asyncio waits up to
30 s for the peer's close_notify). A ``requests.Session`` that a test drops is not closed when the
test ends if an exception traceback keeps it alive in a reference cycle, so its idle keep-alive
connection held the server thread past the old ``join(timeout=10)`` after every test that expected
an error. So the fixture shuts down every client socket it handed out before it stops the server,
and ``serving`` asserts that the server thread really ended.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import uvicorn

from opencadence import system, testing
from opencadence.api import server as api_server
from opencadence.api import tls
from opencadence.clock import ManualClock
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
    sessions: list[requests.Session] = field(default_factory=list)
    sockets: set[socket.socket] = field(default_factory=set)

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    def session(self) -> requests.Session:
        """A requests session that trusts the server's certificate and sends the login hosts to it."""
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.cert)
        s.mount("https://", testing.tracking_adapter(self.sockets))
        for host in ("https://login.salesforce.com", "https://test.salesforce.com"):
            s.mount(host, testing.tracking_adapter(self.sockets, _to_local(self.port)))
        self.sessions.append(s)
        return s

    def close_clients(self) -> None:
        """Close the clients' connections: the server's shutdown waits for each one.

        Closing a session closes its pooled sockets, but a closed socket stays open while a
        response still holds its file (one kept by an exception's traceback lives until the
        garbage collector runs), so each socket is also shut down, which ends it at once."""
        for s in self.sessions:
            s.close()
        testing.shut_down(self.sockets)


def _to_local(port: int) -> Callable[[str], str]:
    """Sends requests for a Salesforce login host to the local server (client code untouched)."""

    def rewrite(url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(
            (parts.scheme, f"127.0.0.1:{port}", parts.path, parts.query, parts.fragment)
        )

    return rewrite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: How long a stopping server may take once its clients are gone (it needs about 0.2 s).
STOP_SECONDS = 5.0


class _QuickStop(uvicorn.Server):
    """uvicorn's server, stopping in milliseconds instead of about 0.2 s, which thousands of
    tests each starting their own server pay: it looks at ``should_exit`` every 10 ms (uvicorn:
    100 ms), and with no connection left (``Server.close_clients`` shut them) it skips the
    0.1 s uvicorn's shutdown gives open connections to finish their responses. With a
    connection still open it stops as uvicorn does (and ``serving`` reports it)."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own steps, less the wait for connections there are none of
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


@contextmanager
def serving(config: uvicorn.Config, stop_within: float = STOP_SECONDS) -> Iterator[uvicorn.Server]:
    """Run a uvicorn server in a thread; on exit stop it and fail unless its thread ended."""
    srv = _QuickStop(config)
    thread = threading.Thread(target=srv.run, name=f"uvicorn-{config.port}", daemon=True)
    thread.start()
    try:
        _wait_started(srv, thread)
        yield srv
    finally:
        srv.should_exit = True
        thread.join(timeout=stop_within)
    if thread.is_alive():
        # Not forced to exit: that would leak the open sockets into a later test's warnings.
        # The thread ends by itself once the client goes (or asyncio's TLS shutdown times out).
        raise AssertionError(
            f"server thread still running {stop_within} s after should_exit "
            f"({len(srv.server_state.connections)} connection(s) still open)"
        )


def _wait_started(srv: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 20
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)


@pytest.fixture
def session_clock() -> ManualClock:
    """The clock the server times sessions on (the wall clock in a real server)."""
    return ManualClock()


@pytest.fixture
def server(
    store: records.Store, clock: ManualClock, session_clock: ManualClock, tmp_path: Path
) -> Iterator[Server]:
    # wired as `opencadence serve --clock manual` wires it; the worker runs when the clock
    # endpoint moves time (the endpoint answers once due work is done), not in a thread
    settings = system.Settings(
        clock=clock, session_clock=session_clock, upgrade=False, tracking=True
    )
    built = system.build(settings, engine=store.engine)
    org = built.org
    admin_id, token = org.accounts.create_user(
        "admin@oc.test", "s3cret!", admin=True, time_zone="America/Los_Angeles"
    )
    cert, key = tls.self_signed(tmp_path / "tls")
    port = free_port()
    config = api_server.config(  # as `serve` configures uvicorn
        api_server.app(built), host="127.0.0.1", port=port, tls_files=(cert, key), log_level="error"
    )
    with serving(config):
        running = Server(org, clock, port, cert, "admin@oc.test", "s3cret!", token)
        try:
            yield running
        finally:
            running.close_clients()
