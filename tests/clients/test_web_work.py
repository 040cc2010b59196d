"""The web app's My Work actions, live updates and targets, in real Chromium (Debian's, driven
by Playwright) against a real TLS server on 127.0.0.1, on both databases: Send Email through a
real aiosmtpd relay with merge fields rendered, Pause / Resume / Remove from Cadence, filters,
keyset paging, the open page updating when the manual clock moves, Add to Cadence of three
contacts from the Contacts list, the target page, and a rep refused another rep's target."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opencadence import demo, system
from opencadence.api import server as api_server
from opencadence.api import tls
from opencadence.cadence import definition_file
from opencadence.clock import ManualClock
from opencadence.email import templates
from opencadence.storage import records
from tests.clients.conftest import Server, free_port, serving
from tests.clients.test_email_activity import relay_server  # noqa: F401 (fixture)
from tests.clients.test_web_app import (  # noqa: F401 (fixtures)
    MANAGER,
    MANAGER_PASSWORD,
    OTHER,
    OTHER_PASSWORD,
    REP,
    REP_PASSWORD,
    base,
    browser,
    context,
    log_in,
    open_steps,
    org_server,
    pytestmark,
    step_rows,
)
from tests.integration.email.conftest import Relay, relay  # noqa: F401 (fixture)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"


def shot(page: Any, name: str, request: pytest.FixtureRequest) -> None:
    """A full-page screenshot kept as an artifact (artifacts/web/, one per backend)."""
    backend = "pg" if "postgres" in request.node.name else "sqlite"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def _query(srv: Server, soql: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = srv.org.queries.query(soql)["records"]
    return records


def _email_cadence(srv: Server, target_name: str = "Nia Noor", html: bool = False) -> str:
    """A cadence whose first step is a manual email with a merge-field template, and a new
    contact of Rita's enrolled in it (assigned to Rita); returns the contact's Id."""
    org = srv.org
    admin = org.accounts.find_user("admin@demo.opencadence.dev")
    rita = org.accounts.find_user(REP)
    assert admin is not None and rita is not None
    record = {
        "Name": "Web: personal note",
        "DeveloperName": "Web_personal_note",
        "TemplateType": "text",
        "FolderId": definition_file.ORG_FOLDER,
        "IsActive": True,
        "Subject": "A note for {!Contact.FirstName}",
        "Body": "Hi {!Contact.FirstName},\n\nthanks for your time. {!User.FirstName}",
    }
    if html:
        del record["Body"]
        record["TemplateType"] = "custom"
        record["HtmlValue"] = (
            "<html><body><p>Hi {!Contact.FirstName},</p>"
            '<p>see <a href="https://noor.example/offer">the offer</a>. {!User.FirstName}</p>'
            "</body></html>"
        )
    templates.validate(record, org.registry)
    first, last = target_name.split()
    with org.store.transaction(str(admin["Id"])) as tx:
        template = tx.insert("EmailTemplate", record)
        contact = tx.insert(
            "Contact",
            {
                "FirstName": first,
                "LastName": last,
                "Email": f"{first.lower()}@noor.example",
                "OwnerId": rita["Id"],
            },
        )
    definition = {
        "cadence": {"Name": "Web: email first"},
        "state": "Active",
        "steps": [
            {"StepName": "start", "Type": "Root"},
            {
                "StepName": "note",
                "StepTitle": "Personal note",
                "Type": "SendAnEmail",
                "ParentStepName": "start",
                "TemplateId": template,
                "ScheduledDaysUntilDue": 1,
            },
            {
                "StepName": "call",
                "StepTitle": "Follow-up call",
                "Type": "MakeACall",
                "ParentStepName": "note",
            },
        ],
    }
    definition_file.import_definition(org.store, definition, str(admin["Id"]))
    (result,) = org.actions.invoke(
        "assignTargetToSalesCadence",
        [{"salesCadenceNameOrId": "Web: email first", "targetId": contact, "userId": rita["Id"]}],
        str(admin["Id"]),
    )
    assert result["isSuccess"], result
    return contact


@pytest.fixture
def tracked_server(
    store: records.Store,
    clock: ManualClock,
    session_clock: ManualClock,
    tmp_path: Path,
    relay: Relay,  # noqa: F811
) -> Iterator[Server]:
    """The demo org on `serve --smtp-relay ... --public-url https://127.0.0.1:PORT`: emails
    go through a real relay with open/click tracking answered by this server."""
    port = free_port()
    settings = system.Settings(
        clock=clock,
        session_clock=session_clock,
        upgrade=False,
        tracking=True,
        relay=system.SmtpRelay(
            f"127.0.0.1:{relay.port}", tls="none", public_url=f"https://127.0.0.1:{port}"
        ),
    )
    built = system.build(settings, engine=store.engine)
    built.org.accounts.create_user("admin@oc.test", "s3cret!", admin=True)
    demo.seed(built.org)
    cert, key = tls.self_signed(tmp_path / "tls")
    config = api_server.config(
        api_server.app(built), host="127.0.0.1", port=port, tls_files=(cert, key), log_level="error"
    )
    with serving(config):
        running = Server(built.org, clock, port, cert, "admin@oc.test", "s3cret!", "")
        try:
            yield running
        finally:
            running.close_clients()
            if built.smtp is not None:
                built.smtp.close()


@pytest.fixture
def mail_server(relay_server: Server) -> Server:  # noqa: F811
    """The demo org on a server whose emails go through a real aiosmtpd relay."""
    demo.seed(relay_server.org)
    return relay_server


def test_a_rep_sends_an_email_that_reaches_the_relay_with_merge_fields_rendered(
    mail_server: Server,
    relay: Relay,  # noqa: F811
    browser: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    contact = _email_cadence(mail_server)
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        log_in(page, mail_server, REP, REP_PASSWORD)
        page.get_by_role("heading", name="My Work").wait_for()
        row = page.locator("tr.step", has_text="Nia Noor")
        assert "SendAnEmail" in row.inner_text()
        row.get_by_role("link", name="Send Email").click()
        page.get_by_role("heading", name="Send Email").wait_for()
        # pre-filled: the step's template rendered for Nia, as Rita sends it
        assert page.get_by_label("Subject").input_value() == "A note for Nia"
        body = page.get_by_label("Body").input_value()
        assert body == "Hi Nia,\n\nthanks for your time. Rita"
        assert "nia@noor.example" in page.content()
        shot(page, "send-email", request)
        page.get_by_label("Subject").fill("A note for Nia (edited)")
        page.get_by_label("Body").fill(body + "\nPS: see you Tuesday")
        page.get_by_role("button", name="Send").click()
        page.get_by_role("status").wait_for()
        assert "Email sent: Nia Noor" in page.get_by_role("status").inner_text()
        assert page.url.split("?")[0].endswith("/app/work")
        assert (
            page.locator("tr.step", has_text="Nia Noor").filter(has_text="SendAnEmail").count() == 0
        )
    finally:
        ctx.close()
    # the relay got it, as edited, with the merge fields rendered
    (msg,) = [m for m in relay.received if m["To"] == "nia@noor.example"]
    assert str(msg["Subject"]) == "A note for Nia (edited)"
    text = msg.get_content()
    assert "Hi Nia," in text and "Rita" in text and "PS: see you Tuesday" in text
    assert "{!" not in text
    # the step completed as an action taken; the tracker moved on to the call
    (step,) = _query(
        mail_server,
        "SELECT State, CompletionReason, IsActionTaken, CompletedBy.Name FROM "
        f"ActionCadenceStepTracker WHERE TargetId = '{contact}' AND StepType = 'SendAnEmail'",
    )
    assert (step["State"], step["CompletionReason"], step["IsActionTaken"]) == (
        "Completed",
        "AutomaticallyCompleted",
        True,
    )
    assert [s["StepType"] for s in open_steps(mail_server, "Nia Noor")] == ["MakeACall"]
    # recorded as the runtime's emails are: an EmailMessage and its Task
    (em,) = _query(
        mail_server,
        "SELECT Subject, ToAddress, Status, MessageIdentifier FROM EmailMessage "
        "WHERE ToAddress = 'nia@noor.example'",
    )
    assert em["Subject"] == "A note for Nia (edited)" and em["Status"] == "3"
    assert em["MessageIdentifier"] == str(msg["Message-ID"])
    # Nia's page: the step completed by Rita, the email's send from the engagement log
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        log_in(page, mail_server, REP, REP_PASSWORD)
        page.goto(f"{base(mail_server)}/targets/{contact}")
        page.get_by_role("heading", name="Nia Noor").wait_for()
        note = page.locator("tr.history-step", has_text="Personal note").inner_text()
        assert "AutomaticallyCompleted" in note and "Rita Rep" in note
        sent = page.locator("tr.email-row", has_text="Personal note").locator("td").nth(1)
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} E[SD]T", sent.inner_text())
        shot(page, "target-emailed", request)
    finally:
        ctx.close()


def test_a_refused_send_changes_nothing(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
) -> None:
    contact = _email_cadence(org_server)
    with org_server.org.store.transaction() as tx:
        tx.update("Contact", contact, {"HasOptedOutOfEmail": True})
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    # by keyboard: the link takes focus and Enter opens the composer
    page.locator("tr.step", has_text="Nia Noor").get_by_role("link", name="Send Email").focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Send Email").wait_for()
    assert page.evaluate("document.activeElement.id") == "subject"  # ready to edit
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "body"
    assert "opted out" in page.get_by_role("alert").inner_text()
    assert page.get_by_role("button", name="Send").is_disabled()
    # forced anyway: refused, the step stays open, no email recorded
    step = open_steps(org_server, "Nia Noor")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{base(org_server)}/work/{step[0]['Id']}/email",
        form={"csrf": csrf, "subject": "x", "body": "y"},
    )
    assert answer.status == 400 and "opted out" in answer.text()
    assert open_steps(org_server, "Nia Noor") == step
    assert (
        _query(org_server, "SELECT Id FROM EmailMessage WHERE ToAddress = 'nia@noor.example'") == []
    )


def test_pause_resume_and_remove_from_cadence(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    page.locator("tr.step", has_text="Kai Kim").get_by_role("button", name="Pause").click()
    page.get_by_role("status").wait_for()
    assert "Paused: Kai Kim" in page.get_by_role("status").inner_text()
    assert "Kai Kim" not in step_rows(page)
    (tracker,) = _query(
        org_server, "SELECT State FROM ActionCadenceTracker WHERE Target.Name = 'Kai Kim'"
    )
    assert tracker["State"] == "Paused"
    # the paused ones: under Status Paused, with Resume
    page.get_by_label("Status").select_option("paused")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("heading", name="My Work").wait_for()
    assert "Kai Kim" in step_rows(page)
    assert page.get_by_role("region", name=re.compile("^Paused")).is_visible()
    shot(page, "my-work-paused", request)
    page.locator("tr.step", has_text="Kai Kim").get_by_role("button", name="Resume").click()
    page.get_by_role("status").wait_for()
    assert "Resumed: Kai Kim" in page.get_by_role("status").inner_text()
    assert "status=paused" in page.url  # back on the page the form was on
    (tracker,) = _query(
        org_server, "SELECT State FROM ActionCadenceTracker WHERE Target.Name = 'Kai Kim'"
    )
    assert tracker["State"] == "Running"
    page.goto(f"{base(org_server)}/work")
    page.locator("tr.step", has_text="Hal Hunt").get_by_role(
        "button", name="Remove from Cadence"
    ).click()
    page.get_by_role("status").wait_for()
    assert "Removed from the cadence: Hal Hunt" in page.get_by_role("status").inner_text()
    assert "Hal Hunt" not in step_rows(page)
    (tracker,) = _query(
        org_server,
        "SELECT State, CompletionReason FROM ActionCadenceTracker WHERE Target.Name = 'Hal Hunt'",
    )
    assert (tracker["State"], tracker["CompletionReason"]) == ("Complete", "ManuallyRemoved")


def test_filters_by_cadence_and_step_type(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    _email_cadence(org_server)
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    everything = step_rows(page)
    assert "Nia Noor" in everything and "Hal Hunt" in everything
    page.get_by_label("Cadence").select_option(label="Web: email first")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("heading", name="My Work").wait_for()
    assert step_rows(page) == ["Nia Noor"]
    page.get_by_label("Cadence").select_option(label="All cadences")
    page.get_by_label("Step Type").select_option("MakeACall")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("heading", name="My Work").wait_for()
    calls = step_rows(page)
    assert calls and "Nia Noor" not in calls and "Ann Able" not in calls
    assert all("MakeACall" in t for t in page.locator("tr.step .type").all_inner_texts())
    shot(page, "my-work-filtered", request)


def test_paging_walks_every_open_step_once(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
) -> None:
    """120 open steps, 50 a page: three pages, every step once, in due order."""
    org = org_server.org
    admin = org.accounts.find_user("admin@demo.opencadence.dev")
    rita = org.accounts.find_user(REP)
    assert admin is not None and rita is not None
    with org.store.transaction(str(admin["Id"])) as tx:
        many = tx.insert_many(
            "Contact",
            [{"LastName": f"Page{i:03d}", "OwnerId": rita["Id"]} for i in range(114)],
        )
    results = org.actions.invoke(
        "assignTargetToSalesCadence",
        [
            {"salesCadenceNameOrId": "Demo: follow-up", "targetId": t, "userId": rita["Id"]}
            for t in many
        ],
        str(admin["Id"]),
    )
    assert all(r["isSuccess"] for r in results)
    expected = _query(
        org_server,
        "SELECT Id FROM ActionCadenceStepTracker WHERE State IN ('Active', 'InProgress') AND "
        f"ActionCadenceTracker.OwnerId = '{rita['Id']}' AND StepType IN ('MakeACall', "
        "'SendAnEmail', 'CreateTask', 'LinkedInConnection', 'LinkedInMail') "
        "ORDER BY DueDateTime ASC NULLS LAST, Id",
    )
    assert len(expected) > 100
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    seen: list[str] = []
    for _ in range(10):
        ids = page.locator("tr.step").evaluate_all("rows => rows.map(r => r.dataset.step)")
        assert len(ids) <= 50
        seen += ids
        more = page.get_by_role("link", name="Next page")
        if more.count() == 0:
            break
        more.click()
        page.get_by_role("link", name="First page").wait_for()
    assert seen == [r["Id"] for r in expected]
    # parameters that mean nothing are ignored, never an error (nor SOQL injected)
    for query in (
        "after=garbage",
        "after=2026-13-45T99:00:00Z~0cK000000000000AAA",
        "after=~' OR Id != '",
        "cadence=' OR Id != '",
        "type=DROP",
        "scope=everyone&status=deleted",
    ):
        answer = page.goto(f"{base(org_server)}/work?{query}")
        assert answer is not None and answer.status == 200, query
        assert page.locator("tr.step").count() == 50, query


def test_the_open_page_shows_the_new_step_when_the_clock_moves(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    """Flo Fay's manual email step starts two days on: moving the manual clock makes it
    Active, and Rita's open My Work page lists it without a reload (server-sent events)."""
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    assert "Flo Fay" not in step_rows(page)
    page.evaluate("window.__marker = 'same page'")  # gone if the page reloads
    page.wait_for_timeout(300)  # the event stream is open
    admin = org_server.org.accounts.find_user(org_server.admin)
    assert admin is not None
    token = org_server.org.accounts.open_session(str(admin["Id"]))
    moved = org_server.session().post(
        f"https://{org_server.instance}/_opencadence/clock",
        json={"advance": 3 * 86400},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert moved.status_code == 200, moved.text
    page.locator("tr.step", has_text="Flo Fay").wait_for(timeout=10_000)
    assert page.evaluate("window.__marker") == "same page"
    shot(page, "my-work-live", request)
    # a change heard while Rita types a comment waits until she leaves the list's form
    comments = page.locator("tr.step", has_text="Lu Lin").get_by_label("Comments")
    comments.fill("half-typed")
    (kai,) = open_steps(org_server, "Kai Kim")
    rita = org_server.org.accounts.find_user(REP)
    assert rita is not None
    org_server.org.actions.invoke(
        "sendSalesCadenceEvent", [{"recordId": kai["Id"], "eventType": "Skip"}], str(rita["Id"])
    )
    page.wait_for_timeout(1500)
    assert "Kai Kim" in step_rows(page)  # not yet refreshed
    assert comments.input_value() == "half-typed"
    page.get_by_role("heading", name="My Work").click()  # focus leaves the list
    page.wait_for_function(
        "![...document.querySelectorAll('tr.step td.target')].some(t => t.innerText.includes('Kai Kim'))",
        timeout=10_000,
    )


def test_the_event_stream_needs_a_session_and_respects_visibility(
    org_server: Server,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    """Sam's stream hears nothing of Rita's steps; Rita's hears the change."""
    sam_ctx = browser.new_context(ignore_https_errors=True)
    rita_ctx = browser.new_context(ignore_https_errors=True)
    try:
        anonymous = sam_ctx.request.get(f"{base(org_server)}/work/events")
        assert anonymous.status == 401
        script = """async (url) => {
            const got = [];
            const source = new EventSource(url);
            source.addEventListener('changed', e => got.push(JSON.parse(e.data)));
            await new Promise(r => source.onopen = r);
            window.__got = got;
        }"""
        pages = []
        for ctx, user, password in (
            (sam_ctx, OTHER, OTHER_PASSWORD),
            (rita_ctx, REP, REP_PASSWORD),
        ):
            page = ctx.new_page()
            log_in(page, org_server, user, password)
            page.get_by_role("heading", name="My Work").wait_for()
            page.evaluate(script, f"{base(org_server)}/work/events")
            pages.append(page)
        (step,) = open_steps(org_server, "Kai Kim")
        org_server.org.actions.invoke(
            "sendSalesCadenceEvent",
            [{"recordId": step["Id"], "eventType": "Skip"}],
            str((org_server.org.accounts.find_user(REP) or {})["Id"]),
        )
        pages[1].wait_for_function("window.__got.length > 0", timeout=10_000)
        got = pages[1].evaluate("window.__got")
        assert "ActionCadenceStepTracker" in got[0]["entities"]
        pages[0].wait_for_timeout(1000)
        assert pages[0].evaluate("window.__got") == []
    finally:
        sam_ctx.close()
        rita_ctx.close()


# --- targets --------------------------------------------------------------------------------


def test_an_admin_enrolls_three_contacts_from_the_contacts_list(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    org = org_server.org
    rita = org.accounts.find_user(REP)
    assert rita is not None
    with org.store.transaction() as tx:
        for first, email in (
            ("Oli", "oli@orbit.example"),
            ("Pia", "pia@orbit.example"),
            ("Quin", None),
        ):
            tx.insert(
                "Contact",
                {"FirstName": first, "LastName": "Orbit", "Email": email, "OwnerId": rita["Id"]},
            )
    page = context.new_page()
    log_in(page, org_server, "admin@demo.opencadence.dev", demo.ADMIN_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("heading", name="Contacts").wait_for()
    assert len(page.locator("tr.target-row").all()) >= 11
    page.get_by_label("Search").fill("orbit")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("heading", name="Contacts").wait_for()
    names = page.locator("tr.target-row td.name").all_inner_texts()
    assert names == ["Oli Orbit", "Pia Orbit", "Quin Orbit"]
    shot(page, "contacts", request)
    for name in names:
        page.get_by_label(f"Select {name}").check()
    page.get_by_label("Cadence", exact=True).select_option(label="Demo: follow-up")
    page.get_by_label("Assignee").select_option(label="Rita Rep")
    page.get_by_role("button", name="Add to Cadence").click()
    page.get_by_role("heading", name="Add to Cadence: results").wait_for()
    results = page.locator(".results li").all_inner_texts()
    assert results[0] == "Oli Orbit: Added to the cadence"
    assert results[1] == "Pia Orbit: Added to the cadence"
    assert results[2].startswith("Quin Orbit: Added to the cadence (no email address")
    shot(page, "contacts-enrolled", request)
    trackers = _query(
        org_server,
        "SELECT Target.Name, Owner.Name, ActionCadence.Name FROM ActionCadenceTracker "
        "WHERE Target.Name LIKE '% Orbit' ORDER BY Target.Name",
    )
    assert [(t["Target"]["Name"], t["Owner"]["Name"]) for t in trackers] == [
        ("Oli Orbit", "Rita Rep"),
        ("Pia Orbit", "Rita Rep"),
        ("Quin Orbit", "Rita Rep"),
    ]
    # again: each is already in a cadence, said per target; nothing changes
    for name in names:
        page.get_by_label(f"Select {name}").check()
    page.get_by_label("Cadence", exact=True).select_option(label="Demo: follow-up")
    page.get_by_role("button", name="Add to Cadence").click()
    page.get_by_role("heading", name="Add to Cadence: results").wait_for()
    again = page.locator(".results li.failed").all_inner_texts()
    assert len(again) == 3 and all("Orbit" in r for r in again)
    assert (
        len(
            _query(
                org_server, "SELECT Id FROM ActionCadenceTracker WHERE Target.Name LIKE '% Orbit'"
            )
        )
        == 3
    )
    # a search is a value, never SOQL: quotes and backslashes match literally (nothing here)
    for q in ("' OR Name != '", "O'Brien", "\\"):
        page.get_by_label("Search").fill(q)
        page.get_by_role("button", name="Search").click()
        page.get_by_role("heading", name="Contacts").wait_for()
        assert page.locator("tr.target-row").count() == 0, q
        assert page.get_by_label("Search").input_value() == q
    # the leads list too
    page.get_by_role("link", name="Leads").click()
    page.get_by_role("heading", name="Leads").wait_for()
    assert "Ivy Ives" in page.locator("tr.target-row td.name").all_inner_texts()
    shot(page, "leads", request)


def test_the_target_page_shows_the_cadence_history_and_email_engagement(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("link", name="Ann Able").click()
    page.get_by_role("heading", name="Ann Able").wait_for()
    steps = _query(
        org_server,
        "SELECT StepTitle, StepType, State, CompletionReason FROM ActionCadenceStepTracker "
        "WHERE Target.Name = 'Ann Able' ORDER BY CreatedDate, Id",
    )
    shown = page.locator("tr.history-step").all_inner_texts()
    assert len(shown) == len(steps) >= 4
    for row, step in zip(shown, steps):
        assert (step["StepTitle"] or step["StepType"]) in row and step["State"] in row
        if step["CompletionReason"]:
            assert step["CompletionReason"] in row
    assert "AutomaticallyCompleted" in page.content() and "Rita Rep" in page.content()
    # the intro email: sent (the demo records emails without a relay: no open/click log)
    email = page.locator("tr.email-row", has_text="Intro email")
    cells = email.locator("td").all_inner_texts()
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} E[SD]T", cells[1])
    shot(page, "target", request)


def test_a_rep_gets_403_on_another_reps_target_and_nothing_changes(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    (ann,) = _query(org_server, "SELECT Id FROM Contact WHERE Name = 'Ann Able'")
    page = context.new_page()
    log_in(page, org_server, OTHER, OTHER_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    events = len(org_server.org.store.read_events())
    answer = page.goto(f"{base(org_server)}/targets/{ann['Id']}")
    assert answer is not None and answer.status == 403
    page.get_by_role("heading", name="Insufficient Privileges").wait_for()
    assert "Ann Able" not in page.content()
    shot(page, "forbidden", request)
    # an Id of no record: the same page
    answer = page.goto(f"{base(org_server)}/targets/003000000000000AAA")
    assert answer is not None and answer.status == 403
    # Sam's Contacts list does not show Rita's contacts; enrolling one by hand is refused
    page.goto(f"{base(org_server)}/contacts")
    assert page.locator("tr.target-row").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{base(org_server)}/targets/enroll",
        form={"csrf": csrf, "cadence": "Demo: follow-up", "target": ann["Id"]},
    )
    assert answer.ok and "insufficient access" in answer.text().lower()
    # CSRF-less: refused before anything
    answer = page.request.post(
        f"{base(org_server)}/targets/enroll",
        form={"cadence": "Demo: follow-up", "target": ann["Id"]},
        max_redirects=0,
    )
    assert answer.status == 403
    assert len(org_server.org.store.read_events()) == events  # nothing changed


def test_a_rep_cannot_send_pause_or_remove_on_another_reps_step(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
) -> None:
    """Signed, CSRF-valid posts by Sam on Rita's steps: each answered as if the step did not
    exist; CSRF-less ones 403; nothing changes."""
    _email_cadence(org_server)
    (nia,) = open_steps(org_server, "Nia Noor")
    (lu,) = open_steps(org_server, "Lu Lin")
    events = len(org_server.org.store.read_events())
    page = context.new_page()
    log_in(page, org_server, OTHER, OTHER_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.get(f"{base(org_server)}/work/{nia['Id']}/email")
    assert "does not exist or you cannot see it" in answer.text()
    assert "Hi Nia" not in answer.text()
    answer = page.request.post(
        f"{base(org_server)}/work/{nia['Id']}/email",
        form={"csrf": csrf, "subject": "x", "body": "y"},
    )
    assert "does not exist or you cannot see it" in answer.text()
    for action in ("pause", "remove", "complete"):
        answer = page.request.post(
            f"{base(org_server)}/work/{lu['Id']}/{action}", form={"csrf": csrf}
        )
        assert "does not exist or you cannot see it" in answer.text()
    for path, form in (
        (f"work/{nia['Id']}/email", {"subject": "x", "body": "y"}),
        (f"work/{lu['Id']}/pause", {}),
        (f"work/{lu['Id']}/remove", {"csrf": "forged"}),
    ):
        answer = page.request.post(f"{base(org_server)}/{path}", form=form, max_redirects=0)
        assert answer.status == 403
    assert open_steps(org_server, "Nia Noor") == [nia]
    assert open_steps(org_server, "Lu Lin") == [lu]
    assert len(org_server.org.store.read_events()) == events
    # the way back after a form is a page of the app, never another site or a script
    for back in ("javascript:alert(1)", "https://evil.example/", "//evil.example/app/"):
        answer = page.request.post(
            f"{base(org_server)}/work/{lu['Id']}/skip",
            form={"csrf": csrf, "back": back},
            max_redirects=0,
        )
        assert answer.status == 303
        assert answer.headers["location"].startswith("/app/work?")


def test_the_new_pages_at_phone_width(
    org_server: Server,  # noqa: F811
    browser: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    contact = _email_cadence(org_server)
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 390, "height": 844})
    try:
        page = ctx.new_page()
        log_in(page, org_server, REP, REP_PASSWORD)
        page.get_by_role("heading", name="My Work").wait_for()
        for path, heading, name in (
            ("work", "My Work", "phone-my-work"),
            ("contacts", "Contacts", "phone-contacts"),
            (f"targets/{contact}", "Nia Noor", "phone-target"),
        ):
            page.goto(f"{base(org_server)}/{path}")
            page.get_by_role("heading", name=heading).wait_for()
            shot(page, name, request)
            # nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, name
        page.goto(
            f"{base(org_server)}/work/{open_steps(org_server, 'Nia Noor')[0]['Id']}/email?back=javascript:alert(1)"
        )
        assert page.get_by_role("link", name="Cancel").get_attribute("href") == "/app/work"
        page.goto(f"{base(org_server)}/work")
        page.locator("tr.step", has_text="Nia Noor").get_by_role("link", name="Send Email").click()
        page.get_by_role("heading", name="Send Email").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
        shot(page, "phone-send-email", request)
    finally:
        ctx.close()


def test_an_html_email_is_tracked_and_its_open_and_click_show_on_the_target_page(
    tracked_server: Server,
    relay: Relay,  # noqa: F811
    browser: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    contact = _email_cadence(tracked_server, html=True)
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        log_in(page, tracked_server, REP, REP_PASSWORD)
        page.locator("tr.step", has_text="Nia Noor").get_by_role("link", name="Send Email").click()
        page.get_by_role("heading", name="Send Email").wait_for()
        assert page.get_by_text("Body (HTML)").is_visible()
        assert "<p>Hi Nia,</p>" in page.get_by_label("Body (HTML)").input_value()
        page.get_by_role("button", name="Send").click()
        page.get_by_role("status").wait_for()
        (msg,) = [m for m in relay.received if m["To"] == "nia@noor.example"]
        html = msg.get_body(preferencelist=("html",)).get_content()
        pixel = re.search(r'<img src="([^"]+/email/o/[^"]+)"', html)
        click = re.search(r'href="([^"]+/email/c/[^"]+)"', html)
        assert pixel and click, html
        # the target opens the email and clicks its link (from "their" mail client)
        assert ctx.request.get(pixel.group(1)).ok
        assert ctx.request.get(click.group(1), max_redirects=0).status in (302, 303, 307)
        page.goto(f"{base(tracked_server)}/targets/{contact}")
        cells = (
            page.locator("tr.email-row", has_text="Personal note").locator("td").all_inner_texts()
        )
        stamp = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} E[SD]T"
        assert (
            re.search(stamp, cells[1]) and re.search(stamp, cells[2]) and re.search(stamp, cells[3])
        )
        assert cells[4] == cells[5] == "—"  # no reply, no bounce
        shot(page, "target-engagement", request)
    finally:
        ctx.close()
