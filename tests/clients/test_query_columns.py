"""``GET /query?q=…&columns=true``: the columns of a query, checked and not run (what the sf CLI's
``data query`` lays its table out with), through unmodified simple-salesforce."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from .conftest import Server
from .test_simple_salesforce import by_session


def _columns(sf, soql: str):  # type: ignore[no-untyped-def]
    return sf.restful("query", params={"q": soql, "columns": "true"})


def test_columns_of_fields_parent_paths_subqueries_and_aggregates(server: Server) -> None:
    sf = by_session(server)
    sf.Account.create({"Name": "Not returned"})
    got = _columns(
        sf,
        "SELECT Id, Name, a.Owner.Username, (SELECT LastName FROM Contacts) FROM Account a",
    )
    assert (got["entityName"], got["keyPrefix"], got["idSelected"], got["groupBy"]) == (
        "Account",
        "001",
        True,
        False,
    )
    assert "records" not in got  # nothing was run
    ident, name, owner, contacts = got["columnMetadata"]
    assert ident["columnName"] == "Id" and ident["apexType"] == "Id" and not ident["aggregate"]
    assert name["columnName"] == "Name" and name["textType"] and name["updatable"]
    assert owner["columnName"] == "Owner" and owner["foreignKeyName"] == "OwnerId"
    assert [c["columnName"] for c in owner["joinColumns"]] == ["Username"]
    assert contacts["columnName"] == "Contacts" and contacts["aggregate"] is True
    assert [c["columnName"] for c in contacts["joinColumns"]] == ["LastName"]

    grouped = _columns(
        sf, "SELECT LeadSource, COUNT(Id) n, MAX(CreatedDate) FROM Lead GROUP BY LeadSource"
    )
    source, count, latest = grouped["columnMetadata"]
    assert grouped["groupBy"] is True and grouped["idSelected"] is False
    assert (count["columnName"], count["displayName"], count["aggregate"]) == (
        "n",
        "COUNT(Id)",
        True,
    )
    assert (latest["columnName"], latest["displayName"]) == ("expr0", "MAX(CreatedDate)")
    assert source["columnName"] == "LeadSource" and not source["aggregate"]


WRONG = [
    ("SELECT Nope FROM Contact", "INVALID_FIELD"),
    ("SELECT Id FROM Nope", "INVALID_TYPE"),
    ("SELECT Nope.Name FROM Contact", "INVALID_FIELD"),
    ("SELECT Id, (SELECT Id FROM Nopes) FROM Account", "INVALID_TYPE"),
    ("SELECT FROM", "MALFORMED_QUERY"),
]


def test_columns_of_a_wrong_query_are_its_error(server: Server) -> None:
    sf = by_session(server)
    for soql, code in WRONG:
        with pytest.raises(SalesforceMalformedRequest) as refused:
            _columns(sf, soql)
        assert refused.value.content[0]["errorCode"] == code, soql
