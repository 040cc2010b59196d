"""`opencadence serve`: uvicorn around the ASGI app, optional TLS and manual clock."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

from opencadence.api import app as api_app
from opencadence.api import tls
from opencadence.cadence import worker
from opencadence.clock import ManualClock, SystemClock
from opencadence.email import options as email_options
from opencadence.email import tracking as email_tracking
from opencadence.metadata import registry
from opencadence.org import Org
from opencadence.storage import database, migrate, records


def make_org(url: str | None, manual: bool) -> tuple[Org, ManualClock | None]:
    clock = ManualClock(SystemClock().now()) if manual else None
    eng = database.create_engine(url)
    reg = registry.default_registry()
    migrate.upgrade(eng, reg, clock=clock)
    return Org(records.Store(eng, reg, clock)), clock


#: How often the server drops change events past their retention (72 hours by default).
PRUNE_EVERY_SECONDS = 600.0


def start_worker(org: Org, sender: Any = None) -> tuple[worker.Worker, threading.Event]:
    """Cadence workers inside the server process (a daemon thread polling for due work),
    and the change-event log's retention sweep."""
    w = worker.Worker(org.store, sender)
    stop = threading.Event()
    threading.Thread(
        target=w.loop,
        kwargs={"poll_seconds": 0.5, "stop": stop.is_set},
        name="cadence-worker",
        daemon=True,
    ).start()
    threading.Thread(
        target=_prune_loop, args=(org, stop), name="event-retention", daemon=True
    ).start()
    return w, stop


def _prune_loop(org: Org, stop: threading.Event) -> None:
    while not stop.wait(PRUNE_EVERY_SECONDS):
        org.store.prune_events()


def serve(args: argparse.Namespace) -> int:
    org, clock = make_org(args.database, args.clock == "manual")
    secret = org.accounts.secret("tracking")
    settle = None
    if not args.no_worker:
        w, _stop = start_worker(org, email_options.sender(org.store, args, secret))
        settle = w.run_until_idle  # the clock endpoint answers once due work is done
    else:
        threading.Thread(target=_prune_loop, args=(org, threading.Event()), daemon=True).start()
    if email_options.listener(org.store, args, args.host):
        print(
            f"inbound SMTP (replies, bounces) on {args.host}:{args.inbound_smtp_port}",
            file=sys.stderr,
        )
    app = api_app.build_app(
        org, manual_clock=clock, settle=settle, tracker=email_tracking.Tracker(org.store, secret)
    )
    ssl: dict[str, str] = {}
    scheme = "http"
    if args.tls:
        cert, key = tls.self_signed(Path(args.cert_dir))
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        scheme = "https"
        print(
            f"TLS certificate: {cert.resolve()}  (clients: verify='{cert.resolve()}')",
            file=sys.stderr,
        )
    print(f"opencadence API on {scheme}://{args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", **ssl)  # type: ignore[arg-type]
    return 0


def demo(args: argparse.Namespace) -> int:
    """Seed the demo org (once), then serve it with TLS and a manual clock."""
    from opencadence import demo as demo_org

    org, clock = make_org(args.database, manual=True)
    if not demo_org.seeded(org):
        print(
            "seeding the demo org (users, targets, two cadences, a few days of activity)...",
            file=sys.stderr,
        )
        demo_org.seed(org)
    token = demo_org.admin_token(org)
    cert_dir = Path(args.cert_dir)
    cert, key = tls.self_signed(cert_dir)
    url = f"https://{args.host}:{args.port}"
    print(demo_org.banner(url, token, str(cert.resolve())), flush=True)
    if args.no_serve:
        return 0
    w, _stop = start_worker(org)
    app = api_app.build_app(org, manual_clock=clock, settle=w.run_until_idle)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    return 0
