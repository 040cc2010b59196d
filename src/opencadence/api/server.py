"""Serving a built System: uvicorn around the ASGI app (optionally TLS), the cadence worker in
a thread beside it, and the change-event log's retention sweep. No wiring here (system.py)."""

from __future__ import annotations

import gc
import logging
import socket
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from opencadence.api import app as api_app
from opencadence.api import health
from opencadence.system import System

#: How often the server drops change events past their retention (72 hours by default).
PRUNE_EVERY_SECONDS = 600.0

#: How long the in-server worker sleeps when nothing is due.
WORKER_POLL_SECONDS = 0.5

#: How long an idle keep-alive connection stays open. uvicorn's default (5 s) is exactly the
#: interval simple-salesforce's ``sf.bulk`` polls batches at, so its next poll often went out
#: on a connection the server was closing (RemoteDisconnected).
KEEP_ALIVE_SECONDS = 30

#: How long shutting down waits for the worker to finish the batch it is in.
WORKER_JOIN_SECONDS = 10.0


def app(
    system: System, watch: health.Health | None = None, *, shared_streaming: bool = False
) -> Starlette:
    """The ASGI app of ``system``; with a manual clock, the clock endpoint answers once the
    worker has done what the move made due. ``watch`` holds the threads health reports on;
    ``shared_streaming``: CometD clients in the database (one of N server processes)."""
    settle = system.worker.run_until_idle if system.worker is not None else None
    return api_app.build_app(
        system.org,
        manual_clock=system.manual_clock,
        settle=settle,
        tracker=system.tracker,
        watch=watch,
        shared_streaming=shared_streaming,
    )


class _NoUpgradeWarnings(logging.Filter):
    """Drops uvicorn's two warnings about a request asking to upgrade the connection.

    The API serves no WebSockets on purpose: Salesforce's CometD is long-polling only, and a
    client that offers an upgrade (as CometD clients do) carries on over plain HTTP. uvicorn
    (0.54) logs "Unsupported upgrade request." and "No supported WebSocket library detected"
    for each such request even with ``ws="none"``, so each CometD connect wrote two lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith(UPGRADE_WARNINGS)


#: How uvicorn's upgrade warnings begin.
UPGRADE_WARNINGS = ("Unsupported upgrade request", "No supported WebSocket library detected")


def config(
    asgi: Starlette,
    *,
    host: str,
    port: int,
    tls_files: tuple[Path, Path] | None,
    log_level: str = "warning",
) -> uvicorn.Config:
    """The uvicorn configuration the server runs with (``tls_files`` is (cert, key)): no
    WebSockets, and none of uvicorn's warnings about upgrade requests."""
    built = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_level=log_level,
        ws="none",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ssl_certfile=str(tls_files[0]) if tls_files else None,
        ssl_keyfile=str(tls_files[1]) if tls_files else None,
    )
    # uvicorn.Config configures logging as it is built; the filter goes on after that
    quiet_upgrade_warnings()
    return built


def quiet_upgrade_warnings() -> None:
    """The filter of uvicorn's upgrade warnings on its logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoUpgradeWarnings) for f in logger.filters):
        logger.addFilter(_NoUpgradeWarnings())


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, or OSError (the port is busy, ...).

    Bound before anything else happens, so a start that cannot serve changes nothing (the
    demo mints its token only once it holds its port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default backlog
    except OSError:
        sock.close()
        raise
    return sock


def run(
    system: System,
    *,
    host: str,
    port: int,
    tls_files: tuple[Path, Path] | None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until uvicorn is stopped (Ctrl-C, SIGTERM); ``tls_files`` is (cert, key); on
    ``sock`` when given (from ``listen``), else on a socket uvicorn binds."""
    watch = health.Health(system.store)
    server = uvicorn.Server(config(app(system, watch), host=host, port=port, tls_files=tls_files))
    # What is built by now (metadata, tables, compiled statements, the app) lives as long as
    # the server: frozen out of the garbage collector's way, a full collection walks only what
    # requests create. Unfrozen, each one walked ~150,000 objects, a 150 ms pause on a 2-core
    # machine that every held long-poll and Pub/Sub stream waited through (bench/streaming.py).
    gc.collect()
    gc.freeze()
    stop = threading.Event()
    worker = start_background(system, stop, watch)
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        stop.set()
        if system.worker is not None:
            system.worker.wake.set()  # out of its idle wait at once
        if worker is not None:
            worker.join(WORKER_JOIN_SECONDS)


def start_background(
    system: System, stop: threading.Event, watch: health.Health | None = None
) -> threading.Thread | None:
    """The retention sweep and (when the system has one) the cadence worker, as daemon
    threads that end once ``stop`` is set; returns the worker's thread, which ``watch``
    (the health endpoint's) reports on. The worker survives database outages (its loop backs
    off and reconnects) and waits on ``stop``, so shutting down never waits out a backoff."""
    threading.Thread(
        target=_prune_loop, args=(system, stop), name="event-retention", daemon=True
    ).start()
    if system.worker is None:
        return None
    worker = system.worker
    published = worker.publish("server")  # its heartbeat row, listed by every process's health

    def run() -> None:  # its idle wait ends early when a Bulk API job becomes ready here
        try:
            worker.loop(poll_seconds=WORKER_POLL_SECONDS, stop=stop.is_set, sleep=worker.rest)
        finally:
            published.close()

    thread = threading.Thread(target=run, name="cadence-worker", daemon=True)
    thread.start()
    if watch is not None:
        watch.watch(thread.name, system.worker.health, thread)
    return thread


def _prune_loop(system: System, stop: threading.Event) -> None:
    while not stop.wait(PRUNE_EVERY_SECONDS):
        try:
            system.store.prune_events()
        except Exception:  # a database outage: the next sweep tries again
            logging.getLogger(__name__).warning("change-event sweep failed", exc_info=True)
