"""The record store: the one write path for records (with ``batch.py``, which writes through it).

A ``Store`` opens transactions; a ``Tx`` inserts, updates, soft-deletes and undeletes records,
maintaining the system fields, validating every value first (nothing is written when any value
is bad), writing the deleted-records log and the change events in the same transaction.

The system fields (``created_fields``, ``modified_fields``), the guarded update
(``guarded_update``) and the UPDATE change event (``add_update_event``) are declared once
here; ``batch.BatchWriter`` (pre-validated rows of the cadence runtime) writes with them too.

Two access modes: API mode (the default) lets callers write only createable/updateable
fields, as Salesforce's API does; system mode (``system=True``) is for the cadence runtime,
which maintains read-only fields such as ActionCadenceStepTracker.State itself.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from opencadence import errors, ids
from opencadence.clock import Clock, SystemClock
from opencadence.metadata import model
from opencadence.metadata.registry import Registry, default_registry
from opencadence.storage import (
    authorization,
    counts,
    dialect,
    events,
    executemany,
    formulas,
    schema,
    search_index,
    session_cache,
    values,
    visibility,
)

#: From how many rows a PostgreSQL insert is one COPY (``Tx._insert_rows``).
COPY_ROWS = 50
#: The user recorded as creator/modifier when no user is given (the org's automated process).
AUTOMATED_USER = ids.make_id(default_registry().prefix("User"), 1)
#: The connection handle storage gives its callers (layers above type with it, never with
#: SQLAlchemy itself).
Connection: TypeAlias = sa.Connection
#: The system fields an update stamps, in ``modified_fields`` order.
MODIFIED_FIELDS = ("LastModifiedDate", "LastModifiedById", "SystemModstamp")


class Store:
    """Records of every registry object in one database."""

    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        clock: Clock | None = None,
        *,
        event_retention: timedelta = events.DEFAULT_RETENTION,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock or SystemClock()
        self.meta = schema.metadata_for(registry)
        self.event_retention = event_retention
        self._plans: dict[tuple[str, bool], _WritePlan] = {}
        #: (id of FieldDef, key prefix) pairs already known to be a valid reference type
        self.plan_ok_prefixes: set[tuple[int, str]] = set()
        #: statements of the batch writer compiled per (shape, dialect), kept with the tables
        self.batch_statements: dict[Any, Any] = {}
        #: called with the last replay id after each commit that wrote change events, in the
        #: committing thread (the CometD endpoint wakes its waiting long-polls with it)
        self.event_listeners: list[Callable[[int], None]] = []
        #: whether writes keep the metric counters (storage/metrics.py); off only for the
        #: engine benchmark's baseline
        self.count_metrics = True
        #: the one ``storage.wakeup.Beacon`` of this store (``Beacon.of`` makes it on first use)
        self.change_beacon: object | None = None
        #: the connection of the write transaction open on each thread (see ``reading``)
        self._local = threading.local()

    def plan(self, obj: model.ObjectDef, system: bool) -> _WritePlan:
        """Per-object facts every write needs, computed once (writes are the hot path)."""
        key = (obj.name, system)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _WritePlan(self.registry, obj, system)
        return plan

    @contextmanager
    def transaction(
        self,
        user_id: str = AUTOMATED_USER,
        *,
        origin: str = "",
        principal: authorization.Principal | None = None,
    ) -> Iterator[Tx]:
        """One write transaction: everything in it commits, with its events, or nothing does.

        With a ``principal`` (a signed-in user: what ``Org`` passes for API calls), every
        API-mode write is checked against that user's permissions and record access
        (docs/security-model.md); without one, the caller is the system itself. A lock it
        could not get in time (another writer) raises UnableToLockRow. Inside an ambient
        transaction (``ambient``) it is a savepoint of that one instead."""
        begin_write(self)
        joined = AMBIENT.get()
        if joined is not None and joined.store is self:
            yield from self._joining(joined, user_id, origin, principal)
            return
        with (
            locks_refused(),
            dialect.writer_turn(self.engine) as turn,
            self.engine.connect() as conn,
        ):
            if not turn:
                raise errors.UnableToLockRow()
            conn = conn.execution_options(**{dialect.WRITE_OPTION: True})
            with conn.begin():
                tx = Tx(self, conn, user_id, origin, principal)
                outer, self._local.conn = getattr(self._local, "conn", None), conn
                try:
                    yield tx
                    tx.run_before_commit()
                    tx.flush_events()
                    if tx.last_replay_id:  # one NOTIFY, for this and its savepoints' events
                        dialect.notify_events(conn, tx.last_replay_id)
                finally:
                    self._local.conn = outer
            # before the connection goes back to the pool: what must follow the commit at
            # once (the SMTP sender's final ".") waits microseconds, not a pool checkin
            for action in tx.on_commit:
                action()
            if tx.last_replay_id:
                for listener in list(self.event_listeners):
                    listener(tx.last_replay_id)

    @contextmanager
    def held(self) -> Iterator[Held]:
        """One connection kept for a run of small commits (``Held.commit``), given back at the
        end: what a hot path of one-statement transactions uses instead of ``transaction``
        (no Tx, no ids, no change events, no pool check-out per commit)."""
        with locks_refused(), self.engine.connect() as conn:
            yield Held(self, conn.execution_options(**{dialect.WRITE_OPTION: True}))

    def _joining(
        self,
        joined: Tx,
        user_id: str,
        origin: str,
        principal: authorization.Principal | None,
    ) -> Iterator[Tx]:
        """A transaction inside the ambient ``joined`` one: a savepoint of its connection (an
        error rolls back what this one wrote), committed or rolled back with it."""
        with joined.conn.begin_nested():
            tx = Tx(self, joined.conn, user_id, origin or joined.events.change_origin, principal)
            outer, self._local.conn = getattr(self._local, "conn", None), joined.conn
            try:
                yield tx
                tx.flush_events()
            finally:
                self._local.conn = outer
        for key, check in tx.before_commit.items():  # checked when the ambient one commits
            joined.before_commit.setdefault(key, check)
        joined.on_commit.extend(tx.on_commit)
        joined.last_replay_id = max(joined.last_replay_id, tx.last_replay_id)

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read-only connection (a consistent snapshot on PostgreSQL).

        Inside a write transaction of this thread it is that transaction's connection: one
        connection per request, whatever it does, so concurrent requests can never each hold
        one pooled connection while waiting for a second (a pool deadlock)."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with locks_refused(), self.engine.connect() as conn:
            with conn.begin():
                yield conn

    def in_transaction(self) -> bool:
        """Whether this thread has a write transaction open (its reads must go through it) or
        this context joins an ambient one (``ambient``)."""
        joined = AMBIENT.get()
        return getattr(self._local, "conn", None) is not None or (
            joined is not None and joined.store is self
        )

    def get(
        self, object_name: str, record_id: str, *, include_deleted: bool = False
    ) -> dict[str, Any] | None:
        with self.reading() as conn:
            return read_record(self, conn, object_name, record_id, include_deleted=include_deleted)

    def touch(self, object_name: str, record_ids: Sequence[str], field: str) -> None:
        """Stamp ``field`` (LastViewedDate / LastReferencedDate) with now on these records.

        SOQL's FOR VIEW / FOR REFERENCE side effect: not a record change, so LastModifiedDate,
        SystemModstamp and change events are left alone.
        """
        obj = self.registry.object(object_name)
        if not record_ids or obj.field(field) is None:
            return
        table = self.meta.tables[obj.name]
        now = values.to_db_datetime(self.clock.now())
        with self.transaction() as tx:
            tx.conn.execute(
                table.update().where(table.c.Id.in_(list(record_ids))).values({field: now})
            )

    def prune_events(self) -> int:
        """Drop change events older than the retention (72 hours by default)."""
        with self.transaction() as tx:
            now = self.clock.now().replace(tzinfo=None)
            return events.prune(tx.conn, self.meta, now, self.event_retention)

    def read_events(
        self, after: int = 0, entity: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        with self.reading() as conn:
            return events.read(conn, self.meta, after=after, entity=entity, limit=limit)


#: The transaction an all-or-none composite request runs its subrequests in (api/composite.py):
#: within ``ambient(tx)``, ``Store.transaction`` opens a savepoint of it instead of a transaction
#: of its own, so whatever a subrequest writes (records, query locators, actions) commits or
#: rolls back with the others. A context variable: the subrequests are dispatched through the
#: ASGI app, which knows nothing of it.
AMBIENT: ContextVar[Tx | None] = ContextVar("opencadence_ambient_tx", default=None)


@contextmanager
def ambient(tx: Tx) -> Iterator[Tx]:
    """Within it, the store's transactions of this context join ``tx``."""
    token = AMBIENT.set(tx)
    try:
        yield tx
    finally:
        AMBIENT.reset(token)


class WriteRefused(BaseException):
    """A write transaction asked for inside ``read_only``: nothing was written; the caller
    runs the work again where it may write. A BaseException, so that no ``except Exception``
    on the way takes it for the work's own failure."""


_READ_ONLY: ContextVar[bool] = ContextVar("opencadence_read_only", default=False)


@contextmanager
def read_only() -> Iterator[None]:
    """Inside: ``Store.transaction`` raises WriteRefused before it waits for anything (the
    API runs short reads on its event loop, which must never wait for the writer lock)."""
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)


def writes_refused() -> bool:
    """Whether this context is inside ``read_only``."""
    return _READ_ONLY.get()


#: write transactions begun by each thread (``write_count``)
_WRITES = threading.local()


def begin_write(store: Store) -> None:
    """What every write of ``store`` does first, a ``Store.transaction`` or a driver-level one
    (``fastread.write``): refused inside ``read_only``, else counted (``write_count``)."""
    if _READ_ONLY.get():
        raise WriteRefused(store)
    _WRITES.count = getattr(_WRITES, "count", 0) + 1


def write_count() -> int:
    """How many write transactions this thread has begun (compared before and after some
    work: whether it wrote)."""
    return int(getattr(_WRITES, "count", 0))


def read_record(
    store: Store,
    conn: sa.Connection,
    object_name: str,
    record_id: str,
    *,
    include_deleted: bool = False,
) -> dict[str, Any] | None:
    """One record by id with calculated fields derived; database values (naive UTC)."""
    obj = store.registry.object(object_name)
    table = store.meta.tables[obj.name]
    stmt = sa.select(table).where(table.c.Id == ids.parse(record_id))
    if not include_deleted:
        stmt = stmt.where(table.c.IsDeleted == sa.false())
    row = conn.execute(stmt).mappings().first()
    if row is None:
        return None
    return with_calculated(obj, dict(row), store.clock.now().replace(tzinfo=None))


def read_records(
    store: Store, conn: sa.Connection, object_name: str, record_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """``read_record`` of many live records in one statement per 500 ids, by Id (records
    not found are left out)."""
    obj = store.registry.object(object_name)
    table = store.meta.tables[obj.name]
    wanted = sorted({ids.parse(i) for i in record_ids})
    now = store.clock.now().replace(tzinfo=None)
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(wanted), 500):
        stmt = sa.select(table).where(
            table.c.Id.in_(wanted[i : i + 500]), table.c.IsDeleted == sa.false()
        )
        for row in conn.execute(stmt).mappings():
            out[str(row["Id"])] = with_calculated(obj, dict(row), now)
    return out


def with_calculated(obj: model.ObjectDef, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    for f in obj.fields:
        if f.calculated and f.formula:
            row[f.name] = formulas.evaluate(f.formula, row, now)
    return row


class Held:
    """A connection ``Store.held`` keeps for one run of small write transactions."""

    def __init__(self, store: Store, conn: sa.Connection) -> None:
        self.store, self.conn = store, conn

    @contextmanager
    def commit(self) -> Iterator[sa.Connection]:
        """One write transaction on the held connection, committed on exit (durably: this is
        what a crash must find), rolled back on an error. It takes this process's SQLite
        writer turn as ``Store.transaction`` does. Change nothing with change events here."""
        with locks_refused(), dialect.writer_turn(self.store.engine) as turn:
            if not turn:
                raise errors.UnableToLockRow()
            with self.conn.begin():
                yield self.conn


class Tx:
    """Writes inside one database transaction."""

    def __init__(
        self,
        store: Store,
        conn: sa.Connection,
        user_id: str,
        origin: str,
        principal: authorization.Principal | None = None,
    ) -> None:
        self.store = store
        self.conn = conn
        self.user_id = ids.parse(user_id, field="UserId")
        #: the signed-in user whose access API-mode writes are checked for (None: the system)
        self.principal = principal
        self._ids = _IdBlock(conn)
        self._count_deltas: Counter[str] = Counter()
        #: called in order right after the commit (not after a rollback)
        self.on_commit: list[Callable[[], None]] = []
        #: checks run in this transaction just before it commits, once per key (the graph of an
        #: edited active cadence, however many of its rows one transaction wrote); one that
        #: raises rolls the transaction back
        self.before_commit: dict[str, Callable[[Tx], None]] = {}
        #: the last change-event replay id this transaction wrote (0: none yet)
        self.last_replay_id = 0
        #: change-event rows of batched writers (``queue_events``), written by ``flush_events``
        #: ahead of ``events``' own
        self._queued_events: list[tuple[Any, ...]] = []
        #: whether it wrote a User, PermissionSet or assignment: remembered sessions are stale
        #: once it commits (storage/session_cache.py)
        self.auth_changed = False
        self.events = events.TransactionEvents(
            transaction_key=str(uuid.uuid4()),
            commit_user=self.user_id,
            commit_number=0,
            change_origin=origin,
        )

    def run_before_commit(self) -> None:
        """Run the ``before_commit`` checks, in this transaction (a check may add another;
        each runs once)."""
        done: set[str] = set()
        while pending := [k for k in self.before_commit if k not in done]:
            for key in pending:
                done.add(key)
                self.before_commit[key](self)

    # -- helpers --------------------------------------------------------------------------

    def _now(self) -> datetime:
        return values.to_db_datetime(self.store.clock.now())

    def _table(self, obj: model.ObjectDef) -> sa.Table:
        return self.store.meta.tables[obj.name]

    def event_header(self) -> events.TransactionEvents:
        """The header values shared by this transaction's change events (commit number, time)."""
        pending = self.events
        if pending.commit_number == 0:
            pending.commit_number = self._ids.next()
            pending.commit_timestamp = events.epoch_ms(self._now())
        return pending

    def new_id(self, obj: model.ObjectDef) -> str:
        """A fresh 18-character Id of ``obj`` (for writers that batch their own inserts)."""
        return ids.make_id(obj.key_prefix, self._ids.next())

    def note_inserted(self, object_name: str, count: int) -> None:
        """Rows inserted around ``insert_many`` (batched writers): keeps row counts exact."""
        self._count_deltas[object_name] += count

    def flush_events(self) -> None:
        """Write what the transaction accumulated: row-count deltas, then the change events
        (queued ones first) with one replay-id reservation, last: from that reservation to the
        commit, every event-writing transaction waits for this one (``events.write``)."""
        if self.auth_changed:
            session_cache.bump(self.conn, self.store.meta)
            self.auth_changed = False
        if self._count_deltas:
            counts.apply(self.conn, self.store.meta, self._count_deltas)
            self._count_deltas.clear()
        if self._queued_events:
            self.events.rows[:0] = self._queued_events
            self._queued_events = []
        last = events.write(self.conn, self.store.meta, self.events)
        self.last_replay_id = max(self.last_replay_id, last)

    def queue_events(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Change-event rows (``events.TransactionEvents.rows``, change sets of their own) for
        the log, in this order, ahead of those the transaction's own writes add; written with
        them when the transaction ends (the store's event listeners hear of them at commit)."""
        self._queued_events += rows

    # -- insert ---------------------------------------------------------------------------

    def insert(self, object_name: str, record: Mapping[str, Any], *, system: bool = False) -> str:
        """Create one record; returns its 18-character Id."""
        return self.insert_many(object_name, [record], system=system)[0]

    def insert_many(
        self, object_name: str, records: Sequence[Mapping[str, Any]], *, system: bool = False
    ) -> list[str]:
        """Create records with one statement; all are validated before any is written."""
        obj = self.store.registry.object(object_name)
        self._check_call(obj, "create", system)
        checked = self._checked(system)
        if checked is not None:
            authorization.check_object(checked, obj.name, "create")
        now = self._now()
        rows = [self._new_row(obj, rec, now, system) for rec in records]
        if not rows:
            return []
        self._insert_rows(obj, rows)
        if obj.name in session_cache.AUTH_OBJECTS:
            self.auth_changed = True
        search_index.index_rows(self.conn, self.store.meta, obj, rows)
        self._count_deltas[obj.name] += len(rows)
        if obj.change_events:
            header = self.event_header()
            for row in rows:
                header.add(obj, "CREATE", row["Id"], events.full_body(obj, row))
        return [row["Id"] for row in rows]

    def _insert_rows(self, obj: model.ObjectDef, rows: list[dict[str, Any]]) -> None:
        """The INSERT of ``rows``, as the runtime's batches write theirs
        (``executemany.insert``), but for fewer than COPY_ROWS rows on PostgreSQL, which go
        through SQLAlchemy: a COPY costs a round trip more."""
        table = self._table(obj)
        if len(rows) < COPY_ROWS and not dialect.is_sqlite(self.conn):
            self.conn.execute(table.insert(), rows)
        else:
            executemany.insert(self.conn, self.store.batch_statements, table, rows)

    def _new_row(
        self, obj: model.ObjectDef, record: Mapping[str, Any], now: datetime, system: bool
    ) -> dict[str, Any]:
        plan = self.store.plan(obj, system)
        row = {**plan.defaults, **self._convert(obj, record, "create", system)}
        if plan.compound_name:
            row["Name"] = row.get("Name") or _full_name(row)
        if plan.derived:
            row.update(self._derived(obj, row, row.keys()))
        for name in plan.owner_fields:  # OwnerId defaults to the user who creates the record
            if row.get(name) is None:
                row[name] = self.user_id
        self._require(obj, row, system)
        row.update(created_fields(ids.make_id(obj.key_prefix, self._ids.next()), self.user_id, now))
        return row

    def _convert(
        self, obj: model.ObjectDef, record: Mapping[str, Any], call: str, system: bool
    ) -> dict[str, Any]:
        """Validate names, writability and values of an API record."""
        plan = self.store.plan(obj, system)
        shape = plan.shape(call, tuple(record))
        if shape is not None:  # every name known and writable: the same steps, looked up once
            out: dict[str, Any] = {}
            for (name, convert, reference), value in zip(shape, record.values()):
                if value is None:
                    out[name] = None
                    continue
                out[name] = value = convert(value)
                if reference is not None and value is not None:
                    self._check_reference(reference, value, system)
                    self._check_reference_access(reference, value, system)
            return out
        writable = plan.createable if call == "create" else plan.updateable
        out = {}
        unwritable: list[str] = []
        for name, value in record.items():
            entry = plan.fields.get(name) or plan.fields.get(name.lower())
            if entry is None:
                raise errors.InvalidField(
                    f"No such column '{name}' on sobject of type {obj.name}", fields=[name]
                )
            f, convert = entry
            if f.name not in writable:
                unwritable.append(f.name)
                continue
            if value is None:
                out[f.name] = None
                continue
            out[f.name] = value = convert(value)
            if value is not None and f.type == "reference":
                self._check_reference(f, value, system)
                self._check_reference_access(f, value, system)
        if unwritable:
            raise errors.InvalidFieldForInsertUpdate(
                f"Unable to create/update fields: {', '.join(unwritable)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                fields=unwritable,
            )
        return out

    def _check_reference(self, f: model.FieldDef, value: str, system: bool) -> None:
        """The id must name an object the field refers to; in API mode it must also exist."""
        if system and (id(f), value[:3]) in self.store.plan_ok_prefixes:
            return
        target = self.store.registry.object_of_id(value)
        if target is None or target.name not in f.reference_to:
            all_known = all(name in self.store.registry for name in f.reference_to)
            if target is not None or all_known:
                raise errors.FieldIntegrity(
                    f"field integrity exception: {f.name} (id value of incorrect type: {value})",
                    fields=[f.name],
                )
            return  # an object the registry doesn't hold (e.g. CallTemplate): accepted as is
        if system:
            self.store.plan_ok_prefixes.add((id(f), value[:3]))
            return
        table = self.store.meta.tables[target.name]
        found = self.conn.execute(
            sa.select(table.c.Id).where(table.c.Id == value, table.c.IsDeleted == sa.false())
        ).first()
        if found is None:
            raise errors.InvalidCrossReferenceKey(
                f"invalid cross reference id: {f.name} {value}", fields=[f.name]
            )

    def _check_reference_access(self, f: model.FieldDef, value: str, system: bool) -> None:
        """A reference to a record the principal cannot see is refused as Salesforce refuses
        it (INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY); the reference exists (checked
        before)."""
        checked = self._checked(system)
        if checked is None:  # the system or an administrator: no record is out of reach
            return
        target = self.store.registry.object_of_id(value)
        if target is None or target.name not in visibility.PRIVATE:
            return
        if not self._sees(target, value, checked, visibility.predicate):
            raise errors.InsufficientAccessOnCrossReference(
                f"insufficient access rights on cross-reference id: {value}", fields=[f.name]
            )

    # -- authorization --------------------------------------------------------------------

    def _checked(self, system: bool) -> authorization.Principal | None:
        """The principal this write is checked for (None: system mode, the system, or an
        administrator, who may change everything)."""
        p = self.principal
        if system or p is None or p.admin:
            return None
        return p

    def _sees(
        self,
        obj: model.ObjectDef,
        record_id: str,
        principal: authorization.Principal,
        rule: Callable[..., Any],
    ) -> bool:
        table = self._table(obj)
        cond = rule(obj.name, table, self.store.meta, principal.user_id)
        if cond is None:
            return True
        found = self.conn.execute(sa.select(table.c.Id).where(table.c.Id == record_id, cond))
        return found.first() is not None

    def require_access(self, object_name: str, record_id: str, call: str) -> None:
        """The checks an API-mode ``call`` (update, delete, undelete) of this record makes,
        for callers that then write it in system mode on the principal's behalf (the cadence
        runtime deleting a tracker, the Sales Engagement actions): NOT_FOUND when the
        principal cannot see it, INSUFFICIENT_ACCESS_OR_READONLY when they may not change it."""
        obj = self.store.registry.object(object_name)
        self._check_access(obj, ids.parse(record_id), call, system=False)

    def _check_access(self, obj: model.ObjectDef, record_id: str, call: str, system: bool) -> None:
        """Before an update, delete or undelete on behalf of a principal: the object
        permission, then the record. A record the principal cannot see answers exactly as a
        record that does not exist (NOT_FOUND), so the answer reveals nothing; one they see
        but may not change is INSUFFICIENT_ACCESS_OR_READONLY."""
        checked = self._checked(system)
        if checked is None:
            return
        authorization.check_object(checked, obj.name, call)
        if not self._sees(obj, record_id, checked, visibility.predicate):
            raise _not_found(record_id)
        if not self._sees(obj, record_id, checked, visibility.editable):
            raise errors.InsufficientAccessOnRecord(
                f"insufficient access rights on object id: {record_id}"
            )

    def _require(self, obj: model.ObjectDef, row: Mapping[str, Any], system: bool) -> None:
        required = self.store.plan(obj, system).required
        missing = [name for name in required if row.get(name) is None]
        if missing:
            raise errors.RequiredFieldMissing(
                f"Required fields are missing: [{', '.join(missing)}]", fields=missing
            )

    def _check_call(self, obj: model.ObjectDef, call: str, system: bool) -> None:
        if not system and not obj.supports(call):
            raise errors.InvalidTypeForOperation(f"entity type {obj.name} does not support {call}")

    # -- update ---------------------------------------------------------------------------

    def update(
        self,
        object_name: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        system: bool = False,
        expect: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Update one record; returns the changed field names (empty when nothing changed).

        ``expect`` makes it a guarded write: the update applies only if the stored values
        still equal ``expect``; otherwise StaleTransition is raised and nothing changes.
        """
        obj = self.store.registry.object(object_name)
        self._check_call(obj, "update", system)
        record_id = ids.parse(record_id)
        self._check_access(obj, record_id, "update", system)
        new = self._convert(obj, changes, "update", system)
        checked = self._checked(system)
        if checked is not None and obj.name == "User":
            authorization.check_user_update(checked, record_id, new)
        current = self._current(obj, record_id)
        guard = self._guard(obj, current, expect or {})
        merged = {**current, **new}
        plan = self.store.plan(obj, system)
        if plan.compound_name and ({"FirstName", "LastName"} & new.keys()):
            new["Name"] = merged["Name"] = _full_name(merged)
        if plan.derived:
            derived = self._derived(obj, merged, new.keys())
            new.update(derived)
            merged.update(derived)
        self._require(obj, merged, system)
        changed = [k for k, v in new.items() if current.get(k) != v]
        if not changed:
            return []
        now = self._now()
        written = {k: new[k] for k in changed}
        self._guarded_update(obj, record_id, written, guard, now)
        if obj.name in session_cache.AUTH_OBJECTS:
            self.auth_changed = True
        search_index.reindex(self.conn, self.store.meta, obj, record_id, merged, changed)
        if obj.change_events:
            add_update_event(
                self.event_header(),
                obj,
                record_id,
                written,
                values.format_event_datetime(now),
                self.user_id,
                current["LastModifiedById"],
            )
        return changed

    def _derived(
        self, obj: model.ObjectDef, row: Mapping[str, Any], written: Iterable[str]
    ) -> dict[str, Any]:
        """Read-only fields Salesforce derives from others, kept by the one write path:
        Task.IsClosed from Status (the closed TaskStatus is Completed) and CompletedDateTime
        (when it was saved closed: kept while it stays closed, null once reopened; a system
        write may name it, as the email sender does with its send time),
        ActionCadence.FolderName from the record FolderId names (a Folder's, the Organization's
        or a User's Name)."""
        written = set(written)
        if obj.name == "Task" and "Status" in written:
            closed = row.get("Status") == "Completed"
            if not closed:
                return {"IsClosed": False, "CompletedDateTime": None}
            stays = row.get("IsClosed") or "CompletedDateTime" in written
            at = row.get("CompletedDateTime") if stays else None
            return {"IsClosed": True, "CompletedDateTime": at or self._now()}
        if obj.name == "ActionCadence" and "FolderId" in written:
            folder = row.get("FolderId")
            target = self.store.registry.object_of_id(folder) if folder else None
            if target is None:
                return {"FolderName": None}
            table = self._table(target)
            name = self.conn.execute(
                sa.select(table.c.Name).where(table.c.Id == folder)
            ).scalar_one_or_none()
            return {"FolderName": None if name is None else str(name)[:256]}
        return {}

    def _current(self, obj: model.ObjectDef, record_id: str) -> dict[str, Any]:
        table = self._table(obj)
        row = self.conn.execute(sa.select(table).where(table.c.Id == record_id)).mappings().first()
        if row is None:
            raise _not_found(record_id)
        if row["IsDeleted"]:
            raise errors.EntityIsDeleted("entity is deleted", fields=[])
        return dict(row)

    def _guard(
        self, obj: model.ObjectDef, current: Mapping[str, Any], expect: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Check ``expect`` against the current row; return it as database values.

        ``guarded_update`` repeats the check in the UPDATE itself, so a concurrent writer that
        changed the row after it was read makes the update match nothing (StaleTransition).
        """
        guard: dict[str, Any] = {}
        for name, value in expect.items():
            f = obj.field(name)
            if f is None:
                raise errors.InvalidField(f"No such column '{name}' on sobject of type {obj.name}")
            expected = values.to_db(f, value)
            if current[f.name] != expected:
                raise errors.StaleTransition(
                    f"{obj.name} {current['Id']}: {f.name} is {current[f.name]!r}, expected {value!r}"
                )
            guard[f.name] = expected
        return guard

    def _guarded_update(
        self,
        obj: model.ObjectDef,
        record_id: str,
        changes: Mapping[str, Any],
        guard: Mapping[str, Any],
        now: datetime,
    ) -> None:
        sets = {**changes, **modified_fields(self.user_id, now)}
        stmt = guarded_update(self._table(obj), sets, expect_shape(guard))
        if self.conn.execute(stmt, guarded_params(record_id, sets, guard)).rowcount != 1:
            raise errors.StaleTransition(f"{obj.name} {record_id} changed concurrently")

    # -- delete / undelete ----------------------------------------------------------------

    def delete(self, object_name: str, record_id: str, *, system: bool = False) -> None:
        """Soft-delete: IsDeleted = true, logged for getDeleted and queryAll."""
        obj = self.store.registry.object(object_name)
        self._check_call(obj, "delete", system)
        record_id = ids.parse(record_id)
        self._check_access(obj, record_id, "delete", system)
        self._current(obj, record_id)
        now = self._now()
        self._set_deleted(obj, record_id, True, now)
        self._count_deltas[obj.name] -= 1
        self.conn.execute(
            self.store.meta.tables[schema.DELETED].insert(),
            {"record_id": record_id, "entity": obj.name, "deleted_date": now},
        )
        if obj.change_events:
            self.event_header().add(obj, "DELETE", record_id, {})

    def undelete(self, object_name: str, record_id: str, *, system: bool = False) -> None:
        obj = self.store.registry.object(object_name)
        self._check_call(obj, "undelete", system)
        record_id = ids.parse(record_id)
        try:  # a record the caller cannot see is as absent from the recycle bin
            self._check_access(obj, record_id, "undelete", system)
        except errors.NotFound:
            raise errors.UndeleteFailed(f"Entity is not in the recycle bin: {record_id}") from None
        table = self._table(obj)
        row = self.conn.execute(sa.select(table).where(table.c.Id == record_id)).mappings().first()
        if row is None or not row["IsDeleted"]:
            raise errors.UndeleteFailed(f"Entity is not in the recycle bin: {record_id}")
        self._set_deleted(obj, record_id, False, self._now())
        self._count_deltas[obj.name] += 1
        deleted = self.store.meta.tables[schema.DELETED]
        self.conn.execute(deleted.delete().where(deleted.c.record_id == record_id))
        if obj.change_events:
            found = (
                self.conn.execute(sa.select(table).where(table.c.Id == record_id)).mappings().one()
            )
            restored = {f.name: found[f.name] for f in obj.stored_fields}  # plain str keys
            self.event_header().add(obj, "UNDELETE", record_id, events.full_body(obj, restored))

    def _set_deleted(
        self, obj: model.ObjectDef, record_id: str, deleted: bool, now: datetime
    ) -> None:
        if obj.name in session_cache.AUTH_OBJECTS:  # delete and undelete
            self.auth_changed = True
        table = self._table(obj)
        self.conn.execute(
            table.update()
            .where(table.c.Id == record_id)
            .values(IsDeleted=deleted, **modified_fields(self.user_id, now))
        )

    # -- reads inside the transaction ----------------------------------------------------

    def get(
        self, object_name: str, record_id: str, *, include_deleted: bool = False
    ) -> dict[str, Any] | None:
        return read_record(
            self.store, self.conn, object_name, record_id, include_deleted=include_deleted
        )


# -- what every write path shares --------------------------------------------------------------


def created_fields(record_id: str, user_id: str, now: datetime) -> dict[str, Any]:
    """The system fields of a new record."""
    return {
        "Id": record_id,
        "IsDeleted": False,
        "CreatedDate": now,
        "CreatedById": user_id,
        "LastModifiedDate": now,
        "LastModifiedById": user_id,
        "SystemModstamp": now,
    }


def modified_fields(user_id: str, now: datetime) -> dict[str, Any]:
    """The system fields of a changed record (MODIFIED_FIELDS)."""
    return {"LastModifiedDate": now, "LastModifiedById": user_id, "SystemModstamp": now}


def expect_shape(expect: Mapping[str, Any]) -> tuple[tuple[str, bool], ...]:
    """(field, expected value is null) pairs: what a guarded UPDATE's WHERE depends on."""
    return tuple((k, v is None) for k, v in expect.items())


def guarded_update(
    table: sa.Table, columns: Iterable[str], expect: Iterable[tuple[str, bool]]
) -> sa.Update:
    """UPDATE ``columns`` (parameters ``v_<column>``) of the live row ``p_id`` if its
    ``expect`` fields still hold the expected values (``e_<field>``; null ones by IS NULL).

    A concurrent writer that changed the row after it was read makes it match nothing, which
    the caller reports as StaleTransition.
    """
    where = [table.c.Id == sa.bindparam("p_id"), table.c.IsDeleted == sa.false()]
    where += [
        table.c[k].is_(None) if is_none else table.c[k] == sa.bindparam(f"e_{k}")
        for k, is_none in expect
    ]
    sets = {c: sa.bindparam(f"v_{c}", type_=table.c[c].type) for c in columns}
    return table.update().where(*where).values(sets)


def guarded_params(
    record_id: str, sets: Mapping[str, Any], expect: Mapping[str, Any]
) -> dict[str, Any]:
    """The parameters of ``guarded_update`` for one row."""
    params = {"v_" + k: v for k, v in sets.items()}
    for k, v in expect.items():
        if v is not None:
            params["e_" + k] = v
    params["p_id"] = record_id
    return params


def add_update_event(
    pending: events.TransactionEvents,
    obj: model.ObjectDef,
    record_id: str,
    changes: Mapping[str, Any],
    modified_text: str,
    user_id: str,
    previous_modifier: str | None,
    body_value: Callable[[model.FieldDef, Any], Any] = events.body_value,
) -> None:
    """The UPDATE change event of ``changes``: the changed fields, LastModifiedDate (given as
    ``modified_text``), and LastModifiedById when the modifier changed."""
    by_name = obj.by_name
    body = {k: body_value(by_name[k.lower()], v) for k, v in changes.items()}
    body["LastModifiedDate"] = modified_text
    changed = [*changes, "LastModifiedDate"]
    if previous_modifier != user_id:
        body["LastModifiedById"] = user_id
        changed.append("LastModifiedById")
    nulled = [k for k, v in changes.items() if v is None]
    pending.add(obj, "UPDATE", record_id, body, changed=changed, nulled=nulled)


#: What breaking each case-insensitive unique index (schema.LOWER_UNIQUE_INDEXES) means.
_INDEX_ERRORS: dict[str, type[errors.DmlError]] = {
    "ux_User_Username_lower": errors.DuplicateUsername,
    "ux_EmailTemplate_DeveloperName_lower": errors.DuplicateDeveloperName,
}


@contextmanager
def duplicates_refused() -> Iterator[None]:
    """A unique index a write broke (a concurrent writer got past the up-front check) as
    Salesforce's error for it, DuplicateValue for the rest, so callers above storage never see
    the driver's error. Wraps the whole transaction: a database may refuse at commit."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        said = str(exc.orig).lower()
        for name, error in _INDEX_ERRORS.items():
            if name.lower() in said:
                raise error() from exc
        raise errors.DuplicateValue("duplicate value found: the row already exists") from exc


def _not_found(record_id: str) -> errors.NotFound:
    """What a write of a missing record answers (and of one the caller cannot see)."""
    return errors.NotFound(f"Provided id does not exist: {record_id}")


@contextmanager
def locks_refused() -> Iterator[None]:
    """A lock not obtained in time (SQLite's busy timeout, PostgreSQL's lock timeout or a
    deadlock) or no pooled connection free as Salesforce's UNABLE_TO_LOCK_ROW: a 400 the
    client retries, never a 500."""
    try:
        yield
    except sa.exc.TimeoutError as exc:  # the connection pool stayed exhausted
        raise errors.UnableToLockRow() from exc
    except sa.exc.DBAPIError as exc:
        if dialect.is_lock_failure(exc):
            raise errors.UnableToLockRow() from exc
        raise


def _full_name(row: Mapping[str, Any]) -> str | None:
    """Salesforce's compound Name: "First Last" (Western order)."""
    parts = [row.get("FirstName"), row.get("LastName")]
    return " ".join(p for p in parts if p) or None


def _writable(f: model.FieldDef, call: str, system: bool) -> bool:
    if f.system or f.calculated:
        return False
    if system:
        return True
    return f.createable if call == "create" else f.updateable


def _required(f: model.FieldDef, system: bool) -> bool:
    if f.nillable or f.defaulted_on_create or f.calculated or f.system or f.type == "boolean":
        return False
    return system or f.createable


def _default(f: model.FieldDef) -> Any:
    if f.default_value is not None:
        return values.to_db(f, f.default_value)
    if f.type == "boolean":
        return False
    return None


class _WritePlan:
    """What a write of one object needs to know, derived once from its declaration."""

    def __init__(self, registry: Registry, obj: model.ObjectDef, system: bool) -> None:
        self.required = tuple(f.name for f in obj.stored_fields if _required(f, system))
        # exact and lower-cased names, so the common exact spelling costs one lookup
        self.fields = {f.name: (f, values.converter(f)) for f in obj.fields}
        self.fields.update({f.name.lower(): (f, values.converter(f)) for f in obj.fields})
        self.owner_fields = tuple(
            f.name
            for f in obj.stored_fields
            if f.name == "OwnerId" and f.defaulted_on_create and f.default_value is None
        )
        # Contact, Lead, User: Name is the read-only compound of FirstName and LastName
        self.compound_name = (
            all(obj.field(n) for n in ("FirstName", "LastName", "Name"))
            and not obj.by_name["name"].createable
        )
        self.createable = frozenset(f.name for f in obj.fields if _writable(f, "create", system))
        self.updateable = frozenset(f.name for f in obj.fields if _writable(f, "update", system))
        self.defaults = {f.name: _default(f) for f in obj.stored_fields if not f.system}
        # read-only fields derived from others on every write (Tx._derived)
        self.derived = obj.name in ("Task", "ActionCadence")
        self._shapes: dict[tuple[str, tuple[str, ...]], tuple[_Slot, ...] | None] = {}

    def shape(self, call: str, names: tuple[str, ...]) -> tuple[_Slot, ...] | None:
        """For a record of these field ``names`` (in order): per name, the field's name, its
        converter and (a reference) the field; None when a name is unknown or not writable by
        ``call`` (``Tx._convert`` then reports it as it finds it). Batches repeat one shape."""
        key = (call, names)
        try:
            return self._shapes[key]
        except KeyError:
            pass
        writable = self.createable if call == "create" else self.updateable
        slots: list[_Slot] = []
        for name in names:
            entry = self.fields.get(name) or self.fields.get(name.lower())
            if entry is None or entry[0].name not in writable:
                break
            f, convert = entry
            slots.append((f.name, convert, f if f.type == "reference" else None))
        found = tuple(slots) if len(slots) == len(names) else None
        if len(self._shapes) >= _SHAPES:
            self._shapes.clear()
        self._shapes[key] = found
        return found


#: (field name, converter, the field when it is a reference) of one name of a record's shape
_Slot = tuple[str, Callable[[Any], Any], model.FieldDef | None]
#: Record shapes remembered per object and access mode.
_SHAPES = 256


class _IdBlock:
    """Hands out unique counters in blocks reserved from the database.

    PostgreSQL: a sequence that steps by ``ID_BLOCK`` (non-transactional, so concurrent
    transactions never wait on each other). SQLite: a counter row updated inside the (single
    writer) transaction. A block lives only as long as its transaction, so a rolled-back
    transaction can never lead two writers to the same numbers.
    """

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._next = 0
        self._end = 0

    def next(self) -> int:
        if self._next >= self._end:
            self._next = dialect.reserve_id_block(
                self._conn,
                counter_table=schema.SEQUENCES,
                sequence=schema.ID_SEQUENCE,
                block=schema.ID_BLOCK,
            )
            self._end = self._next + schema.ID_BLOCK
        value = self._next
        self._next += 1
        return value
