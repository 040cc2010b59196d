"""The demo org ends with every metric counter the runtime fills non-null, monthly metric
rows written, and the counters equal to their recomputation (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from opencadence import demo, system
from opencadence.storage import metrics


def test_demo_counters_are_filled_and_exact(oc: system.System) -> None:
    demo.seed(oc.org)
    store = oc.store
    with store.reading() as conn:
        for name in ("ActionCadenceStep", "ActionCadence"):
            table = store.meta.tables[name]
            for field in metrics.counters(store.registry, name):
                nulls = conn.execute(
                    sa.select(sa.func.count()).where(table.c[field].is_(None))
                ).scalar_one()
                assert nulls == 0, f"{name}.{field} is null on {nulls} record(s)"
        m = store.meta.tables["ActionCdncStpMonthlyMetric"]
        rows = [dict(r) for r in conn.execute(sa.select(m)).mappings()]
    assert rows, "no ActionCdncStpMonthlyMetric row"
    for row in rows:
        for field in metrics.counters(store.registry, "ActionCdncStpMonthlyMetric"):
            assert row[field] is not None, field
        assert row["MonthInt"] // 100 >= 2026 and row["Month"].day == 1
    calls = sum(r["AllCallsMeaningfulConnect"] + r["AllCallsLeftVoicemail"] for r in rows)
    # three categorized calls on the first cadence's call steps, three voicemails on the quick
    # cadence's repeated call (the tracks cadence's "Not Interested" came during its wait, on
    # no call step: it switched tracks and counts on no step)
    assert calls == 6
    assert sum(r["AllCallsNotInterested"] for r in rows) == 0
    sent = sum(r["AllEmailsUntrackedSentCount"] for r in rows)
    assert sent >= 1  # the intro emails the demo's run (no relay) sent
    head = store.get("ActionCadence", _cadence(store, "Demo: every step")) or {}
    # eight contacts and five leads (the fifth converted: its tracker counts, no longer active)
    assert head["TotalTargets"] == 13 and head["ActiveTargets"] >= 1
    with store.reading() as conn:
        tz = metrics.org_time_zone(conn, store.meta)
        assert metrics.differences(conn, store.meta, store.registry, tz) == []


def _cadence(store: object, name: str) -> str:
    from opencadence.storage import records

    assert isinstance(store, records.Store)
    t = store.meta.tables["ActionCadence"]
    with store.reading() as conn:
        return str(conn.execute(sa.select(t.c.Id).where(t.c.Name == name)).scalar_one())
