"""With two workers, a sent email completes its step at once (issue 10, item 14).

Worker 1 stages the email (the step is due at once) and delivers it after its commit. If
worker 2 claims the step in between, it finds the row leased to worker 1 and reschedules the
step to the lease's end (2 minutes); nothing woke it earlier, so the step stayed Queued for
the whole lease after its email was sent. Recording the send now makes the tracker due.
"""

from __future__ import annotations

import threading
import time

from opencadence.cadence import worker
from opencadence.clock import ManualClock
from opencadence.email import smtp_sender
from opencadence.storage import records
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_send import auto_step

#: well under the 120 s lease the fault held a sent step for (what this bound tells apart);
#: 3 s proved too tight once when the full suite loaded both cores of the CI machine
COMPLETE_WITHIN_SECONDS = 10.0


class _OtherWorkerFirst(smtp_sender.SmtpSender):
    """Lets another worker run between this worker's commit and its delivery."""

    other: worker.Worker | None = None

    def after_commit(self) -> None:
        if self.other is not None:
            other, self.other = self.other, None
            other.run_until_idle()  # sees the row leased: reschedules to the lease's end
        super().after_commit()


def test_second_worker_does_not_hold_a_sent_step_for_the_lease(
    store: records.Store, clock: ManualClock, relay: Relay, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    first = _OtherWorkerFirst(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    second = smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
    first.other = worker.Worker(store, second)
    w1 = worker.Worker(store, first)
    w1.run_once()
    assert len(relay.received) == 1
    w1.run_until_idle()  # same instant: no time has passed
    assert auto_step(store, target)["State"] == "Completed"
    first.close()
    second.close()


def test_two_worker_threads_complete_sent_steps_at_once(
    store: records.Store, relay: Relay, template: Template, enrol: Enrol
) -> None:
    """Two real worker loops on the wall clock's pace (the manual clock stands still)."""
    tid = template()
    targets = [enrol(tid) for _ in range(6)]
    stop = threading.Event()
    senders = [
        smtp_sender.SmtpSender(store, smtp_sender.SmtpConfig(port=relay.port, timeout=5))
        for _ in range(2)
    ]
    loops = [
        threading.Thread(
            target=worker.Worker(store, s).loop,
            kwargs={"poll_seconds": 0.05, "stop": stop.is_set, "sleep": stop.wait},
        )
        for s in senders
    ]
    for t in loops:
        t.start()
    try:
        deadline = time.monotonic() + 15
        while len(relay.received) < len(targets) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(relay.received) == len(targets)
        sent_at = time.monotonic()
        # the goal is under a second; the bound leaves room for a starved shared CI machine
        # (the first test pins the mechanism exactly; before it, this took the 120 s lease)
        while time.monotonic() < sent_at + COMPLETE_WITHIN_SECONDS:
            if {auto_step(store, t)["State"] for t in targets} == {"Completed"}:
                break
            time.sleep(0.05)
        assert {auto_step(store, t)["State"] for t in targets} == {"Completed"}
    finally:
        stop.set()
        for t in loops:
            t.join(5)
        for s in senders:
            s.close()
