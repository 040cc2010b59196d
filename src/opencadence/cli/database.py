"""``init``, ``query`` and ``describe``: the database and its objects."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from opencadence import system
from opencadence.cli import common, output
from opencadence.metadata import describe, registry


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    """Create or upgrade the database in place."""
    settings = system.Settings(database_url=common.database_url(args), upgrade=False, worker=False)
    with system.build(settings) as built:
        print(f"database: {built.database}", file=sys.stderr)
        changes = built.upgrade(progress=_progress)
    print(f"schema up to date ({len(changes)} change(s) applied)", file=sys.stderr)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Run a SOQL query (all pages) as the org's automated process user, with full visibility.

    "Now" (date literals, SecondsOverdue) is where the org's clock stands: a manual-clock org
    moved days ahead is queried at its saved position, not at the machine's wall time. A manual
    clock that is never moved starts at max(wall time, that position), which is what this needs.
    """
    settings = system.Settings(database_url=common.database_url(args), clock="manual", worker=False)
    with system.build(settings) as built:
        service = built.org.queries
        result = service.query(args.soql, include_deleted=args.all, version=args.version)
        rows = list(result["records"])
        while not result["done"]:
            result = service.query_more(
                result["nextRecordsUrl"].rsplit("/", 1)[1], version=args.version
            )
            rows += result["records"]
    try:
        output.write(sys.stdout, args.format, rows, result["totalSize"])
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_left()
    return 0


def _reader_left() -> None:
    """The reader closed the pipe (``| head``): stop quietly, as command-line tools do. What is
    still buffered goes to /dev/null, so the interpreter's final flush raises nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def cmd_describe(args: argparse.Namespace) -> int:
    """Print describeSObject (or describeGlobal with no object) as JSON.

    The registry alone answers: no database is opened (or created)."""
    reg = registry.default_registry()
    if args.object:
        result = describe.describe_object(reg, args.object, args.version)
    else:
        result = describe.describe_global(reg, args.version)
    try:
        json.dump(result, sys.stdout, indent=2)
        print(flush=True)
    except BrokenPipeError:
        _reader_left()
    return 0


def add_init(subparsers: Any) -> None:
    p = common.add_command(subparsers, "init", cmd_init, "create or upgrade the database")
    common.add_database(p, common.DATABASE_HELP)


def add_query(subparsers: Any) -> None:
    p = common.add_command(subparsers, "query", cmd_query, "run a SOQL query and print every page")
    p.add_argument("soql", help='the query, e.g. "SELECT Id, State FROM ActionCadenceStepTracker"')
    common.add_database(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--all", action="store_true", help="queryAll: include deleted records")
    p.add_argument("--version", default=describe.LATEST_VERSION, help="API version, e.g. 59.0")


def add_describe(subparsers: Any) -> None:
    p = common.add_command(
        subparsers, "describe", cmd_describe, "print an object's describe (Salesforce JSON)"
    )
    p.add_argument("object", nargs="?", help="sObject API name; omit for describeGlobal")
    p.add_argument("--version", default=describe.LATEST_VERSION, help="API version, e.g. 59.0")
