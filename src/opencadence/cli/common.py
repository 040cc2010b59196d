"""What every command group shares: adding a subcommand and its ``--database``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from opencadence.storage import database

#: A command: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]

DATABASE_HELP = (
    "database URL (default: SQLite file opencadence.db or "
    "$OPENCADENCE_DATABASE_URL); postgresql://user@host/db for PostgreSQL"
)
#: the shorter help of the commands listed after ``init``
SEE_INIT = "database URL (as for init)"


def add_command(
    subparsers: Any, name: str, handler: Handler, help_text: str
) -> argparse.ArgumentParser:
    """A top-level subcommand whose help is also its description."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    parser.set_defaults(handler=handler)
    return parser


def add_database(parser: argparse.ArgumentParser, help_text: str = SEE_INIT) -> None:
    parser.add_argument("--database", default=None, help=help_text)


def database_url(args: argparse.Namespace) -> str:
    """``--database``, or $OPENCADENCE_DATABASE_URL, or the SQLite file opencadence.db."""
    return str(args.database or database.default_url())
