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

import uuid
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opencadence import errors
from opencadence.metadata import model
from opencadence.storage import events, executemany, records, search_index, values

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
                table = self._store.meta.tables[name]
                executemany.insert(conn, self._store.batch_statements, table, rows)
                self.tx.note_inserted(name, len(rows))
                obj = self._store.registry.object(name)
                search_index.index_rows(conn, self._store.meta, obj, rows)
            for shape, params in self._updates.items():
                stmt = self._compiled(("update", shape), self._update_stmt, shape)
                count = executemany.execute(conn, stmt, params)
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

    def _update_stmt(self, shape: UpdateShape) -> sa.Update:
        name, columns, expect = shape
        table = self._store.meta.tables[name]
        return records.guarded_update(table, columns + records.MODIFIED_FIELDS, expect)

    def _compiled(
        self, key: Hashable, build: Callable[[Any], Any], arg: Any
    ) -> executemany.Compiled:
        """The statement of ``key`` compiled for this connection's dialect, once per Store."""
        return executemany.compiled(self._store.batch_statements, self.tx.conn, key, build, arg)
