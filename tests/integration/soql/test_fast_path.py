"""The fast path (storage.fastread: statements prepared once, run on the driver) answers as the
general path (SQLAlchemy execution) does.

Every query of this folder's tests goes through conftest's ``CheckedService``, which asks both
and compares; this module checks that the comparison really happens, that it can fail, and
runs the SOQL literals of test_query.py / test_constructs.py as a rep who sees only their own
records (a visibility shape the other tests use less), twice each (prepared, then reused).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from opencadence.soql import execute
from opencadence.storage import fastread
from tests.integration.soql.conftest import CheckedService, Org

HERE = Path(__file__).parent


def conformance_queries() -> list[str]:
    found: set[str] = set()
    for name in ("test_query.py", "test_constructs.py"):
        for node in ast.walk(ast.parse((HERE / name).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip()
                if text[:7].upper() == "SELECT " and " FROM " in text.upper():
                    found.add(text)
    return sorted(found)


@pytest.mark.writes  # FOR VIEW / FOR REFERENCE queries stamp dates: an org of its own
def test_literal_queries_as_a_rep_agree_on_both_paths(org: Org) -> None:
    assert fastread.supported(org.store.engine)
    service = org.service
    assert isinstance(service, CheckedService) and service.fast and not service.general.fast
    rep = execute.Caller(org.ids["rep"], "America/Los_Angeles", view_all=False)
    queries = conformance_queries()
    assert len(queries) > 20
    for text in queries:
        for _ in range(2):
            try:
                service.query(text, rep, batch_size=200)
            except execute.errors.OpenCadenceError:
                pass  # the same error on both paths (checked)
    assert service.compared > 20
    assert sum(len(c.fast or {}) for c in service._cache.values()) > 10  # the fast path ran


@pytest.mark.writes
def test_the_comparison_can_fail(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    original = fastread.Light._fetched

    def off_by_one(self: fastread.Light, p: fastread.Prepared, cursor: object) -> list:  # type: ignore[type-arg]
        rows = original(self, p, cursor)
        return rows[1:] if len(rows) > 1 else rows  # the page's (3 contacts), not a count's

    monkeypatch.setattr(fastread.Light, "_fetched", off_by_one)
    with pytest.raises(AssertionError):
        org.q("SELECT Id FROM Contact")


@pytest.mark.writes
def test_the_comparison_sees_bytes_that_equality_does_not(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A boolean read back as 1 (== True) fails the comparison: it is rendered ``1``."""
    original = fastread.Light._fetched

    def as_ints(self: fastread.Light, p: fastread.Prepared, cursor: object) -> list:  # type: ignore[type-arg]
        rows = original(self, p, cursor)
        return [[int(v) if isinstance(v, bool) else v for v in r] for r in rows]

    monkeypatch.setattr(fastread.Light, "_fetched", as_ints)
    org.q("SELECT Id, LastName FROM Contact")  # no boolean: agrees
    with pytest.raises(AssertionError):
        org.q("SELECT Id, IsDeleted FROM Contact")


def test_flat_records_match_record_by_record(org: Org) -> None:
    """The generated shaper of flat records builds what ``ShapePlan.record`` builds, keys in
    the same order."""
    text = "SELECT Id, LastName, FirstName, Email, CreatedDate FROM Contact ORDER BY LastName"
    org.q(text)
    compiled = next(c for k, c in org.service._cache.items() if k[0] == text)
    plan = compiled.plan
    assert plan.flat_keys is not None
    with fastread.light(org.store.engine) as light:
        rows = light.rows(next(p for k, p in (compiled.fast or {}).items() if k != "total"))
    assert rows
    shaped = plan.records(rows)
    one_by_one = [plan.record(r) for r in rows]
    assert [list(r.items()) for r in shaped] == [list(r.items()) for r in one_by_one]


@pytest.mark.writes
def test_locators_written_on_the_driver_are_the_transactions(org: Org) -> None:
    """After the first (which also sweeps expired locators, in a Store transaction), a query
    locator is written by storage.fastread.write: its nextRecordsUrl works the same, on a
    kept connection (PostgreSQL) or a pooled one, and a locator written either way leads to
    the same second page."""
    with org.store.transaction() as tx:
        tx.insert_many("Lead", [{"LastName": f"L{n:04d}", "Company": "Bulk"} for n in range(450)])
    text = "SELECT LastName FROM Lead WHERE Company = 'Bulk' ORDER BY LastName"
    service = org.service
    assert isinstance(service, CheckedService)
    seconds = []
    for n in range(4):
        if n == 3:  # no kept connection free: a pooled one
            spares = fastread._spares(org.store.engine)
            taken = spares.slots if spares is not None else None
            for _ in range(fastread.SPARE_CONNECTIONS if taken is not None else 0):
                assert taken is not None and taken.acquire(blocking=False)
        try:
            first = org.q(text, batch_size=200)
        finally:
            if n == 3 and taken is not None:
                for _ in range(fastread.SPARE_CONNECTIONS):
                    taken.release()
        assert first["done"] is False and first["totalSize"] == 450
        locator = first["nextRecordsUrl"].rsplit("/", 1)[1]
        seconds.append(service.query_more(locator))
        assert service._saves == n + 1
    assert service._locator_writes is not None  # the driver wrote the later ones
    assert all(s["records"] == seconds[0]["records"] for s in seconds)
    assert [r["LastName"] for r in seconds[0]["records"]] == [f"L{n:04d}" for n in range(200, 400)]
    # the third page, from the page the second one saved
    third = service.query_more(seconds[-1]["nextRecordsUrl"].rsplit("/", 1)[1])
    assert third["done"] is True and len(third["records"]) == 50
    # every Lead (no WHERE): totalSize from the maintained counter, asked with the page at once
    # on PostgreSQL (Light.rows_and_scalar), twice (prepared, then reused)
    for _ in range(2):
        every = org.q("SELECT LastName FROM Lead ORDER BY LastName", batch_size=200)
        assert every["totalSize"] == 451 and every["done"] is False and len(every["records"]) == 200
    saves = service._saves
    small = org.q("SELECT Name FROM Account")  # no next page: the counter's answer unused
    assert small["totalSize"] == 2 and small["done"] is True
    assert service._saves == saves  # and no locator written
