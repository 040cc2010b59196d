"""A crash at each point of a delivery, against a real aiosmtpd relay (issue 10, item 13).

The sender marks a row ``sending``, commits, writes the final "." and reads the relay's reply;
the reply is recorded (``accepted``) with the next message's mark. A worker that dies in
between leaves one row ``sending`` whose outcome nobody knows: it used to be reconciled as
sent, so a crash before the "." lost the email while the outbox said sent. Now it becomes
``unknown``, is reported (an ``unknown`` event naming its Message-ID) and is sent again with
the same Message-ID; ``accepted`` rows are never resent.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import smtp_sender
from opencadence.storage import mail, records, schema
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_send import auto_step, outbox_rows


class Crash(BaseException):
    """The process dies here (BaseException: no handler of the sender catches it)."""


class _Crashing(smtp_sender.SmtpSender):
    """Dies at ``point`` of the ``nth`` delivery (1-based) and drops its relay connection."""

    point = ""
    nth = 1
    deliveries = 0

    def _end_data(self, smtp: object, data: bytes) -> None:
        self.deliveries += 1
        if self.point == "before_dot" and self.deliveries == self.nth:
            self._die()
        super()._end_data(smtp, data)  # type: ignore[arg-type]

    def _replied(self, key: str, code: int) -> None:
        if self.point == "after_reply" and self.deliveries == self.nth:
            self._die()

    def _die(self) -> None:
        sock = self._smtp.sock if self._smtp is not None else None
        if sock is not None:
            sock.close()  # the kernel closes a killed process's sockets
        self._smtp = None
        raise Crash


def _crash_run(store: records.Store, relay: Relay, point: str, nth: int) -> None:
    s = _Crashing(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    s.point, s.nth = point, nth
    with pytest.raises(Crash):
        worker.Worker(store, s).run_until_idle()


def _restart(store: records.Store, clock: ManualClock, relay: Relay) -> int:
    """A new worker process after the dead one's lease: reconcile, then run."""
    clock.advance(smtp_sender.LEASE + timedelta(seconds=1))
    s = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    n = s.reconcile()
    worker.Worker(store, s).run_until_idle()
    s.close()
    return n


def _unknown_reported(store: records.Store) -> list[str]:
    with store.reading() as conn:
        return mail.event_log(store.meta).keys_of_kind(conn, mail.UNKNOWN_EVENT)


def _wait_for(relay: Relay, n: int) -> None:
    import time

    deadline = time.monotonic() + 5
    while len(relay.received) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_crash_between_sending_mark_and_dot_loses_nothing(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    _crash_run(store, relay, "before_dot", 1)
    (row,) = outbox_rows(store)
    assert row["status"] == "sending" and relay.received == []  # the relay discarded it
    assert _restart(store, clock, relay) == 1
    assert relay.message_ids() == [row["message_id"]]  # delivered once, same Message-ID
    assert auto_step(store, target)["State"] == "Completed"
    assert _unknown_reported(store) == [row["key"]]
    (after,) = outbox_rows(store)
    assert after["status"] == "sent"


def test_crash_after_the_relay_accepted_resends_with_the_same_message_id(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    _crash_run(store, relay, "after_reply", 1)
    (row,) = outbox_rows(store)
    _wait_for(relay, 1)
    assert row["status"] == "sending" and relay.message_ids() == [row["message_id"]]
    assert _restart(store, clock, relay) == 1
    # in doubt: sent again with its Message-ID (a relay that dedupes keeps one), and reported
    assert relay.message_ids() == [row["message_id"]] * 2
    assert _unknown_reported(store) == [row["key"]]
    assert auto_step(store, target)["State"] == "Completed"


def test_only_the_message_in_flight_is_in_doubt(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    tid = template()
    targets = [enrol(tid) for _ in range(3)]
    _crash_run(store, relay, "before_dot", 3)  # two accepted, the third in flight
    _wait_for(relay, 2)
    rows = {r["key"]: r for r in outbox_rows(store)}
    statuses = sorted(r["status"] for r in rows.values())
    assert statuses == ["accepted", "accepted", "sending"]
    in_flight = next(k for k, r in rows.items() if r["status"] == "sending")
    assert _restart(store, clock, relay) == 3
    assert sorted(relay.message_ids()) == sorted(r["message_id"] for r in rows.values())
    assert _unknown_reported(store) == [in_flight]
    assert {auto_step(store, t)["State"] for t in targets} == {"Completed"}


def test_unknown_reported_not_resent_when_configured(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    _crash_run(store, relay, "before_dot", 1)
    clock.advance(smtp_sender.LEASE + timedelta(seconds=1))
    cfg = smtp_sender.SmtpConfig(port=relay.port, timeout=5, resend_unknown=False)
    s = smtp_sender.SmtpSender(store, cfg)
    s.reconcile()
    worker.Worker(store, s).run_until_idle()
    s.close()
    (row,) = outbox_rows(store)
    assert row["status"] == "unknown" and relay.received == []
    assert _unknown_reported(store) == [row["key"]]
    assert auto_step(store, target)["State"] == "Completed"
    ob = store.meta.tables[schema.EMAIL_OUTBOX]
    with store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ob)).scalar_one() == 1
