"""The web app (/app) in real Chromium (Debian's, driven by Playwright) against a real TLS
server on 127.0.0.1, on both databases: sign-in, My Work, logging a call, skipping, CSRF,
deactivation and who sees whose work."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opencadence import demo
from opencadence.clock import ManualClock
from tests.clients.conftest import Server

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
REP, REP_PASSWORD = "rita@demo.opencadence.dev", "demo-rep-1"
OTHER, OTHER_PASSWORD = "sam@demo.opencadence.dev", "demo-rep-2"
MANAGER, MANAGER_PASSWORD = "max@demo.opencadence.dev", "demo-manager-1"

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="no /usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def org_server(server: Server) -> Server:
    """The demo org (Rita's open steps) plus a second rep and Rita's manager."""
    demo.seed(server.org)
    accounts = server.org.accounts
    accounts.create_user(OTHER, OTHER_PASSWORD, time_zone="Europe/Berlin", last_name="Sam")
    if accounts.find_user(MANAGER) is None:  # the demo seeds Rita's manager
        accounts.create_user(
            MANAGER, MANAGER_PASSWORD, time_zone="America/Chicago", last_name="Max"
        )
    rita = accounts.find_user(REP)
    assert rita is not None
    accounts.set_manager(str(rita["Id"]), MANAGER)
    return server


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    try:
        yield ctx
    finally:
        ctx.close()


def base(srv: Server) -> str:
    return f"https://{srv.instance}/app"


def log_in(page: Any, srv: Server, username: str, password: str) -> None:
    page.goto(f"{base(srv)}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log In").click()


def step_rows(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("tr.step td.target").all_inner_texts()]


def open_steps(srv: Server, target_name: str) -> list[dict[str, Any]]:
    """The target's open step trackers, as the system sees them (not through the app)."""
    return srv.org.queries.query(
        "SELECT Id, StepType, State FROM ActionCadenceStepTracker "
        f"WHERE Target.Name = '{target_name}' AND State IN ('Active', 'InProgress')"
    )["records"]


def test_rep_logs_in_logs_a_call_skips_and_logs_out(
    org_server: Server, context: Any, tmp_path: Path
) -> None:
    page = context.new_page()
    page.goto(f"https://{org_server.instance}/app")  # not signed in: the login page
    assert page.url.endswith("/app/login")
    page.goto(f"{base(org_server)}/work")
    assert page.url.endswith("/app/login")
    page.screenshot(path=str(tmp_path / "login.png"))
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    assert page.url.endswith("/app/work")
    cookie = next(c for c in context.cookies() if c["name"] == "oc_app_session")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", True)
    rows = step_rows(page)
    # the seeded open steps, the due ones first; the overdue ones highlighted
    assert {"Hal Hunt", "Ivy Ives", "Jo Jung", "Kai Kim", "Lu Lin", "Ann Able"} <= set(rows)
    assert rows[-1] == "Ann Able"  # due a day later than the calls
    first = page.locator("tr.step").first
    assert "overdue" in (first.get_attribute("class") or "")
    assert re.search(r"\d+ h \d+ min overdue", first.inner_text())
    # grouped: the overdue calls under Overdue, the task due later under Due Today/Upcoming
    overdue = page.get_by_role("region", name=re.compile("^Overdue"))
    overdue_rows = [t.strip() for t in overdue.locator("td.target").all_inner_texts()]
    assert {"Hal Hunt", "Ivy Ives", "Jo Jung", "Kai Kim", "Lu Lin"} <= set(overdue_rows)
    assert "Ann Able" not in overdue_rows
    ann_section = page.locator("section", has=page.locator("td.target", has_text="Ann Able"))
    assert ann_section.locator("h2").inner_text().split(" (")[0] in ("Due Today", "Upcoming")
    # due dates in Rita's time zone (America/New_York)
    assert "EST" in first.inner_text()
    page.screenshot(path=str(tmp_path / "my-work.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone-width screen
    page.screenshot(path=str(tmp_path / "my-work-phone.png"))
    page.set_viewport_size({"width": 1280, "height": 800})

    # log a call on Ivy Ives's call step: a Task completes it and the tracker moves on
    (call_step,) = open_steps(org_server, "Ivy Ives")
    row = page.locator("tr.step", has_text="Ivy Ives")
    row.get_by_label("Call Result").select_option("Left Voicemail")
    row.get_by_label("Comments").fill("no answer")
    row.get_by_role("button", name="Log a Call").click()
    page.get_by_role("status").wait_for()
    assert "Call logged: Ivy Ives (Left Voicemail)" in page.get_by_role("status").inner_text()
    step = org_server.org.queries.query(
        f"SELECT State, CompletionReason FROM ActionCadenceStepTracker WHERE Id = '{call_step['Id']}'"
    )["records"][0]
    assert step["State"] == "Completed"
    (task,) = org_server.org.queries.query(
        "SELECT TaskSubtype, CallDisposition, Description, Who.Name FROM Task "
        "WHERE CallDisposition != null AND Who.Name = 'Ivy Ives'"
    )["records"]
    assert (task["TaskSubtype"], task["CallDisposition"], task["Description"]) == (
        "Call",
        "Left Voicemail",
        "no answer",
    )
    assert page.locator("tr.step", has_text="Ivy Ives").count() == 0
    page.screenshot(path=str(tmp_path / "call-logged.png"), full_page=True)

    # skip Jo Jung's call step
    page.locator("tr.step", has_text="Jo Jung").get_by_role("button", name="Skip").click()
    page.get_by_role("status").wait_for()
    assert "Skipped: Jo Jung" in page.get_by_role("status").inner_text()
    # the call step is done with; the cadence moved on to a step the runtime runs (a wait)
    assert [s["StepType"] for s in open_steps(org_server, "Jo Jung")] == ["Wait"]
    assert page.locator("tr.step", has_text="Jo Jung").count() == 0
    # complete Ann Able's task step
    ann = page.locator("tr.step", has_text="Ann Able")
    ann.get_by_role("button", name="Mark Complete").click()
    page.get_by_role("status").wait_for()
    assert "Completed: Ann Able" in page.get_by_role("status").inner_text()

    page.get_by_role("button", name="Log Out").click()
    page.get_by_role("button", name="Log In").wait_for()
    assert not [c for c in context.cookies() if c["name"] == "oc_app_session"]
    page.goto(f"{base(org_server)}/work")
    assert page.url.endswith("/app/login")


def test_wrong_password_and_unknown_user_get_the_same_error(
    org_server: Server, context: Any
) -> None:
    page = context.new_page()
    log_in(page, org_server, REP, "wrong")
    wrong = page.get_by_role("alert").inner_text()
    log_in(page, org_server, "nobody@demo.opencadence.dev", "wrong")
    assert page.get_by_role("alert").inner_text() == wrong
    assert "username and password" in wrong
    assert page.get_by_label("Password").input_value() == ""
    assert not [c for c in context.cookies() if c["name"] == "oc_app_session"]


def test_lockout_applies_to_the_login_page(org_server: Server, context: Any) -> None:
    org_server.org.accounts.max_attempts = 3
    page = context.new_page()
    for _ in range(3):
        log_in(page, org_server, REP, "wrong")
    log_in(page, org_server, REP, REP_PASSWORD)  # locked out: the right password fails too
    page.get_by_role("alert").wait_for()
    assert page.url.endswith("/app/login")
    org_server.org.accounts.unlock(REP)
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()


def test_csrf_less_posts_are_refused(org_server: Server, context: Any) -> None:
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    (step,) = open_steps(org_server, "Kai Kim")
    events = len(org_server.org.store.read_events())
    for token in ({}, {"csrf": "forged"}):
        answer = page.request.post(
            f"{base(org_server)}/work/{step['Id']}/skip", form=token, max_redirects=0
        )
        assert answer.status == 403
        answer = page.request.post(
            f"{base(org_server)}/work/{step['Id']}/call",
            form={**token, "disposition": "Left Voicemail"},
            max_redirects=0,
        )
        assert answer.status == 403
    answer = page.request.post(f"{base(org_server)}/logout", form={}, max_redirects=0)
    assert answer.status == 403
    answer = page.request.post(
        f"{base(org_server)}/login",
        form={"username": REP, "password": REP_PASSWORD},
        max_redirects=0,
    )
    assert answer.status == 403
    # a body past the form limit is refused before it is read, as every API body is
    answer = page.request.post(
        f"{base(org_server)}/work/{step['Id']}/skip",
        form={"csrf": "x", "pad": "y" * 20_000},
        max_redirects=0,
    )
    assert answer.status == 413
    assert open_steps(org_server, "Kai Kim") == [step]  # nothing changed
    assert len(org_server.org.store.read_events()) == events


def test_a_rep_sees_only_their_own_work_and_a_manager_their_team(
    org_server: Server, browser: Any, tmp_path: Path
) -> None:
    rita = browser.new_context(ignore_https_errors=True)
    sam = browser.new_context(ignore_https_errors=True)
    boss = browser.new_context(ignore_https_errors=True)
    try:
        page = rita.new_page()
        log_in(page, org_server, REP, REP_PASSWORD)
        page.get_by_role("heading", name="My Work").wait_for()
        ritas = step_rows(page)
        assert ritas
        (lu,) = open_steps(org_server, "Lu Lin")

        other = sam.new_page()
        log_in(other, org_server, OTHER, OTHER_PASSWORD)
        other.get_by_role("heading", name="My Work").wait_for()
        assert step_rows(other) == [] and "No open steps" in other.content()
        other.get_by_label("Show").select_option("team")
        other.get_by_role("button", name="Apply").click()
        other.get_by_role("heading", name="My Work").wait_for()
        assert step_rows(other) == []
        # a signed, CSRF-valid skip of Rita's step: it does not exist for Sam
        csrf = other.locator("input[name=csrf]").first.get_attribute("value")
        other.goto(f"{base(org_server)}/work")
        answer = other.request.post(f"{base(org_server)}/work/{lu['Id']}/skip", form={"csrf": csrf})
        assert answer.ok and "does not exist or you cannot see it" in answer.text()
        assert open_steps(org_server, "Lu Lin") == [lu]  # nothing changed

        manager = boss.new_page()
        log_in(manager, org_server, MANAGER, MANAGER_PASSWORD)
        manager.get_by_role("heading", name="My Work").wait_for()
        assert step_rows(manager) == []  # the manager's own steps: none
        manager.goto(f"{base(org_server)}/work?scope=team")
        assert sorted(step_rows(manager)) == sorted(ritas)
        assert "Assigned to" in manager.content()
        manager.screenshot(path=str(tmp_path / "team-work.png"), full_page=True)
        # the manager works a team step: the call completes Rita's step, the view stays Team
        row = manager.locator("tr.step", has_text="Lu Lin")
        row.get_by_label("Call Result").select_option("Meaningful Connect")
        row.get_by_role("button", name="Log a Call").click()
        manager.get_by_role("status").wait_for()
        assert "scope=team" in manager.url
        assert manager.get_by_label("Show").input_value() == "team"
        assert not [s for s in open_steps(org_server, "Lu Lin") if s["StepType"] == "MakeACall"]
    finally:
        for ctx in (rita, sam, boss):
            ctx.close()


def test_deactivated_user_and_ended_session_go_back_to_login(
    org_server: Server, context: Any
) -> None:
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    org_server.org.accounts.set_active(REP, False)
    page.reload()
    assert page.url.endswith("/app/login")
    org_server.org.accounts.set_active(REP, True)
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    token = next(c["value"] for c in context.cookies() if c["name"] == "oc_app_session")
    org_server.org.accounts.revoke(token)  # logged out elsewhere: no longer valid
    page.reload()
    assert page.url.endswith("/app/login")


def test_an_expired_session_goes_back_to_login(
    org_server: Server, context: Any, session_clock: ManualClock
) -> None:
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    session_clock.advance(hours=1)  # used within the 2 hours: still signed in
    page.reload()
    page.get_by_role("heading", name="My Work").wait_for()
    session_clock.advance(hours=2, seconds=1)  # 2 hours unused: expired
    page.reload()
    assert page.url.endswith("/app/login")
    page.get_by_role("button", name="Log In").wait_for()
