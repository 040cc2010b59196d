"""``metrics check``: every metric counter recomputed from history and compared.

The counters of ActionCadenceStep, ActionCadence (ActiveTargets, TotalTargets,
SuccessfulCompletions) and the ActionCdncStpMonthlyMetric rows are written by the runtime in
the transaction of the event they count; this command derives them again from the step
trackers, the call log, the email outbox and its engagement events, and the trackers
(``storage.metrics``), prints each difference naming the record and the field, and with
``--repair`` sets the stored values to the recomputed ones in the same transaction. Progress
goes to stderr. Exit status: 0 when everything agrees (or was repaired), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from opencadence import system
from opencadence.cli import common
from opencadence.storage import metrics

#: differences printed before "... and N more"
SHOWN = 200


def register(subparsers: Any) -> None:
    """``metrics check [--repair]``."""
    group = subparsers.add_parser(
        "metrics",
        help="check (and repair) the cadence metric counters",
        description="Check (and repair) the cadence metric counters.",
    )
    inner = group.add_subparsers(dest="metrics_command", required=True)
    p = inner.add_parser(
        "check",
        help="recompute every counter from history and report the differences",
        description=(
            "Recompute every metric counter of ActionCadenceStep, ActionCadence and "
            "ActionCdncStpMonthlyMetric from history and report each difference."
        ),
    )
    p.add_argument("--repair", action="store_true", help="set the counters that differ")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    common.add_database(p)
    p.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    settings = system.Settings(database_url=common.database_url(args), worker=False)
    began = time.monotonic()

    def progress(label: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - began:6.1f} s] {label}", file=sys.stderr, flush=True)

    with system.build(settings) as built, built.store.transaction() as tx:
        found = metrics.check_tx(tx, progress)
        for d in found[:SHOWN]:
            print(d.describe())
        if len(found) > SHOWN:
            print(f"... and {len(found) - SHOWN} more")
        if not found:
            print("metrics: every counter agrees with history")
            return 0
        if not args.repair:
            print(f"metrics: {len(found)} difference(s); run with --repair to fix them")
            return 1
        progress("repairing")
        changed = metrics.repair_tx(tx, found)
    print(f"metrics: repaired {len(found)} difference(s) in {changed} record(s)")
    return 0
