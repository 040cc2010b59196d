"""Issue 10 items 1, 4-8 through an unmodified simple-salesforce against a real server (both
databases): two reps (A reports to the manager M; B to nobody), a manager and an admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from opencadence.storage import authorization, migrate

from .conftest import Server


def _client(server: Server, user_id: str) -> Salesforce:
    token = server.org.accounts.open_session(user_id)
    return Salesforce(session_id=token, instance=server.instance, session=server.session())


@pytest.fixture
def team(server: Server) -> dict[str, Salesforce | str]:
    acc = server.org.accounts
    ids = {n: acc.create_user(f"{n}@cl.test", "pw")[0] for n in ("m", "a", "b")}
    acc.set_manager(ids["a"], "m@cl.test")
    admin = acc.find_user(server.admin)
    assert admin is not None
    out: dict[str, Salesforce | str] = {n: _client(server, i) for n, i in ids.items()}
    out["admin"] = _client(server, admin["Id"])
    out.update({f"{n}_id": i for n, i in ids.items()})
    return out


def _sf(team: dict[str, Salesforce | str], who: str) -> Salesforce:
    sf = team[who]
    assert isinstance(sf, Salesforce)
    return sf


def _code(info: pytest.ExceptionInfo[Exception]) -> str:
    content = info.value.content
    return str(content[0]["errorCode"])


def test_writes_to_invisible_records_answer_not_found(server: Server, team: dict) -> None:
    a, b, m = _sf(team, "a"), _sf(team, "b"), _sf(team, "m")
    theirs = b.Contact.create({"LastName": "Bee", "Email": "bee@x.test"})["id"]
    mine = a.Contact.create({"LastName": "Ay"})["id"]
    for call in (
        lambda: a.Contact.get(theirs),
        lambda: a.Contact.update(theirs, {"OwnerId": team["a_id"]}),
        lambda: a.Contact.update(theirs, {"Email": "stolen@x.test"}),
        lambda: a.Contact.delete(theirs),
    ):
        with pytest.raises(SalesforceResourceNotFound) as info:
            call()
        assert _code(info) == "NOT_FOUND"
    assert b.Contact.get(theirs)["OwnerId"] == team["b_id"]
    assert b.Contact.get(theirs)["Email"] == "bee@x.test"
    # the manager sees and edits the report's contact, not B's
    assert m.Contact.update(mine, {"Title": "checked"}) == 204
    assert {r["Id"] for r in m.query("SELECT Id FROM Contact")["records"]} == {mine}
    with pytest.raises(SalesforceResourceNotFound):
        m.Contact.delete(theirs)


def test_references_and_parent_fields_respect_visibility(server: Server, team: dict) -> None:
    a, b, admin = _sf(team, "a"), _sf(team, "b"), _sf(team, "admin")
    theirs = b.Contact.create({"LastName": "Secret", "Phone": "555"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        a.Task.create({"Subject": "Call", "WhoId": theirs, "TaskSubtype": "Call"})
    assert _code(info) == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
    tid = admin.Task.create({"Subject": "t", "WhoId": theirs, "OwnerId": team["a_id"]})["id"]
    rec = a.query(f"SELECT Who.Name, Who.Phone FROM Task WHERE Id = '{tid}'")["records"][0]
    assert rec["Who"] is None


def test_users_cadences_and_templates_are_guarded(server: Server, team: dict) -> None:
    a, admin = _sf(team, "a"), _sf(team, "admin")
    admin_id = server.org.accounts.find_user(server.admin)["Id"]  # type: ignore[index]
    for call in (
        lambda: a.User.update(admin_id, {"IsActive": False}),
        lambda: a.User.update(admin_id, {"Email": "me@evil.test"}),
        lambda: a.ActionCadence.create({"Name": "Mine", "FolderId": migrate.ORG_ID}),
    ):
        with pytest.raises(SalesforceMalformedRequest) as info:
            call()
        assert _code(info) == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert admin.User.get(admin_id)["IsActive"] is True
    # an administrator grants the permission through the API; it applies at once
    admin.PermissionSetAssignment.create(
        {"AssigneeId": team["a_id"], "PermissionSetId": authorization.CADENCE_CREATOR_ID}
    )
    created = a.ActionCadence.create({"Name": "Mine", "FolderId": migrate.ORG_ID})
    assert created["success"] is True
    names = a.query("SELECT PermissionSet.Name FROM PermissionSetAssignment")["records"]
    assert [r["PermissionSet"]["Name"] for r in names] == [authorization.CADENCE_CREATOR]


def test_emails_and_get_deleted_are_filtered(server: Server, team: dict) -> None:
    a, b, admin = _sf(team, "a"), _sf(team, "b"), _sf(team, "admin")
    start = server.clock.now()
    email = b.EmailMessage.create({"Subject": "private", "Status": "3"})["id"]
    assert a.query("SELECT Id, Subject FROM EmailMessage")["records"] == []
    with pytest.raises(SalesforceResourceNotFound):
        a.EmailMessage.get(email)
    gone = b.Contact.create({"LastName": "Gone"})["id"]
    b.Contact.delete(gone)
    server.clock.advance(minutes=2)
    end = server.clock.now()
    window = (start - timedelta(minutes=1), end)
    assert a.EmailMessage.updated(*window)["ids"] == []
    assert b.EmailMessage.updated(*window)["ids"] == [email]
    assert a.Contact.deleted(*window)["deletedRecords"] == []
    assert [d["id"] for d in admin.Contact.deleted(*window)["deletedRecords"]] == [gone]
