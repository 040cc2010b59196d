"""Metric counters: the SQL of ActionCadenceStep's counters, ActionCadence's target counts and
the ActionCdncStpMonthlyMetric rows.

Two halves, one owner:

- **increments** (``Counts``, ``write``): what one transaction adds, written in that
  transaction (the cadence runtime's batches, a logged call, an engagement event), so a
  counter is exactly as old as the events it counts;
- **recomputation** (``expected``, ``differences``, ``repair``): every counter derived again
  from history — step trackers (completions, skips, sends), the call log ``oc_metric_call``,
  the email outbox and its engagement events, the trackers — for ``opencadence metrics check``
  and the tests' state machine.

The counting rules (docs/runtime-decisions.md, "Metric counters") are written twice, once as
increments and once as SQL aggregates; the state machine checks that the two agree after every
step. A counter write sets SystemModstamp (as Salesforce's system recalculations do) but not
LastModifiedDate/ById, and emits no change event: the counters are maintained by the system,
not edited.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from opencadence.metadata.registry import Registry
from opencadence.metadata.sales_engagement import ACTIVE_TRACKER_STATES, STEP, TRACKER
from opencadence.storage import dialect, migrate, records, schema, values

Connection = sa.Connection
STEP_OBJECT = "ActionCadenceStep"
CADENCE = "ActionCadence"
MONTHLY = "ActionCdncStpMonthlyMetric"

#: call-result category (the runtime's call outcome; None: no category) -> counter field
CALL_FIELDS: Mapping[str | None, str] = {
    "CallMeaningfulConnect": "AllCallsMeaningfulConnect",
    "CallUnqualified": "AllCallsUnqualified",
    "CallLeftVoicemail": "AllCallsLeftVoicemail",
    "CallNotInterested": "AllCallsNotInterested",
    "CallCallBackLater": "AllCallsCallBackLater",
    None: "AllCallsUncategorized",
}
CADENCE_COUNTERS = ("ActiveTargets", "TotalTargets", "SuccessfulCompletions")
#: Tracker dispositions that make a completion successful (SuccessfulCompletions).
SUCCESS_DISPOSITIONS = frozenset({"Success"})
#: Step types whose action is sending an email (a completion by action is a send).
EMAIL_STEP_TYPES = ("AutoSendAnEmail", "SendAnEmail")

#: engagement kind -> (step counter of events, step counter of distinct emails)
_STEP_ENGAGEMENT: Mapping[str, tuple[str | None, str | None]] = {
    "open": ("AllEmailsOpenedCount", "UniqueEmailsOpenedCount"),
    "click": ("AllEmailsLinkClickedCount", "UniqueEmailsLinkClickedCount"),
    "reply": ("AllEmailsRepliedCount", "UniqueEmailsRepliedCount"),
    "out_of_office": (None, "AllEmailsOutOfOfficeCount"),
    "hard_bounce": (None, "AllEmailsHardBouncedCount"),
    "soft_bounce": (None, "AllEmailsSoftBouncedCount"),
}
#: engagement kind -> (monthly counters of events, monthly counters of distinct emails)
_MONTHLY_ENGAGEMENT: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "open": (("AllEmailsOpenedCount",), ("UniqueEmailsOpenedCount",)),
    "click": (("AllEmailsLinkClickedCount",), ("UniqueEmailsLinkClickedCount",)),
    "reply": (("AllEmailsRepliedCount",), ("UniqueEmailsRepliedCount", "RecipientReplies")),
    "out_of_office": ((), ("AllEmailsOutOfOfficeCount", "RecipientsOutOfOffice")),
    "hard_bounce": ((), ("AllEmailsHardBouncedCount", "RecipientsHardBounced")),
    "soft_bounce": ((), ("AllEmailsSoftBouncedCount", "RecipientsSoftBounced")),
}
ENGAGEMENT_KINDS = tuple(_STEP_ENGAGEMENT)
BOUNCES = ("hard_bounce", "soft_bounce")
#: monthly counters of every send / of sends through the relay / of tracked sends
_SENT_ALL = ("RecipientSends",)
_SENT_RELAY = (
    "ReplyTrackableSends",
    "ReplyTrackableRecipientSends",
    "HardBounceTrackableSends",
    "HrdBncTrackableRecipientSends",
    "SoftBounceTrackableSends",
    "SftBncTrackableRecipientSends",
    "OutOfOfficeTrackableSends",
    "OooTrackableRecipientSends",
)
_SENT_TRACKED = (
    "OpenTrackableSends",
    "OpenTrackableRecipientSends",
    "LinkClickTrackableSends",
    "LinkClkTrackableRecipientSends",
)

CALL_LOG = schema.METRIC_CALLS


def counters(registry: Registry, object_name: str) -> tuple[str, ...]:
    """The stored counter fields of ``object_name`` (int, not calculated), in field order."""
    if object_name == CADENCE:
        return CADENCE_COUNTERS
    out = []
    for f in registry.object(object_name).fields:
        if f.type != "int" or f.calculated or f.name == "MonthInt":
            continue
        if object_name == STEP_OBJECT and not f.name.startswith(("All", "Unique")):
            continue
        out.append(f.name)
    return tuple(out)


# -- time zone and months -----------------------------------------------------------------------


def org_time_zone(conn: Connection, meta: sa.MetaData) -> str:
    """The org's time zone (Organization.TimeZoneSidKey); GMT when unset or unknown."""
    org = meta.tables["Organization"]
    tz = conn.execute(sa.select(org.c.TimeZoneSidKey).where(org.c.Id == migrate.ORG_ID)).scalar()
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        return "GMT"
    return str(tz)


def month_int(at: datetime, tz: str) -> int:
    """yyyymm of the naive-UTC instant ``at`` in zone ``tz``."""
    local = at.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz))
    return local.year * 100 + local.month


def month_bounds(monthint: int, tz: str) -> tuple[datetime, datetime]:
    """The naive-UTC [start, end) of month ``monthint`` in zone ``tz``."""
    year, month = divmod(monthint, 100)
    nxt = (year + 1, 1) if month == 12 else (year, month + 1)
    zone, utc = ZoneInfo(tz), ZoneInfo("UTC")

    def at(y: int, m: int) -> datetime:
        return datetime(y, m, 1, tzinfo=zone).astimezone(utc).replace(tzinfo=None)

    return at(year, month), at(*nxt)


# -- increments -----------------------------------------------------------------------------------

MonthKey = tuple[str, str | None, int]  # (step id, template id, yyyymm)


@dataclass
class Counts:
    """What one transaction adds to the counters."""

    steps: dict[str, Counter[str]] = field(default_factory=dict)
    cadences: dict[str, Counter[str]] = field(default_factory=dict)
    monthly: dict[MonthKey, Counter[str]] = field(default_factory=dict)
    #: rows of the call log: (step tracker id, call-result category or None, when)
    calls: list[tuple[str, str | None, datetime]] = field(default_factory=list)

    def step(self, step_id: str, name: str, n: int = 1) -> None:
        self.steps.setdefault(step_id, Counter())[name] += n

    def cadence(self, cadence_id: str, name: str, n: int = 1) -> None:
        self.cadences.setdefault(cadence_id, Counter())[name] += n

    def month(self, key: MonthKey, names: Iterable[str], n: int = 1) -> None:
        names = tuple(names)
        if not names:
            return
        c = self.monthly.setdefault(key, Counter())
        for name in names:
            c[name] += n

    def __bool__(self) -> bool:
        return bool(self.steps or self.cadences or self.monthly or self.calls)


@dataclass(frozen=True, slots=True)
class StepTrackerFacts:
    """What counting needs to know of one step tracker."""

    step_id: str | None
    step_type: str | None
    due: datetime | None
    template_id: str | None
    relay: bool  # the email reached the relay (an outbox row marked sent)
    tracked: bool  # ... with open and click tracking


def step_tracker_facts(
    conn: Connection, meta: sa.MetaData, ids: Sequence[str]
) -> dict[str, StepTrackerFacts]:
    """Step id, type, due date, template (the email's, else the step's) and send facts."""
    st, step, ob = (
        meta.tables[STEP],
        meta.tables[STEP_OBJECT],
        meta.tables[schema.EMAIL_OUTBOX],
    )
    out: dict[str, StepTrackerFacts] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(
            sa.select(
                st.c.Id,
                st.c.ActionCadenceStepId,
                st.c.StepType,
                st.c.DueDateTime,
                _template(ob, step),
                ob.c.sent_at,
                ob.c.tracked,
            )
            .select_from(_step_join(st, step, ob))
            .where(st.c.Id.in_(chunk))
        )
        for sid, step_id, typ, due, tmpl, sent_at, tracked in rows:
            relay = sent_at is not None
            out[sid] = StepTrackerFacts(step_id, typ, due, tmpl, relay, relay and bool(tracked))
    return out


def tracker_facts(
    conn: Connection, meta: sa.MetaData, ids: Sequence[str]
) -> dict[str, tuple[str, str, str | None]]:
    """tracker id -> (cadence id, State, CompletionDisposition)."""
    t = meta.tables[TRACKER]
    out: dict[str, tuple[str, str, str | None]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(
            sa.select(t.c.Id, t.c.ActionCadenceId, t.c.State, t.c.CompletionDisposition).where(
                t.c.Id.in_(chunk)
            )
        )
        for tid, cad, state, disposition in rows:
            out[tid] = (cad, state, disposition)
    return out


def tracker_weight(state: str | None, disposition: str | None) -> tuple[int, int]:
    """(counts as active, counts as a successful completion) of a tracker's values."""
    active = int(state in ACTIVE_TRACKER_STATES)
    success = int(state == "Complete" and disposition in SUCCESS_DISPOSITIONS)
    return active, success


def count_completion(
    counts: Counts,
    facts: StepTrackerFacts,
    step_tracker_id: str,
    reason: str | None,
    action_at: datetime | None,
    due: datetime | None,
    tz: str,
    call: tuple[str | None] | None = None,
) -> None:
    """A step tracker completed with ``reason``, its action taken at ``action_at`` (None: no
    action); ``call`` is the logged call that completed it (its category)."""
    step_id = facts.step_id
    if step_id is None:
        return
    if reason == "ManuallySkipped":
        counts.step(step_id, "AllSkippedCount")
        return
    if reason == "ManuallyCompleted":
        counts.step(step_id, "AllManuallyCompletedCount")
        return
    if reason != "AutomaticallyCompleted" or action_at is None:
        return
    on_time = due is None or action_at <= due
    counts.step(step_id, "AllOnTimeCompletedCount" if on_time else "AllOverdueCompletedCount")
    key = (step_id, facts.template_id, month_int(action_at, tz))
    if call is not None and facts.step_type == "MakeACall":
        name = CALL_FIELDS.get(call[0], "AllCallsUncategorized")
        counts.step(step_id, name)
        counts.month(key, (name,))
        counts.calls.append((step_tracker_id, call[0], action_at))
    if facts.step_type in EMAIL_STEP_TYPES:
        sent = "AllEmailsTrackedSentCount" if facts.tracked else "AllEmailsUntrackedSentCount"
        counts.step(step_id, "AllEmailsSentCount")
        counts.step(step_id, sent)
        counts.month(key, (sent, *_SENT_ALL))
        if facts.relay:
            counts.month(key, _SENT_RELAY)
        if facts.tracked:
            counts.month(key, _SENT_TRACKED)


def count_engagement(
    conn: Connection, meta: sa.MetaData, counts: Counts, key: str, kind: str, at: datetime, tz: str
) -> None:
    """An engagement event of the email ``key`` (already in the event log) at ``at``.

    The step's row is locked first, so concurrent events of one email see each other's
    rows when they ask whether theirs is the email's first of its kind."""
    if kind not in _STEP_ENGAGEMENT:
        return
    step, ob = meta.tables[STEP_OBJECT], meta.tables[schema.EMAIL_OUTBOX]
    found = conn.execute(
        sa.select(ob.c.step_id, sa.func.coalesce(ob.c.template_id, step.c.TemplateId))
        .select_from(ob.outerjoin(step, step.c.Id == ob.c.step_id))
        .where(ob.c.key == key)
    ).first()
    if found is None or found[0] is None:
        return
    step_id, template = str(found[0]), found[1]
    lock = sa.select(step.c.Id).where(step.c.Id == step_id)
    conn.execute(dialect.for_update(lock, conn))
    month = month_int(at, tz)
    start, end = month_bounds(month, tz)
    ev = meta.tables[schema.EMAIL_EVENTS]

    def seen(kinds: Sequence[str], lo: datetime | None = None, hi: datetime | None = None) -> int:
        q = sa.select(sa.func.count()).where(ev.c.key == key, ev.c.kind.in_(kinds))
        if lo is not None and hi is not None:
            q = q.where(ev.c.at >= lo, ev.c.at < hi)
        return int(conn.execute(q).scalar_one())

    every, distinct = _STEP_ENGAGEMENT[kind]
    if every is not None:
        counts.step(step_id, every)
    if distinct is not None and seen([kind]) == 1:
        counts.step(step_id, distinct)
    m_every, m_distinct = _MONTHLY_ENGAGEMENT[kind]
    mkey = (step_id, template, month)
    counts.month(mkey, m_every)
    if seen([kind], start, end) == 1:
        counts.month(mkey, m_distinct)
    if kind in BOUNCES and seen(BOUNCES, start, end) == 1:
        counts.month(mkey, ("AllEmailsNotDeliveredCount",))


def write(
    conn: Connection,
    meta: sa.MetaData,
    registry: Registry,
    counts: Counts,
    now: datetime,
    insert_monthly: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Add ``counts`` to the stored counters (cadences first, then steps, each in Id order,
    so concurrent writers lock shared rows in one order); monthly rows missing are created
    through ``insert_monthly`` (the transaction's system insert)."""
    for name, deltas in ((CADENCE, counts.cadences), (STEP_OBJECT, counts.steps)):
        if deltas:
            _add(conn, meta.tables[name], counters(registry, name), deltas, now)
    if counts.calls:
        conn.execute(
            meta.tables[CALL_LOG].insert(),
            [{"step_tracker_id": s, "category": c, "at": a} for s, c, a in counts.calls],
        )
    if counts.monthly:
        _add_monthly(conn, meta, registry, counts.monthly, now, insert_monthly)


def _add(
    conn: Connection,
    table: sa.Table,
    names: Sequence[str],
    deltas: Mapping[str, Counter[str]],
    now: datetime,
) -> None:
    stmt = (
        table.update()
        .where(table.c.Id == sa.bindparam("p_id"))
        .values(
            {
                n: sa.func.coalesce(table.c[n], dialect.inline_int(0))
                + sa.bindparam("d_" + n, type_=sa.Integer())
                for n in names
            }
            | {"SystemModstamp": sa.bindparam("p_now", type_=sa.DateTime())}
        )
    )
    params = [
        {"p_id": rid, "p_now": now, **{"d_" + n: c.get(n, 0) for n in names}}
        for rid, c in sorted(deltas.items())
    ]
    conn.execute(stmt, params)


def _month_rows(
    conn: Connection, meta: sa.MetaData, steps: Sequence[str], months: Sequence[int] | None
) -> dict[MonthKey, dict[str, Any]]:
    m = meta.tables[MONTHLY]
    out: dict[MonthKey, dict[str, Any]] = {}
    for chunk in _chunks(steps):
        q = sa.select(m).where(m.c.ActionCadenceStepId.in_(chunk), m.c.IsDeleted == sa.false())
        if months is not None:
            q = q.where(m.c.MonthInt.in_(months))
        for row in conn.execute(q).mappings():
            out[(row["ActionCadenceStepId"], row["TemplateId"], row["MonthInt"])] = dict(row)
    return out


def _monthly_record(
    key: MonthKey, values: Mapping[str, int], names: Sequence[str]
) -> dict[str, Any]:
    step_id, template, monthint = key
    year, month = divmod(monthint, 100)
    return {
        "ActionCadenceStepId": step_id,
        "TemplateId": template,
        "HasTemplateAssigned": template is not None,
        "IsCompoundMetric": False,
        "Month": date(year, month, 1),
        "MonthInt": monthint,
        **{n: int(values.get(n, 0)) for n in names},
    }


def _add_monthly(
    conn: Connection,
    meta: sa.MetaData,
    registry: Registry,
    deltas: Mapping[MonthKey, Counter[str]],
    now: datetime,
    insert_monthly: Callable[[list[dict[str, Any]]], None],
) -> None:
    names = counters(registry, MONTHLY)
    existing = _month_rows(
        conn, meta, sorted({k[0] for k in deltas}), sorted({k[2] for k in deltas})
    )
    updates = {existing[k]["Id"]: c for k, c in deltas.items() if k in existing}
    if updates:
        _add(conn, meta.tables[MONTHLY], names, updates, now)
    new = [
        _monthly_record(k, c, names)
        for k, c in sorted(deltas.items(), key=_key_order)
        if k not in existing
    ]
    if new:
        insert_monthly(new)


def _key_order(item: tuple[MonthKey, Any]) -> tuple[str, str, int]:
    return _month_order(item[0])


def _month_order(key: MonthKey) -> tuple[str, str, int]:
    return key[0], key[1] or "", key[2]


def write_tx(tx: records.Tx, counts: Counts) -> None:
    """``write`` in ``tx`` (new monthly rows through ``Tx.insert_many``)."""
    if not counts:
        return
    store = tx.store
    write(
        tx.conn,
        store.meta,
        store.registry,
        counts,
        values.to_db_datetime(store.clock.now()),
        lambda rows: _insert_monthly(tx, rows),
    )


def _insert_monthly(tx: records.Tx, rows: list[dict[str, Any]]) -> None:
    tx.insert_many(MONTHLY, rows, system=True)


def check_tx(tx: records.Tx, progress: Callable[[str], None] | None = None) -> list[Difference]:
    """``differences`` in ``tx``, in the org's time zone."""
    store = tx.store
    tz = org_time_zone(tx.conn, store.meta)
    return differences(tx.conn, store.meta, store.registry, tz, progress)


def repair_tx(tx: records.Tx, found: Sequence[Difference]) -> int:
    """``repair`` in ``tx``."""
    store = tx.store
    now = values.to_db_datetime(store.clock.now())
    return repair(
        tx.conn, store.meta, store.registry, found, now, lambda rows: _insert_monthly(tx, rows)
    )


# -- recomputation --------------------------------------------------------------------------------


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _step_join(st: sa.Table, step: sa.Table, ob: sa.Table) -> Any:
    return st.outerjoin(step, step.c.Id == st.c.ActionCadenceStepId).outerjoin(
        ob, ob.c.key == st.c.Id
    )


def _template(ob: sa.Table, step: sa.Table) -> Any:
    return sa.func.coalesce(ob.c.template_id, step.c.TemplateId, type_=sa.String()).label("tmpl")


def _monthint(expr: Any, tz: str) -> Any:
    local = dialect.to_local(expr, tz)
    return (dialect.date_part("year", local) * dialect.inline_int(100)) + dialect.date_part(
        "month", local
    )


def _when(cond: Any) -> Any:
    return sa.func.sum(sa.case((cond, dialect.inline_int(1)), else_=dialect.inline_int(0)))


@dataclass
class Expected:
    """Every counter as history says it should be (absent: 0)."""

    steps: dict[str, Counter[str]] = field(default_factory=dict)
    cadences: dict[str, Counter[str]] = field(default_factory=dict)
    monthly: dict[MonthKey, Counter[str]] = field(default_factory=dict)


def expected(
    conn: Connection, meta: sa.MetaData, tz: str, progress: Callable[[str], None] | None = None
) -> Expected:
    """Recompute every counter from history (docs/runtime-decisions.md, "Metric counters")."""
    note = progress or (lambda _label: None)
    out = Expected()
    note("step trackers")
    _completions(conn, meta, tz, out)
    note("calls")
    _calls(conn, meta, tz, out)
    note("email engagement")
    _engagement(conn, meta, tz, out)
    note("trackers")
    _trackers(conn, meta, out)
    return out


def _completions(conn: Connection, meta: sa.MetaData, tz: str, out: Expected) -> None:
    st, step, ob = meta.tables[STEP], meta.tables[STEP_OBJECT], meta.tables[schema.EMAIL_OUTBOX]
    done = st.c.State == "Completed"
    acted = sa.and_(
        done,
        st.c.CompletionReason == "AutomaticallyCompleted",
        st.c.ActionTakenDateTime.is_not(None),
    )
    on_time = sa.or_(st.c.DueDateTime.is_(None), st.c.ActionTakenDateTime <= st.c.DueDateTime)
    rows = conn.execute(
        sa.select(
            st.c.ActionCadenceStepId,
            _when(sa.and_(done, st.c.CompletionReason == "ManuallySkipped")),
            _when(sa.and_(done, st.c.CompletionReason == "ManuallyCompleted")),
            _when(sa.and_(acted, on_time)),
            _when(sa.and_(acted, sa.not_(on_time))),
        )
        .where(st.c.ActionCadenceStepId.is_not(None))
        .group_by(st.c.ActionCadenceStepId)
    )
    for step_id, skipped, manual, on, late in rows:
        c = out.steps.setdefault(step_id, Counter())
        c.update(
            AllSkippedCount=int(skipped or 0),
            AllManuallyCompletedCount=int(manual or 0),
            AllOnTimeCompletedCount=int(on or 0),
            AllOverdueCompletedCount=int(late or 0),
        )
    sent = sa.and_(acted, st.c.StepType.in_(EMAIL_STEP_TYPES))
    relay = ob.c.sent_at.is_not(None)
    tracked = sa.and_(relay, ob.c.tracked == sa.true())
    month = _monthint(st.c.ActionTakenDateTime, tz).label("m")
    tmpl = _template(ob, step)
    rows = conn.execute(
        sa.select(
            st.c.ActionCadenceStepId,
            tmpl,
            month,
            sa.func.count(),
            _when(relay),
            _when(tracked),
        )
        .select_from(_step_join(st, step, ob))
        .where(sent, st.c.ActionCadenceStepId.is_not(None))
        .group_by(st.c.ActionCadenceStepId, tmpl, month)
    )
    for r in rows:
        step_id, template, m, count, relayed, tracked_n = tuple(r)
        n, n_relay, n_tracked = int(count), int(relayed or 0), int(tracked_n or 0)
        c = out.steps.setdefault(step_id, Counter())
        c.update(
            AllEmailsSentCount=n,
            AllEmailsTrackedSentCount=n_tracked,
            AllEmailsUntrackedSentCount=n - n_tracked,
        )
        mc = out.monthly.setdefault((step_id, template, int(m)), Counter())
        mc.update(AllEmailsTrackedSentCount=n_tracked, AllEmailsUntrackedSentCount=n - n_tracked)
        mc.update({f: n for f in _SENT_ALL})
        mc.update({f: n_relay for f in _SENT_RELAY})
        mc.update({f: n_tracked for f in _SENT_TRACKED})


def _calls(conn: Connection, meta: sa.MetaData, tz: str, out: Expected) -> None:
    calls, st = meta.tables[CALL_LOG], meta.tables[STEP]
    step, ob = meta.tables[STEP_OBJECT], meta.tables[schema.EMAIL_OUTBOX]
    tmpl = _template(ob, step)
    month = _monthint(calls.c.at, tz).label("m")
    rows = conn.execute(
        sa.select(st.c.ActionCadenceStepId, tmpl, month, calls.c.category, sa.func.count())
        .select_from(
            calls.join(st, st.c.Id == calls.c.step_tracker_id)
            .outerjoin(step, step.c.Id == st.c.ActionCadenceStepId)
            .outerjoin(ob, ob.c.key == st.c.Id)
        )
        .group_by(st.c.ActionCadenceStepId, tmpl, month, calls.c.category)
    )
    for step_id, template, m, category, n in rows:
        name = CALL_FIELDS.get(category, "AllCallsUncategorized")
        out.steps.setdefault(step_id, Counter())[name] += int(n)
        out.monthly.setdefault((step_id, template, int(m)), Counter())[name] += int(n)


def _engagement(conn: Connection, meta: sa.MetaData, tz: str, out: Expected) -> None:
    ev, ob, step = (
        meta.tables[schema.EMAIL_EVENTS],
        meta.tables[schema.EMAIL_OUTBOX],
        meta.tables[STEP_OBJECT],
    )
    src = ev.join(ob, ob.c.key == ev.c.key).outerjoin(step, step.c.Id == ob.c.step_id)
    kinds = ev.c.kind.in_(ENGAGEMENT_KINDS)
    rows = conn.execute(
        sa.select(ob.c.step_id, ev.c.kind, sa.func.count(), sa.func.count(sa.distinct(ev.c.key)))
        .select_from(src)
        .where(kinds, ob.c.step_id.is_not(None))
        .group_by(ob.c.step_id, ev.c.kind)
    )
    for step_id, kind, n, distinct in rows:
        every, unique = _STEP_ENGAGEMENT[kind]
        c = out.steps.setdefault(step_id, Counter())
        if every is not None:
            c[every] += int(n)
        if unique is not None:
            c[unique] += int(distinct)
    tmpl = sa.func.coalesce(ob.c.template_id, step.c.TemplateId, type_=sa.String()).label("tmpl")
    month = _monthint(ev.c.at, tz).label("m")
    rows = conn.execute(
        sa.select(
            ob.c.step_id,
            tmpl,
            month,
            ev.c.kind,
            sa.func.count(),
            sa.func.count(sa.distinct(ev.c.key)),
        )
        .select_from(src)
        .where(kinds, ob.c.step_id.is_not(None))
        .group_by(ob.c.step_id, tmpl, month, ev.c.kind)
    )
    for step_id, template, m, kind, n, distinct in rows:
        m_every, m_distinct = _MONTHLY_ENGAGEMENT[kind]
        mc = out.monthly.setdefault((step_id, template, int(m)), Counter())
        mc.update({f: int(n) for f in m_every})
        mc.update({f: int(distinct) for f in m_distinct})
    rows = conn.execute(
        sa.select(ob.c.step_id, tmpl, month, sa.func.count(sa.distinct(ev.c.key)))
        .select_from(src)
        .where(ev.c.kind.in_(BOUNCES), ob.c.step_id.is_not(None))
        .group_by(ob.c.step_id, tmpl, month)
    )
    for step_id, template, m, distinct in rows:
        key = (step_id, template, int(m))
        out.monthly.setdefault(key, Counter())["AllEmailsNotDeliveredCount"] += int(distinct)


def _trackers(conn: Connection, meta: sa.MetaData, out: Expected) -> None:
    t = meta.tables[TRACKER]
    active = sa.and_(t.c.State.in_(sorted(ACTIVE_TRACKER_STATES)), t.c.IsDeleted == sa.false())
    success = sa.and_(
        t.c.State == "Complete", t.c.CompletionDisposition.in_(sorted(SUCCESS_DISPOSITIONS))
    )
    rows = conn.execute(
        sa.select(t.c.ActionCadenceId, sa.func.count(), _when(active), _when(success)).group_by(
            t.c.ActionCadenceId
        )
    )
    for cadence_id, total, n_active, n_success in rows:
        out.cadences[cadence_id] = Counter(
            TotalTargets=int(total),
            ActiveTargets=int(n_active or 0),
            SuccessfulCompletions=int(n_success or 0),
        )


# -- comparing and repairing ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """A stored counter that history disagrees with (``record_id`` None: a missing monthly
    row, named by ``key``)."""

    object: str
    record_id: str | None
    field: str
    stored: int | None
    expected: int
    key: MonthKey | None = None

    def describe(self) -> str:
        where = self.record_id or (
            f"(missing: step {self.key[0]}, template {self.key[1]}, month {self.key[2]})"
            if self.key
            else "?"
        )
        return f"{self.object} {where} {self.field}: stored {self.stored}, expected {self.expected}"


def differences(
    conn: Connection,
    meta: sa.MetaData,
    registry: Registry,
    tz: str,
    progress: Callable[[str], None] | None = None,
) -> list[Difference]:
    """Every stored counter that differs from its recomputation. A counter never written
    (null) equals 0."""
    want = expected(conn, meta, tz, progress)
    note = progress or (lambda _label: None)
    found: list[Difference] = []
    for name, wanted in ((STEP_OBJECT, want.steps), (CADENCE, want.cadences)):
        note(f"comparing {name}")
        table, names = meta.tables[name], counters(registry, name)
        rows = conn.execute(
            sa.select(table.c.Id, *[table.c[n] for n in names]).order_by(table.c.Id)
        )
        for rid, *stored in rows:
            exp = wanted.get(rid, Counter())
            for n, value in zip(names, stored):
                if (value or 0) != exp.get(n, 0):
                    found.append(Difference(name, rid, n, value, exp.get(n, 0)))
    note(f"comparing {MONTHLY}")
    names = counters(registry, MONTHLY)
    m = meta.tables[MONTHLY]
    stored_rows = {
        (r["ActionCadenceStepId"], r["TemplateId"], r["MonthInt"]): dict(r)
        for r in conn.execute(sa.select(m).where(m.c.IsDeleted == sa.false())).mappings()
    }
    live_steps = set(conn.execute(sa.select(meta.tables[STEP_OBJECT].c.Id)).scalars())
    for key in sorted(set(want.monthly) | set(stored_rows), key=_month_order):
        if key[0] not in live_steps:
            continue  # a step deleted for good takes its monthly rows with it
        exp = want.monthly.get(key, Counter())
        row = stored_rows.get(key)
        for n in names:
            value = None if row is None else row[n]
            if (value or 0) != exp.get(n, 0):
                rid = None if row is None else row["Id"]
                found.append(Difference(MONTHLY, rid, n, value, exp.get(n, 0), key))
    return found


def repair(
    conn: Connection,
    meta: sa.MetaData,
    registry: Registry,
    found: Sequence[Difference],
    now: datetime,
    insert_monthly: Callable[[list[dict[str, Any]]], None],
) -> int:
    """Set every counter of ``found`` to its expected value; returns the records changed."""
    by_record: dict[tuple[str, str], dict[str, int]] = {}
    missing: dict[MonthKey, dict[str, int]] = {}
    for d in found:
        if d.record_id is None:
            assert d.key is not None
            missing.setdefault(d.key, {})
            if d.field != "MonthInt":
                missing[d.key][d.field] = d.expected
        else:
            by_record.setdefault((d.object, d.record_id), {})[d.field] = d.expected
    for (name, rid), fixed in sorted(by_record.items()):
        table = meta.tables[name]
        conn.execute(
            table.update().where(table.c.Id == rid).values({**fixed, "SystemModstamp": now})
        )
    if missing:
        names = counters(registry, MONTHLY)
        insert_monthly(
            [_monthly_record(k, v, names) for k, v in sorted(missing.items(), key=_key_order)]
        )
    return len(by_record) + len(missing)


def zero_counters(conn: Connection, meta: sa.MetaData, registry: Registry, cadence_id: str) -> None:
    """Counters of a cadence and its steps read 0 from activation, not null (a counter
    already counted keeps its value)."""
    for name, key in ((CADENCE, "Id"), (STEP_OBJECT, "ActionCadenceId")):
        table = meta.tables[name]
        names = counters(registry, name)
        conn.execute(
            table.update()
            .where(table.c[key] == cadence_id)
            .values({n: sa.func.coalesce(table.c[n], dialect.inline_int(0)) for n in names})
        )
