"""One transition per sent email (issue 18): the commit that records a chunk's acceptances
also completes their steps, through the worker's own batch path (``Worker.complete_sent``),
so no wake-up and no second batch is needed; and a crash in that commit loses nothing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import smtp_sender
from opencadence.storage import records, schema
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_send import auto_step, outbox_rows


def _count(store: records.Store, object_name: str) -> int:
    table = store.meta.tables[object_name]
    with store.reading() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_one_batch_sends_the_email_and_completes_its_step(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    tid = template()
    targets = [enrol(tid) for _ in range(3)]
    assert work.run_once() == 3  # one batch: staged, delivered, recorded, completed
    assert len(relay.received) == 3
    assert {auto_step(store, t)["State"] for t in targets} == {"Completed"}
    assert {r["status"] for r in outbox_rows(store)} == {"sent"}
    assert _count(store, "EmailMessage") == 3 and _count(store, "Task") == 3
    assert work.run_once() == 0  # nothing left due: no second transition


def test_the_completion_follows_the_email_records_in_the_event_log(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    work.run_until_idle()
    step = auto_step(store, target)
    events = [
        (e["payload"]["ChangeEventHeader"]["entityName"], e["payload"]["ChangeEventHeader"])
        for e in store.read_events()
    ]
    last = [name for name, _ in events][-4:]
    assert last == ["Task", "EmailMessage", "ActionCadenceStepTracker", "ActionCadenceTracker"]
    (_, task), (_, email), (_, done), _ = events[-4:]
    assert task["transactionKey"] == email["transactionKey"] != done["transactionKey"]
    assert done["recordIds"] == [step["Id"]] and "State" in done["changedFields"]


class Crash(BaseException):
    """The process dies here (BaseException: no handler of the sender catches it)."""


class _DiesCompleting(worker.Worker):
    """Dies inside the transaction that records the sends, after the steps were written."""

    def complete_sent(
        self, tx: records.Tx, sent: Mapping[str, str], now: datetime
    ) -> tuple[list[str], list[str]]:
        super().complete_sent(tx, sent, now)
        raise Crash


class _Drops(smtp_sender.SmtpSender):
    def _drop_connection(self) -> None:
        sock = self._smtp.sock if self._smtp is not None else None
        if sock is not None:
            sock.close()  # the kernel closes a killed process's sockets
        self._smtp = None


def test_a_crash_in_the_recording_commit_loses_nothing_and_resends_nothing(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    tid = template()
    targets = [enrol(tid) for _ in range(3)]
    dying = _Drops(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    with pytest.raises(Crash):
        _DiesCompleting(store, dying).run_until_idle()
    dying._drop_connection()
    # nothing of that commit stayed; every acceptance was recorded before it (the last one
    # too: its own one-statement commit), so no message is in doubt
    statuses = sorted(r["status"] for r in outbox_rows(store))
    assert statuses == ["accepted", "accepted", "accepted"]
    assert {auto_step(store, t)["State"] for t in targets} == {"Queued"}
    assert _count(store, "EmailMessage") == 0 and _count(store, "Task") == 0
    assert len(relay.received) == 3
    clock.advance(smtp_sender.LEASE + timedelta(seconds=1))
    restarted = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    assert restarted.reconcile() == 3
    worker.Worker(store, restarted).run_until_idle()
    restarted.close()
    rows = {r["key"]: r for r in outbox_rows(store)}
    # every email arrived, once: accepted rows are reconciled as sent, never resent
    received = [str(m["Message-ID"]) for m in relay.received]
    assert sorted(received) == sorted(r["message_id"] for r in rows.values())
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert {auto_step(store, t)["State"] for t in targets} == {"Completed"}
    assert _count(store, "EmailMessage") == 3 and _count(store, "Task") == 3


class _StaleCompletion(worker.Worker):
    """The step completion meets a concurrent change (StaleTransition) every time."""

    def complete_sent(
        self, tx: records.Tx, sent: Mapping[str, str], now: datetime
    ) -> tuple[list[str], list[str]]:
        from opencadence import errors

        raise errors.StaleTransition("changed concurrently")


def test_a_step_that_cannot_complete_with_its_send_completes_in_the_next_batch(
    store: records.Store, relay: Relay, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    s = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    w = _StaleCompletion(store, s)
    w.run_once()
    (row,) = outbox_rows(store)
    assert row["status"] == "sent" and _count(store, "EmailMessage") == 1  # recorded alone
    assert auto_step(store, target)["State"] == "Queued"
    w.run_until_idle()  # the next batch reads the sent row and completes the step
    s.close()
    assert auto_step(store, target)["State"] == "Completed"
    assert len(relay.received) == 1 and _count(store, "EmailMessage") == 1


def test_the_per_message_mark_is_one_statement(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    """Between two messages the sender commits one UPDATE (this one ``sending``, the previous
    one ``accepted``): the statements of a delivery grow by one per message, not by a
    transaction's worth."""
    tid = template()
    for _ in range(4):
        enrol(tid)
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if schema.EMAIL_OUTBOX in statement and statement.lstrip().upper().startswith("UPDATE"):
            seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", note)
    try:
        work.run_until_idle()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", note)
    assert len(relay.received) == 4
    # four marks, the last acceptance recorded at once, then one UPDATE marking the chunk sent
    assert len(seen) == 6, seen


class _FailsAfterAccept(smtp_sender.SmtpSender):
    def after_accept(self, tx: records.Tx, row: Any, now: Any) -> None:
        raise RuntimeError("metrics store unavailable")


def test_a_post_send_exception_fails_every_message_of_the_chunk(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    """Not only the chunk's last message (the one still ``sending``): the earlier ones were
    already ``accepted`` by the next mark, and the failure is recorded on them too (before,
    they stayed ``accepted`` and were reconciled as sent once the lease ran out)."""
    tid = template()
    targets = [enrol(tid) for _ in range(3)]
    s = _FailsAfterAccept(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    w = worker.Worker(store, s)
    w.run_until_idle()
    clock.advance(timedelta(hours=1))
    w.run_until_idle()
    s.close()
    assert {(auto_step(store, t)["State"], auto_step(store, t)["ErrorCode"]) for t in targets} == {
        ("Error", "POST_SEND_EXCEPTION")
    }
    assert len(relay.received) == 3
    assert {r["status"] for r in outbox_rows(store)} == {"failed"}
