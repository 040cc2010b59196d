"""Unmodified zeep, loading the served partner WSDL, against a real server on 127.0.0.1.

Every call goes through the same ``Org`` facade as REST; these tests show the SOAP shapes
(partner sObjects, QueryResult, SaveResult, faults) on both databases.
"""

from __future__ import annotations

import contextlib
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree
from zeep.exceptions import Fault
from zeep.transports import Transport

from opencadence.storage import migrate

from .conftest import Server

PARTNER = "{urn:partner.soap.sforce.com}SoapBinding"
SOBJECT_NS = "urn:sobject.partner.soap.sforce.com"


def client(server: Server) -> zeep.Client:
    transport = Transport(session=server.session())
    return zeep.Client(f"https://{server.instance}/soap/wsdl.jsp?type=*", transport=transport)


class Partner:
    """A logged-in zeep service and its SessionHeader."""

    def __init__(self, server: Server, version: str = "59.0") -> None:
        self.client = client(server)
        login_url = f"https://{server.instance}/services/Soap/u/{version}"
        self.login = self.client.create_service(PARTNER, login_url).login(
            server.admin, server.admin_password + server.admin_token
        )
        self.service = self.client.create_service(PARTNER, self.login.serverUrl)
        self.headers: dict[str, Any] = {"SessionHeader": {"sessionId": self.login.sessionId}}

    def call(self, operation: str, *args: Any, **headers: Any) -> Any:
        """The call's result; its LimitInfoHeader is kept in ``limit_info``."""
        return unwrap(
            self, self.service, operation, *args, _soapheaders={**self.headers, **headers}
        )

    def sobject(self, kind: str, record_id: str | None = None, **fields: Any) -> Any:
        nulls = [k for k, v in fields.items() if v is None]
        elements = []
        for key, value in fields.items():
            if value is not None:
                element = etree.Element(f"{{{SOBJECT_NS}}}{key}")
                element.text = str(value)
                elements.append(element)
        sobject = self.client.get_type(f"{{{SOBJECT_NS}}}sObject")
        return sobject(type=kind, Id=record_id, fieldsToNull=nulls, _value_1=elements)


def unwrap(holder: Any, service: Any, operation: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``operation`` and return its ``result``. The WSDLs declare the LimitInfoHeader
    response header, as Salesforce's do, so zeep answers ``body`` and ``header``; the header's
    limitInfo list goes into ``holder.limit_info``."""
    reply = getattr(service, operation)(*args, **kwargs)
    holder.limit_info = reply.header.LimitInfoHeader.limitInfo
    return None if reply.body is None else reply.body["result"]


def values(record: Any) -> dict[str, Any]:
    """A partner sObject's fields by name. zeep parses a nested element that names its xsi:type
    (a parent sObject, a child QueryResult) into an object without its element name, so those
    are listed under "objects" in document order."""
    out: dict[str, Any] = {"objects": []}
    for item in record["_value_1"] or []:
        if isinstance(item, etree._Element):
            out[etree.QName(item).localname] = item.text
        else:
            out["objects"].append(item)
    return out


def seed(server: Server, trackers: int = 3) -> dict[str, Any]:
    """An account with two contacts, an active cadence with one step and ``trackers`` step
    trackers (the runtime's rows, written as the runtime writes them)."""
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    ids: dict[str, Any] = {"rep": user["Id"]}
    with server.org.store.transaction() as tx:
        ids["acme"] = tx.insert("Account", {"Name": "Acme"})
        ids["ann"] = tx.insert(
            "Contact", {"FirstName": "Ann", "LastName": "Able", "AccountId": ids["acme"]}
        )
        ids["bob"] = tx.insert("Contact", {"LastName": "Baker", "AccountId": ids["acme"]})
        ids["cad"] = tx.insert(
            "ActionCadence",
            {"Name": "Outbound", "State": "Active", "FolderId": ids["rep"], "OwnerId": ids["rep"]},
            system=True,
        )
        ids["step"] = tx.insert(
            "ActionCadenceStep",
            {
                "ActionCadenceId": ids["cad"],
                "StepName": "call1",
                "StepTitle": "Call",
                "Type": "MakeACall",
            },
            system=True,
        )
        ids["tracker"] = tx.insert(
            "ActionCadenceTracker",
            {
                "ActionCadenceId": ids["cad"],
                "TargetId": ids["ann"],
                "OwnerId": ids["rep"],
                "State": "Running",
            },
            system=True,
        )
        ids["steps"] = [
            tx.insert(
                "ActionCadenceStepTracker",
                {
                    "ActionCadenceId": ids["cad"],
                    "ActionCadenceName": "Outbound",
                    "ActionCadenceStepId": ids["step"],
                    "ActionCadenceTrackerId": ids["tracker"],
                    "TargetId": ids["ann"],
                    "State": "Active",
                    "StepType": "MakeACall",
                    "StepTitle": f"Call {n:03d}",
                    "DueDateTime": server.clock.now() + timedelta(days=1),
                },
                system=True,
            )
            for n in range(trackers)
        ]
    return ids


def faulted(call: Any) -> Fault:
    with pytest.raises(Fault) as info:
        call()
    return info.value


def detail_of(fault: Fault) -> dict[str, str]:
    """The fault detail's element (its local name under "type") and its fields."""
    assert fault.detail is not None
    (detail,) = list(fault.detail)
    out = {"type": etree.QName(detail).localname, "ns": etree.QName(detail).namespace or ""}
    out.update({etree.QName(c).localname: c.text or "" for c in detail})
    return out


# --- session ----------------------------------------------------------------------------


def test_login_urls_user_info_timestamp_and_logout(server: Server) -> None:
    p = Partner(server, "59.0")
    base = f"https://{server.instance}/services/Soap"
    assert p.login.serverUrl == f"{base}/u/59.0/{migrate.ORG_ID[:15]}"
    assert p.login.metadataServerUrl == f"{base}/m/59.0/{migrate.ORG_ID[:15]}"
    info = p.call("getUserInfo")
    assert info.userName == server.admin and info.organizationId == migrate.ORG_ID
    assert info.userId == p.login.userId and info.userTimeZone == "America/Los_Angeles"
    stamp = p.call("getServerTimestamp")  # zeep unwraps the one-element result
    stamp = stamp if isinstance(stamp, datetime) else stamp.timestamp
    assert abs((stamp - server.clock.now()).total_seconds()) < 1
    assert p.call("logout") is None
    fault = faulted(lambda: p.call("getUserInfo"))
    assert fault.code == "sf:INVALID_SESSION_ID"
    assert detail_of(fault)["type"] == "UnexpectedErrorFault"


@pytest.mark.parametrize("version", ["44.0", "68.0", "99.0", "59"])
def test_login_refuses_versions_rest_refuses(server: Server, version: str) -> None:
    c = client(server)
    service = c.create_service(PARTNER, f"https://{server.instance}/services/Soap/u/{version}")
    fault = faulted(lambda: service.login(server.admin, server.admin_password + server.admin_token))
    assert fault.code == "sf:UNSUPPORTED_API_VERSION"
    assert fault.message == "UNSUPPORTED_API_VERSION: Invalid Api version specified on URL"


def test_calls_without_a_valid_session_fault_before_the_body_is_read(server: Server) -> None:
    p = Partner(server)
    p.headers = {"SessionHeader": {"sessionId": "00D!nope"}}
    fault = faulted(lambda: p.call("query", "SELECT Nope FROM Nowhere"))
    assert fault.code == "sf:INVALID_SESSION_ID"
    assert fault.message == (
        "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session"
    )
    detail = detail_of(fault)
    assert detail["ns"] == "urn:fault.partner.soap.sforce.com"
    assert detail["exceptionCode"] == "INVALID_SESSION_ID"
    p.headers = {}
    assert faulted(lambda: p.call("getUserInfo")).code == "sf:INVALID_SESSION_ID"


# --- describe ---------------------------------------------------------------------------


def test_describe_sobjects_of_the_step_tracker_matches_rest(server: Server) -> None:
    p = Partner(server)
    (soap,) = p.call("describeSObjects", ["ActionCadenceStepTracker"])
    token = p.login.sessionId
    rest = (
        server.session()
        .get(
            f"https://{server.instance}/services/data/v59.0/sobjects/ActionCadenceStepTracker/describe",
            headers={"Authorization": f"Bearer {token}"},
        )
        .json()
    )
    assert soap.name == rest["name"] and soap.keyPrefix == rest["keyPrefix"] == "0cK"
    assert soap.createable is False and soap.queryable is True and soap.replicateable is True
    assert [f.name for f in soap.fields] == [f["name"] for f in rest["fields"]]
    for got, want in zip(soap.fields, rest["fields"]):
        assert (got.type, got.soapType, got.length, got.nillable) == (
            want["type"],
            want["soapType"],
            want["length"],
            want["nillable"],
        ), want["name"]
        assert list(got.referenceTo) == want["referenceTo"], want["name"]
        assert [(v.value, v.label, v.active) for v in got.picklistValues] == [
            (v["value"], v["label"], v["active"]) for v in want["picklistValues"]
        ], want["name"]
    assert any(f.picklistValues for f in soap.fields)  # State, StepType, ...
    single = p.call("describeSObject", "Contact")
    assert single.name == "Contact" and "Contacts" in [
        c.relationshipName for c in p.call("describeSObject", "Account").childRelationships
    ]
    names = {o.name for o in p.call("describeGlobal").sobjects}
    assert {"ActionCadenceStepTracker", "Contact"} <= names


def test_describe_follows_the_api_version(server: Server) -> None:
    """ActionCadenceStepTracker exists from 48.0: at 47.0 it is INVALID_TYPE, as in REST."""
    p = Partner(server, "47.0")
    fault = faulted(lambda: p.call("describeSObjects", ["ActionCadenceStepTracker"]))
    assert fault.code == "sf:INVALID_TYPE"
    assert detail_of(fault)["type"] == "InvalidSObjectFault"
    assert "ActionCadenceStepTracker" not in {o.name for o in p.call("describeGlobal").sobjects}


# --- queries ----------------------------------------------------------------------------


def test_query_and_query_more_with_batch_size(server: Server) -> None:
    ids = seed(server, trackers=250)
    p = Partner(server)
    soql = (
        "SELECT Id, StepTitle, ActionCadence.Name, DueDateTime FROM ActionCadenceStepTracker "
        "ORDER BY StepTitle"
    )
    first = p.call("query", soql, QueryOptions={"batchSize": 200})
    assert (first.size, first.done, len(first.records)) == (250, False, 200)
    assert first.queryLocator
    row = first.records[0]
    assert row.type == "ActionCadenceStepTracker" and row.Id in ids["steps"]
    got = values(row)
    assert got["StepTitle"] == "Call 000" and got["Id"] == row.Id
    assert got["DueDateTime"].endswith(".000Z")
    (parent,) = got["objects"]
    assert parent.type == "ActionCadence" and values(parent)["Name"] == "Outbound"
    more = p.call("queryMore", first.queryLocator)
    assert (more.size, more.done, len(more.records), more.queryLocator) == (250, True, 50, None)
    titles = [values(r)["StepTitle"] for r in first.records + more.records]
    assert titles == [f"Call {n:03d}" for n in range(250)]
    everything = p.call("query", soql)  # no QueryOptions: up to 2000 a page
    assert everything.done is True and len(everything.records) == 250


def test_query_shapes_nulls_children_and_query_all(server: Server) -> None:
    ids = seed(server)
    p = Partner(server)
    result = p.call(
        "query",
        "SELECT Name, (SELECT LastName, FirstName FROM Contacts ORDER BY LastName) FROM Account",
    )
    (account,) = result.records
    assert account.Id is None  # Id not selected: nil, as the partner API sends it
    got = values(account)
    (contacts,) = got["objects"]
    assert contacts.size == 2 and contacts.done is True
    assert [values(c)["LastName"] for c in contacts.records] == ["Able", "Baker"]
    assert values(contacts.records[1])["FirstName"] is None  # xsi:nil
    server.org.store  # noqa: B018
    deleted = p.call("delete", [ids["bob"]])
    assert deleted[0].success is True
    live = p.call("query", "SELECT Id FROM Contact")
    assert live.size == 1
    every = p.call("queryAll", "SELECT Id, IsDeleted FROM Contact ORDER BY LastName")
    assert every.size == 2 and values(every.records[1])["IsDeleted"] == "true"


def test_query_faults(server: Server) -> None:
    seed(server)
    p = Partner(server)
    fault = faulted(lambda: p.call("query", "SELECT Id FROM Nowhere"))
    assert fault.code == "sf:INVALID_TYPE" and detail_of(fault)["type"] == "InvalidSObjectFault"
    fault = faulted(lambda: p.call("query", "SELECT Nope FROM Contact"))
    assert fault.code == "sf:INVALID_FIELD"
    detail = detail_of(fault)
    assert detail["type"] == "InvalidFieldFault" and detail["exceptionCode"] == "INVALID_FIELD"
    fault = faulted(lambda: p.call("query", "SELECT Id FROM Contact WHERE"))
    assert fault.code == "sf:MALFORMED_QUERY"
    detail = detail_of(fault)
    assert detail["type"] == "MalformedQueryFault" and int(detail["row"]) >= 1
    fault = faulted(lambda: p.call("queryMore", "0r80C000000000AAAA-200"))
    assert fault.code == "sf:INVALID_QUERY_LOCATOR"
    assert detail_of(fault)["type"] == "InvalidQueryLocatorFault"


def test_retrieve(server: Server) -> None:
    ids = seed(server)
    p = Partner(server)
    missing = "0cK0C0000000ZZZUAA"
    got = p.call(
        "retrieve", "Id, State, StepType", "ActionCadenceStepTracker", [ids["steps"][0], missing]
    )
    assert len(got) == 2 and (got[1] is None or got[1].type is None)  # xsi:nil
    assert got[0].type == "ActionCadenceStepTracker" and got[0].Id == ids["steps"][0]
    assert values(got[0])["State"] == "Active" and values(got[0])["StepType"] == "MakeACall"
    fault = faulted(lambda: p.call("retrieve", "Id, Nope", "Contact", [ids["ann"]]))
    assert fault.code == "sf:INVALID_FIELD"


# --- replication ------------------------------------------------------------------------


def test_get_updated_and_get_deleted(server: Server) -> None:
    p = Partner(server)
    start = server.clock.now()
    made, kept = p.call(
        "create", [p.sobject("Contact", LastName="Replica"), p.sobject("Contact", LastName="Kept")]
    )
    server.clock.advance(minutes=2)
    assert p.call("delete", [made.id])[0].success is True
    server.clock.advance(minutes=2)
    end = server.clock.now()
    updated = p.call("getUpdated", "Contact", start - timedelta(minutes=1), end)
    assert updated.ids == [kept.id] and updated.latestDateCovered is not None
    deleted = p.call("getDeleted", "Contact", start - timedelta(minutes=1), end)
    assert [d.id for d in deleted.deletedRecords] == [made.id]
    assert deleted.earliestDateAvailable is not None and deleted.latestDateCovered is not None
    fault = faulted(lambda: p.call("getUpdated", "Contact", end, start))
    assert fault.code == "sf:INVALID_REPLICATION_DATE"
    fault = faulted(lambda: p.call("getDeleted", "Contact", end - timedelta(days=40), end))
    assert fault.code == "sf:INVALID_REPLICATION_DATE"
    trackers = p.call("getUpdated", "ActionCadenceStepTracker", start - timedelta(minutes=1), end)
    assert trackers.ids == []


# --- writes -----------------------------------------------------------------------------


def test_create_update_delete_undelete_with_change_events(server: Server) -> None:
    p = Partner(server)
    after = max([e["event"]["replayId"] for e in server.org.store.read_events()] or [0])
    made = p.call(
        "create",
        [
            p.sobject("Contact", LastName="Lovelace", FirstName="Ada", Title="Countess"),
            p.sobject("Contact", LastName="x" * 81),
        ],
    )
    assert made[0].success is True and made[0].id.startswith("003") and made[0].errors == []
    assert made[1].success is False and made[1].id is None
    assert made[1].errors[0].statusCode == "STRING_TOO_LONG"
    cid = made[0].id
    (changed,) = p.call("update", [p.sobject("Contact", cid, Title=None, Phone="555")])
    assert changed.success is True and changed.id == cid
    row = server.org.store.get("Contact", cid)
    assert row is not None and row["Title"] is None and row["Phone"] == "555"
    assert row["Name"] == "Ada Lovelace"
    assert p.call("delete", [cid])[0].success is True
    assert server.org.store.get("Contact", cid) is None
    assert p.call("undelete", [cid])[0].success is True
    assert server.org.store.get("Contact", cid) is not None
    again = p.call("undelete", [cid])
    assert again[0].success is False and again[0].errors[0].statusCode == "UNDELETE_FAILED"
    events = server.org.store.read_events(after=after, entity="Contact")
    kinds = [e["payload"]["ChangeEventHeader"]["changeType"] for e in events]
    assert kinds == ["CREATE", "UPDATE", "DELETE", "UNDELETE"]
    origins = {e["payload"]["ChangeEventHeader"]["changeOrigin"] for e in events}
    assert origins == {"com/salesforce/api/soap/59.0"}


def test_read_only_tracker_refuses_create_and_update(server: Server) -> None:
    ids = seed(server)
    p = Partner(server)
    (made,) = p.call("create", [p.sobject("ActionCadenceStepTracker", State="Active")])
    assert made.success is False
    assert made.errors[0].statusCode == "INVALID_TYPE_FOR_OPERATION"
    (changed,) = p.call(
        "update", [p.sobject("ActionCadenceStepTracker", ids["steps"][0], State="Completed")]
    )
    assert changed.success is False
    assert changed.errors[0].statusCode == "INVALID_TYPE_FOR_OPERATION"
    (gone,) = p.call("delete", [ids["steps"][0]])
    assert gone.success is False
    assert server.org.store.get("ActionCadenceStepTracker", ids["steps"][0])["State"] == "Active"
    fault = faulted(lambda: p.call("create", [p.sobject("Nowhere", Name="x")]))
    assert fault.code == "sf:INVALID_TYPE"


def test_upsert_by_id_and_by_id_lookup_field(server: Server) -> None:
    p = Partner(server)
    (first,) = p.call("upsert", "Email", [p.sobject("Contact", LastName="Up", Email="up@x.io")])
    assert first.success is True and first.created is True
    (second,) = p.call("upsert", "Email", [p.sobject("Contact", LastName="Upper", Email="up@x.io")])
    assert second.success is True and second.created is False and second.id == first.id
    (third,) = p.call("upsert", "Id", [p.sobject("Contact", first.id, Title="CTO")])
    assert third.success is True and third.created is False and third.id == first.id
    row = server.org.store.get("Contact", first.id)
    assert row is not None and (row["LastName"], row["Title"]) == ("Upper", "CTO")
    fault = faulted(lambda: p.call("upsert", "Title", [p.sobject("Contact", LastName="No")]))
    assert fault.code == "sf:INVALID_FIELD"


def _parent(relationship: str, kind: str | None, **keys: str) -> Any:
    """A partner reference to a parent by an idLookup field: a nested element under the
    relationship name holding the parent's type and that field."""
    node = etree.Element(f"{{{SOBJECT_NS}}}{relationship}")
    for name, value in ({"type": kind} if kind else {}).items() | keys.items():
        etree.SubElement(node, f"{{{SOBJECT_NS}}}{name}").text = value
    return node


def _with(sobject: Any, *parents: Any) -> Any:
    sobject._value_1 = [*sobject._value_1, *parents]
    return sobject


def test_create_and_upsert_set_parents_by_external_id(server: Server) -> None:
    """Owner by User.Username, Who (Contact or Lead) by Contact.Email: the parent's Id is set,
    as REST's upsert matches; errors are each record's own and write nothing."""
    p = Partner(server)
    admin = server.org.accounts.find_user(server.admin)
    assert admin is not None
    (ann,) = p.call(
        "create",
        [
            _with(
                p.sobject("Contact", LastName="Ann", Email="ann@x.io"),
                _parent("Owner", "User", Username=server.admin.upper()),
            )
        ],
    )
    assert ann.success is True, ann.errors
    assert server.org.store.get("Contact", ann.id)["OwnerId"] == admin["Id"]
    (task,) = p.call(
        "create",
        [_with(p.sobject("Task", Subject="Call"), _parent("Who", "Contact", Email="ann@x.io"))],
    )
    assert task.success is True, task.errors
    assert server.org.store.get("Task", task.id)["WhoId"] == ann.id
    (up,) = p.call(
        "upsert",
        "Email",
        [
            _with(
                p.sobject("Contact", LastName="Bea", Email="bea@x.io"),
                _parent("Owner", None, Username=server.admin),
            )
        ],
    )
    assert (up.success, up.created) == (True, True)
    assert server.org.store.get("Contact", up.id)["OwnerId"] == admin["Id"]
    server.org.accounts.create_user("rep@ext.test", "rep-pw-1")
    rep = server.org.accounts.find_user("rep@ext.test")
    assert rep is not None
    (moved,) = p.call(
        "update",
        [_with(p.sobject("Contact", up.id), _parent("Owner", "User", Username="rep@ext.test"))],
    )
    assert moved.success is True, moved.errors
    assert server.org.store.get("Contact", up.id)["OwnerId"] == rep["Id"]
    twins = p.call(
        "create", [p.sobject("Contact", LastName="Twin", Email="twin@x.io") for _ in range(2)]
    )
    assert [t.success for t in twins] == [True, True], twins
    before = p.call("query", "SELECT COUNT() FROM Task").size
    refused = p.call(
        "create",
        [
            _with(p.sobject("Task", Subject="a"), _parent("Who", "Contact", Email="nobody@x.io")),
            _with(p.sobject("Task", Subject="b"), _parent("Who", "Contact", Email="TWIN@x.io")),
            _with(p.sobject("Task", Subject="c"), _parent("Who", None, Email="ann@x.io")),
            _with(p.sobject("Task", Subject="d"), _parent("Who", "Account", Name="Acme")),
            _with(p.sobject("Task", Subject="e"), _parent("What", "Account", Name="Acme")),
            _with(
                p.sobject("Task", Subject="f"),
                _parent("Who", "Contact", Email="ann@x.io", LastName="Ann"),
            ),
            _with(p.sobject("Task", Subject="g"), _parent("Nobody", "Contact", Email="ann@x.io")),
        ],
    )
    assert [r.success for r in refused] == [False] * 7
    codes = [(r.errors[0].statusCode, r.errors[0].message) for r in refused]
    assert codes[0] == (
        "INVALID_FIELD",
        "Foreign key external ID: nobody@x.io not found for field Email in entity Contact",
    )
    assert codes[1][0] == "DUPLICATE_EXTERNAL_ID" and "TWIN@x.io" in codes[1][1]
    assert codes[2][0] == "INVALID_FIELD" and "Who" in codes[2][1]  # polymorphic: type needed
    assert codes[3][0] == "INVALID_FIELD" and "Account is not one of Contact, Lead" in codes[3][1]
    assert codes[4] == (
        "INVALID_FIELD",
        "Field name provided, Name is not an External ID or indexed field for Account",
    )
    assert codes[5] == (
        "INVALID_FIELD",
        "More than 1 field provided in an external foreign key reference in entity: Contact",
    )
    assert (
        codes[6][0] == "INVALID_FIELD" and "No such column 'Nobody' on entity 'Task'" in codes[6][1]
    )
    assert p.call("query", "SELECT COUNT() FROM Task").size == before


def test_more_than_200_records_fault_and_write_nothing(server: Server) -> None:
    p = Partner(server)
    batch = [p.sobject("Contact", LastName=f"N{n}") for n in range(201)]
    fault = faulted(lambda: p.call("create", batch))
    assert fault.code == "sf:EXCEEDED_ID_LIMIT"
    assert p.call("query", "SELECT COUNT() FROM Contact").size == 0


# --- the XML itself ---------------------------------------------------------------------


def _post(server: Server, body: bytes, path: str = "/services/Soap/u/59.0") -> requests.Response:
    return server.session().post(
        f"https://{server.instance}{path}",
        data=body,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
    )


def _envelope(token: str, inner: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>{doctype}'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" xmlns:sf="urn:sobject.partner.soap.sforce.com">'
        f"<soapenv:Header><SessionHeader><sessionId>{token}</sessionId></SessionHeader>"
        f"</soapenv:Header><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def test_partner_sobject_xml_as_salesforce_writes_it(server: Server) -> None:
    seed(server)
    p = Partner(server)
    r = _post(
        server,
        _envelope(
            p.login.sessionId,
            "<query><queryString>SELECT Id, Name, Account.Name FROM Contact WHERE LastName = "
            "'Able'</queryString></query>",
        ),
        path=f"/services/Soap/u/59.0/{migrate.ORG_ID[:15]}",
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(r.content)
    ns = {
        "p": "urn:partner.soap.sforce.com",
        "sf": SOBJECT_NS,
        "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    }
    (record,) = root.findall(".//p:records", ns)
    assert record.get(f"{{{ns['xsi']}}}type") == "sf:sObject"
    names = [etree.QName(c).localname for c in record]
    assert names == ["type", "Id", "Id", "Name", "Account"]
    account = record.find("sf:Account", ns)
    assert account is not None and account.get(f"{{{ns['xsi']}}}type") == "sf:sObject"
    assert account.findtext("sf:Name", namespaces=ns) == "Acme"
    assert account.find("sf:Id", ns).get(f"{{{ns['xsi']}}}nil") == "true"


BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
)
EXTERNAL = '<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize(
    "doctype,last_name",
    [(BILLION_LAUGHS, "&lol3;"), (EXTERNAL, "&ext;"), ("<!DOCTYPE x>", "Plain")],
    ids=["billion-laughs", "external-entity", "dtd"],
)
def test_hostile_xml_is_refused_and_changes_nothing(
    server: Server, doctype: str, last_name: str
) -> None:
    p = Partner(server)
    inner = (
        f"<create><sObjects><sf:type>Contact</sf:type><sf:LastName>{last_name}</sf:LastName>"
        "</sObjects></create>"
    )
    r = _post(server, _envelope(p.login.sessionId, inner, doctype))
    assert r.status_code == 500
    root = etree.fromstring(r.content)
    assert root.findtext(".//faultcode") == "soapenv:Client"
    assert p.call("query", "SELECT COUNT() FROM Contact").size == 0


def test_oversized_and_deep_documents_are_refused(server: Server) -> None:
    p = Partner(server)
    deep = "<a>" * 200 + "</a>" * 200
    r = _post(
        server, _envelope(p.login.sessionId, f"<query><queryString>{deep}</queryString></query>")
    )
    assert r.status_code == 500 and b"deeper than" in r.content
    big = _envelope(p.login.sessionId, "<getUserInfo/>" + " " * 10_000_001)
    _refused_unread(lambda: _post(server, big))
    assert p.call("getUserInfo").userName == server.admin  # the server carries on


def test_wsdl_is_served_at_both_addresses(server: Server) -> None:
    s = server.session()
    for path in ("/soap/wsdl.jsp?type=*", "/services/wsdl/partner"):
        r = s.get(f"https://{server.instance}{path}")
        assert r.status_code == 200 and b"urn:partner.soap.sforce.com" in r.content
        root = etree.fromstring(r.content)
        address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address is not None
        assert address.get("location") == f"https://{server.instance}/services/Soap/u/67.0"


def test_all_or_none_rolls_back_every_record_and_event(server: Server) -> None:
    p = Partner(server)
    after = max([e["event"]["replayId"] for e in server.org.store.read_events()] or [0])
    batch = [
        p.sobject("Contact", LastName="Kept?"),
        p.sobject("Contact", LastName="x" * 81),
        p.sobject("Contact", LastName="Never tried"),
    ]
    results = p.call("create", batch, AllOrNoneHeader={"allOrNone": True})
    assert [r.success for r in results] == [False, False, False]
    assert [r.errors[0].statusCode for r in results] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "STRING_TOO_LONG",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert p.call("query", "SELECT COUNT() FROM Contact").size == 0
    assert server.org.store.read_events(after=after, entity="Contact") == []
    both = p.call(
        "create",
        [p.sobject("Contact", LastName="A"), p.sobject("Contact", LastName="B")],
        AllOrNoneHeader={"allOrNone": True},
    )
    assert [r.success for r in both] == [True, True]
    events = server.org.store.read_events(after=after, entity="Contact")
    keys = {e["payload"]["ChangeEventHeader"]["transactionKey"] for e in events}
    assert len(events) == 2 and len(keys) == 1  # one transaction
    partial = p.call("delete", [both[0].id, "003000000000000AAA"])
    assert [r.success for r in partial] == [True, False]  # without the header: each on its own


def test_markup_in_values_round_trips_escaped(server: Server) -> None:
    p = Partner(server)
    tricky = "<b>&amp; \"Tom\" & 'Jerry'</b>]]>"
    (made,) = p.call("create", [p.sobject("Contact", LastName=tricky)])
    assert made.success is True
    (got,) = p.call("retrieve", "LastName", "Contact", [made.id])
    assert values(got)["LastName"] == tricky
    found = p.call("query", "SELECT LastName FROM Contact")
    assert values(found.records[0])["LastName"] == tricky


def test_call_options_client_goes_into_change_origin(server: Server) -> None:
    p = Partner(server)
    after = max([e["event"]["replayId"] for e in server.org.store.read_events()] or [0])
    (made,) = p.call(
        "create", [p.sobject("Contact", LastName="Origin")], CallOptions={"client": "DataLoader/1"}
    )
    assert made.success is True
    (event,) = server.org.store.read_events(after=after, entity="Contact")
    origin = event["payload"]["ChangeEventHeader"]["changeOrigin"]
    assert origin == "com/salesforce/api/soap/59.0;client=DataLoader/1"


def test_hostile_login_is_refused_before_any_session_opens(server: Server) -> None:
    body = (
        f'<?xml version="1.0"?>{BILLION_LAUGHS}'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><login>'
        f"<username>{server.admin}</username><password>&lol3;</password>"
        "</login></soapenv:Body></soapenv:Envelope>"
    ).encode()
    r = _post(server, body)
    assert r.status_code == 500 and b"soapenv:Client" in r.content
    assert b"sessionId" not in r.content


def test_unknown_operation_and_another_orgs_server_url(server: Server) -> None:
    p = Partner(server)
    r = _post(server, _envelope(p.login.sessionId, "<convertEverything/>"))
    assert r.status_code == 500
    root = etree.fromstring(r.content)
    assert root.findtext(".//faultcode") == "soapenv:Client"
    assert "convertEverything" in (root.findtext(".//faultstring") or "")
    r = _post(
        server,
        _envelope(p.login.sessionId, "<getUserInfo/>"),
        path="/services/Soap/u/59.0/00D000000000001",
    )
    assert r.status_code == 500 and b"sf:INVALID_SESSION_ID" in r.content
    r = _post(server, b"not xml at all")
    assert r.status_code == 500 and b"soapenv:Client" in r.content


def test_readme_zeep_snippet_works(server: Server) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Logging in from clients", 1)[1].split("\n## ", 1)[0]
    (snippet,) = [s for s in re.findall(r"```python\n(.*?)```", section, re.DOTALL) if "zeep" in s]
    code = (
        snippet.replace("127.0.0.1:8443", server.instance)
        .replace(".opencadence-tls/cert.pem", str(server.cert))
        .replace("admin@demo.opencadence.dev", server.admin)
        .replace("demo-admin-1", server.admin_password + server.admin_token)
    )
    out = io.StringIO()
    names: dict[str, Any] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README zeep snippet", "exec"), names)  # noqa: S102
    names["s"].close()  # its keep-alive connection would hold the server's shutdown
    assert out.getvalue().strip() == "0"


def test_a_reps_visibility_is_the_same_as_over_rest(server: Server) -> None:
    """A rep who owns no tracker sees no step tracker: not in query, retrieve or getUpdated."""
    ids = seed(server)
    start = server.clock.now()
    server.clock.advance(minutes=2)
    _, token = server.org.accounts.create_user("rep@oc.test", "rep-pw-1")
    c = client(server)
    login = c.service.login("rep@oc.test", "rep-pw-1" + token)
    service = c.create_service(PARTNER, login.serverUrl)
    headers = {"SessionHeader": {"sessionId": login.sessionId}}
    found = service.query("SELECT Id FROM ActionCadenceStepTracker", _soapheaders=headers)
    assert found.body.result.size == 0
    (got,) = service.retrieve(
        "Id", "ActionCadenceStepTracker", [ids["steps"][0]], _soapheaders=headers
    ).body.result
    assert got is None or got.type is None
    window = service.getUpdated(
        "ActionCadenceStepTracker",
        start - timedelta(minutes=1),
        server.clock.now(),
        _soapheaders=headers,
    ).body.result
    assert window.ids == []
    admin = Partner(server)
    assert admin.call("query", "SELECT Id FROM ActionCadenceStepTracker").size == len(ids["steps"])


def test_calls_count_as_api_requests_and_the_limit_refuses_them(server: Server) -> None:
    p = Partner(server)
    used, _ = server.org.count_api_request()
    p.call("getUserInfo")
    assert server.org.count_api_request()[0] == used + 2  # the SOAP call counted once
    server.org.api_request_limit = used + 2
    fault = faulted(lambda: p.call("getUserInfo"))
    assert fault.code == "sf:REQUEST_LIMIT_EXCEEDED"


def test_limit_info_header_reports_api_requests_as_rest_does(server: Server) -> None:
    """Every call's reply carries LimitInfoHeader (API REQUESTS current/limit), from the same
    counter as REST's Sforce-Limit-Info; login's reply has none."""
    p = Partner(server)
    p.call("getUserInfo")
    (info,) = p.limit_info
    assert (info.type, info.limit) == ("API REQUESTS", server.org.daily_api_requests_max)
    rest = server.session().get(
        f"https://{server.instance}/services/data/v59.0/limits",
        headers={"Authorization": f"Bearer {p.login.sessionId}"},
    )
    assert rest.headers["Sforce-Limit-Info"] == f"api-usage={info.current + 1}/{info.limit}"
    p.call("query", "SELECT Id FROM Contact")
    assert p.limit_info[0].current == info.current + 2
    server.org.api_request_limit = 5_000
    p.call("getServerTimestamp")
    assert p.limit_info[0].limit == 5_000
    raw = _post(server, _envelope(p.login.sessionId, "<getServerTimestamp/>"))
    header = raw.content.split(b"<soapenv:Body>", 1)[0]
    assert re.search(
        rb"<soapenv:Header><LimitInfoHeader><limitInfo><current>\d+</current>"
        rb"<limit>5000</limit><type>API REQUESTS</type></limitInfo></LimitInfoHeader>"
        rb"</soapenv:Header>$",
        header,
    )


def test_an_oversized_chunked_body_is_refused_unread(server: Server) -> None:
    """No Content-Length: the body is read only up to the limit."""

    def chunks() -> Any:
        for _ in range(12):  # 12 MB offered, refused after 10
            yield b" " * 1_000_000

    _refused_unread(
        lambda: server.session().post(
            f"https://{server.instance}/services/Soap/u/59.0",
            data=chunks(),
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )
    )


def _refused_unread(post: Any) -> None:
    """413 EXCEEDED_MAX_SIZE_REQUEST as a SOAP client fault (or, should the connection end
    under a client still sending, a connection error: nothing was accepted either way)."""
    try:
        r = post()
    except requests.exceptions.ConnectionError:
        return
    assert r.status_code == 413 and b"EXCEEDED_MAX_SIZE_REQUEST" in r.content
    assert b"<faultcode>soapenv:Client</faultcode>" in r.content
