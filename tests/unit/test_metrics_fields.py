"""The counter fields storage/metrics.py keeps are the registry's, and months are the org's."""

from __future__ import annotations

from datetime import datetime

from opencadence.metadata.registry import default_registry
from opencadence.storage import metrics


def test_counter_fields_are_the_registrys() -> None:
    reg = default_registry()
    step = set(metrics.counters(reg, "ActionCadenceStep"))
    assert len(step) == 22 and "AllTotalCallsCount" not in step  # calculated
    assert {"AllSkippedCount", "UniqueEmailsRepliedCount", "AllCallsUncategorized"} <= step
    assert set(metrics.CALL_FIELDS.values()) <= step
    monthly = set(metrics.counters(reg, "ActionCdncStpMonthlyMetric"))
    assert "MonthInt" not in monthly and "AllEmailsSentCount" not in monthly  # derived there
    assert {"RecipientSends", "AllEmailsNotDeliveredCount", "OpenTrackableSends"} <= monthly
    assert metrics.counters(reg, "ActionCadence") == (
        "ActiveTargets",
        "TotalTargets",
        "SuccessfulCompletions",
    )
    for name in ("ActionCadenceStep", "ActionCdncStpMonthlyMetric", "ActionCadence"):
        obj = reg.object(name)
        for field in metrics.counters(reg, name):
            f = obj.field(field)
            assert f is not None and f.type == "int" and not f.createable and not f.updateable


def test_months_in_the_org_time_zone() -> None:
    # 2026-02-01 06:00 UTC is still January in Los Angeles, already February in Paris
    at = datetime(2026, 2, 1, 6, 0)
    assert metrics.month_int(at, "America/Los_Angeles") == 202601
    assert metrics.month_int(at, "Europe/Paris") == 202602
    assert metrics.month_int(at, "GMT") == 202602
    start, end = metrics.month_bounds(202603, "Europe/Paris")  # DST starts on March 29
    assert start == datetime(2026, 2, 28, 23, 0) and end == datetime(2026, 3, 31, 22, 0)
    start, end = metrics.month_bounds(202612, "America/Los_Angeles")
    assert start == datetime(2026, 12, 1, 8, 0) and end == datetime(2027, 1, 1, 8, 0)
