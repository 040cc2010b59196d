"""Logged calls per second on SQLite, with and without a call script on the MakeACall step.

Each logged call (``runtime.log_call``: a Task, the step completed, the call result's category
read from the CallDisposition records) is the same in both runs; with a script the call also
counts on its CallTemplate (``TotalCalls``, ``TotalCallsMeaningfulConnect``) in the same
transaction. The headline is the scripted rate against the unscripted one: counting must not
cost a logged call its speed.

    python bench/calls.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from opencadence import system
from opencadence.cadence import definition_file, runtime
from opencadence.clock import ManualClock


def calls_per_second(folder: Path, targets: int, with_script: bool) -> float:
    path = folder / f"calls-{int(with_script)}.db"
    built = system.build(system.Settings(database_url=f"sqlite:///{path}", clock=ManualClock()))
    try:
        store, org = built.store, built.org
        rep, _ = org.accounts.create_user("rep@bench.test", "pw")
        with store.transaction() as tx:
            script = tx.insert("CallTemplate", {"Name": "Bench"}) if with_script else None
            contacts = tx.insert_many("Contact", [{"LastName": f"C{i}"} for i in range(targets)])
        call = {"StepName": "call", "Type": "MakeACall", "StepTitle": "call"}
        if script is not None:
            call["TemplateId"] = script
        cadence = definition_file.import_definition(
            store,
            {
                "cadence": {"Name": "Bench calls"},
                "state": "Active",
                "steps": [
                    {"StepName": "root", "Type": "Root", "StepTitle": "root"},
                    {**call, "ParentStepName": "root"},
                ],
            },
        )
        org.actions.invoke(
            "assignTargetToSalesCadence",
            [{"salesCadenceNameOrId": cadence, "targetId": c, "userId": rep} for c in contacts],
            rep,
        )
        began = time.perf_counter()
        for c in contacts:
            runtime.log_call(store, rep, c, "Meaningful Connect")
        took = time.perf_counter() - began
        if script is not None:
            counted = (store.get("CallTemplate", script) or {}).get("TotalCalls")
            assert counted == targets, counted
        return targets / took
    finally:
        built.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurements, small sizes")
    args = parser.parse_args()
    targets = 200 if args.quick else 2000
    with tempfile.TemporaryDirectory() as folder:
        plain = calls_per_second(Path(folder), targets, with_script=False)
        scripted = calls_per_second(Path(folder), targets, with_script=True)
    print(f"{targets} logged calls: {plain:.0f}/s without a call script, {scripted:.0f}/s with")
    print(f"ratio={scripted / plain:.2f} goal>=0.85")


if __name__ == "__main__":
    main()
