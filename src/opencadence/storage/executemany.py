"""Statements compiled once and run with the driver's executemany (or, for inserts on
PostgreSQL, one COPY), values through their column types' bind processors: SQLAlchemy's
per-row parameter handling is most of a batch insert's cost once the rows are built. The
runtime's batches (``storage/batch.py``) and ``Tx.insert_many`` write through it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from opencadence.storage import dialect


def insert_statement(table: sa.Table) -> sa.Insert:
    """An INSERT of every column of ``table``, each a bind parameter of its name (a row
    without some column writes NULL there: no column has a default of its own)."""
    return table.insert().values(
        {c.name: sa.bindparam(c.name, type_=c.type) for c in table.columns}
    )


def insert(
    conn: sa.Connection, cache: dict[Any, Any], table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """INSERT ``rows`` into ``table``: one COPY on PostgreSQL, the driver's executemany on
    SQLite; the statement compiled once into ``cache``."""
    c = compiled(cache, conn, ("insert", table.name), insert_statement, table)
    values = tuples(c, rows)
    if not dialect.copy_rows(conn, table.name, c.names, values):
        run(conn, c, values)


def compiled(
    cache: dict[Any, Any],
    conn: sa.Connection,
    key: Hashable,
    build: Callable[[Any], Any],
    arg: Any,
) -> Compiled:
    """``build(arg)`` compiled for ``conn``'s dialect, kept in ``cache`` under ``key``."""
    name = conn.dialect.name
    found: Compiled | None = cache.get((key, name))
    if found is None:
        found = cache[(key, name)] = compile_statement(build(arg), conn.dialect)
    return found


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    #: parameter names, in the order of the SQL's placeholders when ``positional``
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool


def compile_statement(stmt: sa.Insert | sa.Update, dialect: sa.Dialect) -> Compiled:
    c = stmt.compile(dialect=dialect)
    assert isinstance(c, sa.sql.compiler.SQLCompiler)
    positional = c.positiontup is not None
    names = tuple(c.positiontup if c.positiontup is not None else c.binds)
    processors = tuple(
        _memo(c.binds[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in names
    )
    return Compiled(c.string, names, processors, positional)


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


def execute(conn: sa.Connection, c: Compiled, params: Sequence[Mapping[str, Any]]) -> int:
    """Run ``c`` once per parameter dict with the driver's executemany; returns the rows
    affected. Going around SQLAlchemy's per-row parameter handling (values still pass the
    types' bind processors) is what makes the runtime's batches cheap."""
    return run(conn, c, tuples(c, params))


def tuples(c: Compiled, params: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
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


def run(conn: sa.Connection, c: Compiled, tuples: list[tuple[Any, ...]]) -> int:
    rows: Any = tuples if c.positional else [dict(zip(c.names, t)) for t in tuples]
    return int(conn.exec_driver_sql(c.sql, rows).rowcount)
