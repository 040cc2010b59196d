"""The race the chaos run's logs showed (issue 18): the commit recording a chunk's sends finds
the chunk's trackers held by another worker's batch, which reschedules them to the lease's
end (it read the rows still in flight), so ``complete_sent`` takes none of them. The sends are
recorded (``sent``) and the steps stay Queued only until the wake that follows the commit
makes them due at once: the next batch completes them, with no wait for the lease."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import smtp_sender
from opencadence.storage import records, schema
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_send import auto_step, outbox_rows


class _OtherWorkersBatch(smtp_sender.SmtpSender):
    """In the recording transaction (``after_accept``, before the steps are claimed), another
    worker's batch takes the trackers' run-state rows, reschedules them to the lease's end
    and commits once the wake that follows the recording commit has either come to wait for
    it or gone by (deterministic both ways: with or without the wake waiting for the lock)."""

    tracker_ids: list[str]
    holding: threading.Event
    recorded: threading.Event
    woken: threading.Event
    other: threading.Thread | None = None

    def after_accept(self, tx: records.Tx, row: Any, now: Any) -> None:
        if self.other is not None:
            return
        self.holding, self.recorded, self.woken = (threading.Event() for _ in range(3))
        self.other = threading.Thread(target=self._batch, args=(now,))
        self.other.start()
        assert self.holding.wait(10)

    def _batch(self, now: Any) -> None:
        run = self.store.meta.tables[schema.CADENCE_RUN]
        with self.store.engine.connect() as conn, conn.begin():
            conn.execute(
                sa.select(run.c.tracker_id)
                .where(run.c.tracker_id.in_(self.tracker_ids))
                .with_for_update()
            ).all()
            self.holding.set()
            assert self.recorded.wait(10)  # the recording commit is done, the wake begins
            deadline = time.monotonic() + 10
            while (
                not self.woken.is_set() and not self._waited_for() and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            conn.execute(
                run.update()
                .where(run.c.tracker_id.in_(self.tracker_ids))
                .values(due_at=now + self.config.lease)
            )

    def _waited_for(self) -> bool:
        """Whether a transaction waits for a row lock (the wake, for this batch's)."""
        with self.store.engine.connect() as conn:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
            )
            return bool(waiting.scalar_one())

    def _wake(self, rows: list[dict[str, Any]]) -> None:
        self.recorded.set()
        try:
            super()._wake(rows)
        finally:
            self.woken.set()


def test_steps_the_recording_commit_could_not_take_are_due_at_once(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a second worker's batch beside the recording one needs row locks")
    tid = template()
    targets = [enrol(tid) for _ in range(3)]
    sender = _OtherWorkersBatch(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    tracker = store.meta.tables["ActionCadenceStepTracker"]
    with store.reading() as conn:
        sender.tracker_ids = list(
            conn.execute(sa.select(tracker.c.ActionCadenceTrackerId).distinct()).scalars()
        )
    work = worker.Worker(store, sender)
    assert work.run_once() == 3  # staged, delivered, recorded; the steps were not free
    assert sender.other is not None
    sender.other.join(10)
    assert {r["status"] for r in outbox_rows(store)} == {"sent"}
    assert {auto_step(store, t)["State"] for t in targets} == {"Queued"}
    # the clock has not moved: without the wake they would wait for the lease's end
    assert work.run_once() == 3
    sender.close()
    assert {auto_step(store, t)["State"] for t in targets} == {"Completed"}
    assert len(relay.received) == 3


def test_reconciling_a_send_its_worker_recorded_meanwhile_records_nothing(
    store: records.Store, relay: Relay, template: Template, enrol: Enrol
) -> None:
    """A batch that read a row ``accepted`` with its lease over reconciles it as sent; when
    the delivering worker, slow rather than dead, committed its record first (the batch's
    guarded update then finds the row ``sent``), the send's event, EmailMessage and Task
    exist once, not twice."""
    tid = template()
    enrol(tid)
    sender = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    work = worker.Worker(store, sender)
    assert work.run_once() == 1
    sender.close()
    (row,) = outbox_rows(store)
    assert row["status"] == "sent"

    def recorded() -> tuple[int, int, int]:
        with store.reading() as conn:
            count = [
                conn.execute(sa.select(sa.func.count()).select_from(store.meta.tables[name]))
                for name in ("EmailMessage", "Task")
            ]
            log = store.meta.tables["oc_email_event"]
            sends = conn.execute(
                sa.select(sa.func.count()).where(log.c.key == row["key"], log.c.kind == "send")
            )
            return (count[0].scalar_one(), count[1].scalar_one(), sends.scalar_one())

    before = recorded()
    assert before == (1, 1, 1)
    with store.transaction() as tx:  # the late batch's reconciliation, after the worker's record
        sender._reconcile_one(tx, str(row["key"]), store.clock.now().replace(tzinfo=None))
    assert recorded() == before
