"""A reply arriving at the inbound SMTP listener moves the target to a Cadence Builder 2.0
track, on SQLite and PostgreSQL."""

from __future__ import annotations

from opencadence.cadence import worker
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
