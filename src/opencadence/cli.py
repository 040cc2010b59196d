"""The ``opencadence`` command."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from opencadence import errors
from opencadence.metadata import describe, registry
from opencadence.storage import engine as engines
from opencadence.soql import execute
from opencadence.storage import migrate, records
from opencadence import output

Handler = Callable[[argparse.Namespace], int]


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    """Create or upgrade the database in place."""
    eng = engines.create_engine(args.database)
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
    eng = engines.create_engine(args.database)
    reg = registry.default_registry()
    migrate.upgrade(eng, reg)
    service = execute.QueryService(records.Store(eng, reg))
    result = service.query(args.soql, include_deleted=args.all, version=args.version)
    rows = list(result["records"])
    while not result["done"]:
        result = service.query_more(result["nextRecordsUrl"].rsplit("/", 1)[1], version=args.version)
        rows += result["records"]
    output.write(sys.stdout, args.format, rows, result["totalSize"])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Create/upgrade the embedded database and print the seed object's describe."""
    cmd_init(args)
    args.object, args.version = "ActionCadenceStepTracker", describe.LATEST_VERSION
    return cmd_describe(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencadence", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    for name, handler, text in (
        ("init", cmd_init, "create or upgrade the database"),
        ("demo", cmd_demo, "set up the embedded database and show ActionCadenceStepTracker"),
    ):
        add(name, handler, text).add_argument(
            "--database", default=None, help="database URL (default: SQLite file opencadence.db "
            "or $OPENCADENCE_DATABASE_URL); postgresql://user@host/db for PostgreSQL"
        )
    p = add("query", cmd_query, "run a SOQL query and print every page")
    p.add_argument("soql", help="the query, e.g. \"SELECT Id, State FROM ActionCadenceStepTracker\"")
    p.add_argument("--database", default=None, help="database URL (as for init)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--all", action="store_true", help="queryAll: include deleted records")
    p.add_argument("--version", default=describe.LATEST_VERSION, help="API version, e.g. 59.0")
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
