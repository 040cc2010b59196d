"""``opencadence serve --processes N``: N HTTP server processes on one listening socket.

uvicorn's own multi-process supervisor (``workers=N`` with an app factory) runs the children:
each is a spawned Python process that builds its own System from the Settings handed down
(``child_app``: no worker, no schema upgrade, no inbound listener) and serves the REST, SOAP,
OAuth, CometD and web routes on the socket the parent bound, so the kernel spreads connections
over them. uvicorn restarts a child that dies and stops all on SIGINT/SIGTERM.

The parent process serves no HTTP. It is the one that upgraded the schema, and it runs what
must exist once per server: the Pub/Sub gRPC server (one port), the cadence worker thread
(unless --no-worker; more workers are ``opencadence worker`` processes), the change-event
retention sweep and the inbound SMTP listener. The worker's heartbeat row
(``storage.heartbeats``) makes it visible in every child's ``/_opencadence/health``.

CometD clients are shared by the children (``shared_streaming``: ``api.streaming.SharedClients``
over ``storage.cometd_clients``): any child answers any Bayeux message of any client, a connect
held by one child is woken by a subscription, disconnect or newer connect through another
(``NOTIFY oc_cometd_clients``), and cursors advance by compare-and-set, so no event is missed or
delivered twice. What stays per process: compiled-query caches. A manual clock cannot be
shared, so ``--clock manual`` and SQLite (one writer) are refused with more than one process
(cli/server.py). See docs/how-to/postgresql.md.
"""

from __future__ import annotations

import atexit
import base64
import os
import pickle
import socket
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from opencadence import system
from opencadence.api import health, server

#: The environment variable that hands the children their Settings (spawned processes
#: inherit the parent's environment; uvicorn's app factory takes no arguments).
SETTINGS_ENV = "OPENCADENCE_SERVE_CHILD_SETTINGS"
#: The import string of the children's app factory.
FACTORY = "opencadence.api.processes:child_app"


def child_settings(settings: system.Settings) -> system.Settings:
    """What a child builds: the parent's database and limits, no worker, no upgrade (the
    parent did it), no inbound listener, answering tracking links."""
    return system.Settings(
        database_url=settings.database_url,
        clock="system",
        login_max_attempts=settings.login_max_attempts,
        login_lockout=settings.login_lockout,
        event_retention=settings.event_retention,
        runtime=settings.runtime,
        upgrade=False,
        worker=False,
        tracking=True,
        api_request_limit=settings.api_request_limit,
    )


def _encode(settings: system.Settings) -> str:
    return base64.b64encode(pickle.dumps(settings)).decode("ascii")


def child_app() -> Starlette:
    """The app of one child process (uvicorn calls it in the child, ``factory=True``)."""
    settings = pickle.loads(base64.b64decode(os.environ[SETTINGS_ENV]))  # noqa: S301 (the parent's)
    built = system.build(settings)
    atexit.register(built.close)
    server.quiet_upgrade_warnings()
    # any child may receive any Bayeux message of any client: CometD clients are shared
    return server.app(built, health.Health(built.store), shared_streaming=True)


def run(
    built: system.System,
    processes: int,
    *,
    host: str,
    port: int,
    tls_files: tuple[Path, Path] | None,
    sock: socket.socket,
) -> None:
    """Serve with ``processes`` children on ``sock`` until SIGINT/SIGTERM; this process runs
    the worker thread and the retention sweep meanwhile."""
    os.environ[SETTINGS_ENV] = _encode(child_settings(built.settings))
    config = uvicorn.Config(
        FACTORY,
        factory=True,
        workers=processes,
        host=host,
        port=port,
        log_level="warning",
        ws="none",
        ssl_certfile=str(tls_files[0]) if tls_files else None,
        ssl_keyfile=str(tls_files[1]) if tls_files else None,
    )
    stop = threading.Event()
    worker = server.start_background(built, stop)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        stop.set()
        if worker is not None:
            worker.join(server.WORKER_JOIN_SECONDS)
