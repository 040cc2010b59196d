"""Unmodified simple-salesforce against a real opencadence server on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from opencadence.clock import ManualClock

from .conftest import Server


def by_session(server: Server) -> Salesforce:
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    token = server.org.accounts.open_session(user["Id"])
    return Salesforce(session_id=token, instance=server.instance, session=server.session())


def by_login(server: Server) -> Salesforce:
    return Salesforce(
        username=server.admin,
        password=server.admin_password,
        security_token=server.admin_token,
        session=server.session(),
    )


def test_describe_and_metadata(server: Server) -> None:
    sf = by_session(server)
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert "ActionCadenceStepTracker" in names
    d = sf.ActionCadenceStepTracker.describe()
    assert d["keyPrefix"] == "0cK" and not d["createable"]
    assert sf.Contact.metadata()["objectDescribe"]["name"] == "Contact"


def test_crud_and_query_paging(server: Server) -> None:
    sf = by_login(server)
    created = sf.Contact.create(
        {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}
    )
    assert created["success"] is True and created["id"].startswith("003")
    cid = created["id"]
    assert sf.Contact.update(cid, {"Title": "Countess"}) == 204
    got = sf.Contact.get(cid)
    assert got["Name"] == "Ada Lovelace" and got["Title"] == "Countess"
    assert got["attributes"]["type"] == "Contact"
    with server.org.store.transaction() as tx:
        tx.insert_many("Lead", [{"LastName": f"L{n:04d}", "Company": "Bulk"} for n in range(450)])
    sf.headers["Sforce-Query-Options"] = "batchSize=200"
    first = sf.query("SELECT Id, LastName FROM Lead WHERE Company = 'Bulk' ORDER BY LastName")
    assert first["totalSize"] == 450 and first["done"] is False and len(first["records"]) == 200
    more = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(more["records"]) == 200
    everything = sf.query_all("SELECT Id FROM Lead WHERE Company = 'Bulk'")
    assert everything["totalSize"] == 450 and len({r["Id"] for r in everything["records"]}) == 450
    assert sf.Contact.delete(cid) == 204
    deleted = sf.query_all(
        "SELECT Id, IsDeleted FROM Contact WHERE Id = '%s'" % cid, include_deleted=True
    )
    assert deleted["records"][0]["IsDeleted"] is True


def test_updated_and_deleted(server: Server) -> None:
    sf = by_session(server)
    start = server.clock.now()
    cid = sf.Contact.create({"LastName": "Replica"})["id"]
    server.clock.advance(minutes=2)
    sf.Contact.delete(cid)
    server.clock.advance(minutes=2)
    end = server.clock.now()
    updated = sf.Contact.updated(start - timedelta(minutes=1), end)
    assert "latestDateCovered" in updated
    deleted = sf.Contact.deleted(start - timedelta(minutes=1), end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [cid]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.updated(end, start)
    assert info.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_errors_map_to_client_exceptions(server: Server) -> None:
    sf = by_session(server)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query('SELECT Id FROM ActionCadenceStepTracker WHERE StepType="Completed"')
    assert info.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Nope FROM Contact")
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get("0030C0000000ZZZAAA")
    with pytest.raises(SalesforceGeneralError) as general:
        sf.ActionCadenceStepTracker.create({"State": "Active"})
    assert general.value.status == 405
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.create({"LastName": "x" * 81})
    assert info.value.content[0]["errorCode"] == "STRING_TOO_LONG"


def test_bad_session_is_401_invalid_session_id(server: Server) -> None:
    sf = Salesforce(session_id="00D!nope", instance=server.instance, session=server.session())
    with pytest.raises(SalesforceExpiredSession) as info:
        sf.query("SELECT Id FROM Contact")
    assert info.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_relogin_after_session_expiry(server: Server, session_clock: ManualClock) -> None:
    sf = by_login(server)
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    session_clock.advance(hours=3)  # past the 2-hour session timeout
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0  # re-logged in by itself


def test_oauth_password_and_client_credentials(server: Server) -> None:
    key, secret = server.org.accounts.create_app("ci", server.admin)
    sf = Salesforce(
        username=server.admin,
        password=server.admin_password,
        consumer_key=key,
        consumer_secret=secret,
        session=server.session(),
    )
    assert sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["totalSize"] == 1
    s = server.session()
    r = s.post(
        f"https://{server.instance}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(key, secret),
    )
    body = r.json()
    assert r.status_code == 200 and {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
    } <= set(body)
    bad = s.post(
        f"https://{server.instance}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": key,  # Salesforce's password grant needs a connected app
            "client_secret": secret,
            "username": server.admin,
            "password": "wrong",
        },
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    info = s.get(
        f"https://{server.instance}/services/oauth2/userinfo",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    ).json()
    assert info["preferred_username"] == server.admin
    s.post(
        f"https://{server.instance}/services/oauth2/revoke", data={"token": body["access_token"]}
    )
    after = s.get(
        f"https://{server.instance}/services/data/v59.0/sobjects",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert after.status_code == 401


def test_versions_and_version_visibility(server: Server) -> None:
    s = server.session()
    versions = s.get(f"https://{server.instance}/services/data/").json()
    assert versions[0] == {"label": "Spring '19", "url": "/services/data/v45.0", "version": "45.0"}
    assert versions[-1]["version"] == "67.0" and len(versions) == 23
    sf = Salesforce(
        session_id=by_session(server).session_id,
        instance=server.instance,
        session=server.session(),
        version="48.0",
    )
    fields = {f["name"] for f in sf.ActionCadenceStepTracker.describe()["fields"]}
    assert "GoToStepIterationCount" not in fields


def test_manual_clock_endpoint(server: Server) -> None:
    sf = by_session(server)
    before = server.clock.now()
    out = sf.restful("../../../_opencadence/clock", method="POST", data='{"advance": 86400}')
    assert out is not None and out["now"].startswith(
        (before + timedelta(days=1)).strftime("%Y-%m-%dT%H")
    )


def test_oversized_and_malformed_bodies_are_refused_and_change_nothing(server: Server) -> None:
    sf = by_session(server)
    before = sf.query("SELECT COUNT() FROM Contact")["totalSize"]
    huge = '{"LastName": "' + "x" * 1_100_000 + '"}'
    with pytest.raises(SalesforceGeneralError) as info:  # 413, from the Content-Length
        sf.restful("sobjects/Contact/", method="POST", data=huge)
    assert info.value.status == 413
    assert info.value.content[0]["errorCode"] == "EXCEEDED_MAX_SIZE_REQUEST"
    for body in ("{not json", "[1, 2]", '{"LastName": 5, "Birthdate": []}'):
        with pytest.raises(SalesforceMalformedRequest):
            sf.restful("sobjects/Contact/", method="POST", data=body)
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == before
