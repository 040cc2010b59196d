"""Commands of the cadence runtime: ``cadence import FILE``, ``cadence export NAME``, ``worker``.

``register(subparsers)`` adds them to the ``opencadence`` command's subparsers; each sets
``handler`` (a function of the parsed arguments returning an exit code), as the main CLI's
own commands do.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opencadence.cadence import definition_file, worker
from opencadence.metadata import registry
from opencadence.storage import database, migrate, records

DATABASE_HELP = (
    "database URL (default: SQLite file opencadence.db or "
    "$OPENCADENCE_DATABASE_URL); postgresql://user@host/db for PostgreSQL"
)


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[records.Store]:
    """The database of ``--database``, upgraded in place; its engine disposed afterwards."""
    eng = database.create_engine(args.database)
    try:
        reg = registry.default_registry()
        migrate.upgrade(eng, reg)
        yield records.Store(eng, reg)
    finally:
        eng.dispose()


def cmd_import(args: argparse.Namespace) -> int:
    """Create a cadence from a YAML/JSON definition file (activated if it says so)."""
    with _store(args) as store:
        cadence_id = definition_file.import_definition(store, definition_file.load(args.file))
    print(cadence_id)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Print a cadence's definition (YAML, or JSON with --json)."""
    with _store(args) as store:
        text = definition_file.dump(definition_file.export_definition(store, args.name), args.json)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Apply due cadence transitions: forever, or until idle with --once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from opencadence.email import (
        options as email_options,
    )  # email builds on cadence: no cycle at import
    from opencadence.storage import accounts

    with _store(args) as store:
        secret = accounts.Accounts(store).secret("tracking")
        w = worker.Worker(store, email_options.sender(store, args, secret))
        listener = email_options.listener(store, args, "127.0.0.1")
        if args.once:
            print(w.run_until_idle(), file=sys.stderr)
            return 0
        try:
            w.loop(args.poll)
        finally:
            if listener is not None:
                listener.stop()
    return 0


def register(subparsers: Any) -> None:
    """Add ``cadence import|export`` and ``worker`` to the ``opencadence`` command."""
    cadence = subparsers.add_parser(
        "cadence",
        help="import or export cadence definitions",
        description="import or export cadence definitions",
    )
    inner = cadence.add_subparsers(dest="cadence_command", required=True)
    p = inner.add_parser("import", help="create a cadence from a YAML or JSON file")
    p.add_argument("file", help="definition file (.yaml, .yml or .json)")
    p.set_defaults(handler=cmd_import)
    p.add_argument("--database", default=None, help=DATABASE_HELP)
    p = inner.add_parser("export", help="print a cadence definition")
    p.add_argument("name", help="cadence Name or Id")
    p.add_argument("--json", action="store_true", help="JSON instead of YAML")
    p.add_argument("--output", "-o", default=None, help="write to this file")
    p.add_argument("--database", default=None, help=DATABASE_HELP)
    p.set_defaults(handler=cmd_export)
    p = subparsers.add_parser(
        "worker",
        help="run the cadence worker (timers, automated emails)",
        description="run the cadence worker (timers, automated emails)",
    )
    p.add_argument("--once", action="store_true", help="process what is due now, then exit")
    p.add_argument("--poll", type=float, default=1.0, help="seconds to sleep when idle")
    p.add_argument("--database", default=None, help=DATABASE_HELP)
    from opencadence.email import options as email_options

    email_options.add_arguments(p)
    p.set_defaults(handler=cmd_worker)
