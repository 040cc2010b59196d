"""A reply arriving at the inbound SMTP listener moves the target to a Cadence Builder 2.0
track, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from opencadence.cadence import runtime, worker
from opencadence.clock import ManualClock
from opencadence.email import settings
from opencadence.storage import records
from tests.integration.cadence.helpers import step_trackers, tracker_of
from tests.integration.email.conftest import Enrol, Relay, Template
from tests.integration.email.test_engagement import _deliver, _reply, listener  # noqa: F401
from tests.integration.email.test_send import outbox_rows

POSITIVE = [
    {"StepName": "wait", "Type": "Wait", "WaitTimeInSeconds": 3 * 86400},
    {
        "StepName": "positive",
        "Type": "SubRoot",
        "ParentStepName": "root",
        "rules": [
            {
                "RuleName": "replied",
                "RuleType": "SubRootStep",
                "conditions": [
                    {
                        "RuleConditionName": "r1",
                        "Resource": "EmailEngagement",
                        "Operator": "Equal",
                        "Value": "EmailReply",
                    }
                ],
            }
        ],
    },
    {"StepName": "meeting", "Type": "MakeACall", "ParentStepName": "positive"},
]


def test_a_reply_by_smtp_switches_to_the_positive_track(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    listener: int,  # noqa: F811
) -> None:
    target = enrol(template(), then=POSITIVE)
    work.run_until_idle()
    (row,) = outbox_rows(store)
    _deliver(listener, _reply(row["message_id"]))
    rows = step_trackers(store, tracker_of(store, target)["Id"])
    assert [(r["StepType"], r["State"]) for r in rows] == [
        ("Root", "Completed"),
        ("AutoSendAnEmail", "Completed"),
        ("Wait", "Cancelled"),
        ("SubRoot", "Completed"),
        ("MakeACall", "Active"),
    ]
    assert tracker_of(store, target)["CurrentStepId"] == rows[-1]["Id"]


NEGATIVE = [
    {
        "StepName": "negative",
        "Type": "SubRoot",
        "ParentStepName": "root",
        "rules": [
            {
                "RuleName": "no",
                "RuleType": "SubRootStep",
                "conditions": [
                    {
                        "RuleConditionName": "n1",
                        "Resource": "CallDispositionCategory",
                        "Operator": "Equal",
                        "Value": "CallNotInterested",
                    }
                ],
            }
        ],
    },
    {"StepName": "bye", "Type": "CreateTask", "ParentStepName": "negative"},
]


def test_a_switch_cancels_the_email_the_daily_cap_holds(
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
    enrol(tid, then=NEGATIVE)
    clock.advance(timedelta(seconds=1))
    held = enrol(tid, then=NEGATIVE)
    work.run_until_idle()
    tracker = tracker_of(store, held)["Id"]
    (row,) = [r for r in outbox_rows(store) if r["tracker_id"] == tracker]
    assert row["status"] == "waiting"
    runtime.log_call(store, rep, held, "Not Interested")
    (row,) = [r for r in outbox_rows(store) if r["tracker_id"] == tracker]
    assert row["status"] == "cancelled"
    rows = step_trackers(store, tracker)
    assert [(r["StepType"], r["State"]) for r in rows[1:]] == [
        ("AutoSendAnEmail", "Cancelled"),
        ("SubRoot", "Completed"),
        ("CreateTask", "Active"),
    ]
    clock.advance(timedelta(days=2))
    work.run_until_idle()
    assert len(relay.received) == 1  # the other target's email only
