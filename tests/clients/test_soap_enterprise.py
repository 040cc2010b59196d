"""Unmodified zeep, loading the served enterprise WSDL (one type per object), on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import zeep
from zeep.exceptions import Fault
from zeep.transports import Transport

from opencadence.storage import migrate

from .conftest import Server
from .test_soap_partner import seed, unwrap

BINDING = "{urn:enterprise.soap.sforce.com}SoapBinding"
ENS = "urn:sobject.enterprise.soap.sforce.com"


class Enterprise:
    def __init__(self, server: Server, version: str = "59.0") -> None:
        transport = Transport(session=server.session())
        self.client = zeep.Client(
            f"https://{server.instance}/services/wsdl/enterprise", transport=transport
        )
        url = f"https://{server.instance}/services/Soap/c/{version}"
        self.login = self.client.create_service(BINDING, url).login(
            server.admin, server.admin_password + server.admin_token
        )
        self.service = self.client.create_service(BINDING, self.login.serverUrl)
        self.headers: dict[str, Any] = {"SessionHeader": {"sessionId": self.login.sessionId}}

    def call(self, operation: str, *args: Any, **headers: Any) -> Any:
        """The call's result; its LimitInfoHeader is kept in ``limit_info``."""
        return unwrap(
            self, self.service, operation, *args, _soapheaders={**self.headers, **headers}
        )

    def new(self, kind: str, **fields: Any) -> Any:
        return self.client.get_type(f"{{{ENS}}}{kind}")(**fields)


def test_login_points_at_the_enterprise_endpoint(server: Server) -> None:
    e = Enterprise(server, "60.0")
    base = f"https://{server.instance}/services/Soap"
    assert e.login.serverUrl == f"{base}/c/60.0/{migrate.ORG_ID[:15]}"
    assert e.login.metadataServerUrl == f"{base}/m/60.0/{migrate.ORG_ID[:15]}"
    assert e.login.userInfo.userName == server.admin
    assert e.call("getUserInfo").organizationId == migrate.ORG_ID
    bad = zeep.Client(
        f"https://{server.instance}/services/wsdl/enterprise",
        transport=Transport(session=server.session()),
    ).create_service(BINDING, f"https://{server.instance}/services/Soap/c/59.0")
    with pytest.raises(Fault) as info:
        bad.login(server.admin, "wrong")
    assert info.value.code == "sf:INVALID_LOGIN"


def test_typed_query_with_parents_children_and_types(server: Server) -> None:
    ids = seed(server)
    e = Enterprise(server)
    result = e.call(
        "query",
        "SELECT Id, LastName, Account.Name, (SELECT Id, State FROM ActionCadenceTrackers) "
        "FROM Contact ORDER BY LastName",
    )
    assert result.size == 2 and result.done is True
    ann, bob = result.records
    assert (ann.Id, ann.LastName, ann.Account.Name) == (ids["ann"], "Able", "Acme")
    assert ann.ActionCadenceTrackers.size == 1
    assert ann.ActionCadenceTrackers.records[0].State == "Running"
    assert bob.ActionCadenceTrackers is None or bob.ActionCadenceTrackers.records == []  # nil
    steps = e.call(
        "query",
        "SELECT StepTitle, DueDateTime, IsActionTaken, ActionCadence.Name "
        "FROM ActionCadenceStepTracker ORDER BY StepTitle",
        QueryOptions={"batchSize": 200},
    )
    first = steps.records[0]
    assert first.StepTitle == "Call 000" and first.IsActionTaken is False  # typed: a bool
    assert first.DueDateTime == server.clock.now().replace(microsecond=0) + timedelta(days=1)
    assert first.ActionCadence.Name == "Outbound"
    counted = e.call(
        "query", "SELECT State, COUNT(Id) n FROM ActionCadenceStepTracker GROUP BY State"
    )
    assert counted.size == 1


def test_typed_writes_change_events_and_refusals(server: Server) -> None:
    ids = seed(server)
    e = Enterprise(server)
    after = max([x["event"]["replayId"] for x in server.org.store.read_events()] or [0])
    (made,) = e.call("create", [e.new("Contact", LastName="Typed", FirstName="Ty", Title="VP")])
    assert made.success is True
    (changed,) = e.call("update", [e.new("Contact", Id=made.id, Title="CEO")])
    assert changed.success is True
    (got,) = e.call("retrieve", "Id, Name, Title", "Contact", [made.id])
    assert (got.Id, got.Name, got.Title) == (made.id, "Ty Typed", "CEO")
    (cleared,) = e.call("update", [e.new("Contact", Id=made.id, fieldsToNull=["Title"])])
    assert cleared.success is True and server.org.store.get("Contact", made.id)["Title"] is None
    assert e.call("delete", [made.id])[0].success is True
    events = server.org.store.read_events(after=after, entity="Contact")
    assert [x["payload"]["ChangeEventHeader"]["changeType"] for x in events] == [
        "CREATE",
        "UPDATE",
        "UPDATE",
        "DELETE",
    ]
    (refused,) = e.call("create", [e.new("ActionCadenceStepTracker", State="Active")])
    assert refused.success is False
    assert refused.errors[0].statusCode == "INVALID_TYPE_FOR_OPERATION"
    (described,) = e.call("describeSObjects", ["ActionCadenceStepTracker"])
    assert described.name == "ActionCadenceStepTracker" and described.createable is False
    with pytest.raises(Fault) as info:
        e.call("query", "SELECT Id FROM Nowhere")
    assert info.value.code == "sf:INVALID_TYPE"
    (detail,) = list(info.value.detail)
    assert detail.tag == "{urn:fault.enterprise.soap.sforce.com}InvalidSObjectFault"
    assert ids["steps"]


def test_enterprise_wsdl_has_one_type_per_object(server: Server) -> None:
    s = server.session()
    for path in ("/soap/wsdl.jsp", "/services/wsdl/enterprise"):
        r = s.get(f"https://{server.instance}{path}")
        assert r.status_code == 200
        assert b'name="ActionCadenceStepTracker"' in r.content
        assert b"urn:enterprise.soap.sforce.com" in r.content
    e = Enterprise(server)
    tracker = e.client.get_type(f"{{{ENS}}}ActionCadenceStepTracker")
    names = [name for name, _ in tracker.elements]
    assert {"StepType", "State", "ActionCadence", "TargetId", "Target"} <= set(names)
    assert names[:2] == ["fieldsToNull", "Id"]


def test_limit_info_header_counts_typed_calls(server: Server) -> None:
    """The enterprise WSDL declares LimitInfoHeader too; zeep reads it from every reply."""
    e = Enterprise(server)
    e.call("getUserInfo")
    (info,) = e.limit_info
    assert info.type == "API REQUESTS"
    assert info.limit == server.org.daily_api_requests_max
    e.call("getServerTimestamp")
    assert e.limit_info[0].current == info.current + 1


def test_typed_relationships_set_parents_by_external_id(server: Server) -> None:
    """The typed relationship element names the parent by an idLookup field: Owner (a User)
    by Username, Who (polymorphic, so the xsi:type zeep writes names Contact) by Email."""
    e = Enterprise(server)
    admin = server.org.accounts.find_user(server.admin)
    assert admin is not None
    owner = e.new("User", Username=server.admin)
    (ann,) = e.call("create", [e.new("Contact", LastName="Ann", Email="ann@x.io", Owner=owner)])
    assert ann.success is True, ann.errors
    assert server.org.store.get("Contact", ann.id)["OwnerId"] == admin["Id"]
    (task,) = e.call(
        "create", [e.new("Task", Subject="Call", Who=e.new("Contact", Email="ann@x.io"))]
    )
    assert task.success is True, task.errors
    assert server.org.store.get("Task", task.id)["WhoId"] == ann.id
    (up,) = e.call(
        "upsert", "Email", [e.new("Contact", LastName="Ann B", Email="ann@x.io", Owner=owner)]
    )
    assert (up.success, up.created, up.id) == (True, False, ann.id)
    (missing,) = e.call(
        "create", [e.new("Task", Subject="x", Who=e.new("Lead", Email="nobody@x.io"))]
    )
    assert missing.success is False
    assert (missing.errors[0].statusCode, missing.errors[0].message) == (
        "INVALID_FIELD",
        "Foreign key external ID: nobody@x.io not found for field Email in entity Lead",
    )
