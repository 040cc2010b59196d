"""A fresh local org per test: a real opencadence server on 127.0.0.1 with a manual clock.

``Template`` migrates a database once (and makes the admin user); ``LocalOrg`` serves an org
with its contents over TLS on a free port (a ``Server``: uvicorn in a thread, which a session
reuses for every test's org; the server also keeps one org, put back to the template's rows
between tests, so most tests copy no database) and hands out what clients need: the instance URL, an access token, the
certificate to trust, a ready simple-salesforce client.
``advance(days=…)`` moves the org's clock and returns once the cadence worker has done what the
move made due, so a test can walk a cadence through weeks in milliseconds.

The pytest plugin (``opencadence.pytest_plugin``) wraps these in fixtures; they work without
pytest too::

    with testing.Template.prepared() as template, testing.LocalOrg(template) as org:
        org.sf.Contact.create({"LastName": "Ng"})
        org.advance(days=2)
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from opencadence import system
from opencadence.api import server as api_server
from opencadence.api import tls
from opencadence.clock import ManualClock
from opencadence.org import Org
from opencadence.storage import copies

#: The admin every prepared org has (its password logs in with the security token appended).
ADMIN_USERNAME = "admin@opencadence.test"
ADMIN_PASSWORD = "opencadence-test-1"

#: The admin's access token outlives any test session (a fixed expiry, not inactivity).
TOKEN_LIFETIME = timedelta(days=3650)

#: How long a stopping server waits for clients that keep their connections open.
STOP_SECONDS = 5.0


@dataclass
class Template:
    """A migrated database with the admin user in it, and the TLS certificate its copies use."""

    url: str
    admin_id: str
    security_token: str
    #: the admin's session, valid in every copy (each copy is a separate org)
    access_token: str
    cert: Path
    key: Path
    directory: Path
    #: its rows, which the session's reused org is put back to between tests
    snapshot: copies.Snapshot | None = None

    @classmethod
    @contextmanager
    def prepared(cls, database_url: str | None = None) -> Iterator[Template]:
        """Migrate once: into a SQLite file in a temporary directory, or (``database_url`` a
        PostgreSQL URL) into a new database on that server, dropped at the end."""
        with tempfile.TemporaryDirectory(prefix="opencadence-") as tmp:
            directory = Path(tmp)
            name = f"oc_tpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            if database_url is None or copies.is_sqlite(database_url):
                url = f"sqlite:///{directory / name}.db"
            else:
                url = copies.create_empty(database_url, name)
            try:
                yield cls._build(url, directory)
            finally:
                if not copies.is_sqlite(url):
                    copies.drop(url)

    @classmethod
    def _build(cls, url: str, directory: Path) -> Template:
        settings = system.Settings(database_url=url, clock=ManualClock(), worker=False)
        with system.build(settings) as built:
            admin_id, token = built.org.accounts.create_user(
                ADMIN_USERNAME, ADMIN_PASSWORD, admin=True, email=ADMIN_USERNAME
            )
            # minted once and copied with the database: a test opens no session of its own
            access = built.org.accounts.open_session(admin_id, "pytest", ttl=TOKEN_LIFETIME)
            snapshot = copies.take(built.engine, built.registry)
        cert, key = tls.self_signed(directory / "tls")
        return cls(url, admin_id, token, access, cert, key, directory, snapshot)


class Server:
    """A TLS server on a free 127.0.0.1 port that serves whichever org is mounted on it.

    Starting and stopping uvicorn costs more than a whole ten-record test, so a session keeps
    one server and each test's org is mounted on it in turn (a test sees only its own org: the
    previous one is unmounted, and its rows put back or its database dropped). Requests while
    nothing is mounted answer 503."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self._switch = _Switch()
        self._sockets: set[socket.socket] = set()
        self._slot: _Slot | None = None
        sock = api_server.listen("127.0.0.1", 0)
        self.port = int(sock.getsockname()[1])
        config = api_server.config(
            self._switch,  # type: ignore[arg-type]  # any ASGI app; the orgs' apps come later
            host="127.0.0.1",
            port=self.port,
            tls_files=(template.cert, template.key),
            log_level="error",
        )
        config.lifespan = "off"  # the orgs' apps have no start-up or shut-down work
        config.timeout_graceful_shutdown = int(STOP_SECONDS)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="opencadence"
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the opencadence server did not start")
            time.sleep(0.01)
        #: one keep-alive client connection for every org's ``sf`` (no TLS handshake per test)
        self.client = self.session()

    @property
    def instance_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def mount(self, app: Any) -> None:
        self._switch.app = app

    def lend_slot(self) -> _Slot | None:
        """The session's reusable org, None while another org holds it."""
        if self.template.snapshot is None:
            return None
        if self._slot is None:
            self._slot = _Slot(self.template)
        if self._slot.busy:
            return None
        self._slot.busy = True
        return self._slot

    def session(self) -> Any:
        """A ``requests.Session`` that trusts the server (closed with the server)."""
        import requests  # an optional dependency: only tests that ask for a client need it

        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.template.cert)
        s.mount("https://", tracking_adapter(self._sockets))
        return s

    def close(self) -> None:
        """Close the clients' connections (the server's shutdown would wait for them), then stop."""
        self.client.close()
        shut_down(self._sockets)
        self._server.should_exit = True
        self._thread.join(STOP_SECONDS * 2)
        if self._slot is not None:
            self._slot.close()
            self._slot = None

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _TestClock(ManualClock):
    """The clock of the reused org: the current test's ManualClock, whichever it is."""

    def __init__(self) -> None:
        super().__init__()
        self.target = ManualClock()

    def now(self) -> datetime:
        return self.target.now()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        return self.target.advance(delta, **kwargs)

    def set(self, when: datetime) -> datetime:
        return self.target.set(when)


class _Slot:
    """One org a session reuses test after test: a copy of the template with its System and
    app built once. Between tests its rows are put back to the template's snapshot in place
    (storage/copies.py ``restore``: only the tables that have rows are emptied) rather than
    the database copied, the System built and connected anew: the build, the first connection
    and the closing checkpoint cost more than a short test."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.busy = False
        self.clock = _TestClock()
        name = f"oc_org_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        self.database_url = copies.clone(template.url, name, template.directory)
        copies.not_durable(self.database_url)
        settings = system.Settings(
            database_url=self.database_url, clock=self.clock, upgrade=False, worker=True
        )
        self.system = system.build(settings)
        self.app = api_server.app(self.system)

    def reset(self) -> None:
        """Back to the template's contents; this process's API count starts again."""
        assert self.template.snapshot is not None
        copies.restore(self.system.engine, self.system.registry, self.template.snapshot)
        self.system.org.api_usage.restart()
        self.system.org.accounts.forget_sessions()  # their rows are gone, or back as they were
        self.busy = False

    def close(self) -> None:
        self.system.close()
        copies.drop(self.database_url)


class _Switch:
    """The ASGI app a ``Server`` runs: forwards to the mounted org's app."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self.app
        if app is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)


class LocalOrg:
    """One test's org: a copy of ``template`` served on ``server`` (a server of its own when
    none is given) until ``close``."""

    def __init__(
        self, template: Template, start: datetime | None = None, server: Server | None = None
    ) -> None:
        self.template = template
        self.clock = ManualClock(start)
        self._slot = server.lend_slot() if server is not None else None
        if self._slot is not None:
            self.database_url = self._slot.database_url
        else:
            self.database_url = copies.clone(
                template.url, f"oc_org_{os.getpid()}_{uuid.uuid4().hex[:10]}", template.directory
            )
            copies.not_durable(self.database_url)
        self._own_server = server is None
        self._server: Server | None = server
        self._system: system.System | None = None
        self._sf: Any = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # --- what clients need ----------------------------------------------------------------

    @property
    def org(self) -> Org:
        """The org behind the server (the same facade the API uses)."""
        assert self._system is not None
        return self._system.org

    @property
    def server(self) -> Server:
        assert self._server is not None
        return self._server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def instance_url(self) -> str:
        return self.server.instance_url

    @property
    def ca_file(self) -> str:
        """The server certificate, for ``verify=`` (requests) or ``NODE_EXTRA_CA_CERTS``."""
        return str(self.template.cert)

    @property
    def username(self) -> str:
        return ADMIN_USERNAME

    @property
    def password(self) -> str:
        return ADMIN_PASSWORD

    @property
    def security_token(self) -> str:
        return self.template.security_token

    def env(self) -> dict[str, str]:
        """Environment variables for a client in a subprocess (node, the sf CLI, curl)."""
        return {
            "SF_INSTANCE_URL": self.instance_url,
            "SF_ACCESS_TOKEN": self.access_token,
            "SF_USERNAME": self.username,
            "NODE_EXTRA_CA_CERTS": self.ca_file,
            "REQUESTS_CA_BUNDLE": self.ca_file,
            "SSL_CERT_FILE": self.ca_file,
            # the sf CLI: no telemetry, no update checks (`sf org login access-token
            # --instance-url URL --no-prompt` reads SF_ACCESS_TOKEN)
            "SF_DISABLE_TELEMETRY": "true",
            "SF_AUTOUPDATE_DISABLE": "true",
            "SF_SKIP_NEW_VERSION_CHECK": "true",
        }

    def session(self) -> Any:
        """A ``requests.Session`` that trusts the server."""
        return self.server.session()

    @property
    def sf(self) -> Any:
        """A simple-salesforce client logged in as the admin (pip install simple-salesforce)."""
        if self._sf is None:
            try:
                from simple_salesforce.api import Salesforce
            except ImportError as exc:  # say what to install rather than a bare ImportError
                raise RuntimeError(
                    "LocalOrg.sf needs simple-salesforce: pip install simple-salesforce"
                ) from exc
            self._sf = Salesforce(
                instance_url=self.instance_url,
                session_id=self.access_token,
                session=self.server.client,
            )
        return self._sf

    # --- time -----------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move the org's clock forward (``advance(days=2)``) and return once every cadence
        transition the move made due has run; returns the new time."""
        now = self.clock.advance(delta, **kwargs)
        self.settle()
        return now

    def settle(self) -> int:
        """Run the cadence worker until nothing is due now; returns trackers handled."""
        assert self._system is not None and self._system.worker is not None
        return self._system.worker.run_until_idle()

    # --- life -----------------------------------------------------------------------------

    def _start(self) -> None:
        self.access_token = self.template.access_token
        if self._slot is not None:
            self._slot.clock.target = self.clock
            self._system = self._slot.system
            self.server.mount(self._slot.app)
            return
        settings = system.Settings(
            database_url=self.database_url, clock=self.clock, upgrade=False, worker=True
        )
        self._system = system.build(settings)
        self.access_token = self.template.access_token
        if self._server is None:
            self._server = Server(self.template)
        self._server.mount(api_server.app(self._system))

    def close(self) -> None:
        if self._server is not None:
            self._server.mount(None)
            if self._own_server:
                self._server.close()
        if self._slot is not None:
            slot, self._slot, self._system = self._slot, None, None
            slot.reset()
            return
        if self._system is not None:
            self._system.close()
            self._system = None
        copies.drop(self.database_url)

    def __enter__(self) -> LocalOrg:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def tracking_adapter(
    sockets: set[socket.socket], rewrite: Callable[[str], str] | None = None
) -> Any:
    """A requests transport adapter that remembers the socket of every connection it sends on
    (for ``shut_down``); ``rewrite`` changes each request's URL first (the test suite sends
    Salesforce's login hosts to the local server with it)."""
    from requests import PreparedRequest, Response
    from requests.adapters import HTTPAdapter

    class Tracking(HTTPAdapter):
        def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
            if rewrite is not None and request.url is not None:
                request.url = rewrite(request.url)
            response = super().send(request, *args, **kwargs)
            connection = response.raw.connection  # None once a bodiless response is read
            if connection is not None and connection.sock is not None:
                sockets.add(connection.sock)
            return response

    return Tracking()


def shut_down(sockets: set[socket.socket]) -> None:
    """End every client connection in ``sockets`` at once. A closed session's socket stays open
    while a response (kept alive by a traceback, say) still holds its file, and a server's
    graceful shutdown waits for it, so each one is shut down, not only closed."""
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
        sock.close()
    sockets.clear()
