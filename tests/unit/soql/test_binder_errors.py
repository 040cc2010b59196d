"""SOQL errors the parser and binder raise, checked without a database.

Binding needs only the registry, so these cases run once, on a query service whose engine
refuses to connect: a case that reached the database would fail instead of passing. Each runs
through both entry points, ``query`` and ``queryAll`` (include_deleted), which must reject a
query alike. (They ran on each backend in tests/integration/soql/test_query.py before.)
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import errors, ids
from opencadence.clock import ManualClock
from opencadence.metadata import registry as registries
from opencadence.soql import execute
from opencadence.storage import records

STR = "ActionCadenceStepTracker"
ENTRY_POINTS = pytest.mark.parametrize("include_deleted", [False, True], ids=["query", "queryAll"])


def _no_database() -> Any:
    raise AssertionError("a parser/binder error case reached the database")


@pytest.fixture(scope="module")
def service() -> execute.QueryService:
    engine = sa.create_engine("sqlite://", creator=_no_database)
    store = records.Store(engine, registries.default_registry(), ManualClock())
    return execute.QueryService(store)


@ENTRY_POINTS
@pytest.mark.parametrize(
    "soql, code, fragment",
    [
        ("SELECT Id FROM Nope", "INVALID_TYPE", "sObject type 'Nope' is not supported"),
        ("SELECT Nope FROM Contact", "INVALID_FIELD", "No such column 'Nope' on entity 'Contact'"),
        ("SELECT Nope.Name FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Nope'"),
        (
            "SELECT Id FROM ActionCadence WHERE Description = 'x'",
            "INVALID_FIELD",
            "can not be filtered",
        ),
        (
            f"SELECT DueDateTime, COUNT(Id) FROM {STR} GROUP BY DueDateTime",
            "INVALID_FIELD",
            "can not be grouped",
        ),
        (f"SELECT Id FROM {STR} WHERE State = 5", "INVALID_FIELD", "must be of type string"),
        (
            f"SELECT Id FROM {STR} WHERE DueDateTime = 2026-01-01",
            "INVALID_FIELD",
            "must be of type dateTime",
        ),
        (
            f"SELECT Id FROM {STR} WHERE WasEverPaused = 'true'",
            "INVALID_FIELD",
            "must be of type boolean",
        ),
        (
            f"SELECT Id FROM {STR} WHERE Id = 'abc'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: abc",
        ),
        (
            f"SELECT Id FROM {STR} WHERE TargetId LIKE '003%'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid operator on id field",
        ),
        (
            f"SELECT Id FROM {STR} LIMIT 10 OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ),
        (f"SELECT FIELDS(ALL) FROM {STR}", "MALFORMED_QUERY", "LIMIT of at most 200"),
        (f"SELECT FIELDS(ALL) FROM {STR} LIMIT 201", "MALFORMED_QUERY", "LIMIT of at most 200"),
        (
            f"SELECT Id i FROM {STR}",
            "MALFORMED_QUERY",
            "only aggregate expressions use field aliasing",
        ),
        (
            f"SELECT State, StepType, COUNT(Id) FROM {STR} GROUP BY State",
            "MALFORMED_QUERY",
            "Field must be grouped or aggregated: StepType",
        ),
        (f"SELECT Id, Id FROM {STR}", "INVALID_FIELD", "duplicate field selected: Id"),
        (
            f"SELECT SUM(State) FROM {STR}",
            "MALFORMED_QUERY",
            "does not support aggregate operator SUM",
        ),
        (
            "SELECT Id FROM Contact WHERE Id IN (SELECT Id FROM Contact)",
            "MALFORMED_QUERY",
            "same object type",
        ),
        (
            "SELECT Id FROM Contact WHERE LastName = 'x' OR Id IN (SELECT TargetId FROM ActionCadenceTracker)",
            "MALFORMED_QUERY",
            "top level",
        ),
        (f"SELECT Id FROM {STR} WITH SECURITY_ENFORCED", "MALFORMED_QUERY", "only allowed in Apex"),
        (
            f"SELECT Id FROM {STR} USING SCOPE team",
            "MALFORMED_QUERY",
            "Scope team is not supported",
        ),
    ],
)
def test_binder_errors(
    service: execute.QueryService, include_deleted: bool, soql: str, code: str, fragment: str
) -> None:
    with pytest.raises(errors.OpenCadenceError) as info:
        service.query(soql, include_deleted=include_deleted)
    assert info.value.error_code == code
    assert fragment in info.value.message


@ENTRY_POINTS
def test_error_message_layout_has_row_and_column(
    service: execute.QueryService, include_deleted: bool
) -> None:
    with pytest.raises(errors.InvalidField) as info:
        service.query("SELECT Id,\n  Nope FROM Contact", include_deleted=include_deleted)
    assert "ERROR at Row:2:Column:3" in info.value.message
    assert "\n  ^" in info.value.message


@ENTRY_POINTS
def test_seed_usage_query_as_printed_fails_with_reason(
    service: execute.QueryService, include_deleted: bool
) -> None:
    contact, cadence = ids.make_id("003", 1001), ids.make_id("77C", 1002)
    with pytest.raises(errors.MalformedQuery) as info:
        service.query(
            f"select StepTitle from ActionCadenceStepTracker where TargetID = '{contact}' "
            f"and ActionCadenceId='{cadence}' and StepType=\"Completed\"",
            include_deleted=include_deleted,
        )
    assert info.value.error_code == "MALFORMED_QUERY"
    assert "single quotes" in info.value.message and "^" in info.value.message
