"""The cadence runtime's SQL: definitions, lookups, tracker situations, claims, run state.

Everything here returns plain rows (dicts, tuples, ids); ``opencadence.cadence`` builds its
graphs and situations from them, so storage never imports the layer above it.

The run-state table ``oc_cadence_run`` (one row per active tracker, ``due_at`` indexed) holds
the next wake-up; workers claim due rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(SQLite has one writer), in the transaction that applies the transition, so a crash between
claim and commit loses and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opencadence import errors, ids
from opencadence.metadata.sales_engagement import OPEN_STATES, STEP, TRACKER
from opencadence.storage import dialect, records, schema

BUILDER = (
    "ActionCadenceStep",
    "ActionCadenceRule",
    "ActionCadenceRuleCondition",
    "ActionCadenceStepVariant",
)
#: Ids per IN list (well under SQLite's variable limit).
CHUNK = 500
#: The run-state columns ``run_states`` returns (``signals`` as a set).
RUN_STATE = (
    "tracker_id",
    "due_at",
    "call_outcome",
    "signals",
    "paused_at",
    "paused_state",
    "held_due_at",
)

Row = dict[str, Any]


@dataclass(frozen=True)
class DefinitionRows:
    """The non-deleted builder rows of one cadence."""

    head: Row
    steps: list[Row]
    rules: list[Row]
    conditions: list[Row]
    variants: list[Row]


def _dicts(result: Any) -> list[Row]:
    keys = list(result.keys())
    return [dict(zip(keys, row)) for row in result]


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


class RunChanges:
    """Run-state changes of one batch, merged per tracker: a row inserted and updated in the
    same batch is inserted with both; a delete drops a pending insert."""

    def __init__(self) -> None:
        self.deletes: list[dict[str, Any]] = []
        self.inserts: dict[str, Row] = {}
        self.updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def insert(self, tracker_id: str, fields: Mapping[str, Any]) -> None:
        self.inserts.setdefault(tracker_id, {"tracker_id": tracker_id}).update(_stored(fields))

    def update(self, tracker_id: str, fields: Mapping[str, Any]) -> None:
        if tracker_id in self.inserts:
            self.insert(tracker_id, fields)
            return
        stored = _stored(fields)
        self.updates.setdefault(tuple(sorted(stored)), []).append(
            {"p_id": tracker_id, **{f"v_{k}": v for k, v in stored.items()}}
        )

    def delete(self, tracker_id: str) -> None:
        self.inserts.pop(tracker_id, None)
        self.deletes.append({"p_id": tracker_id})


def _stored(fields: Mapping[str, Any]) -> Row:
    """Run-state values as stored: a set of signals is a comma-separated list."""
    return {k: (",".join(sorted(v)) if isinstance(v, frozenset) else v) for k, v in fields.items()}


class RunStore:
    """The cadence runtime's reads and run-state writes on one ``records.Store``."""

    def __init__(self, store: records.Store) -> None:
        self.store = store
        self.run = store.meta.tables[schema.CADENCE_RUN]

    def table(self, name: str) -> sa.Table:
        return self.store.meta.tables[name]

    # -- definitions ------------------------------------------------------------------------

    def _rows(self, conn: sa.Connection, stmt: Any) -> list[Row]:
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def definition(self, conn: sa.Connection, cadence_id: str) -> DefinitionRows:
        """The rows of one cadence's graph (live and detached steps), read in ``conn``."""
        cad, step, rule, cond, var = (self.table(n) for n in ("ActionCadence",) + BUILDER)
        row = (
            conn.execute(
                sa.select(cad).where(cad.c.Id == cadence_id, cad.c.IsDeleted == sa.false())
            )
            .mappings()
            .first()
        )
        if row is None:
            raise errors.NotFound(f"No cadence with Id {cadence_id}")
        live = sa.and_(step.c.ActionCadenceId == cadence_id, step.c.IsDeleted == sa.false())
        steps = self._rows(conn, sa.select(step).where(live))
        step_ids = sa.select(step.c.Id).where(live)
        rules = self._rows(
            conn,
            sa.select(rule).where(
                rule.c.ActionCadenceStepId.in_(step_ids), rule.c.IsDeleted == sa.false()
            ),
        )
        rule_ids = sa.select(rule.c.Id).where(
            rule.c.ActionCadenceStepId.in_(step_ids), rule.c.IsDeleted == sa.false()
        )
        conds = self._rows(
            conn,
            sa.select(cond).where(
                cond.c.ActionCadenceRuleId.in_(rule_ids), cond.c.IsDeleted == sa.false()
            ),
        )
        variants = self._rows(
            conn,
            sa.select(var).where(
                var.c.ActionCadenceStepId.in_(step_ids), var.c.IsDeleted == sa.false()
            ),
        )
        return DefinitionRows(dict(row), steps, rules, conds, variants)

    def find_cadence(self, conn: sa.Connection, name_or_id: str) -> str | None:
        """The Id of a (non-deleted) cadence named or identified by ``name_or_id``."""
        cad = self.table("ActionCadence")
        cond = cad.c.Name == name_or_id
        if ids.is_valid(name_or_id) and self.store.registry.is_id_of(name_or_id, "ActionCadence"):
            cond = sa.or_(cond, cad.c.Id == ids.parse(name_or_id))
        return conn.execute(
            sa.select(cad.c.Id).where(cond, cad.c.IsDeleted == sa.false()).limit(1)
        ).scalar()

    # -- builder and lookups -----------------------------------------------------------------

    def step_graph_fields(self, conn: sa.Connection, cadence_id: str) -> list[tuple[Any, ...]]:
        """(Id, RootStepId, TypeDetail, Type) of a cadence's non-deleted steps."""
        t = self.table("ActionCadenceStep")
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(t.c.Id, t.c.RootStepId, t.c.TypeDetail, t.c.Type).where(
                    t.c.ActionCadenceId == cadence_id, t.c.IsDeleted == sa.false()
                )
            )
        ]

    def trackers_on_step(self, conn: sa.Connection, step_id: str) -> list[str]:
        """Trackers whose open step tracker runs builder step ``step_id``."""
        st = self.table(STEP)
        stmt = sa.select(st.c.ActionCadenceTrackerId).where(
            st.c.ActionCadenceStepId == step_id, st.c.State.in_(sorted(OPEN_STATES))
        )
        return sorted(set(conn.execute(stmt).scalars()))

    def latest_completed(
        self, conn: sa.Connection, tracker_id: str, step_types: Collection[str]
    ) -> str | None:
        """The tracker's most recently completed step tracker of one of ``step_types``."""
        st = self.table(STEP)
        return conn.execute(
            sa.select(st.c.Id)
            .where(
                st.c.ActionCadenceTrackerId == tracker_id,
                st.c.StepType.in_(sorted(step_types)),
                st.c.State == "Completed",
            )
            .order_by(st.c.CompletionDate.desc(), st.c.CreatedDate.desc())
            .limit(1)
        ).scalar()

    def existing(
        self, conn: sa.Connection, obj: str, record_ids: Sequence[str], active_users: bool = False
    ) -> set[str]:
        """Which of ``record_ids`` are non-deleted ``obj`` records (active ones for User)."""
        t = self.table(obj)
        found: set[str] = set()
        for part in _chunks(sorted(set(record_ids))):
            stmt = sa.select(t.c.Id).where(t.c.Id.in_(part), t.c.IsDeleted == sa.false())
            if active_users:
                stmt = stmt.where(t.c.IsActive == sa.true())
            found |= set(conn.execute(stmt).scalars())
        return found

    def trackers_of_steps(
        self, conn: sa.Connection, step_tracker_ids: Sequence[str]
    ) -> dict[str, str]:
        """step tracker id -> its tracker id."""
        st = self.table(STEP)
        out: dict[str, str] = {}
        for part in _chunks(sorted(set(step_tracker_ids))):
            out.update(
                {
                    sid: tid
                    for sid, tid in conn.execute(
                        sa.select(st.c.Id, st.c.ActionCadenceTrackerId).where(st.c.Id.in_(part))
                    )
                }
            )
        return out

    def step_of(self, conn: sa.Connection, step_tracker_id: str) -> tuple[str, str] | None:
        """(ActionCadenceId, ActionCadenceStepId) of a step tracker."""
        st = self.table(STEP)
        row = conn.execute(
            sa.select(st.c.ActionCadenceId, st.c.ActionCadenceStepId).where(
                st.c.Id == step_tracker_id
            )
        ).first()
        return None if row is None else (row[0], row[1])

    def builder_rows(self, conn: sa.Connection, cadence_id: str) -> dict[str, Any]:
        """A cadence's rows for export: head, live steps, rules, conditions, variants and
        the names of chained cadences."""
        cad, step, rule, cond, var = (self.table(n) for n in ("ActionCadence",) + BUILDER)
        head = conn.execute(sa.select(cad).where(cad.c.Id == cadence_id)).mappings().one()
        live = sa.and_(
            step.c.ActionCadenceId == cadence_id,
            step.c.IsDeleted == sa.false(),
            step.c.GraphState.in_(["Included", "Pending"]),
        )
        steps = _dicts(conn.execute(sa.select(step).where(live).order_by(step.c.StepName)))
        ids_ = [s["Id"] for s in steps]
        rules = _dicts(
            conn.execute(
                sa.select(rule)
                .where(rule.c.ActionCadenceStepId.in_(ids_), rule.c.IsDeleted == sa.false())
                .order_by(rule.c.RuleName)
            )
        )
        conds = _dicts(
            conn.execute(
                sa.select(cond)
                .where(
                    cond.c.ActionCadenceRuleId.in_([r["Id"] for r in rules]),
                    cond.c.IsDeleted == sa.false(),
                )
                .order_by(cond.c.RuleConditionName)
            )
        )
        variants = _dicts(
            conn.execute(
                sa.select(var)
                .where(var.c.ActionCadenceStepId.in_(ids_), var.c.IsDeleted == sa.false())
                .order_by(var.c.SplitPercentage.desc(), var.c.TemplateId)
            )
        )
        chained = [s["ChainedCadenceId"] for s in steps if s["ChainedCadenceId"]]
        names = dict(
            tuple(r)
            for r in conn.execute(sa.select(cad.c.Id, cad.c.Name).where(cad.c.Id.in_(chained)))
        )
        return {
            "head": dict(head),
            "steps": steps,
            "rules": rules,
            "conditions": conds,
            "variants": variants,
            "chained_names": names,
        }

    def time_zones(self, conn: sa.Connection, user_ids: Sequence[str]) -> dict[str, str | None]:
        """User id -> TimeZoneSidKey, for the users that exist."""
        users = self.table("User")
        out: dict[str, str | None] = {}
        for part in _chunks(user_ids):
            for uid, tz in conn.execute(
                sa.select(users.c.Id, users.c.TimeZoneSidKey).where(users.c.Id.in_(part))
            ):
                out[uid] = tz
        return out

    # -- situations -------------------------------------------------------------------------

    def lock(self, conn: sa.Connection, tracker_ids: Sequence[str]) -> None:
        """Take the run-state row locks of trackers an action is about to change."""
        if dialect.supports_row_locks(conn) and tracker_ids:
            for part in _chunks(sorted(tracker_ids)):
                stmt = sa.select(self.run.c.tracker_id).where(self.run.c.tracker_id.in_(part))
                conn.execute(dialect.for_update(stmt, conn))

    def trackers(self, conn: sa.Connection, tracker_ids: Sequence[str]) -> dict[str, Row]:
        """Non-deleted ActionCadenceTracker rows by Id."""
        tr = self.table(TRACKER)
        out: dict[str, Row] = {}
        for part in _chunks(tracker_ids):
            for row in _dicts(
                conn.execute(sa.select(tr).where(tr.c.Id.in_(part), tr.c.IsDeleted == sa.false()))
            ):
                out[row["Id"]] = row
        return out

    def run_states(self, conn: sa.Connection, tracker_ids: Sequence[str]) -> dict[str, Row]:
        """Run-state rows (RUN_STATE columns, ``signals`` a frozenset) by tracker id."""
        run = self.run
        out: dict[str, Row] = {}
        for part in _chunks(tracker_ids):
            for r in conn.execute(
                sa.select(*(run.c[c] for c in RUN_STATE)).where(run.c.tracker_id.in_(part))
            ):
                row = dict(zip(RUN_STATE, r))
                row["signals"] = frozenset(s for s in (r.signals or "").split(",") if s)
                out[r.tracker_id] = row
        return out

    def step_trackers(self, conn: sa.Connection, step_tracker_ids: Sequence[str]) -> dict[str, Row]:
        """ActionCadenceStepTracker rows by Id."""
        st = self.table(STEP)
        out: dict[str, Row] = {}
        for part in _chunks(step_tracker_ids):
            for row in _dicts(conn.execute(sa.select(st).where(st.c.Id.in_(part)))):
                out[row["Id"]] = row
        return out

    def step_counts(
        self, conn: sa.Connection, tracker_ids: Sequence[str]
    ) -> list[tuple[str, str, int]]:
        """(tracker id, builder step id, step trackers created) of these trackers."""
        st = self.table(STEP)
        out: list[tuple[str, str, int]] = []
        for part in _chunks(tracker_ids):
            stmt = (
                sa.select(st.c.ActionCadenceTrackerId, st.c.ActionCadenceStepId, sa.func.count())
                .where(st.c.ActionCadenceTrackerId.in_(part))
                .group_by(st.c.ActionCadenceTrackerId, st.c.ActionCadenceStepId)
            )
            out += [(tid, step_id, int(n)) for tid, step_id, n in conn.execute(stmt)]
        return out

    def active_tracker_of(self, conn: sa.Connection, target_ids: Sequence[str]) -> dict[str, str]:
        """target id -> its active tracker id."""
        out: dict[str, str] = {}
        for part in _chunks(list(target_ids)):
            stmt = sa.select(self.run.c.target_id, self.run.c.tracker_id).where(
                self.run.c.target_id.in_(part)
            )
            out.update({t: tr for t, tr in conn.execute(stmt)})
        return out

    def active_count(self, conn: sa.Connection) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(self.run)).scalar_one())

    # -- claiming ---------------------------------------------------------------------------

    def claim_due(self, conn: sa.Connection, now: datetime, limit: int) -> list[str]:
        """Tracker ids whose wake-up is due, locked for this transaction (others skip them)."""
        stmt = (
            sa.select(self.run.c.tracker_id)
            .where(self.run.c.due_at <= now)
            .order_by(self.run.c.due_at)
            .limit(limit)
        )
        return list(conn.execute(dialect.for_update(stmt, conn, skip_locked=True)).scalars())

    def claim_these(
        self, conn: sa.Connection, now: datetime, tracker_ids: Sequence[str]
    ) -> list[str]:
        """The due ones among ``tracker_ids``, locked (skipping those another worker holds)."""
        stmt = sa.select(self.run.c.tracker_id).where(
            self.run.c.tracker_id.in_(list(tracker_ids)), self.run.c.due_at <= now
        )
        return list(conn.execute(dialect.for_update(stmt, conn, skip_locked=True)).scalars())

    def wake(self, conn: sa.Connection, steps: Collection[tuple[str, str]], now: datetime) -> None:
        """Make each (tracker id, step tracker id) due at ``now`` if the tracker is running
        (not paused), wakes later, and the step is still Queued: what another worker
        rescheduled to a lease's end once the email is recorded. Per tracker, in id order (row
        locks taken in one order never deadlock each other): its row lock first, waiting for a
        batch that holds it (the one rescheduling it: the recording commit's claim skipped it),
        then the update, whose statement sees what that batch committed. (An update alone
        judges ``due_at`` on the row as it was before that batch, still due, and leaves it
        to the lease's end.)"""
        run, st = self.run, self.table(STEP)
        for tracker_id, step_id in sorted(p for p in steps if p[0] and p[1]):
            self.lock(conn, [tracker_id])
            queued = sa.exists().where(st.c.Id == step_id, st.c.State == "Queued")
            conn.execute(
                run.update()
                .where(
                    run.c.tracker_id == tracker_id,
                    run.c.due_at > now,
                    run.c.paused_at.is_(None),
                    queued,
                )
                .values(due_at=now)
            )

    # -- run-state writes -------------------------------------------------------------------

    def forget(self, conn: sa.Connection, tracker_id: str) -> None:
        """Drop a tracker's run-state row (its tracker is being deleted): no more wake-ups,
        and the target's one-cadence-at-a-time slot (``ux_oc_cadence_run_target_id``) is free."""
        conn.execute(self.run.delete().where(self.run.c.tracker_id == tracker_id))

    def activities_of(self, conn: sa.Connection, who_id: str) -> list[str]:
        """The live Tasks whose WhoId is ``who_id`` (a lead being converted), oldest first."""
        t = self.table("Task")
        stmt = (
            sa.select(t.c.Id)
            .where(t.c.WhoId == who_id, t.c.IsDeleted == sa.false())
            .order_by(t.c.CreatedDate, t.c.Id)
        )
        return list(conn.execute(stmt).scalars())

    def converted_status(self, conn: sa.Connection, status: str) -> str | None:
        """The ApiName of the LeadStatus with IsConverted true whose ApiName or MasterLabel is
        ``status`` (as Salesforce accepts either); None when there is none."""
        t = self.table("LeadStatus")
        stmt = (
            sa.select(t.c.ApiName)
            .where(
                sa.or_(t.c.ApiName == status, t.c.MasterLabel == status),
                t.c.IsConverted == sa.true(),
                t.c.IsDeleted == sa.false(),
            )
            .order_by(t.c.SortOrder, t.c.Id)
            .limit(1)
        )
        return conn.execute(stmt).scalar()

    def call_category(self, conn: sa.Connection, disposition: str) -> str | None:
        """The category (CallDispositionCategory.Category) of the live CallDisposition whose
        Disposition is ``disposition``; None when no call result has that value."""
        d, c = self.table("CallDisposition"), self.table("CallDispositionCategory")
        stmt = (
            sa.select(c.c.Category)
            .select_from(d.join(c, d.c.DispositionCategoryId == c.c.Id))
            .where(
                d.c.Disposition == disposition,
                d.c.IsDeleted == sa.false(),
                c.c.IsDeleted == sa.false(),
            )
            .order_by(d.c.Id)
            .limit(1)
        )
        return conn.execute(stmt).scalar()

    def live_step_trackers(self, conn: sa.Connection, tracker_id: str) -> list[str]:
        """The non-deleted step trackers of one tracker, oldest first."""
        st = self.table(STEP)
        stmt = (
            sa.select(st.c.Id)
            .where(st.c.ActionCadenceTrackerId == tracker_id, st.c.IsDeleted == sa.false())
            .order_by(st.c.CreatedDate, st.c.Id)
        )
        return list(conn.execute(stmt).scalars())

    def write(self, conn: sa.Connection, changes: RunChanges) -> None:
        """Apply ``changes``: deletes, then updates per column set, then inserts."""
        run = self.run
        with records.duplicates_refused():  # the target is already in a cadence
            if changes.deletes:
                conn.execute(
                    run.delete().where(run.c.tracker_id == sa.bindparam("p_id")), changes.deletes
                )
            for cols, params in changes.updates.items():
                stmt = (
                    run.update()
                    .where(run.c.tracker_id == sa.bindparam("p_id"))
                    .values({c: sa.bindparam(f"v_{c}", type_=run.c[c].type) for c in cols})
                )
                conn.execute(stmt, params)
            if changes.inserts:
                full = [
                    {c.name: r.get(c.name) for c in run.columns} for r in changes.inserts.values()
                ]
                conn.execute(run.insert(), full)
