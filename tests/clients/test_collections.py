"""sObject Collections and upsert/get by external id against a real server on 127.0.0.1 (both
databases): raw requests for the exact shapes and allOrNone, simple-salesforce's
``upsert('Email/…')`` and ``get_by_custom_id``."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMoreThanOneRecord, SalesforceResourceNotFound

from .conftest import Server

V = "59.0"


class Api:
    def __init__(self, server: Server) -> None:
        user = server.org.accounts.find_user(server.admin)
        assert user is not None
        self.token = server.org.accounts.open_session(user["Id"])
        self.http = server.session()
        self.base = f"https://{server.instance}/services/data/v{V}"
        self.server = server

    def call(self, method: str, path: str, body: Any = None, version: str = V) -> Any:
        base = self.base.replace(f"v{V}", f"v{version}")
        r = self.http.request(
            method,
            base + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return r.status_code, (r.json() if r.content else None)

    def sf(self) -> Salesforce:
        return Salesforce(
            session_id=self.token, instance=self.server.instance, session=self.server.session()
        )


def contact(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Contact"}, **fields}


def last_replay(server: Server) -> int:
    return max([e["event"]["replayId"] for e in server.org.store.read_events()] or [0])


def test_create_update_retrieve_delete_in_input_order(server: Server) -> None:
    api = Api(server)
    after = last_replay(server)
    records = [
        {"attributes": {"type": "Account"}, "Name": "Acme"},
        contact(LastName="One"),
        contact(LastName="x" * 81),  # too long: this record alone fails
        contact(LastName="Three"),
    ]
    status, out = api.call("POST", "/composite/sobjects", {"records": records})
    assert status == 200
    assert [r["success"] for r in out] == [True, True, False, True]
    assert out[0]["id"].startswith("001") and out[1]["id"].startswith("003")
    assert "id" not in out[2]  # a record that was not created has no id
    assert out[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert set(out[2]["errors"][0]) == {"statusCode", "message", "fields"}
    one, three = out[1]["id"], out[3]["id"]
    events = server.org.store.read_events(after=after)
    keys = {e["payload"]["ChangeEventHeader"]["transactionKey"] for e in events}
    assert len(events) == 3 and len(keys) == 1  # the records that succeed commit together

    status, got = api.call(
        "GET", f"/composite/sobjects/Contact?ids={one},{three},003000000000000AAA&fields=LastName"
    )
    assert status == 200
    assert [g and g["LastName"] for g in got] == ["One", "Three", None]
    assert got[0]["attributes"]["type"] == "Contact"
    status, got = api.call(
        "POST",
        "/composite/sobjects/Contact",
        {"ids": [three, "bogus"], "fields": ["Id", "LastName"]},
    )
    assert got[0]["Id"] == three and got[1] is None

    status, out = api.call(
        "PATCH",
        "/composite/sobjects",
        {"records": [contact(id=one, Title="CEO"), contact(Title="no id")]},
    )
    assert status == 200
    assert out[0] == {"id": one, "success": True, "errors": []}
    assert out[1]["success"] is False and out[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert api.sf().Contact.get(one)["Title"] == "CEO"

    status, out = api.call("DELETE", f"/composite/sobjects?ids={one},{three},001000000000000AAA")
    assert status == 200
    assert [r["success"] for r in out] == [True, True, False]
    assert out[0] == {"id": one, "success": True, "errors": []}


def test_all_or_none_rolls_back_every_record_and_event(server: Server) -> None:
    api = Api(server)
    after = last_replay(server)
    body = {
        "allOrNone": True,
        "records": [contact(LastName="Kept?"), contact(LastName="x" * 81), contact(LastName="N")],
    }
    status, out = api.call("POST", "/composite/sobjects", body)
    assert status == 200
    assert [r["success"] for r in out] == [False, False, False]
    assert [r["errors"][0]["statusCode"] for r in out] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "STRING_TOO_LONG",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert all("id" not in r for r in out)
    assert api.sf().query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    assert server.org.store.read_events(after=after, entity="Contact") == []

    body = {"allOrNone": True, "records": [contact(LastName="A"), contact(LastName="B")]}
    status, out = api.call("POST", "/composite/sobjects", body)
    made = [r["id"] for r in out]
    events = server.org.store.read_events(after=after, entity="Contact")
    keys = {e["payload"]["ChangeEventHeader"]["transactionKey"] for e in events}
    assert len(events) == 2 and len(keys) == 1  # one transaction

    after = last_replay(server)
    status, out = api.call(
        "DELETE", f"/composite/sobjects?ids={made[0]},003000000000000AAA&allOrNone=true"
    )
    assert [r["errors"][0]["statusCode"] for r in out][0] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert out[0]["id"] == made[0] and out[1]["success"] is False
    assert api.sf().query("SELECT COUNT() FROM Contact")["totalSize"] == 2  # nothing deleted
    assert server.org.store.read_events(after=after, entity="Contact") == []


def test_limits_and_malformed_calls_change_nothing(server: Server) -> None:
    api = Api(server)
    status, out = api.call(
        "POST", "/composite/sobjects", {"records": [contact(LastName=str(i)) for i in range(201)]}
    )
    assert status == 400 and out[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    status, out = api.call("POST", "/composite/sobjects", {"records": [{"LastName": "no type"}]})
    assert status == 400 and out[0]["errorCode"] == "INVALID_TYPE"
    chunks = [
        {"attributes": {"type": "Contact" if i % 2 else "Account"}, "LastName": "L", "Name": "N"}
        for i in range(11)
    ]
    status, out = api.call("POST", "/composite/sobjects", {"records": chunks})
    assert status == 400 and out[0]["errorCode"] == "INVALID_OPERATION"
    ten = [{"attributes": {"type": "Account"}, "Name": "A"}] * 2 + [contact(LastName="C")] * 2
    status, out = api.call("POST", "/composite/sobjects", {"records": ten})
    assert status == 200 and all(r["success"] for r in out)  # 2 chunks: mixed types are fine
    assert api.sf().query("SELECT COUNT() FROM Contact")["totalSize"] == 2
    status, out = api.call("GET", "/composite/sobjects/Contact?ids=003000000000000AAA")
    assert status == 400
    status, out = api.call("GET", "/composite/sobjects/Contact?ids=003000000000000AAA&fields=Nope")
    assert status == 400 and out[0]["errorCode"] == "INVALID_FIELD"
    status, out = api.call("GET", "/composite/sobjects/Nope?ids=003000000000000AAA&fields=Id")
    assert status == 404
    http = server.session()
    r = http.post(f"{api.base}/composite/sobjects", data=b"{nope")  # no session: 401 first
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_collection_upsert_by_email(server: Server) -> None:
    api = Api(server)
    status, out = api.call(
        "POST", "/composite/sobjects", {"records": [contact(LastName="Old", Email="a@x.io")]}
    )
    existing = out[0]["id"]
    body = {
        "records": [
            contact(Email="A@x.io", LastName="New"),  # matches case-insensitively
            contact(Email="b@x.io", LastName="Fresh"),
            contact(LastName="No email"),
        ]
    }
    status, out = api.call("PATCH", "/composite/sobjects/Contact/Email", body)
    assert status == 200
    assert out[0] == {"id": existing, "success": True, "errors": [], "created": False}
    assert out[1]["success"] is True and out[1]["created"] is True
    assert out[2]["success"] is False and out[2]["created"] is False
    assert out[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert api.sf().Contact.get(existing)["LastName"] == "New"
    status, out = api.call("PATCH", "/composite/sobjects/Contact/LastName", body)
    assert status == 400 and out[0]["errorCode"] == "INVALID_FIELD"
    status, out = api.call("PATCH", "/composite/sobjects/Contact/Id", body)
    assert status == 400 and out[0]["errorCode"] == "INVALID_FIELD"  # external ids only
    status, out = api.call("PATCH", "/composite/sobjects/Contact/Nope__c", body)
    assert status == 404 and out[0]["errorCode"] == "NOT_FOUND"


def test_simple_salesforce_upsert_and_get_by_custom_id(server: Server) -> None:
    api = Api(server)
    sf = api.sf()
    assert sf.Contact.upsert("Email/pat@example.com", {"LastName": "Pat"}) == 201
    created = sf.Contact.upsert(
        "Email/sam@example.com", {"LastName": "Sam"}, raw_response=True
    ).json()
    assert created["success"] is True and created["created"] is True
    assert created["id"].startswith("003")
    assert sf.Contact.upsert("Email/pat@example.com", {"Title": "Boss"}) == 200
    got = sf.Contact.get_by_custom_id("Email", "pat@example.com")
    assert got["LastName"] == "Pat" and got["Title"] == "Boss"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get_by_custom_id("Email", "nobody@example.com")
    # the record route still answers by id
    assert sf.Contact.get(created["id"])["LastName"] == "Sam"

    sf.Contact.create({"LastName": "Twin", "Email": "twin@example.com"})
    twin = sf.Contact.create({"LastName": "Twin", "Email": "twin@example.com"})["id"]
    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        sf.Contact.get_by_custom_id("Email", "twin@example.com")
    assert caught.value.status == 300
    assert f"/services/data/v{sf.sf_version}/sobjects/Contact/{twin}" in caught.value.content
    after = last_replay(server)
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Contact.upsert("Email/twin@example.com", {"Title": "x"})
    assert server.org.store.read_events(after=after, entity="Contact") == []


def test_external_id_route_statuses_and_errors(server: Server) -> None:
    api = Api(server)
    status, out = api.call("PATCH", "/sobjects/Contact/Email/v@x.io", {"LastName": "V"})
    assert status == 201 and out["created"] is True
    made = out["id"]
    status, out = api.call("PATCH", "/sobjects/Contact/Email/v@x.io", {"Title": "T"}, "45.0")
    assert status == 204 and out is None  # before API 46.0: no body for an update
    status, out = api.call("PATCH", "/sobjects/Contact/Email/w@x.io", {"LastName": "W"}, "45.0")
    assert status == 201 and "created" not in out
    status, out = api.call("GET", "/sobjects/Contact/Email/v@x.io?fields=Title")
    assert status == 200 and out["Title"] == "T"
    status, out = api.call("GET", f"/sobjects/Contact/Id/{made}")
    assert status == 200 and out["Id"] == made
    status, out = api.call("GET", "/sobjects/Contact/LastName/V")
    assert status == 400 and out[0]["errorCode"] == "INVALID_FIELD"
    status, out = api.call("PATCH", "/sobjects/Contact/Nope/V", {"LastName": "V"})
    assert status == 404 and out[0]["errorCode"] == "NOT_FOUND"
    status, out = api.call("PATCH", "/sobjects/Contact/Email/v@x.io", {"Email": "other@x.io"})
    assert status == 400 and out[0]["errorCode"] == "INVALID_FIELD"
    status, out = api.call("PATCH", "/sobjects/Contact/Email/bad@x.io", {"LastName": "x" * 81})
    assert status == 400 and out[0]["errorCode"] == "STRING_TOO_LONG"
    status, out = api.call("GET", f"/sobjects/Contact/{made}")
    assert status == 200 and out["Email"] == "v@x.io"  # {id} still answers


def test_partial_success_writes_own_transaction_records_alone(server: Server) -> None:
    """An ActionCadence's State is written in a transaction of its own: in a partial-success
    call that record is retried alone and succeeds; in an allOrNone call it is refused."""
    api = Api(server)
    folder = api.sf().query("SELECT Id FROM Organization")["records"][0]["Id"]
    cadence = {"attributes": {"type": "ActionCadence"}, "FolderId": folder, "State": "Draft"}
    records = [contact(LastName="Before"), {**cadence, "Name": "C1"}, contact(LastName="After")]
    status, out = api.call("POST", "/composite/sobjects", {"records": records})
    assert [r["success"] for r in out] == [True, True, True]
    assert out[1]["id"].startswith(server.org.registry.prefix("ActionCadence"))
    status, out = api.call(
        "POST", "/composite/sobjects", {"allOrNone": True, "records": [{**cadence, "Name": "C2"}]}
    )
    assert out[0]["success"] is False and out[0]["errors"][0]["statusCode"] == "INVALID_OPERATION"
    names = api.sf().query("SELECT Name FROM ActionCadence")["records"]
    assert [r["Name"] for r in names] == ["C1"]


def test_reps_see_only_their_teams_records(server: Server) -> None:
    acc = server.org.accounts
    a, b = (acc.create_user(f"{n}@coll.test", "pw")[0] for n in ("a", "b"))
    rep_a, rep_b = Api(server), Api(server)
    rep_a.token, rep_b.token = acc.open_session(a), acc.open_session(b)
    status, out = rep_b.call(
        "POST", "/composite/sobjects", {"records": [contact(LastName="Bee", Email="bee@x.io")]}
    )
    theirs = out[0]["id"]
    status, got = rep_a.call("GET", f"/composite/sobjects/Contact?ids={theirs}&fields=LastName")
    assert status == 200 and got == [None]
    status, got = rep_a.call("GET", "/sobjects/Contact/Email/bee@x.io")
    assert status == 404 and got[0]["errorCode"] == "NOT_FOUND"
    status, out = rep_a.call("DELETE", f"/composite/sobjects?ids={theirs}")
    assert out[0]["success"] is False and out[0]["errors"][0]["statusCode"] == "NOT_FOUND"
    status, got = rep_b.call("GET", "/sobjects/Contact/Email/bee@x.io")
    assert status == 200 and got["Id"] == theirs
