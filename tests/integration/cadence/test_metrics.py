"""Metric counters after a scripted cadence run equal the values computed by hand; monthly
rows fall in the org's time zone's months; ``metrics check`` reports and repairs drift.
On SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence.cadence import actions, runtime, worker
from opencadence.clock import ManualClock
from opencadence.storage import metrics, migrate, records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

ORG_TZ = "America/Los_Angeles"


def _org_zone(store: records.Store, tz: str) -> None:
    with store.transaction() as tx:
        tx.update(
            "Organization",
            migrate.ORG_ID,
            {"TimeZoneSidKey": tz, "DefaultLocaleSidKey": "en_US", "LanguageLocaleKey": "en_US"},
            system=True,
        )


def _open(store: records.Store, target: str) -> dict[str, Any]:
    tr = tracker_of(store, target)
    return next(s for s in step_trackers(store, tr["Id"]) if s["State"] == "Active")


def _steps(store: records.Store, cadence: str) -> dict[str, dict[str, Any]]:
    t = store.meta.tables["ActionCadenceStep"]
    with store.reading() as conn:
        found = conn.execute(sa.select(t.c.Id, t.c.StepName).where(t.c.ActionCadenceId == cadence))
        pairs = list(found)
    return {name: store.get("ActionCadenceStep", sid) or {} for sid, name in pairs}


def _monthly(store: records.Store) -> dict[tuple[str, int], dict[str, Any]]:
    t = store.meta.tables["ActionCdncStpMonthlyMetric"]
    with store.reading() as conn:
        ids = list(conn.execute(sa.select(t.c.Id)).scalars())
    rows = [store.get("ActionCdncStpMonthlyMetric", i) or {} for i in ids]
    return {(r["ActionCadenceStepId"], r["MonthInt"]): r for r in rows}


@pytest.fixture
def scripted(
    store: records.Store,
    clock: ManualClock,
    rep: str,
    contacts: Callable[[int], list[str]],
    build: Build,
    acts: actions.Actions,
    work: worker.Worker,
) -> tuple[str, list[str]]:
    """Three targets through call -> email -> task, across the end of January in Los Angeles
    (which is already February in UTC)."""
    _org_zone(store, ORG_TZ)
    clock.set(datetime(2026, 1, 31, 20, 0, tzinfo=UTC))  # 12:00 in Los Angeles, Jan 31
    cadence = build(
        {"StepName": "call", "Type": "MakeACall"},
        {"StepName": "email", "Type": "SendAnEmail"},
        {"StepName": "task", "Type": "CreateTask"},
    )
    a, b, c = contacts(3)
    for target in (a, b, c):
        assign(acts, cadence, target, rep)
    runtime.log_call(store, rep, a, "Meaningful Connect")  # January (LA), on time
    clock.set(datetime(2026, 2, 1, 6, 0, tzinfo=UTC))  # 22:00 Jan 31 in LA; Feb in UTC
    runtime.log_call(store, rep, b, "No such result")  # uncategorized; overdue (due 23:59 NY)
    acts.sendSalesCadenceEvent([{"recordId": _open(store, c)["Id"], "eventType": "Skip"}], rep)
    clock.set(datetime(2026, 2, 1, 9, 0, tzinfo=UTC))  # 01:00 Feb 1 in LA
    runtime.take_action(store, _open(store, a)["Id"], rep)  # the email sent, February
    acts.sendSalesCadenceEvent(
        [{"recordId": _open(store, b)["Id"], "eventType": "ManualComplete"}], rep
    )
    runtime.log_call(store, rep, c, "Not Interested")  # no call step open: counts nowhere
    runtime.take_action(store, _open(store, c)["Id"], rep)  # c's email, February
    acts.sendSalesCadenceEvent([{"recordId": _open(store, a)["Id"], "eventType": "Skip"}], rep)
    (res,) = acts.removeTargetFromSalesCadence(
        [
            {
                "targetId": b,
                "completionReasonCode": "ManuallyRemoved",
                "completionDisposition": "Success",
            }
        ],
        rep,
    )
    assert res["isSuccess"], res
    work.run_until_idle()
    return cadence, [a, b, c]


def test_counters_equal_the_hand_computed_values(
    store: records.Store, scripted: tuple[str, list[str]]
) -> None:
    cadence, (a, b, c) = scripted
    steps = _steps(store, cadence)
    call, email, task = steps["call"], steps["email"], steps["task"]
    assert (
        call["AllCallsMeaningfulConnect"],
        call["AllCallsUncategorized"],
        call["AllCallsNotInterested"],
        call["AllTotalCallsCount"],
        call["AllOnTimeCompletedCount"],
        call["AllOverdueCompletedCount"],
        call["AllSkippedCount"],
        call["AllManuallyCompletedCount"],
    ) == (1, 1, 0, 2, 1, 1, 1, 0)
    assert (
        email["AllEmailsSentCount"],
        email["AllEmailsUntrackedSentCount"],
        email["AllEmailsTrackedSentCount"],
        email["AllEmailsDeliveredCount"],
        email["AllManuallyCompletedCount"],
        email["AllOnTimeCompletedCount"],
        email["AllOverdueCompletedCount"],
        email["UniqueEmailsOpenedCount"],
    ) == (2, 2, 0, 2, 1, 1, 1, 0)  # a's was due at the end of Jan 31 in New York: overdue
    assert (task["AllSkippedCount"], task["AllOnTimeCompletedCount"]) == (1, 0)
    assert steps["root"]["AllSkippedCount"] == 0  # zero from activation, never null
    head = store.get("ActionCadence", cadence) or {}
    # a: every step done (NoMoreSteps); b: removed with disposition Success; c: task open
    assert (head["TotalTargets"], head["ActiveTargets"], head["SuccessfulCompletions"]) == (3, 1, 1)
    assert tracker_of(store, a)["CompletionReason"] == "NoMoreSteps"
    assert tracker_of(store, b)["CompletionDisposition"] == "Success"


def test_monthly_rows_follow_the_org_time_zone(
    store: records.Store, scripted: tuple[str, list[str]]
) -> None:
    cadence, _ = scripted
    steps = _steps(store, cadence)
    rows = _monthly(store)
    jan = rows[(steps["call"]["Id"], 202601)]
    # both calls happened on Jan 31 in Los Angeles, though the second was Feb 1 in UTC
    assert (jan["AllCallsMeaningfulConnect"], jan["AllCallsUncategorized"]) == (1, 1)
    assert jan["AllTotalCallsCount"] == 2 and str(jan["Month"]) == "2026-01-01"
    assert (steps["call"]["Id"], 202602) not in rows
    feb = rows[(steps["email"]["Id"], 202602)]
    assert (
        feb["AllEmailsUntrackedSentCount"],
        feb["AllEmailsSentCount"],
        feb["RecipientSends"],
    ) == (
        2,
        2,
        2,
    )
    assert feb["OpenTrackableSends"] == 0 and feb["TrackableSendOpenRate"] is None
    assert feb["HasTemplateAssigned"] is False and feb["TemplateId"] is None
    assert (steps["email"]["Id"], 202601) not in rows


def test_check_reports_and_repairs(store: records.Store, scripted: tuple[str, list[str]]) -> None:
    cadence, _ = scripted
    steps = _steps(store, cadence)
    with store.transaction() as tx:
        assert metrics.check_tx(tx) == []
        t, c = store.meta.tables["ActionCadenceStep"], store.meta.tables["ActionCadence"]
        m = store.meta.tables["ActionCdncStpMonthlyMetric"]
        tx.conn.execute(t.update().where(t.c.Id == steps["call"]["Id"]).values(AllSkippedCount=7))
        tx.conn.execute(c.update().where(c.c.Id == cadence).values(TotalTargets=None))
        tx.conn.execute(m.delete().where(m.c.ActionCadenceStepId == steps["email"]["Id"]))
    with store.transaction() as tx:
        found = {(d.object, d.record_id, d.field): d for d in metrics.check_tx(tx)}
    skipped = found[("ActionCadenceStep", steps["call"]["Id"], "AllSkippedCount")]
    assert (skipped.stored, skipped.expected) == (7, 1)
    assert "AllSkippedCount: stored 7, expected 1" in skipped.describe()
    assert found[("ActionCadence", cadence, "TotalTargets")].expected == 3
    missing = found[("ActionCdncStpMonthlyMetric", None, "RecipientSends")]
    assert missing.key == (steps["email"]["Id"], None, 202602)
    with store.transaction() as tx:
        assert metrics.repair_tx(tx, list(found.values())) == 3
    with store.transaction() as tx:
        assert metrics.check_tx(tx) == []
    assert _monthly(store)[(steps["email"]["Id"], 202602)]["RecipientSends"] == 2


def test_counting_off_leaves_the_counters(
    store: records.Store,
    rep: str,
    contacts: Callable[[int], list[str]],
    build: Build,
    acts: actions.Actions,
) -> None:
    """The benchmark's baseline switch: with counting off nothing is counted (and the check
    says so)."""
    cadence = build({"StepName": "call", "Type": "MakeACall"})
    (target,) = contacts(1)
    store.count_metrics = False
    try:
        assign(acts, cadence, target, rep)
    finally:
        store.count_metrics = True
    assert (store.get("ActionCadence", cadence) or {})["TotalTargets"] == 0
    with store.transaction() as tx:
        found = metrics.check_tx(tx)
        assert {(d.field, d.expected) for d in found} == {("TotalTargets", 1), ("ActiveTargets", 1)}
        metrics.repair_tx(tx, found)


def test_cli_check_and_repair(
    store: records.Store,
    db_url: str,
    scripted: tuple[str, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``opencadence metrics check``: 0 when exact; a difference named by record and field
    (exit 1); ``--repair`` fixes it; progress on stderr."""
    from opencadence import cli

    cadence, _ = scripted
    assert cli.main(["metrics", "check", "--database", db_url]) == 0
    out = capsys.readouterr()
    assert "every counter agrees" in out.out and "step trackers" in out.err
    t = store.meta.tables["ActionCadence"]
    with store.transaction() as tx:
        tx.conn.execute(t.update().where(t.c.Id == cadence).values(ActiveTargets=40))
    assert cli.main(["metrics", "check", "--database", db_url, "--quiet"]) == 1
    out = capsys.readouterr()
    assert f"ActionCadence {cadence} ActiveTargets: stored 40, expected 1" in out.out
    assert out.err == ""
    assert cli.main(["metrics", "check", "--repair", "--database", db_url]) == 0
    assert "repaired 1 difference(s) in 1 record(s)" in capsys.readouterr().out
    assert (store.get("ActionCadence", cadence) or {})["ActiveTargets"] == 1
    assert cli.main(["metrics", "check", "--database", db_url]) == 0


def test_successful_completions_follow_the_disposition(
    store: records.Store,
    rep: str,
    contacts: Callable[[int], list[str]],
    build: Build,
    acts: actions.Actions,
) -> None:
    """SuccessfulCompletions counts Complete trackers whose disposition is Success, whenever
    the disposition is set (modifyCadenceTrackerAttributes after the removal too)."""
    cadence = build({"StepName": "call", "Type": "MakeACall"})
    (target,) = contacts(1)
    assign(acts, cadence, target, rep)
    tracker = tracker_of(store, target)["Id"]

    def counted() -> tuple[int, int, int]:
        head = store.get("ActionCadence", cadence) or {}
        return head["TotalTargets"], head["ActiveTargets"], head["SuccessfulCompletions"]

    assert counted() == (1, 1, 0)
    acts.modifyCadenceTrackerAttributes(
        [{"actionCadenceTrackerId": tracker, "completionDisposition": "Success"}], rep
    )
    assert counted() == (1, 1, 0)  # not complete yet
    acts.removeTargetFromSalesCadence(
        [{"targetId": target, "completionReasonCode": "ManuallyRemoved"}], rep
    )
    assert counted() == (1, 0, 1)
    acts.modifyCadenceTrackerAttributes(
        [{"actionCadenceTrackerId": tracker, "completionDisposition": "No Response"}], rep
    )
    assert counted() == (1, 0, 0)
    assign(acts, cadence, target, rep)  # enrolled again: a second target of the cadence
    assert counted() == (2, 1, 0)
