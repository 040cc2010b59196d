"""The change-event log: one row per change event, written in the changing transaction.

Rows hold the ChangeEventHeader fields and the CometD-style body (JSON):
- CREATE / UNDELETE: every non-null field, system fields included;
- UPDATE: the changed fields (nulls only for fields set to null) plus LastModifiedDate;
- DELETE: no body fields.
IsDeleted, SystemModstamp and calculated fields are never part of a change event.

The replay id is the table's autoincrement key: increasing, opaque, never reused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from opencadence.metadata import model
from opencadence.storage import dialect, schema, values, visibility

#: Fields never carried in a change event body.
EXCLUDED_FIELDS = frozenset({"IsDeleted", "SystemModstamp"})
#: Default retention of the log, as Salesforce keeps change events.
DEFAULT_RETENTION = timedelta(hours=72)


@dataclass(slots=True)
class TransactionEvents:
    """Header values shared by every event of one transaction."""

    transaction_key: str
    commit_user: str
    commit_number: int
    change_origin: str = ""
    commit_timestamp: int = 0
    sequence: int = 0
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def add(
        self,
        obj: model.ObjectDef,
        change_type: str,
        record_id: str,
        body: Mapping[str, Any],
        changed: Iterable[str] = (),
        nulled: Iterable[str] = (),
    ) -> None:
        self.sequence += 1
        changed, nulled = list(changed), list(nulled)
        # A tuple in ROW_COLUMNS order: written with the driver's executemany (see write()).
        self.rows.append(
            (
                obj.name,
                change_type,
                f'["{record_id}"]',  # an ID needs no JSON escaping
                json.dumps(changed) if changed else "[]",
                json.dumps(nulled) if nulled else "[]",
                self.transaction_key,
                self.sequence,
                self.commit_timestamp,
                self.commit_number,
                self.commit_user,
                self.change_origin,
                orjson.dumps(body).decode(),
            )
        )


#: Column order of the tuples TransactionEvents.add builds.
ROW_COLUMNS = (
    "entity",
    "change_type",
    "record_ids",
    "changed_fields",
    "nulled_fields",
    "transaction_key",
    "sequence_number",
    "commit_timestamp",
    "commit_number",
    "commit_user",
    "change_origin",
    "payload",
)


def event_fields(obj: model.ObjectDef) -> tuple[model.FieldDef, ...]:
    """The fields a change event of ``obj`` may carry."""
    return tuple(f for f in obj.stored_fields if f.name not in EXCLUDED_FIELDS)


def body_value(f: model.FieldDef, value: Any) -> Any:
    """A database value as a change event carries it (UTC dateTimes with ``Z``)."""
    if value is None:
        return None
    if f.type == "datetime":
        return values.format_event_datetime(value)
    if f.type == "date":
        return value.isoformat()
    return value


_BODY_SHAPES: dict[str, tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]] = {}


def _body_shape(obj: model.ObjectDef) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """(fields a body may carry, its datetime fields, its date fields), once per object."""
    found = _BODY_SHAPES.get(obj.name)
    if found is None:
        fields = [f for f in event_fields(obj) if f.name != "Id"]
        found = (
            frozenset(f.name for f in fields),
            tuple(f.name for f in fields if f.type == "datetime"),
            tuple(f.name for f in fields if f.type == "date"),
        )
        _BODY_SHAPES[obj.name] = found
    return found


def full_body(obj: model.ObjectDef, row: Mapping[str, Any]) -> dict[str, Any]:
    """CREATE/UNDELETE body: every non-null field."""
    allowed, datetimes, dates = _body_shape(obj)
    body = {k: v for k, v in row.items() if v is not None and k in allowed}
    last: tuple[Any, str] = (None, "")  # rows repeat one timestamp (Created/LastModified)
    for name in datetimes:
        value = body.get(name)
        if value is not None:
            if value is not last[0]:
                last = (value, values.format_event_datetime(value))
            body[name] = last[1]
    for name in dates:
        if body.get(name) is not None:
            body[name] = body[name].isoformat()
    return body


def epoch_ms(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _insert_sql(conn: sa.Connection) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ("replay_id",) + ROW_COLUMNS
    return (
        f"INSERT INTO {schema.EVENTS} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )


#: The oc_sequence row that hands out replay ids.
REPLAY_COUNTER = "replay"


def reserve_replay_ids(conn: sa.Connection, count: int) -> int:
    """The first of ``count`` consecutive replay ids, taken under the counter row's lock.

    The lock is held until the writing transaction ends, so transactions take replay ids in
    the order they commit: a reader that resumes "after replay id N" can never miss an event
    that commits later with a smaller id (which a plain autoincrement allows on PostgreSQL).
    Events are written at the end of a transaction, so the lock is held only briefly.
    """
    end = conn.execute(
        sa.text(
            f"UPDATE {schema.SEQUENCES} SET value = value + :n WHERE name = :name RETURNING value"
        ),
        {"n": count, "name": REPLAY_COUNTER},
    ).scalar()
    if end is None:  # a database made before the counter existed: start after its last event
        last = conn.execute(
            sa.text(f"SELECT coalesce(max(replay_id), 0) FROM {schema.EVENTS}")
        ).scalar_one()
        conn.execute(
            sa.text(f"INSERT INTO {schema.SEQUENCES} (name, value) VALUES (:name, :v)"),
            {"name": REPLAY_COUNTER, "v": int(last) + count},
        )
        end = int(last) + count
    return int(end) - count + 1


def write(conn: sa.Connection, meta: sa.MetaData, pending: TransactionEvents) -> int:
    """Append the transaction's events in one go (PostgreSQL: one COPY, ``dialect.copy_rows``;
    SQLite: one driver-level executemany); returns the last replay id written (0 when there
    was nothing to write).

    Event columns are text and integers only, so the driver takes them as they are; going
    around SQLAlchemy's per-row parameter processing halves the cost of the log. The replay
    ids' lock (``reserve_replay_ids``) is held from here to the commit, so every statement
    after this one is time all event-writing transactions wait for in turn: the transaction
    writes its events last. Readers in other processes are told at commit, once per
    transaction (``Store.transaction``: ``dialect.notify_events``, PostgreSQL's NOTIFY).
    """
    if not pending.rows:
        return 0
    first = reserve_replay_ids(conn, len(pending.rows))
    rows = [(first + i, *row) for i, row in enumerate(pending.rows)]
    if not dialect.copy_rows(conn, schema.EVENTS, ("replay_id",) + ROW_COLUMNS, rows):
        conn.exec_driver_sql(_insert_sql(conn), rows)
    pending.rows = []
    return first + len(rows) - 1


def read(
    conn: sa.Connection,
    meta: sa.MetaData,
    *,
    after: int = 0,
    entity: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Events with replay id > ``after``, oldest first, decoded."""
    table = meta.tables[schema.EVENTS]
    stmt = (
        sa.select(table).where(table.c.replay_id > after).order_by(table.c.replay_id).limit(limit)
    )
    if entity is not None:
        stmt = stmt.where(table.c.entity == entity)
    return [decode(row._mapping) for row in conn.execute(stmt)]


#: Objects whose change events need "View All Users" in Salesforce (on top of what a record
#: rule allows): a user without "View All" receives none of them.
VIEW_ALL_ONLY = frozenset({"User"})
#: The most log rows one ``read_visible`` looks at (replay ids are consecutive, so this bounds
#: the replay id range of one read): a rep far behind in a log of others' events gets its
#: keepalives between reads instead of one read of the whole log.
SCAN_WINDOW = 10_000


def read_visible(
    conn: sa.Connection,
    meta: sa.MetaData,
    *,
    after: int,
    entities: Sequence[str] | None,
    viewer: str | None,
    limit: int = 500,
) -> tuple[list[dict[str, Any]], int]:
    """The one visibility-filtered reader of the change-event log (CometD, the Pub/Sub API,
    ``events tail`` and any later reader use it): up to ``limit`` events past replay id
    ``after``, oldest first, decoded as ``decode`` does, of ``entities`` (None: every object)
    whose record ``viewer`` may see (None: "View All Data", everything); and the replay id the
    reader has seen up to, where its next read starts.

    The visibility rule of each object (``visibility.predicate``) is applied inside the SQL,
    on the record as it stands now; a deleted record keeps its row (IsDeleted), so the rule
    applies to it as it stood when it was deleted. A viewer gets no event of VIEW_ALL_ONLY
    objects. The cursor passes the events the viewer may not see, so they are scanned once,
    never again: it is the last event returned when ``limit`` were found, else the end of the
    range read, which is the newest committed replay id (read in the same snapshot; replay ids
    follow commit order, so nothing below it can still commit) or, at most, ``after`` +
    SCAN_WINDOW.
    """
    table = meta.tables[schema.EVENTS]
    newest = conn.execute(sa.select(sa.func.max(table.c.replay_id))).scalar()
    if newest is None or newest <= after:
        return [], after
    upto = min(int(newest), after + SCAN_WINDOW)
    stmt = (
        sa.select(table)
        .where(table.c.replay_id > after, table.c.replay_id <= upto)
        .order_by(table.c.replay_id)
        .limit(limit)
    )
    condition = _visible(table, meta, entities, viewer)
    if condition is not None:
        stmt = stmt.where(condition)
    found = [decode(row._mapping) for row in conn.execute(stmt)]
    cursor = found[-1]["event"]["replayId"] if len(found) >= limit else upto
    return found, cursor


def _visible(
    table: sa.Table, meta: sa.MetaData, entities: Sequence[str] | None, viewer: str | None
) -> sa.ColumnElement[bool] | None:
    """Events of ``entities`` (None: all) that ``viewer`` may see (None: no condition):
    public objects by name, the others through an EXISTS on the record with the object's
    visibility predicate."""
    if viewer is None:
        return None if entities is None else table.c.entity.in_(list(entities))
    names = (
        list(entities)
        if entities is not None
        else [n for n in visibility.RULES if n in meta.tables]
    )
    record_id = sa.func.substr(table.c.record_ids, 3, 18)  # '["<18-character id>"]'
    public: list[str] = []
    ruled: list[sa.ColumnElement[bool]] = []
    for name in names:
        if name in VIEW_ALL_ONLY:
            continue
        target = meta.tables[name].alias(f"seen_{name}")
        rule = visibility.predicate(name, target, meta, viewer)
        if rule is None:
            public.append(name)
            continue
        seen = sa.exists().where(target.c.Id == record_id, rule)
        ruled.append(sa.and_(table.c.entity == name, seen))
    if entities is None:  # every object: those without a rule (but VIEW_ALL_ONLY) are public
        hidden = sorted(VIEW_ALL_ONLY | {n for n in names})
        return sa.or_(table.c.entity.not_in(hidden), *ruled)
    return sa.or_(table.c.entity.in_(public), *ruled)


def replay_bounds(conn: sa.Connection, meta: sa.MetaData) -> tuple[int | None, int | None]:
    """The smallest and largest replay id still in the log (None, None when it is empty)."""
    table = meta.tables[schema.EVENTS]
    # two statements: each a single index probe (SQLite scans for min and max in one)
    lo = conn.execute(sa.select(sa.func.min(table.c.replay_id))).scalar()
    hi = conn.execute(sa.select(sa.func.max(table.c.replay_id))).scalar()
    return lo, hi


def newest(conn: sa.Connection, meta: sa.MetaData) -> int:
    """The largest replay id in the log (0 when it is empty). A lone max() of the primary key
    is one index probe on both databases; SQLite scans the whole log for min() and max() in
    one statement (``replay_bounds``)."""
    table = meta.tables[schema.EVENTS]
    return int(conn.execute(sa.select(sa.func.max(table.c.replay_id))).scalar() or 0)


def decode(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An event row as the CometD ``data`` object: schema-less payload and replay id."""
    header = {
        "entityName": row["entity"],
        "recordIds": orjson.loads(row["record_ids"]),
        "changeType": row["change_type"],
        "changeOrigin": row["change_origin"],
        "transactionKey": row["transaction_key"],
        "sequenceNumber": row["sequence_number"],
        "commitTimestamp": row["commit_timestamp"],
        "commitNumber": row["commit_number"],
        "commitUser": row["commit_user"],
        "changedFields": orjson.loads(row["changed_fields"]),
        "nulledFields": orjson.loads(row["nulled_fields"]),
        "diffFields": [],
    }
    payload = {"ChangeEventHeader": header, **orjson.loads(row["payload"])}
    return {"payload": payload, "event": {"replayId": row["replay_id"]}}


def prune(conn: sa.Connection, meta: sa.MetaData, now: datetime, retention: timedelta) -> int:
    """Delete events older than ``retention``; returns how many went.

    Replay ids grow with time, so the cut is found by walking the primary key from the oldest
    event: the work is proportional to what is deleted, with no index on the timestamp.
    """
    table = meta.tables[schema.EVENTS]
    cutoff = epoch_ms(now - retention)
    first_kept = conn.execute(
        sa.select(table.c.replay_id)
        .where(table.c.commit_timestamp >= cutoff)
        .order_by(table.c.replay_id)
        .limit(1)
    ).scalar()
    stmt = table.delete()
    if first_kept is not None:
        stmt = stmt.where(table.c.replay_id < first_kept)
    else:
        stmt = stmt.where(table.c.commit_timestamp < cutoff)
    return conn.execute(stmt).rowcount
