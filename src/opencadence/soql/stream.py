"""Every row of a SOQL query as a stream, for Bulk API query jobs.

One statement, read with a server-side cursor (PostgreSQL) or SQLite's own stepping, a few
thousand rows at a time: memory stays flat however many rows match. The columns are the
SELECT's fields flattened as Bulk API CSV names them (``Target.Name``); what Bulk queries do
not support (aggregates, child subqueries, TYPEOF, OFFSET) is refused before anything runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opencadence import errors
from opencadence.soql import bound, compiler, execute, shape

#: Rows fetched from the database cursor at a time.
FETCH_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: its dotted name, its index in the row, its field type."""

    name: str
    index: int
    kind: str


def check_bulk(c: compiler.Compiled) -> None:
    """Salesforce's Bulk API query limits: no aggregates, COUNT(), OFFSET, TYPEOF or child
    subqueries (INVALID_OPERATION naming what is not supported)."""
    bq = c.bq
    if bq.aggregate or bq.count_only:
        raise errors.InvalidOperation("Aggregate queries are not supported by the Bulk API")
    if bq.offset:
        raise errors.InvalidOperation("OFFSET is not supported by the Bulk API")
    _check_items(bq.items)


def _check_items(items: list[bound.Out]) -> None:
    for item in items:
        if isinstance(item, bound.OutChildren):
            raise errors.InvalidOperation(
                "Parent-to-child relationship queries are not supported by the Bulk API"
            )
        if isinstance(item, bound.OutTypeOf):
            raise errors.InvalidOperation("TYPEOF is not supported by the Bulk API")
        if isinstance(item, bound.OutObject):
            _check_items(item.items)


def columns(c: compiler.Compiled) -> list[Column]:
    """The CSV columns of a query checked by ``check_bulk``, in SELECT order."""
    out: list[Column] = []
    _flatten(c.bq.items, "", out)
    return out


def _flatten(items: list[bound.Out], prefix: str, out: list[Column]) -> None:
    for item in items:
        if isinstance(item, bound.OutField):
            kind = item.expr.field.type if isinstance(item.expr, bound.Col) else "string"
            if item.format is not None:
                kind = "string"
            out.append(Column(prefix + item.key, item.index, kind))
        elif isinstance(item, bound.OutObject):
            _flatten(item.items, f"{prefix}{item.key}.", out)


def plan(service: execute.QueryService, c: compiler.Compiled, version: str) -> shape.ShapePlan:
    """How to shape the rows into records (Bulk 1.0's JSON results)."""
    return shape.ShapePlan(c.bq, service.store.registry, version, c.id_index)


@contextmanager
def rows(service: execute.QueryService, c: compiler.Compiled) -> Iterator[Iterator[Any]]:
    """The query's rows, streamed inside one read transaction (a consistent snapshot)."""
    stmt = c.select
    if c.bq.order:
        stmt = stmt.order_by(*execute._order_clauses(c.order_exprs))
    if c.bq.limit is not None:
        stmt = stmt.limit(c.bq.limit)
    with service.store.reading() as conn:
        # options of this statement only: Connection.execution_options would change the
        # connection itself (a transaction's, which later statements share)
        result = conn.execute(stmt.execution_options(stream_results=True, yield_per=FETCH_ROWS))
        try:
            yield itertools.chain.from_iterable(result.partitions())
        finally:
            result.close()
