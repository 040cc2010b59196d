"""Light reads: a SELECT compiled once by SQLAlchemy, then run on the driver's own cursor.

SOQL's hot path (``soql/execute.py``) runs the same statements again and again (its compiled
queries are cached). Executing one through SQLAlchemy costs a fixed ~0.1-0.3 ms of Python per
query (cache key, a Connection, a transaction with its BEGIN/ROLLBACK, the result object) --
more than an index lookup costs the database. ``prepare`` lets SQLAlchemy compile a statement
exactly as it would execute it (SQL text and driver parameters, caught just before the cursor
runs it) and keeps that; ``light`` lends a pooled connection and ``Light.rows`` runs a
``Prepared`` on it, applying the same result processors SQLAlchemy applies (SQLite datetimes
and booleans), so the rows are the same values either way.

``write`` is the one exception to reading: a few INSERTs of state no event, trigger or row
count follows (a query locator), compiled once and run as one transaction on the driver.

A light read is read-only: on SQLite it is a deferred transaction (one snapshot for all its
statements, as ``Store.reading``); on PostgreSQL, whose reads are READ COMMITTED (a snapshot
per statement) either way, it runs in autocommit: no BEGIN/ROLLBACK round trips.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from opencadence.storage import dialect

T = TypeVar("T")

#: Driver connections each PostgreSQL engine keeps for light reads, outside its pool.
SPARE_CONNECTIONS = 4


class _Caught(Exception):
    """Stops an execution at the cursor once its SQL and parameters are known."""


@dataclass(slots=True)
class Prepared:
    """A SELECT as its driver runs it: SQL text, driver parameters, column types."""

    sql: str
    params: Any
    types: tuple[sa.types.TypeEngine[Any], ...]
    #: (column index, processor) of the columns whose driver value SQLAlchemy converts; set on
    #: the first run (PostgreSQL's processors depend on the type codes the driver reports)
    processors: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None
    #: where the value of each named parameter (``sa.bindparam``) goes in ``params``
    slots: dict[str, Any] | None = None

    def bound(self, values: dict[str, Any] | None) -> Any:
        """The driver parameters with ``values`` in their slots (strings, ints: the types
        whose bind processors change nothing)."""
        if not values or not self.slots:
            return self.params
        if isinstance(self.params, tuple):
            out = list(self.params)
            for name, value in values.items():
                out[self.slots[name]] = value
            return tuple(out)
        params = dict(self.params)
        for name, value in values.items():
            params[self.slots[name]] = value
        return params


def supported(engine: Engine) -> bool:
    """Light reads need a pool of separate connections (not one shared in-memory SQLite)."""
    return isinstance(engine.pool, sa.pool.QueuePool) and engine.dialect.name in (
        "sqlite",
        "postgresql",
    )


def prepare(engine: Engine, stmt: sa.Select[Any], names: tuple[str, ...] = ()) -> Prepared:
    """Compile ``stmt`` as SQLAlchemy executes it (postcompile parameters expanded, bind
    processors applied) without running it. ``names``: its named string parameters, whose
    values ``Light.rows`` takes (each used once in the statement)."""
    caught: dict[str, Any] = {}
    markers = {name: f"\x00oc-param-{name}\x00" for name in names}

    def catch(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool
    ) -> None:
        if context is not None and context.compiled is not None:
            caught["sql"], caught["params"] = statement, parameters
            raise _Caught

    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", catch)
        try:
            conn.execute(stmt, markers)
        except _Caught:
            pass
        finally:
            sa.event.remove(conn, "before_cursor_execute", catch)
            conn.rollback()
    if "sql" not in caught:
        raise RuntimeError("statement was not compiled")
    params = caught["params"]
    params = tuple(params) if isinstance(params, (list, tuple)) else dict(params)
    slots = {}
    for name, marker in markers.items():
        where = [
            k
            for k, v in (enumerate(params) if isinstance(params, tuple) else params.items())
            if v == marker
        ]
        if len(where) != 1:
            raise RuntimeError(f"parameter {name} must appear once")
        slots[name] = where[0]
    return Prepared(
        caught["sql"], params, tuple(c.type for c in stmt.selected_columns), slots=slots or None
    )


@dataclass(frozen=True, slots=True)
class Write:
    """An INSERT as its driver runs it: SQL text, its parameters' names (in placeholder order
    when ``positional``) and their types' bind processors (SQLite: datetimes to text)."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    def params(self, values: dict[str, Any]) -> Any:
        out = [
            v if proc is None or v is None else proc(v)
            for v, proc in zip((values[n] for n in self.names), self.processors)
        ]
        return tuple(out) if self.positional else dict(zip(self.names, out))


def prepare_write(engine: Engine, stmt: sa.Insert) -> Write:
    """``stmt`` (its values ``sa.bindparam`` of the columns' types) compiled once for the
    engine's dialect, as ``storage.batch`` compiles its statements."""
    d = engine.dialect
    c = stmt.compile(dialect=d)
    assert isinstance(c, sa.sql.compiler.SQLCompiler)
    positional = c.positiontup is not None
    names = tuple(c.positiontup if c.positiontup is not None else c.binds)
    processors = tuple(c.binds[n].type.dialect_impl(d).bind_processor(d) for n in names)
    return Write(c.string, names, processors, positional)


def write(engine: Engine, statements: list[tuple[Write, dict[str, Any]]]) -> None:
    """``statements`` as one transaction on a driver connection, its commit relaxed
    (``dialect.relaxed_begin``): for state a crash may lose without harm, which no change
    event, trigger or row count follows (a query locator). SQLite waits for this process's
    writer turn as ``Store.transaction`` does; PostgreSQL uses a kept connection (see ``read``)
    when one is free. A driver error is raised as SQLAlchemy's (``records.locks_refused``
    turns a lock not obtained into UNABLE_TO_LOCK_ROW)."""
    error = engine.dialect.loaded_dbapi.Error
    begin = dialect.relaxed_begin(engine)
    sqlite = engine.dialect.name == "sqlite"

    def send(cursor: Any) -> None:
        for sql in begin:
            cursor.execute(sql)
        for w, values in statements:
            cursor.execute(w.sql, w.params(values))
        cursor.execute("COMMIT")

    def run(driver: Any) -> None:
        cursor = driver.cursor()
        try:
            try:
                if sqlite:
                    send(cursor)
                else:  # psycopg: every statement sent at once, one round trip, not five
                    with driver.pipeline():
                        send(cursor)
            except BaseException:
                try:
                    cursor.execute("ROLLBACK")
                except error:
                    pass
                raise
        finally:
            cursor.close()

    spares = _spares(engine)
    if spares is not None and spares.slots.acquire(blocking=False):
        try:
            kept = spares.take(engine)
            try:
                run(kept)
            except error as exc:
                _close(kept)
                raise sa.exc.DBAPIError.instance(
                    None, None, exc, error, dialect=engine.dialect
                ) from exc
            except BaseException:
                spares.give(kept)
                raise
            spares.give(kept)
            return
        finally:
            spares.slots.release()
    with dialect.writer_turn(engine) as turn:
        if not turn:
            raise sa.exc.TimeoutError("no writer turn")  # UNABLE_TO_LOCK_ROW
        raw = engine.raw_connection()
        driver: Any = raw.driver_connection
        try:
            if not sqlite:
                driver.autocommit = True  # BEGIN is ours
            run(driver)
        except error as exc:
            raw.invalidate()
            raise sa.exc.DBAPIError.instance(
                None, None, exc, error, dialect=engine.dialect
            ) from exc
        finally:
            if not sqlite and raw.dbapi_connection is not None:
                driver.autocommit = False
            raw.close()


class Light:
    """A pooled driver connection lent for reads."""

    def __init__(self, engine: Engine, dbapi: Any) -> None:
        self.dialect = engine.dialect
        self.dbapi = dbapi

    def rows(self, p: Prepared, values: dict[str, Any] | None = None) -> list[Any]:
        """All rows of ``p`` (its named parameters set to ``values``) as tuples (or lists,
        where a column needed converting)."""
        cursor = self.dbapi.cursor()
        try:
            cursor.execute(p.sql, p.bound(values))
            return self._fetched(p, cursor)
        finally:
            cursor.close()

    def rows_and_scalar(self, p: Prepared, q: Prepared) -> tuple[list[Any], Any]:
        """``rows(p)`` and ``scalar(q)``; on PostgreSQL both sent at once (psycopg's pipeline
        mode: one round trip, not two), for a second statement cheap enough to run whether
        or not its answer is needed."""
        if self.dialect.name != "postgresql":
            return self.rows(p), self.scalar(q)
        first, second = self.dbapi.cursor(), self.dbapi.cursor()
        try:
            with self.dbapi.pipeline():
                first.execute(p.sql, p.bound(None))
                second.execute(q.sql, q.bound(None))
            rows = self._fetched(p, first)
            scalars = self._fetched(q, second)
        finally:
            first.close()
            second.close()
        return rows, scalars[0][0] if scalars else None

    def _fetched(self, p: Prepared, cursor: Any) -> list[Any]:
        procs = p.processors
        if procs is None:
            procs = p.processors = self._processors(p, cursor.description)
        rows: list[Any] = cursor.fetchall()
        if not procs:
            return rows
        out = []
        for row in rows:
            converted = list(row)
            for i, proc in procs:
                converted[i] = proc(converted[i])
            out.append(converted)
        return out

    def scalar(self, p: Prepared) -> Any:
        rows = self.rows(p)
        return rows[0][0] if rows else None

    def _processors(
        self, p: Prepared, description: Any
    ) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        found = []
        for i, (t, d) in enumerate(zip(p.types, description or ())):
            proc = t.dialect_impl(self.dialect).result_processor(self.dialect, d[1])
            if proc is not None:
                found.append((i, proc))
        return tuple(found)


@contextmanager
def light(engine: Engine) -> Iterator[Light]:
    """A pooled connection for light reads (see the module's docstring); a driver error
    invalidates the connection and is raised as SQLAlchemy's (the pool replaces it)."""
    raw = engine.raw_connection()
    dbapi: Any = raw.driver_connection
    sqlite = engine.dialect.name == "sqlite"
    broken = False
    try:
        if sqlite:
            dbapi.execute("BEGIN")
        else:
            dbapi.autocommit = True
        try:
            yield Light(engine, dbapi)
        except engine.dialect.loaded_dbapi.Error as exc:
            broken = True
            raise sa.exc.DBAPIError.instance(
                None, None, exc, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
            ) from exc
    finally:
        if broken:
            raw.invalidate()
        else:
            try:
                if sqlite:
                    dbapi.execute("ROLLBACK")
                else:
                    dbapi.autocommit = False
            except engine.dialect.loaded_dbapi.Error:
                raw.invalidate()
        raw.close()


def read(engine: Engine, fn: Callable[[Light], T]) -> T:
    """``fn`` run on a light connection (see ``light``).

    On PostgreSQL a few connections are kept aside for light reads (``SPARE_CONNECTIONS``,
    taken out of the pool once): checking one out of the pool pings the server first, a round
    trip that costs a quarter of an index lookup. A kept connection is not pinged; a read that
    finds it broken (the server restarted, a backend was terminated) is run again, once, on a
    pinged pooled connection, so a dead connection never reaches the caller. When all are in
    use, the read takes a pooled connection as before."""
    spares = _spares(engine)
    if spares is None or not spares.slots.acquire(blocking=False):
        with light(engine) as lent:
            return fn(lent)
    try:
        kept = spares.take(engine)
        error = engine.dialect.loaded_dbapi.Error
        try:
            result = fn(Light(engine, kept))
        except error as exc:
            _close(kept)
            if not engine.dialect.is_disconnect(exc, kept, None):
                raise sa.exc.DBAPIError.instance(
                    None, None, exc, error, dialect=engine.dialect
                ) from exc
        except BaseException:
            spares.give(kept)  # the caller's own error (autocommit: nothing left open)
            raise
        else:
            spares.give(kept)
            return result
    finally:
        spares.slots.release()
    with light(engine) as lent:  # the kept connection was dead: once more, pinged
        return fn(lent)


class _Spares:
    """The kept connections of one engine (detached from its pool, in autocommit)."""

    def __init__(self) -> None:
        self.idle: list[Any] = []
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(SPARE_CONNECTIONS)

    def take(self, engine: Engine) -> Any:
        """An idle kept driver connection, or a new one taken out of the pool."""
        with self.lock:
            if self.idle:
                return self.idle.pop()
        fairy = engine.raw_connection()  # pinged, set up as every pooled connection
        driver: Any = fairy.driver_connection
        fairy.detach()  # ours now; the pool opens another when it needs one
        driver.autocommit = True
        return driver

    def give(self, driver: Any) -> None:
        with self.lock:
            self.idle.append(driver)

    def close(self) -> None:
        with self.lock:
            kept, self.idle = self.idle, []
        for driver in kept:
            _close(driver)


def _close(driver: Any) -> None:
    try:
        driver.close()
    except Exception:  # closing a dead connection: nothing to do
        pass


_SPARES: weakref.WeakKeyDictionary[Engine, _Spares] = weakref.WeakKeyDictionary()
_SPARES_GUARD = threading.Lock()


def _spares(engine: Engine) -> _Spares | None:
    """The kept connections of a PostgreSQL engine whose pool pings (None otherwise)."""
    if engine.dialect.name != "postgresql" or not getattr(engine.pool, "_pre_ping", False):
        return None
    found = _SPARES.get(engine)
    if found is not None:
        return found
    with _SPARES_GUARD:
        found = _SPARES.get(engine)
        if found is None:
            found = _SPARES[engine] = _Spares()
            # engine.dispose() closes them too (a database is dropped after its engine)
            sa.event.listen(engine, "engine_disposed", lambda _engine: found.close())
    return found
