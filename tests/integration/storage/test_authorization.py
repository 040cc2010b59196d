"""Issue 10 items 1, 4-8: who may see and change what, through the Org/Store API, on both
databases. Two reps (A reports to the manager M, B to nobody), a manager, an administrator
and a cadence creator; docs/security-model.md describes the model pinned here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from opencadence import errors, system
from opencadence.org import Org
from opencadence.storage import accounts, authorization, migrate

V = "62.0"
_ID = re.compile(r"\b[0-9A-Za-z]{18}\b")


@dataclass
class World:
    org: Org
    ids: dict[str, str]
    sessions: dict[str, accounts.Session]

    def s(self, who: str) -> accounts.Session:
        return self.sessions[who]

    def relogin(self, who: str) -> None:
        """A new session (permissions are read when a session is checked)."""
        token = self.org.accounts.open_session(self.ids[who])
        self.sessions[who] = self.org.accounts.session(token)

    def query_ids(self, who: str, soql: str) -> set[str]:
        return {r["Id"] for r in self.org.query(self.s(who), soql, V)["records"]}


def make_world(org: Org) -> World:
    acc = org.accounts
    ids: dict[str, str] = {}
    for name, admin in (("admin", True), ("m", False), ("a", False), ("b", False), ("c", False)):
        ids[name], _ = acc.create_user(f"{name}@sec.test", "pw", admin=admin)
    acc.set_manager(ids["a"], "m@sec.test")
    acc.grant(ids["c"], authorization.CADENCE_CREATOR)
    world = World(org, ids, {})
    for name in ids:
        world.relogin(name)
    return world


@pytest.fixture
def w(oc: system.System) -> World:
    return make_world(oc.org)


def _contact(w: World, who: str, last: str = "X") -> str:
    return w.org.create(w.s(who), "Contact", {"LastName": last, "Email": f"{last}@x.test"}, V)


def _error(call: Any, *args: Any) -> errors.OpenCadenceError:
    with pytest.raises(errors.OpenCadenceError) as info:
        call(*args)
    return info.value


# --- item 1: writes respect ownership ---------------------------------------------------------


@pytest.mark.parametrize("obj", ["Contact", "Lead", "Task"])
def test_rep_cannot_change_or_delete_what_they_cannot_see(w: World, obj: str) -> None:
    body = {
        "Contact": {"LastName": "B1"},
        "Lead": {"LastName": "B1", "Company": "Co"},
        "Task": {"Subject": "B1"},
    }[obj]
    rid = w.org.create(w.s("b"), obj, body, V)
    missing = rid[:9] + "ZZZZZZ" + rid[15:]  # a well-formed id of no record
    for call in (
        lambda i: w.org.update(w.s("a"), obj, i, {"OwnerId": w.ids["a"]}, V),
        lambda i: w.org.delete(w.s("a"), obj, i, V),
    ):
        seen, absent = _error(call, rid), _error(call, missing)
        # the answer for an invisible record is the answer for a missing one
        assert (seen.error_code, seen.http_status) == ("NOT_FOUND", 404)
        assert (absent.error_code, absent.http_status) == ("NOT_FOUND", 404)
        assert _ID.sub("?", seen.message) == _ID.sub("?", absent.message)
    stored = w.org.store.get(obj, rid)
    assert stored is not None and stored["OwnerId"] == w.ids["b"]
    assert rid in w.query_ids("b", f"SELECT Id FROM {obj}")


def test_trackers_are_deleted_only_by_their_team(w: World) -> None:
    cid = _contact(w, "b", "Target")
    with w.org.store.transaction() as tx:
        tracker = tx.insert(
            "ActionCadenceTracker",
            {"TargetId": cid, "OwnerId": w.ids["b"], "State": "Complete"},
            system=True,
        )
    for who in ("a", "m"):
        e = _error(w.org.delete, w.s(who), "ActionCadenceTracker", tracker, V)
        assert e.error_code == "NOT_FOUND"
    # the check a system-mode caller (the runtime, the actions) makes for a principal
    with w.org.store.transaction(w.ids["a"], principal=w.s("a").principal) as tx:
        e = _error(tx.require_access, "ActionCadenceTracker", tracker, "delete")
    assert e.error_code == "NOT_FOUND"
    assert w.org.store.get("ActionCadenceTracker", tracker) is not None
    w.org.delete(w.s("b"), "ActionCadenceTracker", tracker, V)


def test_visible_but_not_owned_is_read_only(w: World) -> None:
    """A's tracker targets B's contact: A sees the contact but cannot change or take it."""
    cid = _contact(w, "b", "Shared")
    with w.org.store.transaction() as tx:
        tx.insert(
            "ActionCadenceTracker",
            {"TargetId": cid, "OwnerId": w.ids["a"], "State": "Running"},
            system=True,
        )
    assert cid in w.query_ids("a", "SELECT Id FROM Contact")
    for call in (
        lambda: w.org.update(w.s("a"), "Contact", cid, {"OwnerId": w.ids["a"]}, V),
        lambda: w.org.update(w.s("a"), "Contact", cid, {"Title": "mine"}, V),
        lambda: w.org.delete(w.s("a"), "Contact", cid, V),
    ):
        e = _error(call)
        assert (e.error_code, e.http_status) == ("INSUFFICIENT_ACCESS_OR_READONLY", 400)
    stored = w.org.store.get("Contact", cid)
    assert stored is not None and stored["OwnerId"] == w.ids["b"] and stored["Title"] is None


def test_owner_may_hand_a_record_over(w: World) -> None:
    cid = _contact(w, "a")
    w.org.update(w.s("a"), "Contact", cid, {"OwnerId": w.ids["b"]}, V)
    assert cid not in w.query_ids("a", "SELECT Id FROM Contact")
    assert cid in w.query_ids("b", "SELECT Id FROM Contact")


def test_admin_changes_everything(w: World) -> None:
    cid = _contact(w, "b")
    w.org.update(w.s("admin"), "Contact", cid, {"OwnerId": w.ids["a"]}, V)
    w.org.delete(w.s("admin"), "Contact", cid, V)


# --- item 6: managers see and act on their team ---------------------------------------------


def test_manager_sees_and_changes_the_team_recursively(w: World) -> None:
    acc = w.org.accounts
    acc.set_manager(w.ids["m"], "c@sec.test")  # c manages m, who manages a
    mine, theirs = _contact(w, "a", "A1"), _contact(w, "b", "B1")
    for boss in ("m", "c"):
        assert w.query_ids(boss, "SELECT Id FROM Contact") == {mine}
        w.org.update(w.s(boss), "Contact", mine, {"Title": boss}, V)
        assert (
            _error(w.org.update, w.s(boss), "Contact", theirs, {"Title": "x"}, V).error_code
            == "NOT_FOUND"
        )
    # a report sees nothing of the manager's
    boss_contact = _contact(w, "m", "M1")
    assert boss_contact not in w.query_ids("a", "SELECT Id FROM Contact")
    assert boss_contact in w.query_ids("c", "SELECT Id FROM Contact")
    # the chain ends even when it loops
    acc.set_manager(w.ids["c"], "a@sec.test")
    assert {mine, boss_contact} <= w.query_ids("a", "SELECT Id FROM Contact")
    acc.set_manager(w.ids["c"], None)
    acc.set_manager(w.ids["a"], None)
    assert w.query_ids("m", "SELECT Id FROM Contact") == {boss_contact}


# --- item 7: references and parent fields respect visibility --------------------------------


def test_reference_to_an_invisible_record_is_refused(w: World) -> None:
    theirs = _contact(w, "b", "Secret")
    before = w.org.store.read_events()
    for call in (
        lambda: w.org.create(w.s("a"), "Task", {"Subject": "Call", "WhoId": theirs}, V),
        lambda: w.org.create(
            w.s("a"), "Task", {"Subject": "Call", "WhoId": theirs, "TaskSubtype": "Call"}, V
        ),
    ):
        e = _error(call)
        assert e.error_code == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
        assert e.fields == ["WhoId"] and e.http_status == 400
    tid = w.org.create(w.s("a"), "Task", {"Subject": "Mine"}, V)
    e = _error(lambda: w.org.update(w.s("a"), "Task", tid, {"WhoId": theirs}, V))
    assert e.error_code == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
    assert w.query_ids("admin", "SELECT Id FROM Task WHERE WhoId != null") == set()
    assert len(w.org.store.read_events()) == len(before) + 1  # only the "Mine" task
    w.org.create(w.s("b"), "Task", {"Subject": "ok", "WhoId": theirs}, V)  # the owner may


def test_parent_fields_of_an_invisible_parent_read_null(w: World) -> None:
    theirs = _contact(w, "b", "Hidden")
    tid = w.org.create(
        w.s("admin"), "Task", {"Subject": "t", "WhoId": theirs, "OwnerId": w.ids["a"]}, V
    )
    soql = f"SELECT Id, WhoId, Who.Name, Who.Email FROM Task WHERE Id = '{tid}'"
    rec = w.org.query(w.s("a"), soql, V)["records"][0]
    assert rec["Who"] is None and rec["WhoId"] == theirs
    filtered = "SELECT Id FROM Task WHERE Who.Name = 'Hidden'"
    assert w.query_ids("a", filtered) == set()
    assert w.query_ids("admin", filtered) == {tid}
    assert w.org.query(w.s("b"), soql, V)["records"] == []  # B cannot see A's task
    admin_rec = w.org.query(w.s("admin"), soql, V)["records"][0]
    assert admin_rec["Who"]["Name"] == "Hidden"


# --- item 5: users, cadences and templates --------------------------------------------------


def test_only_admins_manage_users(w: World) -> None:
    body = {
        "Username": "ADMIN@SEC.TEST",
        "LastName": "x",
        "Alias": "x",
        "Email": "x@x.test",
        "TimeZoneSidKey": "GMT",
        "LocaleSidKey": "en_US",
        "LanguageLocaleKey": "en_US",
        "EmailEncodingKey": "UTF-8",
    }
    e = _error(lambda: w.org.create(w.s("a"), "User", {**body, "Username": "new@sec.test"}, V))
    assert e.error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    for change in ({"IsActive": False}, {"Email": "evil@x.test"}, {"LastName": "Pwned"}):
        e = _error(w.org.update, w.s("a"), "User", w.ids["admin"], change, V)
        assert e.error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    for change in ({"IsActive": False}, {"Username": "a2@sec.test"}, {"ManagerId": None}):
        e = _error(w.org.update, w.s("a"), "User", w.ids["a"], change, V)
        assert e.error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    admin = w.org.store.get("User", w.ids["admin"])
    assert admin is not None and admin["IsActive"] and admin["LastName"] == "admin"
    w.org.update(w.s("a"), "User", w.ids["a"], {"Title": "Rep"}, V)  # own personal fields
    # usernames are unique whatever their case; the login finds the real admin
    e = _error(lambda: w.org.create(w.s("admin"), "User", body, V))
    assert e.error_code == "DUPLICATE_USERNAME"
    assert w.org.accounts.authenticate("Admin@Sec.Test", "pw") == w.ids["admin"]
    w.org.update(w.s("admin"), "User", w.ids["a"], {"Title": "Senior"}, V)


def _cadence(w: World, who: str) -> str:
    body: dict[str, Any] = {"Name": f"Cad {who}", "FolderId": migrate.ORG_ID}
    return w.org.create(w.s(who), "ActionCadence", body, V)


def test_cadences_and_templates_need_the_cadence_creator_permission(w: World) -> None:
    e = _error(lambda: _cadence(w, "a"))
    assert e.error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert authorization.CADENCE_CREATOR_LABEL in e.message
    cad = _cadence(w, "c")
    step = w.org.create(
        w.s("c"), "ActionCadenceStep", {"ActionCadenceId": cad, "Type": "MakeACall"}, V
    )
    for call in (
        lambda: w.org.update(w.s("a"), "ActionCadence", cad, {"Name": "mine"}, V),
        lambda: w.org.update(w.s("a"), "ActionCadence", cad, {"State": "Active"}, V),
        lambda: w.org.delete(w.s("a"), "ActionCadenceStep", step, V),
        lambda: w.org.delete(w.s("a"), "ActionCadence", cad, V),
        lambda: w.org.create(
            w.s("a"), "ActionCadenceStep", {"ActionCadenceId": cad, "Type": "MakeACall"}, V
        ),
    ):
        assert _error(call).error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    stored = w.org.store.get("ActionCadence", cad)
    assert stored is not None and stored["Name"] == "Cad c" and stored["State"] == "Draft"
    assert w.org.store.get("ActionCadenceStep", step) is not None
    # granted, the rep may (after the session is read again)
    w.org.accounts.grant(w.ids["a"], "Sales Engagement Cadence Creator")
    w.relogin("a")
    w.org.update(w.s("a"), "ActionCadence", cad, {"Name": "now mine"}, V)
    w.org.accounts.revoke_permission(w.ids["a"], authorization.CADENCE_CREATOR)
    w.relogin("a")
    assert _error(lambda: _cadence(w, "a")).error_code == "INSUFFICIENT_ACCESS_OR_READONLY"


def test_email_templates_need_the_permission(w: World) -> None:
    body: dict[str, Any] = {
        "FolderId": migrate.ORG_ID,
        "Name": "T",
        "DeveloperName": "T1",
        "TemplateType": "custom",
        "Subject": "Hi",
        "HtmlValue": "<p>Hi</p>",
    }
    e = _error(lambda: w.org.create(w.s("a"), "EmailTemplate", body, V))
    assert e.error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    tid = w.org.create(w.s("c"), "EmailTemplate", body, V)
    e = _error(lambda: w.org.update(w.s("a"), "EmailTemplate", tid, {"Subject": "x"}, V))
    assert e.error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert _error(lambda: w.org.delete(w.s("b"), "EmailTemplate", tid, V)).error_code == (
        "INSUFFICIENT_ACCESS_OR_READONLY"
    )


def test_permissions_are_visible_through_the_api(w: World) -> None:
    soql = (
        "SELECT Assignee.Username, PermissionSet.Name, PermissionSet.Label "
        "FROM PermissionSetAssignment"
    )
    rows = w.org.query(w.s("a"), soql, V)["records"]
    assert [(r["Assignee"]["Username"], r["PermissionSet"]["Name"]) for r in rows] == [
        ("c@sec.test", authorization.CADENCE_CREATOR)
    ]
    assert rows[0]["PermissionSet"]["Label"] == "Sales Engagement Cadence Creator"
    assert w.s("c").can_manage_cadences and not w.s("a").can_manage_cadences
    # only administrators assign permission sets, and an assignment applies at once
    grant = {"AssigneeId": w.ids["a"], "PermissionSetId": authorization.CADENCE_CREATOR_ID}
    e = _error(lambda: w.org.create(w.s("c"), "PermissionSetAssignment", grant, V))
    assert e.error_code == "INSUFFICIENT_ACCESS_OR_READONLY"
    w.org.create(w.s("admin"), "PermissionSetAssignment", grant, V)
    again = _error(w.org.create, w.s("admin"), "PermissionSetAssignment", grant, V)
    assert again.error_code == "DUPLICATE_VALUE"
    token = w.org.accounts.open_session(w.ids["a"])
    assert w.org.accounts.session(token).can_manage_cadences


# --- item 4: EmailMessage --------------------------------------------------------------------


def test_email_messages_are_private(w: World) -> None:
    mine = w.org.create(w.s("a"), "EmailMessage", {"Subject": "A's", "Status": "3"}, V)
    theirs = w.org.create(w.s("b"), "EmailMessage", {"Subject": "B's", "Status": "3"}, V)
    task = w.org.create(w.s("admin"), "Task", {"Subject": "t", "OwnerId": w.ids["b"]}, V)
    logged = w.org.create(
        w.s("admin"), "EmailMessage", {"Subject": "on B's task", "Status": "3"}, V
    )
    with w.org.store.transaction() as tx:
        tx.update("EmailMessage", logged, {"ActivityId": task}, system=True)
    soql = "SELECT Id FROM EmailMessage"
    assert w.query_ids("a", soql) == {mine}
    assert w.query_ids("b", soql) == {theirs, logged}
    assert w.query_ids("m", soql) == {mine}  # the manager sees the report's
    assert w.query_ids("admin", soql) == {mine, theirs, logged}
    e = _error(lambda: w.org.retrieve(w.s("a"), "EmailMessage", theirs, None, V))
    assert e.error_code == "NOT_FOUND"
    assert w.org.retrieve(w.s("a"), "EmailMessage", mine, ["Subject"], V)["Subject"] == "A's"
    now = w.org.store.clock.now()
    start, end = (now - timedelta(minutes=5)).isoformat(), (now + timedelta(minutes=5)).isoformat()
    assert w.org.updated(w.s("a"), "EmailMessage", start, end, V)["ids"] == [mine]
    e = _error(lambda: w.org.update(w.s("a"), "EmailMessage", theirs, {"Subject": "x"}, V))
    assert e.error_code == "NOT_FOUND"


# --- item 8: getDeleted ----------------------------------------------------------------------


def test_get_deleted_is_filtered_by_visibility(w: World) -> None:
    now = w.org.store.clock.now()
    ours, theirs = _contact(w, "a", "A"), _contact(w, "b", "B")
    w.org.delete(w.s("a"), "Contact", ours, V)
    w.org.delete(w.s("b"), "Contact", theirs, V)
    start, end = (now - timedelta(minutes=5)).isoformat(), (now + timedelta(minutes=5)).isoformat()

    def deleted(who: str) -> set[str]:
        got = w.org.deleted(w.s(who), "Contact", start, end, V)["deletedRecords"]
        return {d["id"] for d in got}

    assert deleted("a") == {ours}
    assert deleted("b") == {theirs}
    assert deleted("m") == {ours}
    assert deleted("admin") == {ours, theirs}
    # undelete: B's deleted contact is, for A, not in the recycle bin
    with w.org.store.transaction(w.ids["a"], principal=w.s("a").principal) as tx:
        e = _error(lambda: tx.undelete("Contact", theirs))
    assert e.error_code == "UNDELETE_FAILED"
