"""The Composite resources through unmodified simple-salesforce (``sf.restful``) against a real
server on 127.0.0.1, on both databases: /composite (references, allOrNone rollback),
/composite/batch (haltOnError) and /composite/tree/{type} (nested children, all-or-nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from .conftest import Server
from .test_simple_salesforce import by_session

V = "/services/data/v59.0"


def _count(server: Server, soql: str) -> int:
    sf = by_session(server)
    return int(sf.query(soql)["totalSize"])


def _events(server: Server) -> list[dict[str, Any]]:
    return server.org.store.read_events(after=0, limit=100_000)


def _post(sf: Any, path: str, body: dict[str, Any]) -> Any:
    return sf.restful(path, method="POST", json=body)


# --- /composite ----------------------------------------------------------------------------


def test_composite_references_earlier_results(server: Server) -> None:
    sf = by_session(server)
    body = {
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "NewAccount",
                "body": {"Name": "Composite Co"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "NewContact",
                "body": {"LastName": "Ref", "AccountId": "@{NewAccount.id}"},
            },
            {
                "method": "GET",
                "url": f"{V}/query?q=SELECT+Id,AccountId+FROM+Contact+WHERE+Id='@{{NewContact.id}}'",
                "referenceId": "Found",
            },
            {
                "method": "PATCH",
                "url": f"{V}/sobjects/Contact/@{{Found.records[0].Id}}",
                "referenceId": "Renamed",
                "body": {"Title": "Account @{Found.records[0].AccountId}"},
            },
            {
                "method": "GET",
                "url": f"{V}/sobjects/Contact/@{{NewContact.id}}?fields=Title",
                "referenceId": "Read",
            },
        ]
    }
    got = _post(sf, "composite", body)["compositeResponse"]
    assert [r["referenceId"] for r in got] == [
        "NewAccount",
        "NewContact",
        "Found",
        "Renamed",
        "Read",
    ]
    assert [r["httpStatusCode"] for r in got] == [201, 201, 200, 204, 200]
    account_id = got[0]["body"]["id"]
    assert got[0]["body"] == {"id": account_id, "success": True, "errors": []}
    assert got[0]["httpHeaders"] == {"Location": f"{V}/sobjects/Account/{account_id}"}
    assert got[2]["body"]["records"][0]["AccountId"] == account_id
    assert got[3]["body"] is None and got[3]["httpHeaders"] == {}
    assert got[4]["body"]["Title"] == f"Account {account_id}"


def test_composite_counts_as_one_api_request(server: Server) -> None:
    sf = by_session(server)
    before = server.org.api_usage.used()
    subs = [{"method": "GET", "url": f"{V}/limits", "referenceId": f"L{n}"} for n in range(3)]
    _post(sf, "composite", {"compositeRequest": subs})
    assert server.org.api_usage.used() == before + 1


def test_composite_without_all_or_none_keeps_what_succeeded(server: Server) -> None:
    sf = by_session(server)
    body = {
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "Kept",
                "body": {"Name": "Kept Co"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "Bad",
                "body": {"LastName": "X", "Email": "not an email"},
            },
            {
                "method": "PATCH",
                "url": f"{V}/sobjects/Contact/@{{Bad.id}}",
                "referenceId": "Dependent",
                "body": {"Title": "never"},
            },
        ]
    }
    got = _post(sf, "composite", body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in got] == [201, 400, 400]
    assert got[1]["body"][0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert got[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert "Bad.id" in got[2]["body"][0]["message"]
    assert _count(server, "SELECT Id FROM Account WHERE Name = 'Kept Co'") == 1


def test_composite_all_or_none_rolls_everything_back(server: Server) -> None:
    sf = by_session(server)
    events_before = len(_events(server))
    body = {
        "allOrNone": True,
        "collateSubrequests": False,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "A",
                "body": {"Name": "Rolled Back Co"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "C",
                "body": {"LastName": "Seen", "AccountId": "@{A.id}"},
            },
            {  # reads what the earlier subrequests wrote, inside the transaction
                "method": "GET",
                "url": f"{V}/sobjects/Contact/@{{C.id}}?fields=AccountId",
                "referenceId": "Read",
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "Bad",
                "body": {"LastName": "X", "Email": "not an email"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "After",
                "body": {"Name": "Never Run Co"},
            },
        ],
    }
    got = _post(sf, "composite", body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in got] == [400, 400, 400, 400, 400]
    assert got[3]["body"][0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    for r in (got[0], got[1], got[2], got[4]):
        assert r["body"] == [
            {
                "errorCode": "PROCESSING_HALTED",
                "message": "The transaction was rolled back since another operation in the "
                "same transaction failed.",
            }
        ]
    assert _count(server, "SELECT Id FROM Account WHERE Name LIKE '%Co'") == 0
    assert _count(server, "SELECT Id FROM Contact") == 0
    assert len(_events(server)) == events_before  # no change event of any subrequest
    # the server is still usable for writes afterwards (the transaction ended)
    assert sf.Account.create({"Name": "After"})["success"] is True


def test_composite_all_or_none_commits_when_all_succeed(server: Server) -> None:
    sf = by_session(server)
    events_before = len(_events(server))
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "A",
                "body": {"Name": "Committed Co"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "C",
                "body": {"LastName": "Both", "AccountId": "@{A.id}"},
            },
            {
                "method": "GET",
                "url": f"{V}/query?q=SELECT+Id+FROM+Contact+WHERE+AccountId='@{{A.id}}'",
                "referenceId": "Q",
            },
        ],
    }
    got = _post(sf, "composite", body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in got] == [201, 201, 200]
    assert got[2]["body"]["totalSize"] == 1
    assert _count(server, "SELECT Id FROM Contact WHERE Account.Name = 'Committed Co'") == 1
    assert len(_events(server)) > events_before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"compositeRequest": []}, "INVALID_INPUT"),
        ({}, "INVALID_INPUT"),
        (
            {
                "compositeRequest": [
                    {"method": "GET", "url": f"{V}/limits", "referenceId": f"r{n}"}
                    for n in range(26)
                ]
            },
            "LIMIT_EXCEEDED",
        ),
        (
            {
                "compositeRequest": [
                    {
                        "method": "GET",
                        "url": f"{V}/query?q=SELECT+Id+FROM+User",
                        "referenceId": f"q{n}",
                    }
                    for n in range(6)
                ]
            },
            "LIMIT_EXCEEDED",
        ),
        (
            {
                "compositeRequest": [
                    {"method": "GET", "url": f"{V}/limits", "referenceId": "same"},
                    {"method": "GET", "url": f"{V}/limits", "referenceId": "same"},
                ]
            },
            "INVALID_INPUT",
        ),
        (
            {"compositeRequest": [{"method": "GET", "url": "/x", "referenceId": "r"}]},
            "INVALID_INPUT",
        ),
        (
            {"compositeRequest": [{"method": "GET", "url": f"{V}/limits", "referenceId": "a-b"}]},
            "INVALID_INPUT",
        ),
        (
            {"compositeRequest": [{"method": "GET", "url": f"{V}/composite", "referenceId": "r"}]},
            "INVALID_INPUT",
        ),
        ({"allOrNone": "yes", "compositeRequest": []}, "JSON_PARSER_ERROR"),
    ],
)
def test_composite_refuses_a_malformed_request(server: Server, body: Any, code: str) -> None:
    sf = by_session(server)
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _post(sf, "composite", body)
    assert raised.value.content[0]["errorCode"] == code


def test_composite_authenticates_before_reading_the_body(server: Server) -> None:
    r = server.session().post(
        f"https://{server.instance}{V}/composite",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"


# --- /composite/batch ----------------------------------------------------------------------


def test_batch_runs_independent_subrequests(server: Server) -> None:
    sf = by_session(server)
    cid = sf.Contact.create({"LastName": "Batch"})["id"]
    before = server.org.api_usage.used()
    body = {
        "batchRequests": [
            {
                "method": "PATCH",
                "url": f"v59.0/sobjects/Contact/{cid}",
                "richInput": {"Title": "T"},
            },
            {"method": "GET", "url": f"v59.0/sobjects/Contact/{cid}?fields=Title"},
            {"method": "GET", "url": "v59.0/sobjects/Contact/003000000000000AAA"},
            {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {"Name": "B"}},
        ]
    }
    got = _post(sf, "composite/batch", body)
    assert got["hasErrors"] is True
    codes = [r["statusCode"] for r in got["results"]]
    assert codes == [204, 200, 404, 201]
    assert got["results"][0]["result"] is None
    assert got["results"][1]["result"]["Title"] == "T"
    assert got["results"][2]["result"][0]["errorCode"] == "NOT_FOUND"
    assert got["results"][3]["result"]["success"] is True
    # each batch subrequest counts against the API limits, and so does the batch
    assert server.org.api_usage.used() == before + 5


def test_batch_halt_on_error_stops_at_the_first_failure(server: Server) -> None:
    sf = by_session(server)
    body = {
        "haltOnError": True,
        "batchRequests": [
            {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {"Name": "First"}},
            {"method": "POST", "url": "v59.0/sobjects/Contact", "richInput": {"Email": "x"}},
            {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {"Name": "Never"}},
        ],
    }
    got = _post(sf, "composite/batch", body)
    assert got["hasErrors"] is True
    assert [r["statusCode"] for r in got["results"]] == [201, 400, 412]
    assert got["results"][2]["result"] == [
        {"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}
    ]
    assert _count(server, "SELECT Id FROM Account WHERE Name = 'First'") == 1  # not rolled back
    assert _count(server, "SELECT Id FROM Account WHERE Name = 'Never'") == 0


def test_batch_limits(server: Server) -> None:
    sf = by_session(server)
    many = [{"method": "GET", "url": "v59.0/limits"} for _ in range(26)]
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _post(sf, "composite/batch", {"batchRequests": many})
    assert raised.value.content[0]["errorCode"] == "LIMIT_EXCEEDED"
    got = _post(sf, "composite/batch", {"batchRequests": many[:25]})
    assert got["hasErrors"] is False and len(got["results"]) == 25


# --- /composite/tree/{type} ----------------------------------------------------------------


def _tree() -> dict[str, Any]:
    return {
        "records": [
            {
                "attributes": {"type": "Account", "referenceId": "ref1"},
                "Name": "Tree One",
                "Contacts": {
                    "records": [
                        {
                            "attributes": {"type": "Contact", "referenceId": "ref2"},
                            "LastName": "Leaf",
                            "Email": "leaf@example.com",
                        },
                        {
                            "attributes": {"type": "Contact", "referenceId": "ref3"},
                            "LastName": "Other",
                        },
                    ]
                },
            },
            {"attributes": {"type": "Account", "referenceId": "ref4"}, "Name": "Tree Two"},
        ]
    }


def test_tree_creates_parents_and_children(server: Server) -> None:
    sf = by_session(server)
    got = _post(sf, "composite/tree/Account", _tree())
    assert got["hasErrors"] is False
    assert [r["referenceId"] for r in got["results"]] == ["ref1", "ref2", "ref3", "ref4"]
    by_ref = {r["referenceId"]: r["id"] for r in got["results"]}
    assert by_ref["ref1"].startswith("001") and by_ref["ref2"].startswith("003")
    leaf = sf.Contact.get(by_ref["ref2"])
    assert leaf["AccountId"] == by_ref["ref1"]
    assert _count(server, "SELECT Id FROM Contact WHERE Account.Name = 'Tree One'") == 2


def test_tree_is_all_or_nothing(server: Server) -> None:
    sf = by_session(server)
    events_before = len(_events(server))
    body = _tree()
    body["records"][0]["Contacts"]["records"][1]["Email"] = "not an email"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _post(sf, "composite/tree/Account", body)
    assert raised.value.content == {
        "hasErrors": True,
        "results": [
            {
                "referenceId": "ref3",
                "errors": [
                    {
                        "statusCode": "INVALID_EMAIL_ADDRESS",
                        "message": raised.value.content["results"][0]["errors"][0]["message"],
                        "fields": ["Email"],
                    }
                ],
            }
        ],
    }
    assert _count(server, "SELECT Id FROM Account WHERE Name LIKE 'Tree%'") == 0
    assert _count(server, "SELECT Id FROM Contact") == 0
    assert len(_events(server)) == events_before


def test_tree_refuses_bad_input(server: Server) -> None:
    sf = by_session(server)
    wrong_type = {"records": [{"attributes": {"type": "Contact", "referenceId": "r"}}]}
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _post(sf, "composite/tree/Account", wrong_type)
    assert raised.value.content["results"][0]["errors"][0]["statusCode"] == "INVALID_TYPE"
    bad_relationship = {
        "records": [
            {
                "attributes": {"type": "Account", "referenceId": "r"},
                "Name": "X",
                "Nope": {"records": []},
            }
        ]
    }
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _post(sf, "composite/tree/Account", bad_relationship)
    assert raised.value.content["results"][0]["errors"][0]["statusCode"] == "INVALID_FIELD"
    too_many = {
        "records": [
            {"attributes": {"type": "Account", "referenceId": f"r{n}"}, "Name": f"A{n}"}
            for n in range(201)
        ]
    }
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _post(sf, "composite/tree/Account", too_many)
    assert raised.value.content[0]["errorCode"] == "LIMIT_EXCEEDED"
    no_ref = {"records": [{"attributes": {"type": "Account"}, "Name": "X"}]}
    with pytest.raises(SalesforceMalformedRequest) as raised:
        _post(sf, "composite/tree/Account", no_ref)
    assert raised.value.content[0]["errorCode"] == "INVALID_INPUT"
    with pytest.raises(SalesforceResourceNotFound):
        _post(sf, "composite/tree/NoSuchObject", _tree())
    assert _count(server, "SELECT Id FROM Account") == 0


def test_tree_takes_200_records(server: Server) -> None:
    sf = by_session(server)
    body = {
        "records": [
            {"attributes": {"type": "Account", "referenceId": f"r{n}"}, "Name": f"A{n}"}
            for n in range(200)
        ]
    }
    got = _post(sf, "composite/tree/Account", body)
    assert got["hasErrors"] is False and len(got["results"]) == 200


def test_all_or_none_composite_rolls_back_a_tree_and_a_record(server: Server) -> None:
    sf = by_session(server)
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/composite/tree/Account",
                "referenceId": "Tree",
                "body": _tree(),
            },
            {
                "method": "PATCH",
                "url": f"{V}/sobjects/Contact/@{{Tree.results[1].id}}",
                "referenceId": "Edit",
                "body": {"Email": "still not an email"},
            },
        ],
    }
    got = _post(sf, "composite", body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in got] == [400, 400]
    assert got[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert got[1]["body"][0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert _count(server, "SELECT Id FROM Account") == 0
    assert _count(server, "SELECT Id FROM Contact") == 0


def test_all_or_none_composite_runs_a_paged_query(server: Server) -> None:
    """A query with more rows than its batch saves its locator in a transaction of its own
    (the query service's): inside an all-or-none composite it joins the composite's (a
    savepoint) rather than waiting for the writer lock the composite holds (SQLite)."""
    with server.org.store.transaction() as tx:
        tx.insert_many("Lead", [{"LastName": f"L{n:03d}", "Company": "Paged"} for n in range(250)])
    sf = by_session(server)
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "A",
                "body": {"Name": "Paged Co"},
            },
            {
                "method": "GET",
                "url": f"{V}/query?q=SELECT+Id+FROM+Lead+WHERE+Company='Paged'",
                "referenceId": "Q",
                "httpHeaders": {"Sforce-Query-Options": "batchSize=200"},
            },
        ],
    }
    got = _post(sf, "composite", body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in got] == [201, 200]
    first = got[1]["body"]
    assert first["totalSize"] == 250 and len(first["records"]) == 200 and not first["done"]
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(rest["records"]) == 50 and rest["done"]
    assert _count(server, "SELECT Id FROM Account WHERE Name = 'Paged Co'") == 1
