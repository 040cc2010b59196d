"""Serving a built System: uvicorn around the ASGI app (optionally TLS), the cadence worker in
a thread beside it, and the change-event log's retention sweep. No wiring here (system.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from opencadence.api import app as api_app
from opencadence.system import System

#: How often the server drops change events past their retention (72 hours by default).
PRUNE_EVERY_SECONDS = 600.0

#: How long the in-server worker sleeps when nothing is due.
WORKER_POLL_SECONDS = 0.5

#: How long shutting down waits for the worker to finish the batch it is in.
WORKER_JOIN_SECONDS = 10.0


def app(system: System) -> Starlette:
    """The ASGI app of ``system``; with a manual clock, the clock endpoint answers once the
    worker has done what the move made due."""
    settle = system.worker.run_until_idle if system.worker is not None else None
    return api_app.build_app(
        system.org, manual_clock=system.manual_clock, settle=settle, tracker=system.tracker
    )


def run(system: System, *, host: str, port: int, tls_files: tuple[Path, Path] | None) -> None:
    """Serve until uvicorn is stopped (Ctrl-C, SIGTERM); ``tls_files`` is (cert, key)."""
    ssl = {"ssl_certfile": str(tls_files[0]), "ssl_keyfile": str(tls_files[1])} if tls_files else {}
    stop = threading.Event()
    worker = start_background(system, stop)
    try:
        uvicorn.run(app(system), host=host, port=port, log_level="warning", **ssl)  # type: ignore[arg-type]
    finally:
        stop.set()
        if worker is not None:
            worker.join(WORKER_JOIN_SECONDS)


def start_background(system: System, stop: threading.Event) -> threading.Thread | None:
    """The retention sweep and (when the system has one) the cadence worker, as daemon
    threads that end once ``stop`` is set; returns the worker's thread."""
    threading.Thread(
        target=_prune_loop, args=(system, stop), name="event-retention", daemon=True
    ).start()
    if system.worker is None:
        return None
    thread = threading.Thread(
        target=system.worker.loop,
        kwargs={"poll_seconds": WORKER_POLL_SECONDS, "stop": stop.is_set},
        name="cadence-worker",
        daemon=True,
    )
    thread.start()
    return thread


def _prune_loop(system: System, stop: threading.Event) -> None:
    while not stop.wait(PRUNE_EVERY_SECONDS):
        system.store.prune_events()
