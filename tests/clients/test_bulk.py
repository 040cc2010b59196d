"""Bulk API 2.0 and 1.0 through unmodified simple-salesforce (``sf.bulk2``, ``sf.bulk``) and
jsforce (``bulk2``) against a real server whose worker loop runs the jobs, on both databases;
a job survives a worker process killed mid-job."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import simple_salesforce.bulk
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError

from opencadence import errors, system
from opencadence.api import server as api_server
from opencadence.api import tls
from opencadence.bulk.runner import Runner as BulkRunner
from opencadence.clock import ManualClock
from opencadence.storage import records
from opencadence.storage.bulk import BulkTables

from .conftest import Server, free_port, serving
from .test_jsforce_soap import jsforce_dir

__all__ = ["jsforce_dir"]

#: How long the test server's worker loop sleeps when idle: long, since a job that becomes ready
#: wakes it (were the wake-up lost, every job here would wait this long).
POLL = 5.0
#: Seconds simple-salesforce's bulk2 sleeps before and between its polls.
WAIT = 0.2


@pytest.fixture
def bulk_server(
    store: records.Store,
    clock: ManualClock,
    session_clock: ManualClock,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Server]:
    """As conftest's ``server``, with the worker loop running in a thread (it runs the bulk
    jobs); ``@pytest.mark.no_worker`` leaves jobs to worker processes the test starts."""
    settings = system.Settings(clock=clock, session_clock=session_clock, upgrade=False)
    built = system.build(settings, engine=store.engine)
    org = built.org
    _, token = org.accounts.create_user("admin@oc.test", "s3cret!", admin=True)
    cert, key = tls.self_signed(tmp_path / "tls")
    port = free_port()
    config = api_server.config(
        api_server.app(built), host="127.0.0.1", port=port, tls_files=(cert, key), log_level="error"
    )
    stop = threading.Event()
    thread = None
    if request.node.get_closest_marker("no_worker") is None:
        assert built.worker is not None
        thread = threading.Thread(
            target=built.worker.loop,
            kwargs={"poll_seconds": POLL, "stop": stop.is_set, "sleep": built.worker.rest},
            daemon=True,
        )
        thread.start()
    try:
        with serving(config):
            running = Server(org, clock, port, cert, "admin@oc.test", "s3cret!", token)
            try:
                yield running
            finally:
                running.close_clients()
    finally:
        stop.set()
        if built.worker is not None:
            built.worker.wake.set()
        if thread is not None:
            thread.join(10)


def salesforce(server: Server) -> Salesforce:
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    token = server.org.accounts.open_session(user["Id"])
    return Salesforce(session_id=token, instance=server.instance, session=server.session())


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def contacts_csv(path: Path, n: int, *, missing_every: int = 0) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["FirstName", "LastName", "Email"])
        for i in range(n):
            last = "" if missing_every and i % missing_every == 0 else f"Bulk{i:05d}"
            w.writerow([f'Ada, "{i}"', last, f"bulk{i}@example.com"])
    return path


def test_bulk2_insert_query_update_delete_10000(bulk_server: Server, tmp_path: Path) -> None:
    sf = salesforce(bulk_server)
    n = 10_000
    [loaded] = sf.bulk2.Contact.insert(csv_file=str(contacts_csv(tmp_path / "c.csv", n)), wait=WAIT)
    assert loaded["numberRecordsProcessed"] == n and loaded["numberRecordsFailed"] == 0
    job_id = loaded["job_id"]
    ok = parse(sf.bulk2.Contact.get_successful_records(job_id))
    assert len(ok) == n and {r["sf__Created"] for r in ok} == {"true"}
    assert len({r["sf__Id"] for r in ok}) == n and all(r["sf__Id"].startswith("003") for r in ok)
    assert ok[7]["FirstName"] == 'Ada, "7"' and ok[7]["LastName"] == "Bulk00007"
    assert parse(sf.bulk2.Contact.get_failed_records(job_id)) == []
    info = requests_json(bulk_server, sf, f"jobs/ingest/{job_id}")
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Ingest"
    assert info["numberRecordsProcessed"] == n and info["object"] == "Contact"
    # every record left its change event, as a single-record create does
    events = bulk_server.org.store.read_events(entity="Contact", limit=n + 10)
    assert (
        sum(1 for e in events if e["payload"]["ChangeEventHeader"]["changeType"] == "CREATE") == n
    )

    pages = list(
        sf.bulk2.Contact.query(
            "SELECT Id, LastName, Email FROM Contact WHERE Email LIKE 'bulk%' ORDER BY LastName",
            max_records=3000,
            wait=WAIT,
        )
    )
    assert len(pages) == 4
    back = [r for page in pages for r in parse(page)]
    assert (
        len(back) == n
        and back[0]["LastName"] == "Bulk00000"
        and back[-1]["LastName"] == "Bulk09999"
    )
    assert {r["Id"] for r in back} == {r["sf__Id"] for r in ok}

    ids = [r["sf__Id"] for r in ok[:500]]
    [updated] = sf.bulk2.Contact.update(
        records=[{"Id": i, "Title": "Bulk-updated"} for i in ids], wait=WAIT
    )
    assert updated["numberRecordsProcessed"] == 500 and updated["numberRecordsFailed"] == 0
    titled = sf.query("SELECT COUNT() FROM Contact WHERE Title = 'Bulk-updated'")
    assert titled["totalSize"] == 500
    [deleted] = sf.bulk2.Contact.delete(records=[{"Id": i} for i in ids[:100]], wait=WAIT)
    assert deleted["numberRecordsProcessed"] == 100 and deleted["numberRecordsFailed"] == 0
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == n - 100
    again = sf.bulk2.Contact.delete(records=[{"Id": ids[0]}, {"Id": ids[200]}], wait=WAIT)
    [failed] = parse(sf.bulk2.Contact.get_failed_records(again[0]["job_id"]))
    assert failed["sf__Id"] == ids[0] and failed["sf__Error"].startswith("ENTITY_IS_DELETED:")
    everything = list(
        sf.bulk2.Contact.query_all("SELECT Id FROM Contact WHERE IsDeleted = true", wait=WAIT)
    )
    assert len(parse(everything[0])) == 101


def requests_json(server: Server, sf: Salesforce, path: str) -> Any:
    response = sf.session.get(
        f"https://{server.instance}/services/data/v{sf.sf_version}/{path}",
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_bulk2_failed_rows_carry_salesforce_errors(bulk_server: Server, tmp_path: Path) -> None:
    sf = salesforce(bulk_server)
    path = contacts_csv(tmp_path / "c.csv", 450, missing_every=10)
    [loaded] = sf.bulk2.Contact.insert(csv_file=str(path), wait=WAIT)
    assert loaded["numberRecordsProcessed"] == 450 and loaded["numberRecordsFailed"] == 45
    failed = parse(sf.bulk2.Contact.get_failed_records(loaded["job_id"]))
    assert len(failed) == 45
    assert failed[0]["sf__Error"] == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    )
    assert failed[0]["sf__Id"] == "" and failed[0]["Email"] == "bulk0@example.com"
    ok = parse(sf.bulk2.Contact.get_successful_records(loaded["job_id"]))
    assert len(ok) == 405
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 405
    # a header naming a field Contact does not have fails the job with Salesforce's message
    bad = tmp_path / "bad.csv"
    bad.write_text("LastName,Nope__c\nX,1\n")
    with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
        sf.bulk2.Contact.insert(csv_file=str(bad), wait=WAIT)


def test_bulk2_upsert_abort_list_and_errors(bulk_server: Server) -> None:
    sf = salesforce(bulk_server)
    [first] = sf.bulk2.Contact.upsert(
        records=[{"Email": "u1@x.io", "LastName": "One"}, {"Email": "u2@x.io", "LastName": "Two"}],
        external_id_field="Email",
        wait=WAIT,
    )
    assert first["numberRecordsProcessed"] == 2
    [second] = sf.bulk2.Contact.upsert(
        records=[{"Email": "u1@x.io", "LastName": "Uno"}, {"Email": "u3@x.io", "LastName": "Tres"}],
        external_id_field="Email",
        wait=WAIT,
    )
    created = {
        r["Email"]: r["sf__Created"]
        for r in parse(sf.bulk2.Contact.get_successful_records(second["job_id"]))
    }
    assert created == {"u1@x.io": "false", "u3@x.io": "true"}
    names = sf.query("SELECT LastName FROM Contact ORDER BY LastName")["records"]
    assert [r["LastName"] for r in names] == ["Tres", "Two", "Uno"]
    base = f"https://{bulk_server.instance}/services/data/v59.0/jobs"
    auth = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    s = sf.session
    made = s.post(f"{base}/ingest", json={"object": "Contact", "operation": "insert"}, headers=auth)
    assert made.status_code == 200 and made.json()["state"] == "Open"
    job = made.json()["id"]
    aborted = s.patch(f"{base}/ingest/{job}", json={"state": "Aborted"}, headers=auth)
    assert aborted.json()["state"] == "Aborted"
    again = s.patch(f"{base}/ingest/{job}", json={"state": "Aborted"}, headers=auth)
    assert again.status_code == 400 and again.json() == [
        {"errorCode": "INVALIDJOBSTATE", "message": "Aborting already Aborted Job not allowed"}
    ]
    listed = s.get(f"{base}/ingest", headers=auth).json()
    assert listed["done"] is True and job in {j["id"] for j in listed["records"]}
    assert s.delete(f"{base}/ingest/{job}", headers=auth).status_code == 204
    assert s.get(f"{base}/ingest/{job}", headers=auth).status_code == 404
    bad = s.post(f"{base}/query", json={"query": "SELECT Nope FROM Contact"}, headers=auth)
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"
    agg = s.post(f"{base}/query", json={"query": "SELECT COUNT() FROM Contact"}, headers=auth)
    assert agg.status_code == 400 and agg.json()[0]["errorCode"] == "INVALID_OPERATION"
    assert s.get(f"{base}/ingest").status_code == 401


def test_bulk2_query_parent_fields_and_locators(bulk_server: Server) -> None:
    sf = salesforce(bulk_server)
    account = sf.Account.create({"Name": "Acme"})["id"]
    for i in range(5):
        sf.Contact.create({"LastName": f"P{i}", "AccountId": account if i % 2 == 0 else None})
    auth = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    base = f"https://{bulk_server.instance}/services/data/v59.0/jobs/query"
    job = sf.session.post(
        base,
        json={
            "operation": "query",
            "query": "SELECT LastName, Account.Name, IsDeleted FROM Contact ORDER BY LastName",
        },
        headers=auth,
    ).json()
    assert job["state"] == "UploadComplete" and job["object"] == "Contact"
    deadline = time.monotonic() + 20
    while sf.session.get(f"{base}/{job['id']}", headers=auth).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page = sf.session.get(f"{base}/{job['id']}/results?maxRecords=2", headers=auth)
    assert page.headers["Sforce-NumberOfRecords"] == "2"
    assert page.text == (
        '"LastName","Account.Name","IsDeleted"\n"P0","Acme","false"\n"P1","","false"\n'
    )
    locator = page.headers["Sforce-Locator"]
    rest = sf.session.get(f"{base}/{job['id']}/results?locator={locator}", headers=auth)
    assert (
        rest.headers["Sforce-Locator"] == "null" and rest.headers["Sforce-NumberOfRecords"] == "3"
    )
    assert [r["LastName"] for r in parse(rest.text)] == ["P2", "P3", "P4"]
    wrong = sf.session.get(f"{base}/{job['id']}/results?locator=%%%", headers=auth)
    assert wrong.status_code == 400


def test_bulk1_json_jobs(bulk_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # simple-salesforce's Bulk 1.0 insert, update, upsert and delete sleep 5 s between status
    # checks (no argument changes it): its sleep is shortened, its requests are the same
    real_sleep = time.sleep
    monkeypatch.setattr(simple_salesforce.bulk, "sleep", lambda s: real_sleep(min(s, WAIT)))
    sf = salesforce(bulk_server)
    made = sf.bulk.Contact.insert(
        [{"LastName": f"V1-{i}", "Email": f"v1-{i}@x.io"} for i in range(30)] + [{"FirstName": "x"}]
    )
    assert len(made) == 31 and all(r["success"] and r["created"] for r in made[:30])
    assert made[30]["success"] is False
    assert made[30]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    ids = [r["id"] for r in made[:30]]
    updated = sf.bulk.Contact.update([{"Id": i, "Title": "V1"} for i in ids[:10]])
    assert [r["success"] for r in updated] == [True] * 10
    upserted = sf.bulk.Contact.upsert(
        [{"Email": "v1-0@x.io", "LastName": "Zero"}, {"Email": "new@x.io", "LastName": "New"}],
        "Email",
    )
    assert [(r["success"], r["created"]) for r in upserted] == [(True, False), (True, True)]
    rows = sf.bulk.Contact.query(
        "SELECT Id, LastName, Title, CreatedDate FROM Contact WHERE Title = 'V1'", wait=WAIT
    )
    assert len(rows) == 10 and {r["attributes"]["type"] for r in rows} == {"Contact"}
    assert isinstance(rows[0]["CreatedDate"], int)  # Bulk 1.0 JSON: epoch milliseconds
    deleted = sf.bulk.Contact.delete([{"Id": i} for i in ids[20:25]])
    assert [r["success"] for r in deleted] == [True] * 5
    every = sf.bulk.Contact.query_all("SELECT Id FROM Contact WHERE IsDeleted = true", wait=WAIT)
    assert {r["Id"] for r in every} == set(ids[20:25])
    hard = sf.bulk.Contact.hard_delete([{"Id": i} for i in ids[25:]])
    assert [r["success"] for r in hard] == [True] * 5
    gone = sf.bulk.Contact.query_all(
        "SELECT Id FROM Contact WHERE Id IN ('" + "','".join(ids[25:]) + "')", wait=WAIT
    )
    assert gone == []
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 31 - 10


JSFORCE = r"""
const jsforce = require('jsforce');
(async () => {
  const [url, token] = process.argv.slice(1);
  const conn = new jsforce.Connection({ instanceUrl: url, accessToken: token, version: '59.0' });
  conn.bulk2.pollInterval = 100;
  const rows = ['LastName,Email'];
  for (let i = 0; i < 300; i++) rows.push(`Js${i},js${i}@x.io`);
  rows.push(',nobody@x.io');
  const res = await conn.bulk2.loadAndWaitForResults({
    object: 'Contact', operation: 'insert', input: rows.join('\n') + '\n',
    pollInterval: 100, pollTimeout: 60000,
  });
  const out = {
    ok: res.successfulResults.length,
    failed: res.failedResults.map((r) => r.sf__Error),
    unprocessed: res.unprocessedRecords.length,
  };
  const got = await conn.bulk2.query("SELECT Id, LastName FROM Contact WHERE Email LIKE 'js%'",
                                     { pollInterval: 100, pollTimeout: 60000 });
  const names = [];
  for await (const r of got) names.push(r.LastName);
  out.queried = names.length;
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.stack || e) })); process.exit(1); });
"""


def test_jsforce_bulk2_load_and_query(bulk_server: Server, jsforce_dir: Path) -> None:
    sf = salesforce(bulk_server)
    done = subprocess.run(
        ["node", "-e", JSFORCE, f"https://{bulk_server.instance}", sf.session_id],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=jsforce_dir,
        env={
            **os.environ,
            "NODE_EXTRA_CA_CERTS": str(bulk_server.cert),
            "NODE_PATH": str(jsforce_dir / "node_modules"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "ok": 300,
        "failed": ["REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"],
        "unprocessed": 0,
        "queried": 300,
    }


def _worker(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "opencadence", "worker", "--database", url, "--poll", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.no_worker
def test_job_survives_a_worker_killed_mid_job(
    bulk_server: Server, db_url: str, tmp_path: Path
) -> None:
    """Two worker processes share a 20,000-row job; one is SIGKILLed mid-job (mid-chunk, most
    likely) and replaced: every row is written exactly once."""
    sf = salesforce(bulk_server)
    n = 12_000  # six chunks: two written before the kill, the rest by the survivor and new one
    base = f"https://{bulk_server.instance}/services/data/v59.0/jobs/ingest"
    auth = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    s = sf.session
    job = s.post(base, json={"object": "Contact", "operation": "insert"}, headers=auth).json()["id"]
    data = contacts_csv(tmp_path / "c.csv", n).read_bytes()
    put = s.put(f"{base}/{job}/batches", data=data, headers={**auth, "Content-Type": "text/csv"})
    assert put.status_code == 201, put.text
    s.patch(f"{base}/{job}", json={"state": "UploadComplete"}, headers=auth)
    workers = [_worker(db_url), _worker(db_url)]
    try:
        # generous: on a loaded 2-core machine two workers and the database share the cores
        deadline = time.monotonic() + 300
        while s.get(f"{base}/{job}", headers=auth).json()["numberRecordsProcessed"] < 4000:
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        workers.append(_worker(db_url))
        while (info := s.get(f"{base}/{job}", headers=auth).json())["state"] != "JobComplete":
            assert time.monotonic() < deadline, json.dumps(info)
            time.sleep(0.1)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                try:
                    w.wait(10)
                except subprocess.TimeoutExpired:
                    w.kill()
    assert info["numberRecordsProcessed"] == n and info["numberRecordsFailed"] == 0
    names = sf.query_all("SELECT LastName FROM Contact")["records"]
    assert len(names) == n and len({r["LastName"] for r in names}) == n
    ok = parse(s.get(f"{base}/{job}/successfulResults", headers=auth).text)
    assert len(ok) == n and len({r["sf__Id"] for r in ok}) == n


def test_bulk2_as_a_rep_is_checked_as_single_record_writes(bulk_server: Server) -> None:
    admin = salesforce(bulk_server)
    theirs = admin.Contact.create({"LastName": "AdminOwned"})["id"]
    accounts = bulk_server.org.accounts
    rep_id, _ = accounts.create_user("rep@oc.test", "rep-pass-1")
    rep = Salesforce(
        session_id=accounts.open_session(rep_id),
        instance=bulk_server.instance,
        session=bulk_server.session(),
    )
    mine = rep.Contact.create({"LastName": "RepOwned"})["id"]
    [job] = rep.bulk2.Contact.update(
        records=[{"Id": mine, "Title": "Rep"}, {"Id": theirs, "Title": "Rep"}], wait=WAIT
    )
    assert job["numberRecordsProcessed"] == 2 and job["numberRecordsFailed"] == 1
    [failed] = parse(rep.bulk2.Contact.get_failed_records(job["job_id"]))
    assert failed["sf__Id"] == theirs
    assert failed["sf__Error"] == f"NOT_FOUND:Provided id does not exist: {theirs}:--"
    # the Sales Engagement Cadence Creator permission is needed for cadences, in bulk too
    [cadences] = rep.bulk2.ActionCadence.insert(records=[{"Name": "Mine"}], wait=WAIT)
    [refused] = parse(rep.bulk2.ActionCadence.get_failed_records(cadences["job_id"]))
    assert refused["sf__Error"].startswith("INSUFFICIENT_ACCESS_OR_READONLY:")
    [page] = list(rep.bulk2.Contact.query("SELECT LastName FROM Contact", wait=WAIT))
    assert [r["LastName"] for r in parse(page)] == ["RepOwned"]
    # a job is its creator's (and administrators'): to another user it does not exist
    other = requests_session_get(bulk_server, rep, f"jobs/ingest/{job['job_id']}")
    assert other == 200
    with pytest.raises(Exception, match="404|NOT_FOUND|does not exist"):
        admin_job = admin.bulk2.Contact.insert(records=[{"LastName": "A"}], wait=WAIT)[0]
        rep.bulk2.Contact.get_successful_records(admin_job["job_id"])


def requests_session_get(server: Server, sf: Salesforce, path: str) -> int:
    response = sf.session.get(
        f"https://{server.instance}/services/data/v{sf.sf_version}/{path}",
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    return int(response.status_code)


def test_bulk2_delimiters_line_endings_and_unprocessed_records(bulk_server: Server) -> None:
    sf = salesforce(bulk_server)
    s = sf.session
    base = f"https://{bulk_server.instance}/services/data/v59.0/jobs"
    auth = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    job = s.post(
        f"{base}/ingest",
        json={
            "object": "Contact",
            "operation": "insert",
            "columnDelimiter": "PIPE",
            "lineEnding": "CRLF",
        },
        headers=auth,
    ).json()
    assert (job["columnDelimiter"], job["lineEnding"]) == ("PIPE", "CRLF")
    body = b'LastName|Title\r\n"Pipe, One"|#N/A\r\nTwo|"multi\r\nline"\r\n'
    put = s.put(
        f"{base}/ingest/{job['id']}/batches",
        data=body,
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert put.status_code == 201
    s.patch(f"{base}/ingest/{job['id']}", json={"state": "UploadComplete"}, headers=auth)
    deadline = time.monotonic() + 20
    while s.get(f"{base}/ingest/{job['id']}", headers=auth).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    titles = sf.query("SELECT LastName, Title FROM Contact ORDER BY LastName")["records"]
    assert [(r["LastName"], r["Title"]) for r in titles] == [
        ("Pipe, One", None),
        ("Two", "multi\r\nline"),
    ]
    query = s.post(
        f"{base}/query",
        json={
            "query": "SELECT LastName, Title FROM Contact ORDER BY LastName",
            "columnDelimiter": "SEMICOLON",
            "lineEnding": "CRLF",
        },
        headers=auth,
    ).json()
    while s.get(f"{base}/query/{query['id']}", headers=auth).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page = s.get(f"{base}/query/{query['id']}/results?maxRecords=1", headers=auth)
    assert page.text == '"LastName";"Title"\r\n"Pipe, One";""\r\n'
    second = s.get(
        f"{base}/query/{query['id']}/results?locator={page.headers['Sforce-Locator']}",
        headers=auth,
    )
    assert second.text == '"LastName";"Title"\r\n"Two";"multi\r\nline"\r\n'
    # an aborted job's rows are its unprocessed records
    other = s.post(
        f"{base}/ingest", json={"object": "Contact", "operation": "insert"}, headers=auth
    )
    other_id = other.json()["id"]
    s.put(
        f"{base}/ingest/{other_id}/batches",
        data=b"LastName\nNever\n",
        headers={**auth, "Content-Type": "text/csv"},
    )
    s.patch(f"{base}/ingest/{other_id}", json={"state": "Aborted"}, headers=auth)
    left = s.get(f"{base}/ingest/{other_id}/unprocessedrecords", headers=auth)
    assert left.text == 'LastName\n"Never"\n'


def test_ended_jobs_are_deleted_after_7_days(bulk_server: Server) -> None:
    sf = salesforce(bulk_server)
    [done] = sf.bulk2.Contact.insert(records=[{"LastName": "Kept"}], wait=WAIT)
    base = f"https://{bulk_server.instance}/services/data/v59.0/jobs/ingest/{done['job_id']}"
    auth = {"Authorization": f"Bearer {sf.session_id}"}
    bulk_server.clock.advance(days=6)
    assert sf.session.get(base, headers=auth).status_code == 200
    bulk_server.clock.advance(days=2)
    runner = BulkRunner(bulk_server.org)
    assert runner._prune(force=True) == 1
    assert sf.session.get(base, headers=auth).status_code == 404
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1  # the records stay


def test_a_chunk_that_cannot_be_written_fails_its_job_not_the_worker(
    bulk_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf = salesforce(bulk_server)

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bulk_server.org, "create", broken)
    with pytest.raises(SalesforceOperationError, match="UNKNOWN_EXCEPTION: RuntimeError: a bug"):
        sf.bulk2.Contact.insert(records=[{"LastName": "Boom"}], wait=WAIT)
    monkeypatch.undo()
    [fine] = sf.bulk2.Contact.insert(records=[{"LastName": "Fine"}], wait=WAIT)
    assert fine["numberRecordsProcessed"] == 1  # the worker loop carried on


def test_a_lock_refused_mid_chunk_retries_the_chunk_instead_of_failing_the_job(
    bulk_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers writing one object's rows wait on each other's locks (the live-row count,
    a chunk's job row); one that waits past the lock wait (UNABLE_TO_LOCK_ROW) rolls its chunk
    back and tries it again later: the job completes, every row written once (it used to fail
    the whole job)."""
    sf = salesforce(bulk_server)
    count_into_job = BulkTables.count_into_job
    refused: list[int] = []

    def contended(self: BulkTables, *args: Any, **kwargs: Any) -> Any:
        if not refused:  # the first chunk's transaction: refused after its records are written
            refused.append(1)
            raise errors.UnableToLockRow()
        return count_into_job(self, *args, **kwargs)

    monkeypatch.setattr(BulkTables, "count_into_job", contended)
    [done] = sf.bulk2.Contact.insert(records=[{"LastName": "Retried"}], wait=WAIT)
    assert refused == [1]
    assert done["numberRecordsProcessed"] == 1 and done["numberRecordsFailed"] == 0
    assert sf.query("SELECT LastName FROM Contact")["records"][0]["LastName"] == "Retried"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1
