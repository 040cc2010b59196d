"""The only module of ``opencadence.cadence`` that executes SQL.

It loads definitions and tracker situations, claims due work, and applies the engine's
decisions inside a ``records.Tx``:

- new rows are inserted with one executemany per object; updates are guarded
  (``WHERE Id = ? AND State = <expected>``) and batched per column set; a batch whose row
  count falls short raises StaleTransition and the whole transaction rolls back;
- change events are written in the same transaction, one transactionKey per decision
  (transition) with sequence numbers from 1 (a new tracker first, then step trackers, then
  tracker updates), sharing the database commit's number;
- the run-state table ``oc_cadence_run`` (one row per active tracker, ``due_at`` indexed)
  holds the next wake-up; workers claim due rows with ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL (SQLite has one writer), in the transaction that applies the transition, so a
  crash between claim and commit loses and duplicates nothing.

Engine-built values skip the per-value validation of ``Tx.insert``/``Tx.update``: they come
from the runtime's own constants and ids (this is the runtime's hot path).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opencadence import errors, ids
from opencadence.cadence import engine, graph
from opencadence.metadata import model
from opencadence.storage import dialect, events, records, schema, values

BUILDER = (
    "ActionCadenceStep",
    "ActionCadenceRule",
    "ActionCadenceRuleCondition",
    "ActionCadenceStepVariant",
)
#: Ids per IN list (well under SQLite's variable limit).
CHUNK = 500
DEFAULT_DISPOSITIONS: Mapping[str, str] = {
    "Meaningful Connect": "CallMeaningfulConnect",
    "Unqualified": "CallUnqualified",
    "Left Voicemail": "CallLeftVoicemail",
    "Not Interested": "CallNotInterested",
    "Call Back Later": "CallCallBackLater",
}


@dataclass(frozen=True)
class Config:
    """Runtime settings (Salesforce's documented defaults)."""

    max_active_trackers: int = 150_000
    max_daisy_chain: int = engine.DEFAULT_MAX_DAISY_CHAIN
    #: Task.CallDisposition -> call-result category (CallMeaningfulConnect ...)
    call_dispositions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DISPOSITIONS))
    batch_size: int = 500


def _memo(proc: Any) -> Any:
    """A bind processor that remembers its last results: a batch repeats the same instants."""
    if proc is None:
        return None
    seen: dict[Any, Any] = {}

    def process(value: Any) -> Any:
        out = seen.get(value, seen)
        if out is seen:
            if len(seen) > 1024:
                seen.clear()
            out = seen[value] = proc(value)
        return out

    return process


def _event_rank(op: engine.Insert | engine.Update) -> int:
    """Event order within a transition: a new tracker, its step trackers, tracker updates."""
    if op.object == engine.STEP:
        return 1
    return 0 if isinstance(op, engine.Insert) else 2


def _dicts(result: Any) -> list[dict[str, Any]]:
    keys = list(result.keys())
    return [dict(zip(keys, row)) for row in result]


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


class Loaded:
    """Definitions and time zones read in one transaction (definitions never outlive it, so an
    edit of a cadence is seen by the next transaction)."""

    def __init__(self, rt: CadenceStore, conn: sa.Connection) -> None:
        self.rt, self.conn = rt, conn
        self.cadences: dict[str, graph.Cadence] = {}
        self.time_zones: dict[str, str | None] = {}

    def cadence(self, cadence_id: str) -> graph.Cadence:
        found = self.cadences.get(cadence_id)
        if found is None:
            found = self.cadences[cadence_id] = self.rt.load_definition(self.conn, cadence_id)
            for step in found.steps.values():
                chained = step.chained_cadence_id
                if step.type == "DaisyChain" and chained and chained not in self.cadences:
                    try:
                        self.cadences[chained] = self.rt.load_definition(self.conn, chained)
                    except errors.NotFound:
                        pass
        return found

    def zones(self, user_ids: Iterable[str]) -> None:
        todo = sorted({u for u in user_ids if u and u not in self.time_zones})
        users = self.rt.table("User")
        for part in _chunks(todo):
            for uid, tz in self.conn.execute(
                sa.select(users.c.Id, users.c.TimeZoneSidKey).where(users.c.Id.in_(part))
            ):
                self.time_zones[uid] = tz
        for uid in todo:
            self.time_zones.setdefault(uid, None)

    def context(self) -> engine.Context:
        return engine.Context(self.cadences, self.time_zones, self.rt.config.max_daisy_chain)


class CadenceStore:
    """Reads and writes of the cadence runtime on one ``records.Store``."""

    def __init__(self, store: records.Store, config: Config | None = None) -> None:
        self.store = store
        self.config = config or Config()
        self.run = store.meta.tables[schema.CADENCE_RUN]
        self._stmts: dict[Any, Any] = {}
        self._formatted: dict[datetime, str] = {}
        self._compiled: dict[Any, tuple[str, tuple[str, ...], tuple[Any, ...], bool]] = {}

    def table(self, name: str) -> sa.Table:
        return self.store.meta.tables[name]

    def is_postgres(self, conn: sa.Connection) -> bool:
        return not dialect.is_sqlite(conn)

    # -- definitions ------------------------------------------------------------------------

    def _rows(self, conn: sa.Connection, stmt: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in conn.execute(stmt).mappings()]

    def load_definition(self, conn: sa.Connection, cadence_id: str) -> graph.Cadence:
        """The graph of one cadence (live and detached steps), read in ``conn``."""
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
        return graph.from_records(dict(row), steps, rules, conds, variants)

    def find_cadence(self, conn: sa.Connection, name_or_id: str) -> str | None:
        """The Id of a (non-deleted) cadence named or identified by ``name_or_id``."""
        cad = self.table("ActionCadence")
        cond = cad.c.Name == name_or_id
        if ids.is_valid(name_or_id) and name_or_id[:3] == "77C":
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
        st = self.table(engine.STEP)
        stmt = sa.select(st.c.ActionCadenceTrackerId).where(
            st.c.ActionCadenceStepId == step_id, st.c.State.in_(sorted(engine.OPEN_STATES))
        )
        return sorted(set(conn.execute(stmt).scalars()))

    def latest_email(self, conn: sa.Connection, tracker_id: str) -> str | None:
        """The tracker's most recently completed email step tracker."""
        st = self.table(engine.STEP)
        return conn.execute(
            sa.select(st.c.Id)
            .where(
                st.c.ActionCadenceTrackerId == tracker_id,
                st.c.StepType.in_(sorted(graph.EMAIL_TYPES)),
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
        st = self.table(engine.STEP)
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
        st = self.table(engine.STEP)
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

    # -- situations -------------------------------------------------------------------------

    def lock(self, conn: sa.Connection, tracker_ids: Sequence[str]) -> None:
        """Take the run-state row locks of trackers an action is about to change
        (PostgreSQL; SQLite's single writer already serialises)."""
        if self.is_postgres(conn) and tracker_ids:
            for part in _chunks(sorted(tracker_ids)):
                conn.execute(
                    sa.select(self.run.c.tracker_id)
                    .where(self.run.c.tracker_id.in_(part))
                    .with_for_update()
                )

    def situations(
        self, conn: sa.Connection, loaded: Loaded, tracker_ids: Sequence[str]
    ) -> dict[str, engine.Situation]:
        """Tracker row, open step-tracker row and run state of each tracker."""
        tr, st = self.table(engine.TRACKER), self.table(engine.STEP)
        trackers: dict[str, dict[str, Any]] = {}
        runs: dict[str, engine.Run] = {}
        for part in _chunks(list(tracker_ids)):
            for row in _dicts(
                conn.execute(sa.select(tr).where(tr.c.Id.in_(part), tr.c.IsDeleted == sa.false()))
            ):
                trackers[row["Id"]] = row
            for r in conn.execute(sa.select(self.run).where(self.run.c.tracker_id.in_(part))):
                runs[r.tracker_id] = engine.Run(
                    r.tracker_id,
                    r.due_at,
                    r.call_outcome,
                    frozenset(s for s in (r.signals or "").split(",") if s),
                    r.paused_at,
                    r.paused_state,
                    r.held_due_at,
                )
        current = [t["CurrentStepId"] for t in trackers.values() if t["CurrentStepId"]]
        steps: dict[str, dict[str, Any]] = {}
        for part in _chunks(current):
            for row in _dicts(conn.execute(sa.select(st).where(st.c.Id.in_(part)))):
                steps[row["Id"]] = row
        for cid in {t["ActionCadenceId"] for t in trackers.values()}:
            loaded.cadence(cid)
        loaded.zones(t["OwnerId"] for t in trackers.values())
        visits = self._visits(conn, loaded, trackers)
        return {
            tid: engine.Situation(
                t,
                steps.get(t["CurrentStepId"] or ""),
                runs.get(tid) or engine.Run(tid),
                visits.get(tid, {}),
            )
            for tid, t in trackers.items()
        }

    def _visits(
        self, conn: sa.Connection, loaded: Loaded, trackers: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, int]]:
        """Step trackers per (tracker, step name), only for cadences with repeat loops."""
        looping = [
            tid for tid, t in trackers.items() if loaded.cadences[t["ActionCadenceId"]].has_loops
        ]
        st = self.table(engine.STEP)
        out: dict[str, dict[str, int]] = {}
        for part in _chunks(looping):
            stmt = (
                sa.select(st.c.ActionCadenceTrackerId, st.c.ActionCadenceStepId, sa.func.count())
                .where(st.c.ActionCadenceTrackerId.in_(part))
                .group_by(st.c.ActionCadenceTrackerId, st.c.ActionCadenceStepId)
            )
            for tid, step_id, n in conn.execute(stmt):
                cad = loaded.cadences[trackers[tid]["ActionCadenceId"]]
                step = cad.by_id.get(step_id)
                if step is not None:
                    out.setdefault(tid, {})[step.name] = int(n)
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
        if self.is_postgres(conn):
            stmt = stmt.with_for_update(skip_locked=True)
        return list(conn.execute(stmt).scalars())

    def claim_these(
        self, conn: sa.Connection, now: datetime, tracker_ids: Sequence[str]
    ) -> list[str]:
        """The due ones among ``tracker_ids``, locked (skipping those another worker holds)."""
        stmt = sa.select(self.run.c.tracker_id).where(
            self.run.c.tracker_id.in_(list(tracker_ids)), self.run.c.due_at <= now
        )
        if self.is_postgres(conn):
            stmt = stmt.with_for_update(skip_locked=True)
        return list(conn.execute(stmt).scalars())

    # -- applying ---------------------------------------------------------------------------

    def apply(self, tx: records.Tx, decisions: Sequence[engine.Decision]) -> list[dict[str, str]]:
        """Write every decision in ``tx``; returns each decision's Ref key -> new Id."""
        reg = self.store.registry
        now = values.to_db_datetime(self.store.clock.now())
        header = tx.event_header()  # the commit's number and timestamp, shared by all keys
        ref_ids: list[dict[str, str]] = []
        for d in decisions:
            refs = {
                op.key.key: tx.new_id(reg.object(op.object))
                for op in d.ops
                if isinstance(op, engine.Insert)
            }
            ref_ids.append(refs)
        pending = events.TransactionEvents("", tx.user_id, header.commit_number)
        inserts: dict[str, list[dict[str, Any]]] = {}
        updates: dict[Any, list[dict[str, Any]]] = {}
        for d, refs in zip(decisions, ref_ids):
            trans = events.TransactionEvents(
                str(uuid.uuid4()),
                tx.user_id,
                header.commit_number,
                tx.events.change_origin,
                header.commit_timestamp,
            )
            for op in sorted(d.ops, key=_event_rank):
                if isinstance(op, engine.Insert):
                    row = self._insert_row(tx, op, refs, now)
                    inserts.setdefault(op.object, []).append(row)
                    self._create_event(trans, op.object, row)
                else:
                    self._queue_update(tx, trans, op, refs, now, updates)
            pending.rows += trans.rows
        for obj, rows in inserts.items():
            self._executemany(tx.conn, self._insert_stmt(obj), rows)
            tx.note_inserted(obj, len(rows))
        for key, params in updates.items():
            self._run_update(tx.conn, key, params)
        self._apply_run(tx.conn, decisions, ref_ids)
        events.write(tx.conn, self.store.meta, pending)
        return ref_ids

    @staticmethod
    def _resolve(value: Any, refs: Mapping[str, str]) -> Any:
        return refs[value.key] if isinstance(value, engine.Ref) else value

    def _insert_row(
        self, tx: records.Tx, op: engine.Insert, refs: Mapping[str, str], now: datetime
    ) -> dict[str, Any]:
        plan = self.store.plan(self.store.registry.object(op.object), True)
        row = dict(plan.defaults)
        row.update(op.fields)
        for k, v in op.fields.items():
            if isinstance(v, engine.Ref):
                row[k] = refs[v.key]
        row.update(
            Id=refs[op.key.key],
            IsDeleted=False,
            CreatedDate=now,
            CreatedById=tx.user_id,
            LastModifiedDate=now,
            LastModifiedById=tx.user_id,
            SystemModstamp=now,
        )
        return row

    def _create_event(
        self, trans: events.TransactionEvents, obj_name: str, row: Mapping[str, Any]
    ) -> None:
        obj = self.store.registry.object(obj_name)
        trans.add(obj, "CREATE", row["Id"], events.full_body(obj, row))

    def _queue_update(
        self,
        tx: records.Tx,
        trans: events.TransactionEvents,
        op: engine.Update,
        refs: Mapping[str, str],
        now: datetime,
        updates: dict[Any, list[dict[str, Any]]],
    ) -> None:
        if not op.changes:
            return
        obj = self.store.registry.object(op.object)
        record_id = op.id if isinstance(op.id, str) else refs[op.id.key]
        changes = op.changes
        if any(isinstance(v, engine.Ref) for v in changes.values()):
            changes = {k: self._resolve(v, refs) for k, v in changes.items()}
        expect = op.expect
        key = (op.object, tuple(changes), tuple((k, v is None) for k, v in expect.items()))
        params = {"v_" + k: v for k, v in changes.items()}
        for k, v in expect.items():
            if v is not None:
                params["e_" + k] = v
        params["p_id"], params["p_now"], params["p_user"] = record_id, now, tx.user_id
        updates.setdefault(key, []).append(params)
        body = {k: self._body_value(obj, k, v) for k, v in changes.items()}
        body["LastModifiedDate"] = self._body_value(obj, "LastModifiedDate", now)
        changed = list(changes) + ["LastModifiedDate"]
        if op.modified_by is not None and op.modified_by != tx.user_id:
            body["LastModifiedById"] = tx.user_id
            changed.append("LastModifiedById")
        nulled = [k for k, v in changes.items() if v is None]
        trans.add(obj, "UPDATE", record_id, body, changed=changed, nulled=nulled)

    def _body_value(self, obj: model.ObjectDef, name: str, value: Any) -> Any:
        """A change-event value; formatted datetimes are remembered (a batch repeats ``now``)."""
        if isinstance(value, datetime):
            text = self._formatted.get(value)
            if text is None:
                if len(self._formatted) > 4096:
                    self._formatted.clear()
                text = self._formatted[value] = values.format_event_datetime(value)
            return text
        return events.body_value(obj.by_name[name.lower()], value)

    def _update_stmt(self, key: Any) -> Any:
        stmt = self._stmts.get(key)
        if stmt is None:
            obj, columns, expect = key
            t = self.table(obj)
            where = [t.c.Id == sa.bindparam("p_id"), t.c.IsDeleted == sa.false()]
            where += [
                t.c[k].is_(None) if is_none else t.c[k] == sa.bindparam(f"e_{k}")
                for k, is_none in expect
            ]
            sets = {c: sa.bindparam(f"v_{c}", type_=t.c[c].type) for c in columns}
            sets.update(
                LastModifiedDate=sa.bindparam("p_now", type_=sa.DateTime()),
                SystemModstamp=sa.bindparam("p_now", type_=sa.DateTime()),
                LastModifiedById=sa.bindparam("p_user"),
            )
            stmt = self._stmts[key] = t.update().where(*where).values(sets)
        return stmt

    def _run_update(self, conn: sa.Connection, key: Any, params: list[dict[str, Any]]) -> None:
        count = self._executemany(conn, self._update_stmt(key), params)
        if count != len(params):
            raise errors.StaleTransition(
                f"{key[0]}: {len(params) - count} record(s) changed concurrently"
            )

    def _insert_stmt(self, obj: str) -> Any:
        stmt = self._stmts.get(obj)
        if stmt is None:
            table = self.table(obj)
            stmt = self._stmts[obj] = table.insert().values(
                {c.name: sa.bindparam(c.name, type_=c.type) for c in table.columns}
            )
        return stmt

    def _executemany(self, conn: sa.Connection, stmt: Any, params: list[dict[str, Any]]) -> int:
        """Run ``stmt`` once per parameter dict with the driver's executemany; returns the
        rows affected. The statement is compiled once per dialect and values go through the
        column types' bind processors, skipping SQLAlchemy's per-row parameter handling
        (the runtime's hot path)."""
        key = (id(stmt), conn.dialect.name)
        compiled = self._compiled.get(key)
        if compiled is None:
            c = stmt.compile(dialect=conn.dialect)
            positional = c.positiontup is not None
            names = tuple(c.positiontup if positional else c.binds)
            procs = tuple(
                _memo(c.binds[n].type._cached_bind_processor(conn.dialect)) for n in names
            )
            compiled = self._compiled[key] = (c.string, names, procs, positional)
        sql, names, procs, positional = compiled
        converted = [(i, p) for i, p in enumerate(procs) if p is not None]
        getter = operator.itemgetter(*names)
        try:
            got = [getter(d) for d in params]
        except KeyError:  # a row without some optional key: slower path
            got = [tuple(d.get(n) for n in names) for d in params]
        if len(names) == 1:
            got = [(g,) for g in got]
        tuples: list[Any] = got
        if converted:
            tuples = []
            for t in got:
                row = list(t)
                for i, p in converted:
                    if row[i] is not None:
                        row[i] = p(row[i])
                tuples.append(tuple(row))
        rows: Any = tuples if positional else [dict(zip(names, t)) for t in tuples]
        return int(conn.exec_driver_sql(sql, rows).rowcount)

    def _apply_run(
        self,
        conn: sa.Connection,
        decisions: Sequence[engine.Decision],
        ref_ids: Sequence[Mapping[str, str]],
    ) -> None:
        deletes: list[dict[str, Any]] = []
        inserts: dict[str, dict[str, Any]] = {}
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for d, refs in zip(decisions, ref_ids):
            for op in d.run:
                tracker = self._resolve(op.tracker, refs)
                fields = {
                    k: (",".join(sorted(v)) if isinstance(v, frozenset) else v)
                    for k, v in op.fields.items()
                }
                if op.kind == "delete":
                    inserts.pop(tracker, None)
                    deletes.append({"p_id": tracker})
                elif op.kind == "insert" or tracker in inserts:
                    inserts.setdefault(tracker, {"tracker_id": tracker}).update(fields)
                else:
                    updates.setdefault(tuple(sorted(fields)), []).append(
                        {"p_id": tracker, **{f"v_{k}": v for k, v in fields.items()}}
                    )
        run = self.run
        if deletes:
            conn.execute(run.delete().where(run.c.tracker_id == sa.bindparam("p_id")), deletes)
        for cols, params in updates.items():
            stmt = (
                run.update()
                .where(run.c.tracker_id == sa.bindparam("p_id"))
                .values({c: sa.bindparam(f"v_{c}", type_=run.c[c].type) for c in cols})
            )
            conn.execute(stmt, params)
        if inserts:
            full = [{c.name: r.get(c.name) for c in run.columns} for r in inserts.values()]
            conn.execute(run.insert(), full)
