"""The ``opencadence`` command: one module per command group, each adding its subcommands.

``database`` (init, query, describe), ``accounts`` (users, apps, token), ``server`` (serve,
demo), ``cadence`` (cadence import/export, worker), ``events`` (events tail); ``email_options`` (the SMTP flags),
``output`` (query results for people), ``common`` (what they share). Commands turn their
arguments into ``system.Settings``; argparse goes no further. ``metrics`` (metrics check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from opencadence import errors
from opencadence.cli import accounts, cadence, database, events, metrics, server

#: What ``opencadence --help`` says first.
DESCRIPTION = "The ``opencadence`` command."


def parser() -> argparse.ArgumentParser:
    """Every subcommand, in the order ``--help`` lists them."""
    top = argparse.ArgumentParser(prog="opencadence", description=DESCRIPTION)
    sub = top.add_subparsers(dest="command", required=True)
    database.add_init(sub)
    server.add_demo(sub)
    database.add_query(sub)
    accounts.add_users(sub)
    accounts.add_apps(sub)
    accounts.add_token(sub)
    server.add_serve(sub)
    cadence.register(sub)
    database.add_describe(sub)
    events.register(sub)
    metrics.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except errors.OpenCadenceError as exc:
        print(f"{exc.error_code}: {exc.message}", file=sys.stderr)
        return 1
    return code
