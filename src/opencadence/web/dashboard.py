"""The dashboard (managers and administrators): per cadence the targets by tracker state and
completion reason (a funnel), per step the completed / skipped / overdue counts, calls by
result and email engagement with rates, per rep the open and overdue steps and the steps
completed in the chosen period; each table also as CSV.

Every number is one SOQL aggregate through ``Org.query`` for the signed-in session, so it is
what the same user's ``SELECT ... COUNT(Id) ... GROUP BY`` through the API answers: trackers
and step trackers under the user's visibility (a manager: their team, the ManagerId chain),
calls and emails from the cadence steps' monthly metric rows (ActionCdncStpMonthlyMetric,
public read as in the API) for the months of the period. docs/web-decisions.md "Dashboard"."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opencadence.org import Org
from opencadence.storage import accounts, values
from opencadence.web import common

#: the step types a person works (as My Work lists them)
MANUAL_STEPS = ("MakeACall", "SendAnEmail", "CreateTask", "LinkedInConnection", "LinkedInMail")
#: steps the runtime passes through: no completed / skipped / overdue row of their own
SYSTEM_STEPS = ("Root", "Wait", "Branch", "ListenerBranch", "DaisyChain")
EMAIL_STEPS = ("SendAnEmail", "AutoSendAnEmail")
OPEN_STATES = ("Active", "InProgress")
#: the default period: this many days up to today (the user's today, on the org's clock)
DEFAULT_DAYS = 30
#: tracker states in funnel order (active first), then the completed ones by reason
ACTIVE_TRACKER_STATES = ("Initializing", "Running", "Processing", "Paused")
#: calls by result: the monthly metric counter -> column heading (CallDisposition categories)
CALL_RESULTS = (
    ("AllCallsMeaningfulConnect", "Meaningful Connect"),
    ("AllCallsLeftVoicemail", "Left Voicemail"),
    ("AllCallsNotInterested", "Not Interested"),
    ("AllCallsCallBackLater", "Call Back Later"),
    ("AllCallsUnqualified", "Unqualified"),
    ("AllCallsUncategorized", "Uncategorized"),
    ("AllTotalCallsCount", "Total"),
)
#: email engagement: counter -> heading; the rates are of the sends
EMAIL_COUNTS = (
    ("AllEmailsSentCount", "Sent"),
    ("UniqueEmailsOpenedCount", "Opened"),
    ("UniqueEmailsLinkClickedCount", "Clicked"),
    ("UniqueEmailsRepliedCount", "Replied"),
    ("AllEmailsBouncedCount", "Bounced"),
)
TABLES = ("funnel", "steps", "calls", "emails", "reps")


@dataclass(frozen=True, slots=True)
class Period:
    """The chosen days (``first`` to ``last``, both included, in the user's time zone)."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> str:
        """The first instant, as a SOQL datetime literal (UTC)."""
        return _literal(datetime.combine(self.first, time(), self.zone))

    @property
    def end(self) -> str:
        """The instant after the last day (exclusive), as a SOQL datetime literal."""
        return _literal(datetime.combine(self.last + timedelta(days=1), time(), self.zone))

    @property
    def first_month(self) -> str:
        return self.first.replace(day=1).isoformat()

    @property
    def last_month(self) -> str:
        return self.last.replace(day=1).isoformat()

    def query(self) -> str:
        return f"from={self.first.isoformat()}&to={self.last.isoformat()}"


def _literal(when: datetime) -> str:
    return values.format_datetime(when.astimezone(ZoneInfo("UTC")))


def period_of(params: Any, today: date, zone: ZoneInfo) -> tuple[Period, str | None]:
    """The period of the query parameters ``from`` and ``to`` (ISO dates), or the last
    DEFAULT_DAYS days; with the error to show when what was given is not a period."""
    default = Period(today - timedelta(days=DEFAULT_DAYS - 1), today, zone)
    given_from, given_to = params.get("from") or "", params.get("to") or ""
    if not given_from and not given_to:
        return default, None
    try:
        first = date.fromisoformat(given_from) if given_from else default.first
        last = date.fromisoformat(given_to) if given_to else default.last
    except ValueError:
        return default, "Enter dates as YYYY-MM-DD."
    if first > last:
        return default, "The start date is after the end date."
    return Period(first, last, zone), None


@dataclass(slots=True)
class Table:
    """One table of the dashboard: its columns and rows, shown as HTML and as CSV."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    @property
    def numeric(self) -> set[int]:
        """The columns of numbers and rates (shown right-aligned)."""
        first = self.rows[0] if self.rows else []
        return {
            i
            for i, cell in enumerate(first)
            if isinstance(cell, int) or (isinstance(cell, str) and cell.endswith(("%", "—")))
        }

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        writer.writerows([[_cell(c) for c in row] for row in self.rows])
        return out.getvalue()


#: what a spreadsheet reads as the start of a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula (a cadence named ``=HYPERLINK(…)``)
    is prefixed with a quote, as OWASP advises."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


# --- the SOQL behind each table (the test runs the same aggregates through the API) --------


def _in(items: Iterable[str]) -> str:
    return ", ".join(f"'{common.soql_string(i)}'" for i in items)


def funnel_soql(p: Period) -> str:
    """Trackers enrolled in the period by cadence, state and completion reason."""
    return (
        "SELECT ActionCadenceId, State, CompletionReason, COUNT(Id) n FROM ActionCadenceTracker "
        f"WHERE CreatedDate >= {p.start} AND CreatedDate < {p.end} "
        "GROUP BY ActionCadenceId, State, CompletionReason"
    )


def completed_soql(p: Period) -> str:
    """Step trackers completed (done or skipped) in the period, by step and reason."""
    return (
        "SELECT ActionCadenceStepId, CompletionReason, COUNT(Id) n FROM ActionCadenceStepTracker "
        f"WHERE State = 'Completed' AND CompletionDate >= {p.start} AND CompletionDate < {p.end} "
        "GROUP BY ActionCadenceStepId, CompletionReason"
    )


def overdue_soql(now: str) -> str:
    """Open step trackers past their due date now, by step."""
    return (
        "SELECT ActionCadenceStepId, COUNT(Id) n FROM ActionCadenceStepTracker "
        f"WHERE State IN ({_in(OPEN_STATES)}) AND DueDateTime < {now} "
        "GROUP BY ActionCadenceStepId"
    )


def metrics_soql(p: Period, counters: Iterable[str]) -> str:
    """The steps' monthly metric rows of the period's months, summed by step."""
    sums = ", ".join(f"SUM({c}) {c}" for c in counters)
    return (
        f"SELECT ActionCadenceStepId, {sums} FROM ActionCdncStpMonthlyMetric "
        f"WHERE Month >= {p.first_month} AND Month <= {p.last_month} "
        "GROUP BY ActionCadenceStepId"
    )


def rep_open_soql(now: str | None = None) -> str:
    """Open manual steps by assignee (the tracker's owner); with ``now``, the overdue ones."""
    where = f"State IN ({_in(OPEN_STATES)}) AND StepType IN ({_in(MANUAL_STEPS)})"
    if now is not None:
        where += f" AND DueDateTime < {now}"
    return (
        "SELECT ActionCadenceTracker.OwnerId owner, COUNT(Id) n FROM ActionCadenceStepTracker "
        f"WHERE {where} GROUP BY ActionCadenceTracker.OwnerId"
    )


def rep_done_soql(p: Period) -> str:
    """Manual steps completed by their action or marked complete in the period, by assignee."""
    return (
        "SELECT ActionCadenceTracker.OwnerId owner, COUNT(Id) n FROM ActionCadenceStepTracker "
        f"WHERE State = 'Completed' AND StepType IN ({_in(MANUAL_STEPS)}) "
        "AND CompletionReason IN ('AutomaticallyCompleted', 'ManuallyCompleted') "
        f"AND CompletionDate >= {p.start} AND CompletionDate < {p.end} "
        "GROUP BY ActionCadenceTracker.OwnerId"
    )


# --- building the tables ----------------------------------------------------------------------


def allowed(org: Org, session: accounts.Session) -> bool:
    """Administrators, and managers: users someone active reports to (User.ManagerId)."""
    if session.is_admin:
        return True
    found = org.query(
        session,
        f"SELECT COUNT() FROM User WHERE ManagerId = '{session.user_id}' AND IsActive = true",
        common.VERSION,
    )
    return int(found["totalSize"]) > 0


def _q(org: Org, session: accounts.Session, soql: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = org.query(session, soql, common.VERSION)["records"]
    return records


def rate(part: int, whole: int) -> str:
    """A percentage of the sends, one decimal; an em dash when nothing was sent."""
    return f"{100 * part / whole:.1f}%" if whole else "—"


@dataclass(slots=True)
class Dashboard:
    period: Period
    tables: dict[str, Table]
    #: per cadence: (name, total, [(label, count, percent of total)])
    funnels: list[tuple[str, int, list[tuple[str, int, float]]]]


def build(org: Org, session: accounts.Session, p: Period, now: datetime) -> Dashboard:
    at = _literal(now)
    cadences = {
        r["Id"]: r["Name"]
        for r in _q(org, session, "SELECT Id, Name FROM ActionCadence ORDER BY Name, Id")
    }
    steps = _q(
        org,
        session,
        "SELECT Id, ActionCadenceId, StepTitle, StepName, Type FROM ActionCadenceStep "
        "ORDER BY CreatedDate, Id",
    )
    order = {c: i for i, c in enumerate(cadences)}
    steps.sort(key=lambda s: order.get(s["ActionCadenceId"], len(order)))

    def step_label(s: dict[str, Any]) -> tuple[str, str]:
        return cadences.get(s["ActionCadenceId"], ""), s["StepTitle"] or s["StepName"] or ""

    # funnel: trackers by state and completion reason
    funnel = Table(
        "funnel", "Targets by state", ["Cadence", "State", "Completion reason", "Targets"]
    )
    by_cadence: dict[str, list[tuple[str, str, int]]] = {}
    for r in _q(org, session, funnel_soql(p)):
        by_cadence.setdefault(r["ActionCadenceId"], []).append(
            (r["State"], r["CompletionReason"] or "", int(r["n"]))
        )
    funnels = []
    rank = {s: i for i, s in enumerate((*ACTIVE_TRACKER_STATES, "Complete", "Error"))}
    for cadence_id in sorted(by_cadence, key=lambda c: order.get(c, len(order))):
        rows = sorted(by_cadence[cadence_id], key=lambda r: (rank.get(r[0], 99), r[1]))
        total = sum(n for _, _, n in rows)
        name = cadences.get(cadence_id, cadence_id)
        bars = [("Enrolled", total, 100.0)]
        for state, reason, n in rows:
            funnel.rows.append([name, state, reason, n])
            label = f"{state} · {reason}" if reason else state
            bars.append((label, n, 100 * n / total if total else 0.0))
        funnels.append((name, total, bars))

    # steps: completed / skipped in the period, overdue now
    done: dict[str, dict[str, int]] = {}
    for r in _q(org, session, completed_soql(p)):
        done.setdefault(r["ActionCadenceStepId"], {})[r["CompletionReason"] or ""] = int(r["n"])
    overdue = {r["ActionCadenceStepId"]: int(r["n"]) for r in _q(org, session, overdue_soql(at))}
    step_table = Table(
        "steps", "Steps", ["Cadence", "Step", "Type", "Completed", "Skipped", "Overdue now"]
    )
    for s in steps:
        if s["Type"] in SYSTEM_STEPS:
            continue
        reasons = done.get(s["Id"], {})
        completed = reasons.get("AutomaticallyCompleted", 0) + reasons.get("ManuallyCompleted", 0)
        step_table.rows.append(
            [*step_label(s), s["Type"], completed, reasons.get("ManuallySkipped", 0),
             overdue.get(s["Id"], 0)]
        )  # fmt: skip

    # calls and emails: the monthly metric rows of the period's months
    call_fields = [c for c, _ in CALL_RESULTS]
    email_fields = [c for c, _ in EMAIL_COUNTS]
    sums = {
        r["ActionCadenceStepId"]: r
        for r in _q(org, session, metrics_soql(p, call_fields + email_fields))
    }
    calls = Table("calls", "Calls by result", ["Cadence", "Step", *[h for _, h in CALL_RESULTS]])
    email_columns = ["Cadence", "Step"]
    for _, heading in EMAIL_COUNTS:
        email_columns.append(heading)
        if heading != "Sent":
            email_columns.append(f"{heading} rate")
    emails = Table("emails", "Emails", email_columns)
    for s in steps:
        row = sums.get(s["Id"], {})
        if s["Type"] == "MakeACall":
            calls.rows.append([*step_label(s), *[int(row.get(c) or 0) for c in call_fields]])
        if s["Type"] in EMAIL_STEPS:
            sent = int(row.get("AllEmailsSentCount") or 0)
            cells: list[Any] = [*step_label(s), sent]
            for counter in email_fields[1:]:
                n = int(row.get(counter) or 0)
                cells += [n, rate(n, sent)]
            emails.rows.append(cells)

    # reps: open and overdue steps now, completed in the period
    per_rep: dict[str, list[int]] = {}
    for column, soql in enumerate((rep_open_soql(), rep_open_soql(at), rep_done_soql(p))):
        for r in _q(org, session, soql):
            per_rep.setdefault(r["owner"], [0, 0, 0])[column] = int(r["n"])
    names = {}
    if per_rep:
        names = {
            r["Id"]: r["Name"]
            for r in _q(org, session, f"SELECT Id, Name FROM User WHERE Id IN ({_in(per_rep)})")
        }
    reps = Table("reps", "Reps", ["Rep", "Open steps", "Overdue steps", "Completed in period"])
    for owner in sorted(per_rep, key=lambda o: (names.get(o, o), o)):
        reps.rows.append([names.get(owner, owner), *per_rep[owner]])

    tables = {t.name: t for t in (funnel, step_table, calls, emails, reps)}
    return Dashboard(p, tables, funnels)


# --- the pages ---------------------------------------------------------------------------------


async def _load(request: Request) -> tuple[common.Signed | None, Any]:
    """(who, dashboard | error message | None (not allowed)) of a dashboard request."""
    org = common.org_of(request)
    who = await common.signed_in(request)
    if who is None:
        return None, None
    session, zone = who.session, who.zone

    def load() -> tuple[Dashboard | None, str | None]:
        if not allowed(org, session):
            return None, None
        now = org.store.clock.now()
        p, error = period_of(request.query_params, now.astimezone(zone).date(), zone)
        return build(org, session, p, now), error

    return who, await run_in_threadpool(load)


async def dashboard_page(request: Request) -> Response:
    who, loaded = await _load(request)
    if who is None:
        return common.to_login()
    board, error = loaded
    if board is None:
        return common.forbidden(who)
    return common.render(
        "dashboard.html",
        board=board,
        error=error,
        months=(board.period.first_month[:7], board.period.last_month[:7]),
        user_name=who.name,
        time_zone=who.session.time_zone,
        csrf=who.csrf,
    )


async def dashboard_csv(request: Request) -> Response:
    name = request.path_params["table"]
    who, loaded = await _load(request)
    if who is None:
        return common.to_login()
    board, _ = loaded
    if board is None:
        return common.forbidden(who)
    table = board.tables.get(name)
    if table is None:
        return Response("no such table", status_code=404, media_type="text/plain")
    p = board.period
    filename = f"dashboard-{name}-{p.first.isoformat()}-{p.last.isoformat()}.csv"
    return Response(
        table.csv(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )
