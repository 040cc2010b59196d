"""The batch writer: pre-validated rows of many records, one executemany per statement shape.

The cadence runtime's hot path writes through it. Its rows hold database values of fields the
runtime maintains, built from the runtime's own constants and ids, so the per-value
validation of ``Tx.insert``/``Tx.update`` is skipped; everything else is written as ``Tx``
writes it, with the same functions of ``records``:

- inserts are grouped per object, stamped with ``records.created_fields``, and counted in
  the transaction's row counts;
- updates are guarded (``records.guarded_update``: ``WHERE Id = ? AND <field> = <expected>``)
  and grouped per (object, changed fields, expected fields); a group whose row count falls
  short raises StaleTransition and the whole transaction rolls back;
- change events come in change sets, one transactionKey each, with sequence numbers from 1,
  sharing the database commit's number and timestamp with the transaction's other events.

Statements are compiled once per shape and dialect (kept on the ``Store``) and run with the
driver's executemany, values going through the column types' bind processors.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opencadence import errors
from opencadence.metadata import model
from opencadence.storage import dialect, events, records, search_index, values

#: (object, changed fields, (expected field, expected null) pairs) of a guarded update
UpdateShape = tuple[str, tuple[str, ...], tuple[tuple[str, bool], ...]]


class BatchWriter:
    """Pre-validated inserts and guarded updates of one transaction, written by ``write``."""

    def __init__(self, tx: records.Tx) -> None:
        self.tx = tx
        self._store = tx.store
        # The commit's number is taken first, so it precedes every id this batch hands out.
        self._header = tx.event_header()
        self._now = values.to_db_datetime(self._store.clock.now())
        self._stamp = {
            "v_" + k: v for k, v in records.modified_fields(tx.user_id, self._now).items()
        }
        self._inserts: dict[str, list[dict[str, Any]]] = {}
        self._updates: dict[UpdateShape, list[dict[str, Any]]] = {}
        self._sets: list[events.TransactionEvents] = []
        self._formatted: dict[datetime, str] = {}

    def new_id(self, object_name: str) -> str:
        """A fresh Id of ``object_name`` for a row inserted in this batch."""
        return self.tx.new_id(self._store.registry.object(object_name))

    def change_set(self) -> None:
        """Start the next change set: the events after this share a new transactionKey."""
        self._sets.append(
            events.TransactionEvents(
                str(uuid.uuid4()),
                self.tx.user_id,
                self._header.commit_number,
                self.tx.events.change_origin,
                self._header.commit_timestamp,
            )
        )

    def _change_set(self) -> events.TransactionEvents:
        if not self._sets:
            self.change_set()
        return self._sets[-1]

    def insert(self, object_name: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """A new record with these field values (defaults for the others)."""
        obj = self._store.registry.object(object_name)
        row = dict(self._store.plan(obj, True).defaults)
        row.update(fields)
        row.update(records.created_fields(record_id, self.tx.user_id, self._now))
        self._inserts.setdefault(obj.name, []).append(row)
        if obj.change_events:
            self._change_set().add(obj, "CREATE", record_id, events.full_body(obj, row))

    def update(
        self,
        object_name: str,
        record_id: str,
        changes: Mapping[str, Any],
        expect: Mapping[str, Any],
        modified_by: str | None = None,
    ) -> None:
        """Set ``changes`` if the record still holds ``expect``; ``modified_by`` is its
        LastModifiedById before (None: this transaction's user, e.g. a row it inserted)."""
        if not changes:
            return
        obj = self._store.registry.object(object_name)
        shape = (obj.name, tuple(changes), records.expect_shape(expect))
        params = records.guarded_params(record_id, changes, expect)
        params.update(self._stamp)
        self._updates.setdefault(shape, []).append(params)
        if obj.change_events:
            user = self.tx.user_id
            records.add_update_event(
                self._change_set(),
                obj,
                record_id,
                changes,
                self._format(self._now),
                user,
                user if modified_by is None else modified_by,
                self._body_value,
            )

    def write(self) -> None:
        """Run the inserts, then the guarded updates (the change events: ``write_events``)."""
        conn = self.tx.conn
        with records.duplicates_refused():
            for name, rows in self._inserts.items():
                c = self._compiled(("insert", name), self._insert_stmt, name)
                tuples = _tuples(c, rows)
                if not dialect.copy_rows(conn, name, c.names, tuples):  # PostgreSQL: one COPY
                    _run(conn, c, tuples)
                self.tx.note_inserted(name, len(rows))
                obj = self._store.registry.object(name)
                search_index.index_rows(conn, self._store.meta, obj, rows)
            for shape, params in self._updates.items():
                stmt = self._compiled(("update", shape), self._update_stmt, shape)
                count = _executemany(conn, stmt, params)
                if count != len(params):
                    raise errors.StaleTransition(
                        f"{shape[0]}: {len(params) - count} record(s) changed concurrently"
                    )
                obj = self._store.registry.object(shape[0])
                if search_index.indexed_fields(obj) & set(shape[1]):
                    ids = [p["p_id"] for p in params]
                    search_index.reindex_ids(conn, self._store.meta, obj, ids)
        self._inserts, self._updates = {}, {}

    def write_events(self) -> None:
        """Hand the change sets' events to the transaction, which appends them to the log
        when it ends (``Tx.queue_events``: the log's lock is held for the shortest time)."""
        for change_set in self._sets:
            self.tx.queue_events(change_set.rows)
        self._sets = []

    # -- values and statements ------------------------------------------------------------

    def _format(self, value: datetime) -> str:
        """A change-event dateTime; remembered, because a batch repeats the same instants."""
        text = self._formatted.get(value)
        if text is None:
            if len(self._formatted) > 4096:
                self._formatted.clear()
            text = self._formatted[value] = values.format_event_datetime(value)
        return text

    def _body_value(self, f: model.FieldDef, value: Any) -> Any:
        if isinstance(value, datetime):
            return self._format(value)
        return events.body_value(f, value)

    def _insert_stmt(self, name: str) -> sa.Insert:
        table = self._store.meta.tables[name]
        return table.insert().values(
            {c.name: sa.bindparam(c.name, type_=c.type) for c in table.columns}
        )

    def _update_stmt(self, shape: UpdateShape) -> sa.Update:
        name, columns, expect = shape
        table = self._store.meta.tables[name]
        return records.guarded_update(table, columns + records.MODIFIED_FIELDS, expect)

    def _compiled(self, key: Hashable, build: Callable[[Any], Any], arg: Any) -> _Compiled:
        """The statement of ``key`` compiled for this connection's dialect, once per Store."""
        dialect = self.tx.conn.dialect
        cache = self._store.batch_statements
        found: _Compiled | None = cache.get((key, dialect.name))
        if found is None:
            found = cache[(key, dialect.name)] = _compile(build(arg), dialect)
        return found


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    #: parameter names, in the order of the SQL's placeholders when ``positional``
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool


def _compile(stmt: sa.Insert | sa.Update, dialect: sa.Dialect) -> _Compiled:
    c = stmt.compile(dialect=dialect)
    assert isinstance(c, sa.sql.compiler.SQLCompiler)
    positional = c.positiontup is not None
    names = tuple(c.positiontup if c.positiontup is not None else c.binds)
    processors = tuple(
        _memo(c.binds[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in names
    )
    return _Compiled(c.string, names, processors, positional)


def _memo(proc: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
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


def _executemany(conn: sa.Connection, c: _Compiled, params: Sequence[Mapping[str, Any]]) -> int:
    """Run ``c`` once per parameter dict with the driver's executemany; returns the rows
    affected. Going around SQLAlchemy's per-row parameter handling (values still pass the
    types' bind processors) is what makes the runtime's batches cheap."""
    return _run(conn, c, _tuples(c, params))


def _tuples(c: _Compiled, params: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The parameter dicts as tuples in ``c.names`` order, through the bind processors."""
    names = c.names
    converted = [(i, p) for i, p in enumerate(c.processors) if p is not None]
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
    return tuples


def _run(conn: sa.Connection, c: _Compiled, tuples: list[tuple[Any, ...]]) -> int:
    rows: Any = tuples if c.positional else [dict(zip(c.names, t)) for t in tuples]
    return int(conn.exec_driver_sql(c.sql, rows).rowcount)
