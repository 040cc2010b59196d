"""``serve`` and ``demo``: the Salesforce-shaped API over HTTP(S), with the cadence worker."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opencadence import demo as demo_org
from opencadence import system
from opencadence.api import pubsub_defaults
from opencadence.cli import common, email_options
from opencadence.storage import database

# The API server, Pub/Sub (grpc) and TLS modules are imported by the commands that serve, not
# here: every other command would pay for them at start-up (about 0.4 s).
if TYPE_CHECKING:
    from opencadence.api import pubsub

DEFAULT_PORT = 8443
DEFAULT_CERT_DIR = ".opencadence-tls"


def _listen(host: str, port: int) -> socket.socket | None:
    """The server's socket, bound before anything else happens; None (said why) if busy."""
    from opencadence.api import server

    try:
        return server.listen(host, port)
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the REST/OAuth/SOAP API with uvicorn. The port is taken first, so a busy port is
    one clear line and exit status 1, before workers start or the database is touched."""
    refused = _processes_refused(args)
    if refused is not None:
        print(refused, file=sys.stderr)
        return 2
    sock = _listen(args.host, args.port)
    if sock is None:
        return 1
    with sock:
        return _serve(args, sock)


def _processes_refused(args: argparse.Namespace) -> str | None:
    """Why ``--processes`` cannot be served as given, or None."""
    n = args.processes
    if n < 1:
        return f"--processes must be at least 1, not {n}"
    if n == 1:
        return None
    url = database.normalize_url(common.database_url(args))
    if url.startswith("sqlite"):
        return (
            f"--processes {n} needs PostgreSQL: SQLite has a single writer, so an org on "
            "SQLite is served by one process (leave out --processes)"
        )
    if args.clock == "manual":
        return (
            f"--processes {n} cannot share a manual clock between processes: "
            "use --clock manual with one process"
        )
    return None


def _serve(args: argparse.Namespace, sock: socket.socket) -> int:
    from opencadence.api import processes, server, tls

    settings = system.Settings(
        database_url=common.database_url(args),
        clock=args.clock,
        worker=not args.no_worker,
        relay=email_options.relay(args),
        tracking=True,
        inbound_smtp_port=email_options.inbound_port(args),
        inbound_smtp_host=args.host,
        login_max_attempts=args.max_login_attempts,
        api_request_limit=args.api_request_limit,
    )
    with system.build(settings) as built:
        if settings.relay is None:
            print(
                "WARNING: no --smtp-relay: automated emails are recorded, not sent, "
                "until --smtp-relay is given",
                file=sys.stderr,
            )
        if built.listener is not None:
            print(
                f"inbound SMTP (replies, bounces) on {args.host}:{args.inbound_smtp_port}",
                file=sys.stderr,
            )
        tls_files = None
        scheme = "http"
        if args.tls:
            tls_files = tls.self_signed(Path(args.cert_dir))
            scheme = "https"
            cert = tls_files[0].resolve()
            print(f"TLS certificate: {cert}  (clients: verify='{cert}')", file=sys.stderr)
        print(f"opencadence API on {scheme}://{args.host}:{args.port}", file=sys.stderr)
        started, grpc_server = _start_pubsub(args, built, tls_files)
        if not started:
            return 1
        try:
            if args.processes > 1:
                print(f"{args.processes} server processes on one socket", file=sys.stderr)
                processes.run(
                    built,
                    args.processes,
                    host=args.host,
                    port=args.port,
                    tls_files=tls_files,
                    sock=sock,
                )
            else:
                server.run(built, host=args.host, port=args.port, tls_files=tls_files, sock=sock)
        finally:
            if grpc_server is not None:
                grpc_server.stop()
    return 0


def _start_pubsub(
    args: argparse.Namespace, built: system.System, tls_files: tuple[Path, Path] | None
) -> tuple[bool, pubsub.Running | None]:
    """(False, None) when the Pub/Sub port is busy (said why), else (True, its server or None
    when --pubsub-port is 0)."""
    if not args.pubsub_port:
        return True, None
    from opencadence.api import pubsub

    try:
        running = pubsub.start(
            built.org,
            host=args.host,
            port=args.pubsub_port,
            tls_files=tls_files,
            keepalive=args.pubsub_keepalive,
        )
    except OSError as exc:
        print(str(exc), file=sys.stderr)
        return False, None
    kind = "TLS" if tls_files else "plaintext"
    print(f"Pub/Sub API (gRPC, {kind}) on {args.host}:{running.port}", file=sys.stderr)
    return True, running


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo org: seeded once, served with TLS and a movable clock (as ``serve --tls
    --clock manual`` with no relay serves it). The port is taken first: a start that cannot
    serve seeds nothing and mints no token."""
    if args.no_serve:
        return _demo(args, None)
    sock = _listen(args.host, args.port)
    if sock is None:
        return 1
    with sock:
        return _demo(args, sock)


def _demo(args: argparse.Namespace, sock: socket.socket | None) -> int:
    from opencadence.api import server, tls

    serving = sock is not None
    settings = system.Settings(
        database_url=common.database_url(args), clock="manual", worker=serving, tracking=serving
    )
    with system.build(settings) as built:
        tls_files = tls.self_signed(Path(args.cert_dir))
        # the Pub/Sub port is taken before seeding and minting the token, as the API's is
        started, grpc_server = _start_pubsub(args, built, tls_files) if serving else (True, None)
        if not started:
            return 1
        if not demo_org.seeded(built.org):
            print(
                "seeding the demo org (users, targets, two cadences, a few days of activity)...",
                file=sys.stderr,
            )
            demo_org.seed(built.org)
        demo_org.ensure_manager(built.org)  # an org seeded before the demo had a manager
        token = demo_org.admin_token(built.org)
        url = f"https://{args.host}:{args.port}"
        endpoint = f"{args.host}:{grpc_server.port}" if grpc_server else None
        print(demo_org.banner(url, token, str(tls_files[0].resolve()), endpoint), flush=True)
        try:
            if sock is not None:
                server.run(built, host=args.host, port=args.port, tls_files=tls_files, sock=sock)
        finally:
            if grpc_server:
                grpc_server.stop()
    return 0


def _add_pubsub(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pubsub-port",
        type=int,
        default=pubsub_defaults.DEFAULT_PORT,
        help=f"port of the Pub/Sub API (gRPC; TLS when the API is; default {pubsub_defaults.DEFAULT_PORT}, 0: off)",
    )
    p.add_argument(
        "--pubsub-keepalive",
        type=float,
        default=pubsub_defaults.KEEPALIVE_SECONDS,
        help="seconds between keepalive FetchResponses of an idle subscription (default 270)",
    )


def add_demo(subparsers: Any) -> None:
    p = common.add_command(
        subparsers,
        "demo",
        cmd_demo,
        "seed a demo org (once) and serve it: TLS, manual clock, worker",
    )
    common.add_database(p, "database URL (default: opencadence.db)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--cert-dir", default=DEFAULT_CERT_DIR)
    p.add_argument("--no-serve", action="store_true", help="seed and print, then exit")
    _add_pubsub(p)


def add_serve(subparsers: Any) -> None:
    p = common.add_command(subparsers, "serve", cmd_serve, "serve the Salesforce-shaped API")
    common.add_database(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument(
        "--max-login-attempts",
        type=int,
        default=10,
        help="invalid logins in a row that lock a user out for 15 minutes (0: never; "
        "Salesforce's default is 10)",
    )
    p.add_argument(
        "--tls", action="store_true", help="HTTPS with a generated self-signed certificate"
    )
    p.add_argument(
        "--cert-dir", default=DEFAULT_CERT_DIR, help="where --tls writes cert.pem/key.pem"
    )
    p.add_argument(
        "--clock",
        choices=("system", "manual"),
        default="system",
        help="manual: tests and demos move time with POST /_opencadence/clock",
    )
    p.add_argument(
        "--no-worker", action="store_true", help="do not run cadence workers in the server"
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="N HTTP server processes on the one port (PostgreSQL only); this process keeps "
        "the worker thread and the Pub/Sub server (default 1)",
    )
    p.add_argument(
        "--api-request-limit",
        type=int,
        default=None,
        metavar="N",
        help="refuse API requests past N a UTC day (REQUEST_LIMIT_EXCEEDED); default: count only",
    )
    _add_pubsub(p)
    email_options.add_arguments(p)
