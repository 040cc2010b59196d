"""Workers side by side and guarded writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from opencadence import errors
from opencadence.cadence import actions, applying, decision, sender, worker
from opencadence.cadence.settings import Config
from opencadence.clock import ManualClock
from opencadence.metadata import sales_engagement
from opencadence.storage import records
from opencadence.storage.runs import RunStore
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import step_trackers, tracker_of

Contacts = Callable[[int], list[str]]


def test_two_workers_never_apply_a_transition_twice(
    store: records.Store,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Contacts,
    clock: ManualClock,
    template_id: str,
) -> None:
    cid = build(
        {"StepName": "w", "Type": "Wait", "WaitTimeInSeconds": 60},
        {"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id},
    )
    targets = contacts(120)
    acts.assignTargetToSalesCadence(
        [{"salesCadenceNameOrId": cid, "targetId": t} for t in targets], rep
    )
    clock.advance(minutes=1)
    outbox = sender.RecordingSender()
    config = Config(batch_size=10)
    pool = [worker.Worker(store, outbox, config) for _ in range(2)]
    failures: list[BaseException] = []

    def drain(w: worker.Worker) -> None:
        try:
            w.run_until_idle()
            w.run_until_idle()
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=drain, args=(w,)) for w in pool]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    assert outbox.duplicates == 0 and len(outbox.sent) == len(targets)
    assert len({e.key for e in outbox.sent}) == len(targets)
    for t in targets[:5]:
        assert [s["StepType"] for s in step_trackers(store, tracker_of(store, t)["Id"])] == [
            "Root",
            "Wait",
            "AutoSendAnEmail",
        ]


def test_a_stale_guard_rolls_back_the_whole_decision(
    store: records.Store, build: Build, acts: actions.Actions, rep: str, contacts: Contacts
) -> None:
    cid = build({"StepName": "t", "Type": "CreateTask"}, {"StepName": "u", "Type": "CreateTask"})
    (a,) = contacts(1)
    acts.assignTargetToSalesCadence([{"salesCadenceNameOrId": cid, "targetId": a}], rep)
    tr = tracker_of(store, a)
    task = step_trackers(store, tr["Id"])[1]
    runs = RunStore(store)
    stale = decision.Decision(
        ops=[
            decision.Update(
                sales_engagement.TRACKER, tr["Id"], {"OwnerId": rep}, {"State": "Running"}
            ),
            decision.Update(
                sales_engagement.STEP, task["Id"], {"State": "Completed"}, {"State": "InProgress"}
            ),
        ]
    )
    with pytest.raises(errors.StaleTransition):
        with store.transaction() as tx:
            applying.apply(tx, runs, [stale])
    assert step_trackers(store, tr["Id"])[1]["State"] == "Active"
    events = store.read_events(entity="ActionCadenceTracker")
    assert all(
        e["payload"]["ChangeEventHeader"]["changeType"] != "UPDATE" or "OwnerId" not in e["payload"]
        for e in events
    )
