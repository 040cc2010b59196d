"""Read-only fields Salesforce derives, kept by the one write path, seen through unmodified
simple-salesforce on 127.0.0.1 (SQLite and PostgreSQL): Task.IsClosed follows Status (a
closed TaskStatus: Completed) on create and update, CompletedDateTime is when a Task was
saved closed (null while open), a logged call's Task is closed, and ActionCadence.FolderName
is the Name of the record its FolderId names."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from opencadence.cadence import runtime

from .conftest import Server

V = "62.0"


def rest(server: Server) -> Salesforce:
    return Salesforce(
        username=server.admin,
        password=server.admin_password,
        security_token=server.admin_token,
        session=server.session(),
        version=V,
    )


def _closed(sf: Salesforce, task_id: str) -> bool:
    return bool(sf.Task.get(task_id)["IsClosed"])


def test_task_is_closed_follows_status(server: Server) -> None:
    sf = rest(server)
    done = sf.Task.create({"Subject": "Done already", "Status": "Completed"})["id"]
    assert _closed(sf, done)
    todo = sf.Task.create({"Subject": "To do"})["id"]  # Status defaults to Not Started
    assert sf.Task.get(todo)["Status"] == "Not Started" and not _closed(sf, todo)
    sf.Task.update(todo, {"Status": "Completed"})
    assert _closed(sf, todo)
    sf.Task.update(todo, {"Status": "In Progress"})
    assert not _closed(sf, todo)
    sf.Task.update(todo, {"Subject": "Still to do"})  # a write not touching Status keeps it
    assert not _closed(sf, todo)
    rows = sf.query(f"SELECT Id FROM Task WHERE IsClosed = true AND Id IN ('{done}', '{todo}')")
    assert [r["Id"] for r in rows["records"]] == [done]
    with pytest.raises(SalesforceMalformedRequest) as exc:  # read-only, as in Salesforce
        sf.Task.create({"Subject": "x", "IsClosed": True})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_task_completed_datetime_is_when_it_was_saved_closed(server: Server) -> None:
    """Salesforce (API 44.0+): the time a Task was saved with a closed status — its creation
    time if created closed, its update time if updated to closed; null again if reopened."""
    sf = rest(server)
    done = sf.Task.create({"Subject": "Done already", "Status": "Completed"})["id"]
    got = sf.Task.get(done)
    assert got["CompletedDateTime"] is not None
    assert got["CompletedDateTime"] == got["CreatedDate"]
    todo = sf.Task.create({"Subject": "To do"})["id"]
    assert sf.Task.get(todo)["CompletedDateTime"] is None
    sf.Task.update(todo, {"Status": "Completed"})
    got = sf.Task.get(todo)
    assert got["CompletedDateTime"] == got["LastModifiedDate"]
    closed_at = got["CompletedDateTime"]
    sf.Task.update(todo, {"Subject": "Renamed", "Status": "Completed"})  # still closed: kept
    assert sf.Task.get(todo)["CompletedDateTime"] == closed_at
    sf.Task.update(todo, {"Status": "In Progress"})
    assert sf.Task.get(todo)["CompletedDateTime"] is None
    with pytest.raises(SalesforceMalformedRequest) as exc:  # read-only, as in Salesforce
        sf.Task.create({"Subject": "x", "CompletedDateTime": "2026-01-01T00:00:00.000+0000"})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_a_logged_call_is_a_closed_task(server: Server) -> None:
    sf = rest(server)
    contact = sf.Contact.create({"LastName": "Callee"})["id"]
    admin = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    task = runtime.log_call(server.org.store, admin, contact, "Left Voicemail")
    got = sf.Task.get(task)
    assert (got["Status"], got["IsClosed"], got["TaskSubtype"]) == ("Completed", True, "Call")
    assert got["CompletedDateTime"] == got["CreatedDate"]


def test_a_cadence_folder_name_is_its_folder_records_name(server: Server) -> None:
    sf = rest(server)
    admin = sf.query("SELECT Id, Name FROM User WHERE Username = 'admin@oc.test'")["records"][0]
    cad = sf.ActionCadence.create({"Name": "Mine", "FolderId": admin["Id"]})["id"]
    assert sf.ActionCadence.get(cad)["FolderName"] == admin["Name"]
    org = sf.query("SELECT Id, Name FROM Organization")["records"][0]
    sf.ActionCadence.update(cad, {"FolderId": org["Id"]})
    assert sf.ActionCadence.get(cad)["FolderName"] == org["Name"]
