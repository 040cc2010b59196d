"""SOSL through unmodified clients against a real server on 127.0.0.1, on both databases:
simple-salesforce ``search()``/``quick_search()``, REST ``/parameterizedSearch`` (GET and
POST), jsforce ``search()`` (node), and zeep's SOAP ``search`` on the partner and enterprise
WSDLs; a rep's search sees only the rep's records."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zeep
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from zeep.exceptions import Fault

from .conftest import Server
from .test_jsforce_soap import jsforce_dir
from .test_soap_enterprise import Enterprise
from .test_soap_partner import Partner, values

__all__ = ["jsforce_dir"]  # the fixture, imported for this module's tests


def _people(server: Server) -> dict[str, str]:
    org = server.org
    rep_id, _ = org.accounts.create_user("rep@search.test", "pw-rep-1")
    with org.store.transaction() as tx:
        return {
            "rep": rep_id,
            "ada": tx.insert(
                "Contact",
                {
                    "FirstName": "Ada",
                    "LastName": "Lovelace",
                    "Email": "ada@engine.org",
                    "Phone": "(020) 7946 0018",
                    "OwnerId": rep_id,
                },
            ),
            "charles": tx.insert(
                "Contact",
                {"FirstName": "Charles", "LastName": "Babbage", "Email": "charles@engine.org"},
            ),
            "lead": tx.insert(
                "Lead", {"FirstName": "Augusta", "LastName": "Lovelace", "Company": "Engine Ltd"}
            ),
        }


def _sf(server: Server, user_id: str | None = None) -> Salesforce:
    if user_id is None:
        user = server.org.accounts.find_user(server.admin)
        assert user is not None
        user_id = user["Id"]
    token = server.org.accounts.open_session(user_id)
    return Salesforce(session_id=token, instance=server.instance, session=server.session())


def _ids(result: dict[str, Any]) -> list[str]:
    return [r["Id"] for r in result["searchRecords"]]


def test_simple_salesforce_search_and_quick_search(server: Server) -> None:
    ids = _people(server)
    sf = _sf(server)
    found = sf.search(
        "FIND {lovelace} IN NAME FIELDS RETURNING Contact(Id, Name, Email), Lead(Id, Company)"
    )
    assert found["searchRecords"][0] == {
        "attributes": {
            "type": "Contact",
            "url": f"/services/data/v{sf.sf_version}/sobjects/Contact/{ids['ada']}",
        },
        "Id": ids["ada"],
        "Name": "Ada Lovelace",
        "Email": "ada@engine.org",
    }
    assert found["searchRecords"][1]["Company"] == "Engine Ltd"
    quick = sf.quick_search("engine")
    assert {r["attributes"]["type"] for r in quick["searchRecords"]} == {"Contact", "Lead"}
    assert set(_ids(quick)) == {ids["ada"], ids["charles"], ids["lead"]}
    assert _ids(sf.quick_search("02079460018")) == [ids["ada"]]  # phone digits run together
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.search("FIND lovelace")
    assert bad.value.content[0]["errorCode"] == "MALFORMED_SEARCH"
    with pytest.raises(SalesforceMalformedRequest) as short:
        sf.quick_search("a")
    assert short.value.content[0]["errorCode"] == "INVALID_SEARCH"
    assert short.value.content[0]["message"] == "search term must be longer than one character: a"
    # the discovery resource lists both search resources
    listed = sf.restful("")
    assert listed["search"].endswith("/search") and "parameterizedSearch" in listed


def test_a_rep_finds_only_their_records(server: Server) -> None:
    ids = _people(server)
    rep = _sf(server, ids["rep"])
    assert _ids(rep.search("FIND {engine} RETURNING Contact(Id), Lead(Id)")) == [ids["ada"]]
    # an admin sees all three
    assert len(_ids(_sf(server).search("FIND {engine} RETURNING Contact, Lead"))) == 3


def test_parameterized_search_get_and_post(server: Server) -> None:
    ids = _people(server)
    sf = _sf(server)
    got = sf.restful(
        "parameterizedSearch",
        params={"q": "lovelace", "sobject": "Contact", "Contact.fields": "Id,Email", "in": "NAME"},
    )
    assert [(r["Id"], r["Email"]) for r in got["searchRecords"]] == [(ids["ada"], "ada@engine.org")]
    posted = sf.restful(
        "parameterizedSearch",
        method="POST",
        data=json.dumps(
            {
                "q": "engine",
                "fields": ["Id", "Name"],
                "sobjects": [
                    {"name": "Contact", "orderBy": "LastName", "limit": 1},
                    {"name": "Lead", "fields": ["Id", "Company"]},
                ],
                "overallLimit": 5,
            }
        ),
    )
    recs = posted["searchRecords"]
    assert [r["attributes"]["type"] for r in recs] == ["Contact", "Lead"]
    assert recs[0]["Name"] == "Charles Babbage" and recs[1]["Company"] == "Engine Ltd"
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.restful("parameterizedSearch", params={"sobject": "Contact"})
    assert bad.value.content[0]["errorCode"] == "MALFORMED_SEARCH"


SCRIPT = r"""
const jsforce = require('jsforce');
(async () => {
  const [url, token] = process.argv.slice(1);
  const conn = new jsforce.Connection({ instanceUrl: url, accessToken: token, version: '59.0' });
  const res = await conn.search('FIND {lovel*} IN NAME FIELDS RETURNING Contact(Id, Name), Lead(Id)');
  let code = null;
  try { await conn.search('FIND {x}'); } catch (e) { code = e.errorCode || e.name; }
  const records = res.searchRecords.map((r) => [r.attributes.type, r.Id, r.Name || null]);
  console.log(JSON.stringify({ records, code }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(1); });
"""


def test_jsforce_search(server: Server, jsforce_dir: Path) -> None:
    ids = _people(server)
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    token = server.org.accounts.open_session(user["Id"])
    done = subprocess.run(
        ["node", "-e", SCRIPT, f"https://{server.instance}", token],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=jsforce_dir,
        env={
            **os.environ,
            "NODE_EXTRA_CA_CERTS": str(server.cert),
            "NODE_PATH": str(jsforce_dir / "node_modules"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["records"] == [
        ["Contact", ids["ada"], "Ada Lovelace"],
        ["Lead", ids["lead"], None],
    ]
    assert out["code"] == "INVALID_SEARCH"


def test_zeep_partner_search(server: Server) -> None:
    ids = _people(server)
    p = Partner(server)
    result = p.call("search", "FIND {lovelace} RETURNING Contact(Id, Email), Lead(Company)")
    records = [r.record for r in result.searchRecords]
    assert [r.type for r in records] == ["Contact", "Lead"]
    assert records[0].Id == ids["ada"]
    assert values(records[0])["Email"] == "ada@engine.org"
    assert values(records[1])["Company"] == "Engine Ltd"
    assert result.queryId is None or isinstance(result.queryId, str)
    empty = p.call("search", "FIND {nobody} RETURNING Contact")
    assert not empty.searchRecords
    with pytest.raises(Fault) as bad:
        p.call("search", "FIND {lovelace} RETURNING Contact(")
    assert bad.value.code == "sf:MALFORMED_SEARCH"
    with pytest.raises(Fault) as short:
        p.call("search", "FIND {a}")
    assert short.value.code == "sf:INVALID_SEARCH"


def test_zeep_enterprise_search(server: Server) -> None:
    ids = _people(server)
    e = Enterprise(server)
    result = e.call("search", "FIND {engine} IN EMAIL FIELDS RETURNING Contact(Id, LastName)")
    records = [r.record for r in result.searchRecords]
    assert {r.Id for r in records} == {ids["ada"], ids["charles"]}
    assert {r.LastName for r in records} == {"Lovelace", "Babbage"}
    assert all(isinstance(r, zeep.xsd.CompoundValue) for r in records)
