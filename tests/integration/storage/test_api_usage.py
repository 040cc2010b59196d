"""The daily API request counter: per process in memory, flushed into the day's row, summed
across processes sharing a database, and starting again at zero each UTC day."""

from __future__ import annotations

import pytest

from opencadence.storage import api_usage, records


def test_two_processes_add_up_and_a_new_day_starts_at_zero(store: records.Store) -> None:
    day = ["2026-12-01"]
    first = api_usage.ApiUsage(store, flush_seconds=0, today=lambda: day[0])
    second = api_usage.ApiUsage(store, flush_seconds=3600, today=lambda: day[0])
    assert [first.count() for _ in range(3)] == [1, 2, 3]
    assert second.count() == 4  # read the first's flushed total when it started the day
    assert second.count() == 5  # its own, not yet flushed
    assert first.count() == 4  # does not see the second's unflushed request
    second.flush()
    assert first.count() == 7
    day[0] = "2026-12-02"
    assert first.count() == 1 and second.used() == 1
    second.flush()
    with store.reading() as conn:
        rows = dict(
            conn.exec_driver_sql(
                "SELECT name, value FROM oc_sequence WHERE name LIKE 'api_requests:%%'"
            ).all()
        )
    assert rows == {"api_requests:2026-12-01": 7, "api_requests:2026-12-02": 1}


def test_a_failed_write_keeps_the_count_and_never_fails_the_request(
    store: records.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = api_usage.ApiUsage(store, flush_seconds=0, today=lambda: "2026-12-03")
    assert usage.count() == 1
    real = api_usage._add

    def down(*args: object, **kwargs: object) -> int:
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(api_usage, "_add", down)
    assert usage.count() == 2  # counted, not raised
    monkeypatch.setattr(api_usage, "_add", real)
    assert usage.count() == 3
    assert api_usage.ApiUsage(store, today=lambda: "2026-12-03").used() == 3  # all written
