"""The dashboard (/app/dashboard) in real Chromium (Debian's, driven by Playwright) against a
real TLS server on 127.0.0.1, on both databases: a manager's numbers equal the SOQL aggregates
of the same data queried through the API with simple-salesforce as that manager (their team
only: another rep's target is not counted; the admin's are the whole org's), a rep gets the
403 page, each table's CSV download holds the table, and the date filter."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from simple_salesforce import Salesforce

from opencadence import demo
from opencadence.cadence import worker
from opencadence.email import no_relay
from tests.clients.conftest import Server
from tests.clients.test_web_app import (  # noqa: F401 (fixtures)
    MANAGER,
    MANAGER_PASSWORD,
    OTHER,
    REP,
    REP_PASSWORD,
    base,
    browser,
    context,
    log_in,
    org_server,
    pytestmark,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"
MANUAL = ("MakeACall", "SendAnEmail", "CreateTask", "LinkedInConnection", "LinkedInMail")
PASSED_THROUGH = ("Root", "Wait", "Branch", "ListenerBranch", "DaisyChain")
CALLS = (
    "AllCallsMeaningfulConnect",
    "AllCallsLeftVoicemail",
    "AllCallsNotInterested",
    "AllCallsCallBackLater",
    "AllCallsUnqualified",
    "AllCallsUncategorized",
    "AllTotalCallsCount",
)
EMAILS = (
    "AllEmailsSentCount",
    "UniqueEmailsOpenedCount",
    "UniqueEmailsLinkClickedCount",
    "UniqueEmailsRepliedCount",
    "AllEmailsBouncedCount",
)


def shot(page: Any, name: str, request: pytest.FixtureRequest, full: bool = True) -> None:
    """A screenshot kept as an artifact (artifacts/web/, one per backend)."""
    backend = "pg" if "postgres" in request.node.name else "sqlite"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=full)


def _sf(srv: Server, username: str) -> Salesforce:
    """simple-salesforce, unmodified, on a session of ``username``."""
    user = srv.org.accounts.find_user(username)
    assert user is not None
    token = srv.org.accounts.open_session(str(user["Id"]), client="test")
    return Salesforce(session_id=token, instance=srv.instance, session=srv.session())


def _others_target(srv: Server) -> None:
    """A contact of Sam's (no one's report) enrolled in the demo cadence, assigned to Sam."""
    org = srv.org
    admin, sam = (org.accounts.find_user(u) for u in (demo.ADMIN, OTHER))
    assert admin is not None and sam is not None
    with org.store.transaction(str(admin["Id"])) as tx:
        contact = tx.insert(
            "Contact", {"FirstName": "Oz", "LastName": "Other", "OwnerId": sam["Id"]}
        )
    (result,) = org.actions.invoke(
        "assignTargetToSalesCadence",
        [{"salesCadenceNameOrId": "Demo: every step", "targetId": contact, "userId": sam["Id"]}],
        str(admin["Id"]),
    )
    assert result["isSuccess"], result
    worker.Worker(org.store, no_relay.NoRelaySender(org.store)).run_until_idle()  # its first step


def _utc(day: date, zone: ZoneInfo) -> str:
    when = datetime.combine(day, time(), zone).astimezone(ZoneInfo("UTC"))
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def expected(
    sf: Salesforce, first: date, last: date, zone: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """Each dashboard table as the SOQL aggregates of the API answer it: name -> rows of text."""
    start, end = _utc(first, zone), _utc(last + timedelta(days=1), zone)
    at = now.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")

    def q(soql: str) -> list[dict[str, Any]]:
        return list(sf.query_all(soql)["records"])

    cadences = {r["Id"]: r["Name"] for r in q("SELECT Id, Name FROM ActionCadence")}
    steps = q("SELECT Id, ActionCadenceId, StepTitle, Type FROM ActionCadenceStep")
    label = {s["Id"]: (cadences[s["ActionCadenceId"]], s["StepTitle"]) for s in steps}
    funnel = {
        (cadences[r["ActionCadenceId"]], r["State"], r["CompletionReason"] or "—"): str(r["n"])
        for r in q(
            "SELECT ActionCadenceId, State, CompletionReason, COUNT(Id) n "
            f"FROM ActionCadenceTracker WHERE CreatedDate >= {start} AND CreatedDate < {end} "
            "GROUP BY ActionCadenceId, State, CompletionReason"
        )
    }
    done: dict[tuple[str, str], int] = {}
    for r in q(
        "SELECT ActionCadenceStepId, CompletionReason, COUNT(Id) n FROM ActionCadenceStepTracker "
        f"WHERE State = 'Completed' AND CompletionDate >= {start} AND CompletionDate < {end} "
        "GROUP BY ActionCadenceStepId, CompletionReason"
    ):
        done[(r["ActionCadenceStepId"], r["CompletionReason"])] = r["n"]
    overdue = {
        r["ActionCadenceStepId"]: r["n"]
        for r in q(
            "SELECT ActionCadenceStepId, COUNT(Id) n FROM ActionCadenceStepTracker "
            f"WHERE State IN ('Active', 'InProgress') AND DueDateTime < {at} "
            "GROUP BY ActionCadenceStepId"
        )
    }
    sums = ", ".join(f"SUM({c}) {c}" for c in CALLS + EMAILS)
    metric = {
        r["ActionCadenceStepId"]: r
        for r in q(
            f"SELECT ActionCadenceStepId, {sums} FROM ActionCdncStpMonthlyMetric "
            f"WHERE Month >= {first.replace(day=1)} AND Month <= {last.replace(day=1)} "
            "GROUP BY ActionCadenceStepId"
        )
    }
    step_rows, call_rows, email_rows = {}, {}, {}
    for s in steps:
        key, m = label[s["Id"]], metric.get(s["Id"], {})
        if s["Type"] not in PASSED_THROUGH:
            completed = done.get((s["Id"], "AutomaticallyCompleted"), 0) + done.get(
                (s["Id"], "ManuallyCompleted"), 0
            )
            skipped = done.get((s["Id"], "ManuallySkipped"), 0)
            step_rows[key] = [s["Type"], str(completed), str(skipped), str(overdue.get(s["Id"], 0))]
        if s["Type"] == "MakeACall":
            call_rows[key] = [str(int(m.get(c) or 0)) for c in CALLS]
        if s["Type"] in ("SendAnEmail", "AutoSendAnEmail"):
            sent = int(m.get("AllEmailsSentCount") or 0)
            cells = [str(sent)]
            for c in EMAILS[1:]:
                cells += [str(int(m.get(c) or 0)), _rate(int(m.get(c) or 0), sent)]
            email_rows[key] = cells
    manual = ", ".join(f"'{t}'" for t in MANUAL)
    per_rep: dict[str, list[str]] = {}
    for column, where in enumerate(
        (
            f"State IN ('Active', 'InProgress') AND StepType IN ({manual})",
            f"State IN ('Active', 'InProgress') AND StepType IN ({manual}) AND DueDateTime < {at}",
            f"State = 'Completed' AND StepType IN ({manual}) AND CompletionReason IN "
            f"('AutomaticallyCompleted', 'ManuallyCompleted') AND CompletionDate >= {start} "
            f"AND CompletionDate < {end}",
        )
    ):
        for r in q(
            "SELECT ActionCadenceTracker.OwnerId o, COUNT(Id) n FROM ActionCadenceStepTracker "
            f"WHERE {where} GROUP BY ActionCadenceTracker.OwnerId"
        ):
            per_rep.setdefault(r["o"], ["0", "0", "0"])[column] = str(r["n"])
    names = {r["Id"]: r["Name"] for r in q("SELECT Id, Name FROM User")}
    reps = {(names[o],): cells for o, cells in per_rep.items()}
    return {
        "funnel": funnel,
        "steps": step_rows,
        "calls": call_rows,
        "emails": email_rows,
        "reps": reps,
    }


def shown(page: Any) -> dict[str, Any]:
    """The dashboard's tables as shown: name -> {key columns: other cells}."""
    keys = {"funnel": 3, "steps": 2, "calls": 2, "emails": 2, "reps": 1}
    out: dict[str, Any] = {}
    for name, n in keys.items():
        rows: dict[Any, Any] = {}
        for row in page.locator(f"#t-{name} tbody tr").all():
            cells = [c.strip() for c in row.locator("td").all_inner_texts()]
            if name == "funnel":
                rows[tuple(cells[:3])] = cells[3]
            else:
                rows[tuple(cells[:n])] = cells[n:]
        out[name] = rows
    return out


def _period(page: Any) -> tuple[date, date]:
    return (
        date.fromisoformat(page.get_by_label("From").input_value()),
        date.fromisoformat(page.get_by_label("To").input_value()),
    )


def test_a_managers_dashboard_equals_the_soql_aggregates_of_their_team(
    org_server: Server,  # noqa: F811
    browser: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    _others_target(org_server)
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        log_in(page, org_server, MANAGER, MANAGER_PASSWORD)
        page.get_by_role("heading", name="My Work").wait_for()
        page.get_by_role("link", name="Dashboard").click()
        page.get_by_role("heading", name="Dashboard").wait_for()
        first, last = _period(page)
        zone = ZoneInfo("America/Chicago")  # the manager's time zone
        now = org_server.clock.now()
        assert last == now.astimezone(zone).date() and (last - first).days == 29
        on_page = shown(page)
        want = expected(_sf(org_server, MANAGER), first, last, zone, now)
        assert on_page == want
        # the team's numbers: Rita's 13 demo targets, not Sam's
        funnel_total = sum(
            int(n) for (c, _, _), n in on_page["funnel"].items() if c == "Demo: every step"
        )
        assert funnel_total == 13
        assert [r[0] for r in on_page["reps"]] == ["Rita Rep"]
        # and the data is there: calls, sends, completed and skipped steps, open work
        assert on_page["calls"][("Demo: every step", "Intro call")][-1] == "3"
        assert int(on_page["emails"][("Demo: every step", "Intro email")][0]) >= 1
        assert any(int(r[1]) and int(r[2]) for r in on_page["steps"].values())
        figure = page.get_by_role("figure", name="Funnel of Demo: every step")
        assert "13" in figure.inner_text() and "Running" in figure.inner_text()
        shot(page, "dashboard", request)
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, "dashboard-phone", request, full=False)
        page.locator("#t-steps").scroll_into_view_if_needed()
        shot(page, "dashboard-phone-steps", request, full=False)
        page.set_viewport_size({"width": 1280, "height": 800})

        admin = ctx.browser.new_context(ignore_https_errors=True)
        try:
            other = admin.new_page()
            log_in(other, org_server, demo.ADMIN, demo.ADMIN_PASSWORD)
            other.get_by_role("heading", name="My Work").wait_for()
            other.goto(f"{base(org_server)}/dashboard")
            admins = shown(other)
            admin_zone = ZoneInfo("America/Los_Angeles")
            a_first, a_last = _period(other)
            assert admins == expected(_sf(org_server, demo.ADMIN), a_first, a_last, admin_zone, now)
            total = sum(
                int(n) for (c, _, _), n in admins["funnel"].items() if c == "Demo: every step"
            )
            assert total == 14  # the whole org: Sam's target too
            assert ("Sam",) in admins["reps"]
        finally:
            admin.close()
    finally:
        ctx.close()


def test_a_rep_gets_the_403_page(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    answer = page.goto(f"{base(org_server)}/dashboard")
    assert answer is not None and answer.status == 403
    page.get_by_role("heading", name="Insufficient Privileges").wait_for()
    assert page.locator("table").count() == 0
    shot(page, "dashboard-rep-403", request)
    csv_answer = page.request.get(f"{base(org_server)}/dashboard/steps.csv")
    assert csv_answer.status == 403 and "Cadence,Step" not in csv_answer.text()
    # not signed in: the login page
    context.clear_cookies()
    page.goto(f"{base(org_server)}/dashboard")
    assert page.url.endswith("/app/login")


def test_each_tables_csv_download_holds_the_table(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
) -> None:
    page = context.new_page()
    log_in(page, org_server, MANAGER, MANAGER_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    page.goto(f"{base(org_server)}/dashboard")
    first, last = _period(page)
    for name, title in (
        ("funnel", "Targets by state"),
        ("steps", "Steps"),
        ("calls", "Calls by result"),
        ("emails", "Emails"),
        ("reps", "Reps"),
    ):
        with page.expect_download() as info:
            page.get_by_role("link", name=f"Download CSV of {title}", exact=True).click()
        download = info.value
        assert download.suggested_filename == f"dashboard-{name}-{first}-{last}.csv"
        rows = list(csv.reader(io.StringIO(Path(download.path()).read_text("utf-8"))))
        table = page.locator(f"#t-{name}")
        header = [h.strip() for h in table.locator("thead th").all_text_contents()]
        body = [
            [c.strip() for c in r.locator("td").all_inner_texts()]
            for r in table.locator("tbody tr").all()
        ]
        assert rows[0] == header
        # the page shows an empty cell as a dash
        assert [[c or "—" for c in r] for r in rows[1:]] == body, name
        assert body, name


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    from opencadence.web import dashboard

    table = dashboard.Table(
        "funnel", "t", ["Cadence", "Targets"], [["=HYPERLINK(1)", 2], ["ok", 3]]
    )
    assert table.csv().splitlines() == ["Cadence,Targets", "'=HYPERLINK(1),2", "ok,3"]


def test_the_date_filter(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    page = context.new_page()
    log_in(page, org_server, MANAGER, MANAGER_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    page.goto(f"{base(org_server)}/dashboard")
    before = shown(page)
    zone = ZoneInfo("America/Chicago")
    now = org_server.clock.now()
    sf = _sf(org_server, MANAGER)
    # a period before the demo: nothing enrolled or completed; what is open now stays
    page.get_by_label("From").fill("2001-01-01")
    page.get_by_label("To").fill("2001-02-15")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert "from=2001-01-01" in page.url and "to=2001-02-15" in page.url
    assert _period(page) == (date(2001, 1, 1), date(2001, 2, 15))
    old = shown(page)
    assert old == expected(sf, date(2001, 1, 1), date(2001, 2, 15), zone, now)
    assert old["funnel"] == {}
    assert (
        "Nothing in this period" in page.get_by_role("region", name="Targets by state").inner_text()
    )
    assert all(r[1:3] == ["0", "0"] for r in old["steps"].values())
    assert [r[:2] for r in old["reps"].values()] == [r[:2] for r in before["reps"].values()]
    assert all(r[2] == "0" for r in old["reps"].values())
    assert all(r[0] == "0" for r in old["emails"].values())
    shot(page, "dashboard-2001", request)
    # the CSV follows the filter
    answer = page.request.get(
        f"{base(org_server)}/dashboard/funnel.csv?from=2001-01-01&to=2001-02-15"
    )
    assert answer.text().splitlines() == ["Cadence,State,Completion reason,Targets"]
    # a single day (today)
    today = now.astimezone(zone).date()
    page.goto(f"{base(org_server)}/dashboard?from={today}&to={today}")
    assert shown(page) == expected(sf, today, today, zone, now)
    # the start after the end: said, and the default period shown
    page.goto(f"{base(org_server)}/dashboard?from=2030-02-01&to=2030-01-01")
    assert "start date is after the end date" in page.get_by_role("alert").inner_text()
    assert shown(page) == before
    page.goto(f"{base(org_server)}/dashboard?from=yesterday")
    assert "YYYY-MM-DD" in page.get_by_role("alert").inner_text()
