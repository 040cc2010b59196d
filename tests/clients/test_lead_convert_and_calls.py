"""Lead conversion and call results through unmodified clients on 127.0.0.1: zeep (partner and
enterprise ``convertLead``, loading the served WSDLs) and simple-salesforce (the REST
``POST /sobjects/Lead/{id}/convert`` route, CallDisposition / CallTemplate records), on both
databases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from zeep.exceptions import Fault

from opencadence.cadence import definition_file
from tests.integration.cadence.helpers import assign

from .conftest import Server
from .test_jsforce_soap import _unavailable
from .test_pubsub_node import install, node_clients_dir
from .test_soap_enterprise import Enterprise
from .test_soap_partner import Partner, values

V = "62.0"


def rest(server: Server) -> Salesforce:
    return Salesforce(
        username=server.admin,
        password=server.admin_password,
        security_token=server.admin_token,
        session=server.session(),
        version=V,
    )


def _lead(sf: Salesforce, last: str = "Lovelace") -> str:
    made = sf.Lead.create(
        {"FirstName": "Ada", "LastName": last, "Company": f"{last} Engines", "Email": "a@x.test"}
    )
    return str(made["id"])


def _enrol(sf: Salesforce, target: str) -> None:
    """An active one-call cadence, the target enrolled in it (through the REST API)."""
    folder = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    existing = sf.query("SELECT Id FROM ActionCadence WHERE Name = 'Calls'")["records"]
    if not existing:
        cad = sf.ActionCadence.create({"Name": "Calls", "FolderId": folder})["id"]
        root = sf.ActionCadenceStep.create(
            {"ActionCadenceId": cad, "Type": "Root", "StepName": "root", "StepTitle": "root"}
        )["id"]
        assert root
        sf.ActionCadenceStep.create(
            {
                "ActionCadenceId": cad,
                "Type": "MakeACall",
                "StepName": "call",
                "StepTitle": "call",
                "ParentStepName": "root",
            }
        )
        sf.ActionCadence.update(cad, {"State": "Active"})
    result = sf.restful(
        "actions/standard/assignTargetToSalesCadence",
        method="POST",
        json={"inputs": [{"salesCadenceNameOrId": "Calls", "targetId": target}]},
    )
    assert result[0]["isSuccess"], result


def _tracker(sf: Salesforce, target: str) -> dict[str, Any]:
    (row,) = sf.query(
        f"SELECT State, CompletionReason FROM ActionCadenceTracker WHERE TargetId = '{target}'"
    )["records"]
    return dict(row)


def test_rest_convert_route(server: Server) -> None:
    sf = rest(server)
    lead = _lead(sf)
    _enrol(sf, lead)
    done = sf.restful(
        f"sobjects/Lead/{lead}/convert",
        method="POST",
        json={"convertedStatus": "Closed - Converted", "opportunityName": "Big deal"},
    )
    assert done["success"] is True and done["errors"] == [] and done["leadId"] == lead
    assert done["accountId"].startswith("001") and done["contactId"].startswith("003")
    converted = sf.Lead.get(lead)
    assert converted["IsConverted"] is True and converted["Status"] == "Closed - Converted"
    assert converted["ConvertedContactId"] == done["contactId"]
    opp = sf.Opportunity.get(done["opportunityId"])
    assert opp["Name"] == "Big deal" and opp["AccountId"] == done["accountId"]
    assert _tracker(sf, lead) == {
        "attributes": _tracker(sf, lead)["attributes"],
        "State": "Complete",
        "CompletionReason": "LeadConverted",
    }
    # again: the lead is converted; a change to it is refused too
    with pytest.raises(SalesforceMalformedRequest) as again:
        sf.restful(
            f"sobjects/Lead/{lead}/convert",
            method="POST",
            json={"convertedStatus": "Closed - Converted"},
        )
    assert again.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    with pytest.raises(SalesforceMalformedRequest) as update:
        sf.Lead.update(lead, {"Title": "CEO"})
    assert update.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_rest_convert_errors(server: Server) -> None:
    sf = rest(server)
    lead = _lead(sf)
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.restful(f"sobjects/Lead/{lead}/convert", method="POST", json={"convertedStatus": "Open"})
    assert bad.value.content[0]["errorCode"] == "INVALID_STATUS"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.restful(f"sobjects/Lead/{lead}/convert", method="POST", json={"bogus": True})
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert sf.Lead.get(lead)["IsConverted"] is False
    statuses = sf.query("SELECT MasterLabel FROM LeadStatus WHERE IsConverted = true")
    assert [r["MasterLabel"] for r in statuses["records"]] == ["Closed - Converted"]


def test_partner_convert_lead(server: Server) -> None:
    sf = rest(server)
    ok, converted, bad = _lead(sf, "One"), _lead(sf, "Two"), _lead(sf, "Three")
    account = sf.Account.create({"Name": "Existing"})["id"]
    _enrol(sf, ok)
    p = Partner(server)
    first = p.call(
        "convertLead",
        [
            {
                "leadId": ok,
                "convertedStatus": "Closed - Converted",
                "accountId": account,
                "doNotCreateOpportunity": True,
            }
        ],
    )
    assert first[0].success is True and first[0].accountId == account
    assert first[0].opportunityId is None and first[0].contactId.startswith("003")
    results = p.call(
        "convertLead",
        [
            {"leadId": converted, "convertedStatus": "Closed - Converted"},
            {"leadId": bad, "convertedStatus": "Working - Contacted"},
            {"leadId": ok, "convertedStatus": "Closed - Converted"},
        ],
    )
    assert [r.success for r in results] == [True, False, False]
    assert results[0].opportunityId.startswith("006")
    assert results[1].errors[0].statusCode == "INVALID_STATUS"
    assert results[1].errors[0].fields == ["convertedStatus"]
    assert results[1].leadId == bad and results[1].accountId is None
    assert results[2].errors[0].statusCode == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert _tracker(sf, ok)["CompletionReason"] == "LeadConverted"
    (lead,) = p.call("retrieve", "IsConverted, ConvertedAccountId", "Lead", [ok])
    assert values(lead)["IsConverted"] == "true"
    assert values(lead)["ConvertedAccountId"] == account
    too_many = [{"leadId": bad, "convertedStatus": "Closed - Converted"}] * 101
    with pytest.raises(Fault) as fault:
        p.call("convertLead", too_many)
    assert fault.value.code == "sf:EXCEEDED_ID_LIMIT"
    assert sf.Lead.get(bad)["IsConverted"] is False


def test_enterprise_convert_lead(server: Server) -> None:
    sf = rest(server)
    lead = _lead(sf)
    e = Enterprise(server)
    (result,) = e.call(
        "convertLead",
        [
            e.client.get_type("{urn:enterprise.soap.sforce.com}LeadConvert")(
                leadId=lead, convertedStatus="Closed - Converted", opportunityName="Typed"
            )
        ],
    )
    assert result.success is True and result.leadId == lead
    assert sf.Opportunity.get(result.opportunityId)["Name"] == "Typed"


def test_call_results_and_scripts_through_rest(server: Server) -> None:
    sf = rest(server)
    results = sf.query(
        "SELECT Disposition, DispositionCategory.Category FROM CallDisposition ORDER BY Id"
    )["records"]
    assert [(r["Disposition"], r["DispositionCategory"]["Category"]) for r in results][0] == (
        "Meaningful Connect",
        "CallMeaningfulConnect",
    )
    assert sf.CallDisposition.describe()["createable"] is False
    assert sf.CallDispositionCategory.describe()["createable"] is False
    script = sf.CallTemplate.create({"Name": "Discovery", "HtmlBody": "<p>Ask</p>"})["id"]
    row = sf.CallTemplate.get(script)
    assert row["TotalCalls"] is None and row["TemplateType"] is None
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.CallTemplate.update(script, {"TotalCalls": 3})
    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


CONCURRENT = 12


def test_concurrent_calls_on_one_call_script_count_exactly(server: Server) -> None:
    """Logged calls on one call script from many threads at once: every call counted once
    (PostgreSQL runs them concurrently; the counter update is guarded and read again)."""
    store = server.org.store
    admin = server.org.accounts.find_user(server.admin)
    assert admin is not None
    with store.transaction(admin["Id"]) as tx:
        script = tx.insert("CallTemplate", {"Name": "Shared script"})
        contacts = [tx.insert("Contact", {"LastName": f"C{i}"}) for i in range(CONCURRENT)]
    data = {
        "cadence": {"Name": "Scripted calls"},
        "state": "Active",
        "steps": [
            {"StepName": "root", "Type": "Root", "StepTitle": "root"},
            {
                "StepName": "call",
                "Type": "MakeACall",
                "StepTitle": "call",
                "ParentStepName": "root",
                "TemplateId": script,
            },
        ],
    }
    cadence = definition_file.import_definition(store, data)
    for c in contacts:
        assign(server.org.actions, cadence, c, admin["Id"])
    token = server.org.accounts.open_session(admin["Id"])
    start = threading.Barrier(CONCURRENT)

    def one(contact: str) -> int:
        s = server.session()
        start.wait()
        r = s.post(
            f"https://{server.instance}/services/data/v{V}/sobjects/Task",
            json={
                "Subject": "Call",
                "WhoId": contact,
                "TaskSubtype": "Call",
                "Status": "Completed",
                "CallDisposition": "Meaningful Connect",
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        return r.status_code

    with ThreadPoolExecutor(CONCURRENT) as pool:
        statuses = list(pool.map(one, contacts))
    assert statuses == [201] * CONCURRENT
    row = store.get("CallTemplate", script) or {}
    assert (row["TotalCalls"], row["TotalCallsMeaningfulConnect"]) == (CONCURRENT, CONCURRENT)


def test_person_account_through_rest(server: Server) -> None:
    sf = rest(server)
    account = sf.Account.create(
        {"FirstName": "Pat", "LastName": "Person", "PersonEmail": "p@x.test"}
    )["id"]
    row = sf.Account.get(account)
    assert row["IsPersonAccount"] is True and row["Name"] == "Pat Person"
    contact = sf.Contact.get(row["PersonContactId"])
    assert contact["IsPersonAccount"] is True and contact["Email"] == "p@x.test"
    _enrol(sf, account)  # the 001 id, as the actions documentation allows
    (tracker,) = sf.query(
        f"SELECT TargetId, State FROM ActionCadenceTracker WHERE TargetId = '{contact['Id']}'"
    )["records"]
    assert tracker["State"] == "Running"
    found = sf.query("SELECT Id FROM Account WHERE IsPersonAccount = true")["records"]
    assert [r["Id"] for r in found] == [account]


JSFORCE_CONVERT = r"""
const jsforce = require('jsforce');
(async () => {
  const [url, user, password, lead] = process.argv.slice(1);
  const conn = new jsforce.Connection({ loginUrl: url, version: '59.0' });
  await conn.login(user, password);
  const result = await conn.soap.convertLead({ leadId: lead, convertedStatus: 'Closed - Converted',
                                                doNotCreateOpportunity: true });
  const again = await conn.soap.convertLead([{ leadId: lead, convertedStatus: 'Closed - Converted' }]);
  console.log(JSON.stringify({ result, again }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(1); });
"""


@pytest.fixture(scope="session")
def jsforce_folder() -> Path:
    """The shared npm clients folder (jsforce pinned in tests/clients/node/package.json)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed for the jsforce test")
    folder = node_clients_dir()
    install(folder)
    return folder


def test_jsforce_soap_convert_lead(server: Server, jsforce_folder: Path) -> None:
    """jsforce's ``conn.soap.convertLead`` (partner SOAP), unmodified."""
    sf = rest(server)
    lead = _lead(sf)
    done = subprocess.run(
        [
            "node",
            "-e",
            JSFORCE_CONVERT,
            f"https://{server.instance}",
            server.admin,
            server.admin_password + server.admin_token,
            lead,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=jsforce_folder,
        env={
            **os.environ,
            "NODE_EXTRA_CA_CERTS": str(server.cert),
            "NODE_PATH": str(jsforce_folder / "node_modules"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    result = out["result"]
    assert result["success"] is True and result["leadId"] == lead
    assert result["accountId"].startswith("001") and result["opportunityId"] is None
    (again,) = out["again"]
    assert again["success"] is False
    assert again["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert sf.Lead.get(lead)["ConvertedContactId"] == result["contactId"]
