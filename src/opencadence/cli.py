"""The ``opencadence`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from opencadence import errors, output
from opencadence.cadence import cli as cadence_cli
from opencadence.email import options as email_options
from opencadence.metadata import describe, registry
from opencadence.soql import execute
from opencadence.storage import database, migrate, records

Handler = Callable[[argparse.Namespace], int]


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    """Create or upgrade the database in place."""
    eng = database.create_engine(args.database)
    print(f"database: {eng.url.render_as_string(hide_password=True)}", file=sys.stderr)
    changes = migrate.upgrade(eng, registry.default_registry(), progress=_progress)
    print(f"schema up to date ({len(changes)} change(s) applied)", file=sys.stderr)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    """Print describeSObject (or describeGlobal with no object) as JSON."""
    reg = registry.default_registry()
    if args.object:
        result = describe.describe_object(reg, args.object, args.version)
    else:
        result = describe.describe_global(reg, args.version)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Run a SOQL query (all pages) as the org's automated process user, with full visibility."""
    eng = database.create_engine(args.database)
    reg = registry.default_registry()
    migrate.upgrade(eng, reg)
    service = execute.QueryService(records.Store(eng, reg))
    result = service.query(args.soql, include_deleted=args.all, version=args.version)
    rows = list(result["records"])
    while not result["done"]:
        result = service.query_more(
            result["nextRecordsUrl"].rsplit("/", 1)[1], version=args.version
        )
        rows += result["records"]
    output.write(sys.stdout, args.format, rows, result["totalSize"])
    return 0


def _org(url: str | None, clock: Any = None) -> Any:
    from opencadence.org import Org

    eng = database.create_engine(url)
    reg = registry.default_registry()
    migrate.upgrade(eng, reg)
    return Org(records.Store(eng, reg, clock))


def cmd_users(args: argparse.Namespace) -> int:
    """Manage users and their credentials."""
    org = _org(args.database)
    if args.action == "create":
        if not args.username or not args.password:
            print("users create needs --username and --password", file=sys.stderr)
            return 2
        user_id, token = org.accounts.create_user(
            args.username, args.password, admin=args.admin, time_zone=args.time_zone
        )
        print(f"created user {args.username} ({user_id}); security token: {token}")
    elif args.action == "list":
        for u in org.accounts.list_users():
            flags = ("admin " if u["is_admin"] else "") + (
                "active" if u["IsActive"] else "inactive"
            )
            print(f"{u['Id']}  {u['Username']}  {u['TimeZoneSidKey']}  {flags}")
    else:
        org.accounts.set_active(args.username, args.action == "activate")
        print(f"{args.username} {args.action}d")
    return 0


def cmd_apps(args: argparse.Namespace) -> int:
    """Create a connected app (client-credentials flow runs as --run-as)."""
    org = _org(args.database)
    key, secret = org.accounts.create_app(args.name, args.run_as)
    print(f"consumer key:    {key}\nconsumer secret: {secret}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a fresh access token for a user (for scripts)."""
    org = _org(args.database)
    user = org.accounts.find_user(args.username)
    if user is None:
        print(f"INVALID_LOGIN: no user {args.username}", file=sys.stderr)
        return 1
    print(org.accounts.open_session(user["Id"], client="cli"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the REST/OAuth/SOAP API with uvicorn."""
    from opencadence.api import server

    return server.serve(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo org: SQLite, seeded once, served with TLS and a movable clock."""
    from opencadence.api import server

    return server.demo(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencadence", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    add("init", cmd_init, "create or upgrade the database").add_argument(
        "--database",
        default=None,
        help="database URL (default: SQLite file opencadence.db "
        "or $OPENCADENCE_DATABASE_URL); postgresql://user@host/db for PostgreSQL",
    )
    p = add("demo", cmd_demo, "seed a demo org (once) and serve it: TLS, manual clock, worker")
    p.add_argument("--database", default=None, help="database URL (default: opencadence.db)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--cert-dir", default=".opencadence-tls")
    p.add_argument("--no-serve", action="store_true", help="seed and print, then exit")
    p = add("query", cmd_query, "run a SOQL query and print every page")
    p.add_argument("soql", help='the query, e.g. "SELECT Id, State FROM ActionCadenceStepTracker"')
    p.add_argument("--database", default=None, help="database URL (as for init)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--all", action="store_true", help="queryAll: include deleted records")
    p.add_argument("--version", default=describe.LATEST_VERSION, help="API version, e.g. 59.0")
    db_help = "database URL (as for init)"
    p = add("users", cmd_users, "create, list, activate or deactivate users")
    p.add_argument("action", choices=("create", "list", "activate", "deactivate"))
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument(
        "--admin", action="store_true", help="sees and changes everything (View All Data)"
    )
    p.add_argument("--time-zone", default="GMT", help="TimeZoneSidKey, e.g. America/Los_Angeles")
    p.add_argument("--database", default=None, help=db_help)
    p = add("apps", cmd_apps, "create a connected app (OAuth client credentials)")
    p.add_argument("create", choices=("create",))
    p.add_argument("--name", required=True)
    p.add_argument("--run-as", required=True, help="username the client-credentials flow acts as")
    p.add_argument("--database", default=None, help=db_help)
    p = add("token", cmd_token, "print a fresh access token for a user")
    p.add_argument("--username", required=True)
    p.add_argument("--database", default=None, help=db_help)
    p = add("serve", cmd_serve, "serve the Salesforce-shaped API")
    p.add_argument("--database", default=None, help=db_help)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument(
        "--tls", action="store_true", help="HTTPS with a generated self-signed certificate"
    )
    p.add_argument(
        "--cert-dir", default=".opencadence-tls", help="where --tls writes cert.pem/key.pem"
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
    email_options.add_arguments(p)
    cadence_cli.register(sub)
    p = add("describe", cmd_describe, "print an object's describe (Salesforce JSON)")
    p.add_argument("object", nargs="?", help="sObject API name; omit for describeGlobal")
    p.add_argument("--version", default=describe.LATEST_VERSION, help="API version, e.g. 59.0")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except errors.OpenCadenceError as exc:
        print(f"{exc.error_code}: {exc.message}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
