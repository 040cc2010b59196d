"""Deleting a tracker whose automated email is still in the outbox: the email never goes."""

from __future__ import annotations

from datetime import timedelta

from opencadence import system
from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import settings
from opencadence.storage import records
from tests.integration.cadence.helpers import tracker_of
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_send import outbox_rows


def test_deleting_a_tracker_cancels_its_waiting_email(
    oc: system.System,
    store: records.Store,
    clock: ManualClock,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    clock.set(clock.now().replace(hour=12, minute=0, second=0, microsecond=0))
    with store.transaction() as tx:
        settings.put(tx.conn, "user_daily_auto_cap", 1, scope=rep)
    tid = template()
    sent = enrol(tid)
    clock.advance(timedelta(seconds=1))
    held = enrol(tid)
    work.run_until_idle()
    tracker = tracker_of(store, held)["Id"]
    (row,) = [r for r in outbox_rows(store) if r["tracker_id"] == tracker]
    assert row["status"] == "waiting"  # held by the daily cap

    admin_id, _ = oc.org.accounts.create_user("admin@del.test", "pw", admin=True)
    admin = oc.org.accounts.session(oc.org.accounts.open_session(admin_id))
    oc.org.delete(admin, "ActionCadenceTracker", tracker, "62.0")

    (row,) = [r for r in outbox_rows(store) if r["tracker_id"] == tracker]
    assert row["status"] == "cancelled"
    clock.advance(timedelta(days=2))
    work.run_until_idle()
    assert len(relay.received) == 1  # only the first target's email
    assert relay.received[0]["To"] == (store.get("Contact", sent) or {})["Email"]
