from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from opencadence.metadata.registry import default_registry
from opencadence.storage import formulas

NOW = datetime(2026, 1, 5, 12)
DUE = datetime(2026, 1, 5, 10)


def test_every_declared_formula_is_implemented() -> None:
    declared = {f.formula for o in default_registry() for f in o.fields if f.calculated}
    assert declared and declared <= set(formulas.FORMULAS)
    for name in declared:  # each runs on an empty row without raising
        formulas.evaluate(name, {}, NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "row, expected",
    [
        ({}, None),
        ({"DueDateTime": DUE}, 7200),
        ({"DueDateTime": NOW + timedelta(hours=1)}, None),
        ({"DueDateTime": DUE, "ActionTakenDateTime": DUE + timedelta(seconds=30)}, 30),
        ({"DueDateTime": DUE, "ActionTakenDateTime": DUE - timedelta(hours=1)}, 0),
        ({"DueDateTime": DUE, "CompletionDate": DUE + timedelta(minutes=1)}, 60),
    ],
)
def test_seconds_overdue(row: dict[str, datetime], expected: int | None) -> None:
    assert formulas.seconds_overdue(row, NOW) == expected


def test_is_action_taken() -> None:
    assert formulas.is_action_taken({"ActionTakenDateTime": DUE}, NOW) is True
    assert formulas.is_action_taken({"ActionTakenDateTime": None}, NOW) is False


def test_metric_formulas() -> None:
    row = {
        "AllCallsMeaningfulConnect": 2,
        "AllCallsLeftVoicemail": 3,
        "AllEmailsSentCount": 10,
        "AllEmailsHardBouncedCount": 1,
        "AllEmailsSoftBouncedCount": 1,
        "AllEmailsOpenedCount": 3,
        "OpenTrackableSends": 8,
    }
    assert formulas.all_total_calls_count(row, NOW) == 5
    assert formulas.all_emails_bounced_count(row, NOW) == 2
    assert formulas.all_emails_delivered_count(row, NOW) == 8
    assert formulas.evaluate("trackable_send_open_rate", row, NOW) == 37.5
    assert formulas.evaluate("trackable_send_reply_rate", row, NOW) is None
    assert (
        formulas.all_emails_sent_count(
            {"AllEmailsTrackedSentCount": 4, "AllEmailsUntrackedSentCount": 1}, NOW
        )
        == 5
    )
