"""Every difference between SQLite and PostgreSQL, in one place.

The rest of opencadence writes SQL once; what the two databases do differently is decided here:

Connections
    SQLite runs in WAL mode with a busy timeout, so a worker and a server can share one file;
    transactions marked ``WRITE_OPTION`` begin IMMEDIATE, so the single writer is chosen up
    front instead of failing at the first write (``SQLITE_BUSY`` upgrades of read locks).
    SQLite also lacks Unicode case folding and a time-zone database, so every SQLite connection
    gets two deterministic Python functions, ``oc_lower`` and ``oc_to_local``.

Text
    Case-insensitive keys go through ``lower()`` on PostgreSQL (Unicode-aware in any UTF-8
    locale such as C.UTF-8 or en_US.UTF-8; a database created with LC_CTYPE=C would only fold
    ASCII) and ``oc_lower()`` on SQLite, because SQLite's own ``lower()`` folds ASCII only.
    ``oc_lower`` maps one character at a time, like PostgreSQL's libc ``lower()`` (so no
    final-sigma rule, and 'İ' → 'i'), which keeps the two databases in agreement. Sort keys
    compare the lowered text by code point on both (``COLLATE "C"`` on PostgreSQL; SQLite's
    BINARY collation is code-point order already).

Dates
    dateTime values are stored naive UTC. PostgreSQL converts time zones with ``timezone()``
    and extracts fields with ``EXTRACT``; SQLite calls ``oc_to_local`` and ``strftime`` on the
    stored text. ``api_datetime``/``api_date`` format values the way Salesforce's REST API
    writes them, which costs the database next to nothing and spares Python a datetime object
    and a strftime per value (most of the cost of shaping a 2,000-record page).

Ids, locks, indexes, types
    ID blocks come from a counter row on SQLite (single writer) and a sequence on PostgreSQL;
    row locks (``FOR UPDATE [SKIP LOCKED]``) exist on PostgreSQL only; PostgreSQL needs extra
    NULLS FIRST indexes; autoincrement keys are INTEGER on SQLite (its rowid).

Wake-ups
    A commit that writes change events wakes the CometD readers of other processes: on
    PostgreSQL with ``NOTIFY`` (one per transaction, savepoints included; the payload is the
    last replay id; ``wakeup.py`` LISTENs), on SQLite through the database files themselves
    (``wakeup.py`` looks at their size and mtime).

Bulk appends
    Rows appended in bulk (change events, the cadence runtime's new step trackers) go through
    ``COPY ... FROM STDIN`` on PostgreSQL (``copy_rows``): one round trip and no per-row
    statement, several times cheaper for both sides than an executemany of INSERTs; SQLite
    takes the executemany.

Constants in expressions are rendered inline, never as bound parameters, so that an expression
in SELECT and the same expression in GROUP BY compile to identical SQL (PostgreSQL compares
them as text).
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

Col = sa.ColumnElement[Any]
Bind = Engine | sa.Connection
SelectT = TypeVar("SelectT", bound=sa.Select[Any])

#: Execution option marking a connection that will write (SQLite begins it IMMEDIATE).
WRITE_OPTION = "opencadence_write"


def is_sqlite(bind: Bind) -> bool:
    return bind.dialect.name == "sqlite"


# --- connections -----------------------------------------------------------------------------

#: The PostgreSQL NOTIFY channel of committed change events (payload: the last replay id).
EVENTS_CHANNEL = "oc_change_events"


def upsert(
    bind: Bind, table: sa.Table, values: dict[str, Any], keys: Sequence[str], set_: dict[str, Any]
) -> Any:
    """INSERT of ``values`` that, where a row with the same ``keys`` exists (or is being
    inserted by a concurrent transaction), sets ``set_`` on it instead: ON CONFLICT DO
    UPDATE, which both databases have."""
    insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    return stmt.on_conflict_do_update(index_elements=[table.c[k] for k in keys], set_=set_)


def notify_events(conn: sa.Connection, last_replay_id: int) -> None:
    """Tell other processes, at commit, that change events up to ``last_replay_id`` exist.

    PostgreSQL delivers a NOTIFY when the transaction commits, never after a rollback; SQLite
    has no such thing (its readers watch the files, see ``wakeup.py``).
    """
    if not is_sqlite(conn):
        conn.execute(
            sa.text("SELECT pg_notify(:channel, :payload)"),
            {"channel": EVENTS_CHANNEL, "payload": str(last_replay_id)},
        )


#: The PostgreSQL NOTIFY channel of CometD clients shared by server processes
#: (``storage.cometd_clients``; payload: the client id whose row changed).
COMETD_CLIENTS_CHANNEL = "oc_cometd_clients"
#: The channels besides EVENTS_CHANNEL a process's one LISTEN connection listens to
#: (``wakeup.watch``), each reported with its payload.
NOTICE_CHANNELS = (COMETD_CLIENTS_CHANNEL,)


def notify(conn: sa.Connection, channel: str, payload: str) -> None:
    """A NOTIFY on ``channel`` delivered at commit (PostgreSQL); nothing on SQLite."""
    if not is_sqlite(conn):
        conn.execute(
            sa.text("SELECT pg_notify(:channel, :payload)"),
            {"channel": channel, "payload": payload},
        )


def transaction_lock(conn: sa.Connection, key: int) -> None:
    """Hold lock ``key`` until this transaction ends: PostgreSQL's transaction advisory lock;
    on SQLite a write transaction is the single writer already."""
    if not is_sqlite(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


#: The PostgreSQL advisory lock key of schema upgrades (any constant no other code uses).
_UPGRADE_LOCK_KEY = 0x0C_5C_4E_3A


def upgrade_lock(conn: sa.Connection, waiting: Callable[[], None]) -> None:
    """Hold, until this transaction ends, the one lock schema upgrades take, so that `serve`
    and N `worker` processes started together on an empty or older database upgrade one after
    another (each then finds the schema current) instead of racing on CREATE TABLE.

    PostgreSQL: a transaction-scoped advisory lock, tried every half second so that a long
    upgrade elsewhere (an index built on a large table) shows as waiting, not as a hang, and
    is not cut short by the lock timeout every connection has. SQLite: the IMMEDIATE write
    transaction the upgrade runs in is that lock already."""
    if is_sqlite(conn):
        return
    try_lock = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
    while not conn.execute(try_lock, {"key": _UPGRADE_LOCK_KEY}).scalar():
        waiting()
        time.sleep(0.5)


def copy_rows(
    conn: sa.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> bool:
    """Append ``rows`` (tuples in ``columns`` order, database values) to ``table`` with
    PostgreSQL's ``COPY ... FROM STDIN`` in ``conn``'s transaction; False on SQLite, where the
    caller inserts them itself. A failure raises as SQLAlchemy would have raised it
    (IntegrityError for a duplicate key, OperationalError for a lock refused...)."""
    if is_sqlite(conn):
        return False
    import psycopg  # the PostgreSQL driver; imported only when PostgreSQL is in use

    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'COPY "{table}" ({names}) FROM STDIN'
    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, psycopg.Error) from exc
    return True


def relaxed_commit(conn: sa.Connection) -> None:
    """This transaction's commit need not wait for its WAL flush (PostgreSQL's
    ``synchronous_commit = off``, for this transaction only): for state a database crash may
    lose without harm (a query locator: the client runs its query again). Still atomic and
    consistent; a commit is durable within ~3 × wal_writer_delay. SQLite (WAL,
    ``synchronous=NORMAL``) does not sync at commit anyway."""
    if not is_sqlite(conn):
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def relaxed_begin(bind: Bind) -> tuple[str, ...]:
    """The statements that open a driver-level write transaction whose commit is relaxed as
    ``relaxed_commit`` says (SQLite: IMMEDIATE, taking the write lock at once, as every
    writer here does)."""
    if is_sqlite(bind):
        return ("BEGIN IMMEDIATE",)
    return ("BEGIN", "SET LOCAL synchronous_commit TO OFF")


def setup_sqlite(engine: Engine, *, wal: bool) -> None:
    """Per-connection setup of a SQLite engine: pragmas, SQL functions, IMMEDIATE writers.

    ``wal`` is False for an in-memory database, which has no journal file.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
        cursor.close()
        _register_functions(dbapi_conn)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


#: How long a writer waits for a row lock (PostgreSQL) or the write lock (SQLite) before
#: UNABLE_TO_LOCK_ROW: Salesforce's own record-lock wait is 10 seconds.
LOCK_WAIT_SECONDS = 10

#: PostgreSQL SQLSTATEs of a lock not obtained: lock_not_available (lock_timeout),
#: deadlock_detected, serialization_failure.
_PG_LOCK_STATES = frozenset({"55P03", "40P01", "40001"})


def postgres_connect_args() -> dict[str, Any]:
    """Connection options of every PostgreSQL connection: a lock wait bounded as Salesforce's."""
    return {"options": f"-c lock_timeout={LOCK_WAIT_SECONDS * 1000}"}


def is_lock_failure(exc: BaseException) -> bool:
    """Whether a driver error means "another transaction holds the lock; try again": SQLite's
    "database is locked" (its busy timeout ran out) or PostgreSQL's lock timeout, deadlock and
    serialization failures. A lost connection is not one of them."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    state = getattr(orig, "sqlstate", None)
    if state is not None:
        return str(state) in _PG_LOCK_STATES
    text = str(orig).lower()
    return "database is locked" in text or "database table is locked" in text


#: Per SQLite engine: the lock its writers queue on within one process (see ``writer_turn``).
_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITER_LOCKS_GUARD = threading.Lock()


@contextmanager
def writer_turn(engine: Engine) -> Iterator[bool]:
    """Around a write transaction: on SQLite, wait for this process's previous writers first.

    SQLite has one writer; the others retry on its busy handler, which sleeps up to 100 ms
    between tries, so a writer that just arrived often wins over one that has waited for
    seconds (50 concurrent clients saw 10 s waits). Queueing the threads of one process on a
    lock hands the write lock over in arrival order at once; other processes still meet the
    busy timeout. Yields False when the turn did not come within LOCK_WAIT_SECONDS. PostgreSQL
    has row locks: nothing to queue on."""
    if not is_sqlite(engine):
        yield True
        return
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.setdefault(engine, threading.Lock())
    if not lock.acquire(timeout=LOCK_WAIT_SECONDS):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=4096)
def _lower_char(ch: str) -> str:
    # Full lowercase mappings with more than one character (only 'İ' → 'i̇') keep their first
    # character, which is the simple mapping PostgreSQL's per-character lower() uses.
    return ch.lower()[:1] or ch


def simple_lower(text: str) -> str:
    """Per-character Unicode lowercase, as PostgreSQL's ``lower()`` does it."""
    if text.isascii():
        return text.lower()
    return "".join(_lower_char(ch) for ch in text)


def _sqlite_lower(value: Any) -> Any:
    return simple_lower(value) if isinstance(value, str) else value


def _sqlite_to_local(value: Any, tz: Any) -> str | None:
    """A stored naive-UTC dateTime ('YYYY-MM-DD HH:MM:SS.ffffff') as local time in ``tz``."""
    if value is None or tz is None:
        return None
    utc = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    return utc.astimezone(_zone(str(tz))).strftime("%Y-%m-%d %H:%M:%S.%f")


def _register_functions(dbapi_conn: Any) -> None:
    """The SQL functions the SQLite forms below emit, on a new sqlite3 connection."""
    dbapi_conn.create_function("oc_lower", 1, _sqlite_lower, deterministic=True)
    dbapi_conn.create_function("oc_to_local", 2, _sqlite_to_local, deterministic=True)


# --- ids, locks, indexes, types ---------------------------------------------------------------


def create_id_counter(
    conn: sa.Connection, *, counter_table: str, sequence: str, start: int, block: int
) -> None:
    """Create the ID counter if missing: a row of ``counter_table`` on SQLite, a sequence
    stepping by ``block`` on PostgreSQL."""
    if is_sqlite(conn):
        table = sa.table(counter_table, sa.column("name"), sa.column("value"))
        if conn.execute(sa.select(table.c.value).where(table.c.name == "id")).first() is None:
            conn.execute(table.insert().values(name="id", value=start))
        return
    conn.exec_driver_sql(
        f"CREATE SEQUENCE IF NOT EXISTS {sequence} START {start} INCREMENT {block}"
    )


def reserve_id_block(conn: sa.Connection, *, counter_table: str, sequence: str, block: int) -> int:
    """The first of ``block`` counters reserved for this transaction.

    PostgreSQL: the sequence (non-transactional, so concurrent transactions never wait on each
    other). SQLite: the counter row, updated inside the (single writer) transaction.
    """
    if is_sqlite(conn):
        row = conn.execute(
            sa.text(
                f"UPDATE {counter_table} SET value = value + :n WHERE name = 'id' RETURNING value"
            ),
            {"n": block},
        ).scalar_one()
        return int(row) - block
    return int(conn.execute(sa.text(f"SELECT nextval('{sequence}')")).scalar_one())


def supports_row_locks(bind: Bind) -> bool:
    """Whether ``SELECT ... FOR UPDATE`` locks rows (PostgreSQL); SQLite's single writer
    already serialises every write transaction."""
    return not is_sqlite(bind)


def for_update(stmt: SelectT, bind: Bind, *, skip_locked: bool = False) -> SelectT:
    """``stmt`` locking the rows it reads where the database has row locks (else unchanged)."""
    if not supports_row_locks(bind):
        return stmt
    return stmt.with_for_update(skip_locked=skip_locked)


def ensure_nulls_first_index(
    conn: sa.Connection, table: str, name: str, columns: Sequence[str]
) -> bool:
    """Create index ``name`` with its last column NULLS FIRST unless it exists; True if created.

    Salesforce sorts nulls first ascending, PostgreSQL's indexes last, so ORDER BY ... ASC
    NULLS FIRST can only walk an index declared that way. SQLite already sorts nulls first.
    """
    if is_sqlite(conn):
        return False
    exists = conn.execute(
        sa.text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": name}
    ).first()
    if exists is not None:
        return False
    cols = ", ".join(f'"{c}"' for c in columns) + " NULLS FIRST"
    conn.exec_driver_sql(f'CREATE INDEX {name} ON "{table}" ({cols})')
    return True


def index_exists(conn: sa.Connection, name: str) -> bool:
    """Whether an index of this name exists (looked up in the database's own catalog)."""
    catalog = (
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :n"
        if is_sqlite(conn)
        else "SELECT 1 FROM pg_indexes WHERE indexname = :n"
    )
    return conn.execute(sa.text(catalog), {"n": name}).first() is not None


def ensure_lower_unique_index(
    conn: sa.Connection, table: str, name: str, column: str, live_only: bool = False
) -> bool:
    """Create the unique index ``name`` on lower(``column``) unless it exists; True if created.
    ``live_only`` leaves deleted rows out (a partial index). Both databases take the same
    statement (``NOT "IsDeleted"`` reads SQLite's 0/1 and PostgreSQL's boolean alike); only the
    catalog lookup differs."""
    if index_exists(conn, name):
        return False
    where = ' WHERE NOT "IsDeleted"' if live_only else ""
    conn.exec_driver_sql(f'CREATE UNIQUE INDEX "{name}" ON "{table}" (lower("{column}")){where}')
    return True


#: What SQLAlchemy says when reflecting SQLite's expression indexes (which it cannot reflect):
#: the upgrade's comparison reads past those of LOWER_UNIQUE_INDEXES, which it manages itself.
EXPRESSION_INDEX_WARNING = "Skipped unsupported reflection of expression-based index"


def autoincrement_bigint() -> sa.BigInteger:
    """The type of an autoincrement key: BIGINT, but INTEGER on SQLite (its rowid alias)."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# --- expressions: small helpers ---------------------------------------------------------------


def inline_int(n: int) -> Col:
    """An inline integer constant (see the module docstring on GROUP BY)."""
    return sa.literal_column(str(int(n)), sa.Integer())


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


class _IntDiv(FunctionElement[int]):
    """Integer division truncating toward zero (both databases divide integers that way)."""

    type = sa.BigInteger()
    name = "int_div"
    inherit_cache = True


@compiles(_IntDiv)
def _int_div(element: _IntDiv, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy's // turns into FLOOR(a / b) unless it knows both sides are integers
    numerator, denominator = _args(element, compiler, **kw)
    return f"(({numerator}) / ({denominator}))"


def int_div(numerator: Col, denominator: Col) -> Col:
    """``numerator / denominator`` on integer operands, truncated toward zero."""
    return _IntDiv(numerator, denominator)


# --- expressions: case-insensitive text -------------------------------------------------------


class _CiLower(FunctionElement[str]):
    """Unicode lowercase of a text expression (the key of case-insensitive equality)."""

    type = sa.String()
    name = "ci_lower"
    inherit_cache = True


@compiles(_CiLower)
def _ci_lower_pg(element: _CiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return "lower(%s)" % compiler.process(element.clauses, **kw)


@compiles(_CiLower, "sqlite")
def _ci_lower_sqlite(element: _CiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return "oc_lower(%s)" % compiler.process(element.clauses, **kw)


class _CiSortKey(FunctionElement[str]):
    """Lowercase text that orders by code point on both databases."""

    type = sa.String()
    name = "ci_sort_key"
    inherit_cache = True


@compiles(_CiSortKey)
def _ci_sort_key_pg(element: _CiSortKey, compiler: SQLCompiler, **kw: Any) -> str:
    return 'lower(%s) COLLATE "C"' % compiler.process(element.clauses, **kw)


@compiles(_CiSortKey, "sqlite")
def _ci_sort_key_sqlite(element: _CiSortKey, compiler: SQLCompiler, **kw: Any) -> str:
    return "oc_lower(%s)" % compiler.process(element.clauses, **kw)


def ci_lower(expr: Col) -> Col:
    """Per-character Unicode lowercase of ``expr`` (``simple_lower`` in the database)."""
    return _CiLower(expr)


def ci_sort_key(expr: Col) -> Col:
    """ORDER BY key of a text expression: case-insensitive, code-point order."""
    return _CiSortKey(expr)


# --- expressions: dates -----------------------------------------------------------------------

_TZ_NAME = re.compile(r"^[A-Za-z0-9/_+\-]+$")


class _ToLocal(FunctionElement[datetime]):
    """A naive-UTC dateTime as naive local time; arguments: expr, inline quoted zone name."""

    type = sa.DateTime()
    name = "to_local"
    inherit_cache = True


@compiles(_ToLocal)
def _to_local_pg(element: _ToLocal, compiler: SQLCompiler, **kw: Any) -> str:
    value, tz = _args(element, compiler, **kw)
    return f"timezone({tz}, timezone('UTC', {value}))"


@compiles(_ToLocal, "sqlite")
def _to_local_sqlite(element: _ToLocal, compiler: SQLCompiler, **kw: Any) -> str:
    value, tz = _args(element, compiler, **kw)
    return f"oc_to_local({value}, {tz})"


def to_local(expr: Col, tz: str) -> Col:
    """dateTime ``expr`` (naive UTC) as naive local time in zone ``tz`` (an IANA name)."""
    if not _TZ_NAME.match(tz):
        raise ValueError(f"unsupported time zone name: {tz!r}")
    # inline, not a bound parameter: part of the cache key and identical in GROUP BY
    return _ToLocal(expr, sa.literal_column(f"'{tz}'"))


class _DayOnly(FunctionElement[date]):
    type = sa.Date()
    name = "day_only"
    inherit_cache = True


@compiles(_DayOnly)
def _day_only_pg(element: _DayOnly, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(%s AS DATE)" % compiler.process(element.clauses, **kw)


@compiles(_DayOnly, "sqlite")
def _day_only_sqlite(element: _DayOnly, compiler: SQLCompiler, **kw: Any) -> str:
    return "date(%s)" % _sqlite_whole_seconds(compiler.process(element.clauses, **kw))


def day_only(expr: Col) -> Col:
    """The date of a dateTime expression."""
    return _DayOnly(expr)


class _Part(FunctionElement[int]):
    """An integer field of a date/dateTime; arguments: expr, inline field name."""

    type = sa.Integer()
    name = "date_part"
    inherit_cache = True


#: strftime formats of the fields _Part extracts (dow: 0 = Sunday, as in PostgreSQL)
_STRFTIME = {"year": "%Y", "month": "%m", "day": "%d", "dow": "%w", "doy": "%j", "hour": "%H"}


@compiles(_Part)
def _part_pg(element: _Part, compiler: SQLCompiler, **kw: Any) -> str:
    value, field = _args(element, compiler, **kw)
    return f"CAST(EXTRACT({field} FROM {value}) AS INTEGER)"


@compiles(_Part, "sqlite")
def _part_sqlite(element: _Part, compiler: SQLCompiler, **kw: Any) -> str:
    value, field = _args(element, compiler, **kw)
    return f"CAST(strftime('{_STRFTIME[field]}', {_sqlite_whole_seconds(value)}) AS INTEGER)"


def _sqlite_whole_seconds(value: str) -> str:
    # SQLite rounds fractional seconds to milliseconds before computing a date, so
    # 23:59:59.9999 would count as the next day; SQLAlchemy's stored text without the
    # fraction ('YYYY-MM-DD HH:MM:SS', or a whole 'YYYY-MM-DD' date) has no such rounding.
    return f"substr({value}, 1, 19)"


def date_part(field: str, expr: Col) -> Col:
    """Integer ``field`` of a date/dateTime: year, month, day, dow (0 = Sunday), doy, hour."""
    if field not in _STRFTIME:
        raise ValueError(f"unknown date part: {field}")
    return _Part(expr, sa.literal_column(field))


class _SecondsBetween(FunctionElement[int]):
    type = sa.BigInteger()
    name = "seconds_between"
    inherit_cache = True


@compiles(_SecondsBetween)
def _seconds_between_pg(element: _SecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = _args(element, compiler, **kw)
    # whole microseconds first, then integer division truncates toward zero like int()
    return f"(CAST(EXTRACT(EPOCH FROM ({later}) - ({earlier})) * 1000000 AS BIGINT) / 1000000)"


def _sqlite_micros(value: Col, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff'; julianday() is a double too coarse for
    # exact microseconds, so whole seconds come from strftime('%s') of the text without the
    # fraction and the microseconds from characters 21-26 (a value without them yields 0).
    # The value is compiled once per use so a bound parameter gets a placeholder each time.
    seconds = _sqlite_whole_seconds(compiler.process(value, **kw))
    return (
        f"(CAST(strftime('%s', {seconds}) AS INTEGER) * 1000000"
        f" + CAST(substr({compiler.process(value, **kw)}, 21, 6) AS INTEGER))"
    )


@compiles(_SecondsBetween, "sqlite")
def _seconds_between_sqlite(element: _SecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = element.clauses
    micros = [_sqlite_micros(v, compiler, **kw) for v in (later, earlier)]
    return f"(({micros[0]} - {micros[1]}) / 1000000)"


def seconds_between(later: Col, earlier: Col) -> Col:
    """Whole seconds from ``earlier`` to ``later`` (naive UTC), truncated toward zero."""
    return _SecondsBetween(later, earlier)


# --- expressions: values as the REST API writes them ------------------------------------------


class _ApiDateTime(FunctionElement[str]):
    type = sa.String()
    inherit_cache = True
    name = "api_datetime"


class _ApiDate(FunctionElement[str]):
    type = sa.String()
    inherit_cache = True
    name = "api_date"


@compiles(_ApiDateTime)
@compiles(_ApiDate)
def _api_generic(element: FunctionElement[str], compiler: SQLCompiler, **kw: Any) -> str:
    """Only for rendering without a dialect (SQLAlchemy compiles a statement's FROM list
    that way, e.g. for a child subquery's date fields); never sent to a database."""
    return "%s(%s)" % (element.name, compiler.process(element.clauses, **kw))


#: A stored dateTime of whole milliseconds, as SQLite's GLOB matches it.
_STORED_MS = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]000"
)


@compiles(_ApiDateTime, "sqlite")
def _api_datetime_sqlite(element: _ApiDateTime, compiler: SQLCompiler, **kw: Any) -> str:
    # %f is seconds with milliseconds (SS.SSS)
    arg = compiler.process(element.clauses, **kw)
    formatted = "strftime('%%Y-%%m-%%dT%%H:%%M:%%f+0000', %s)" % arg
    inner = list(element.clauses)
    if len(inner) != 1 or not isinstance(inner[0], sa.ColumnClause):
        return formatted
    # A stored value ('YYYY-MM-DD HH:MM:SS.ffffff', whole milliseconds: values.to_db_datetime)
    # is cut into the same text: strftime costs ~2.5 µs a value, most of a 2,000-record page.
    # Anything else (other precision, other text) still goes through strftime. (Python wrote
    # every stored value: its dates are valid, which strftime would otherwise normalize.)
    return (
        f"CASE WHEN {arg} GLOB '{_STORED_MS}' "
        f"THEN substr({arg}, 1, 10) || 'T' || substr({arg}, 12, 12) || '+0000' "
        f"ELSE {formatted} END"
    )


@compiles(_ApiDateTime, "postgresql")
def _api_datetime_pg(element: _ApiDateTime, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return 'to_char(%s, \'YYYY-MM-DD"T"HH24:MI:SS.MS"+0000"\')' % arg


@compiles(_ApiDate, "sqlite")
def _api_date_sqlite(element: _ApiDate, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    formatted = "strftime('%%Y-%%m-%%d', %s)" % arg
    inner = list(element.clauses)
    if len(inner) != 1 or not isinstance(inner[0], sa.ColumnClause):
        return formatted
    # a stored date ('YYYY-MM-DD') is its own text: no strftime per value
    return f"CASE WHEN {arg} GLOB '{_STORED_DATE}' THEN {arg} ELSE {formatted} END"


_STORED_DATE = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"


@compiles(_ApiDate, "postgresql")
def _api_date_pg(element: _ApiDate, compiler: SQLCompiler, **kw: Any) -> str:
    return "to_char(%s, 'YYYY-MM-DD')" % compiler.process(element.clauses, **kw)


def api_datetime(expr: Col) -> Col:
    """A naive-UTC dateTime column as ``YYYY-MM-DDTHH:MM:SS.mmm+0000`` text."""
    return _ApiDateTime(expr)


def api_date(expr: Col) -> Col:
    """A date column as ``YYYY-MM-DD`` text."""
    return _ApiDate(expr)


# --- full-text search (storage/search_index.py; decisions in docs/search-decisions.md) --------
# The documents are one ordinary table (schema.SEARCH_DOCS) of pre-tokenized text in four
# columns, one per SOSL search group. SQLite indexes them with an FTS5 external-content table
# kept in step by triggers (so every write of a document updates the index in the same
# transaction); PostgreSQL with a GIN index over one weighted tsvector (name A, email B,
# phone C, the other fields D), stored in the documents' `vector` column by a trigger (so
# ranking reads it rather than computing it again per matched row). Search expressions are
# rendered into each engine's own syntax below.

#: The FTS5 table over the documents (SQLite); its shadow tables share the prefix.
FTS_TABLE = "oc_search_fts"
#: The GIN index (PostgreSQL).
GIN_INDEX = "ix_oc_search_doc_fts"
#: SOSL search group -> the document column (SQLite) / the tsvector weight (PostgreSQL).
SEARCH_COLUMNS = {"NAME": "name", "EMAIL": "email", "PHONE": "phone"}
_WEIGHTS = {"name": "A", "email": "B", "phone": "C", "other": "D"}
_DOC_COLUMNS = ("name", "email", "phone", "other")


def search_vector_type() -> sa.types.TypeEngine[Any]:
    """The documents' ``vector`` column: a tsvector on PostgreSQL (filled by the trigger),
    unused text on SQLite (FTS5 holds the index there)."""
    return sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")


def _pg_document(alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return " || ".join(
        f"setweight(to_tsvector('simple'::regconfig, {prefix}{c}), '{_WEIGHTS[c]}')"
        for c in _DOC_COLUMNS
    )


def search_index_exists(conn: sa.Connection) -> bool:
    if is_sqlite(conn):
        found = conn.execute(
            sa.text("SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": FTS_TABLE}
        ).first()
        return found is not None
    return index_exists(conn, GIN_INDEX)


def ensure_search_index(conn: sa.Connection, docs: str) -> bool:
    """Create the full-text index over the ``docs`` table unless it exists; True if created
    (the caller then fills it from the records)."""
    if search_index_exists(conn):
        return False
    if is_sqlite(conn):
        cols = ", ".join(_DOC_COLUMNS)
        new = ", ".join(f"new.{c}" for c in _DOC_COLUMNS)
        old = ", ".join(f"old.{c}" for c in _DOC_COLUMNS)
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({cols}, content='{docs}', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 0')"
        )
        conn.exec_driver_sql(
            f"CREATE TRIGGER {FTS_TABLE}_ai AFTER INSERT ON {docs} BEGIN "
            f"INSERT INTO {FTS_TABLE}(rowid, {cols}) VALUES (new.id, {new}); END"
        )
        conn.exec_driver_sql(
            f"CREATE TRIGGER {FTS_TABLE}_ad AFTER DELETE ON {docs} BEGIN "
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {cols}) "
            f"VALUES ('delete', old.id, {old}); END"
        )
        conn.exec_driver_sql(
            f"CREATE TRIGGER {FTS_TABLE}_au AFTER UPDATE ON {docs} BEGIN "
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {cols}) "
            f"VALUES ('delete', old.id, {old}); "
            f"INSERT INTO {FTS_TABLE}(rowid, {cols}) VALUES (new.id, {new}); END"
        )
        return True
    conn.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {docs}_vector() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN NEW.vector := {_pg_document('NEW')}; RETURN NEW; END $$"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {docs}_vector BEFORE INSERT OR UPDATE ON {docs} "
        f"FOR EACH ROW EXECUTE FUNCTION {docs}_vector()"
    )
    conn.exec_driver_sql(f"CREATE INDEX {GIN_INDEX} ON {docs} USING gin (vector)")
    return True


def is_search_index_table(name: str) -> bool:
    """Whether ``name`` is one of the tables the search index creates outside the registry's
    metadata (the FTS5 table and its shadow tables), which the upgrade's comparison skips."""
    return name == FTS_TABLE or name.startswith(FTS_TABLE + "_")


def search_phrase(bind: Bind, tokens: Sequence[str], prefix: bool, group: str) -> str:
    """One phrase (consecutive tokens; the last a prefix when ``prefix``) in the search group
    ``group`` (ALL, NAME, EMAIL, PHONE), in the engine's match syntax. Tokens are
    search_index.tokenize's: letters or digits only, so they need no escaping."""
    column = SEARCH_COLUMNS.get(group)
    if is_sqlite(bind):
        text = '"' + " ".join(tokens) + '"' + ("*" if prefix else "")
        return f"{column} : {text}" if column else text
    weight = _WEIGHTS[column] if column else ""
    parts = [f"{t}:{weight}" if weight else t for t in tokens[:-1]]
    last = tokens[-1]
    parts.append(f"{last}:*{weight}" if prefix else (f"{last}:{weight}" if weight else last))
    return "(" + " <-> ".join(parts) + ")"


def search_combine(bind: Bind, op: str, parts: Sequence[str]) -> str:
    """``parts`` joined by AND, OR or AND NOT (binary: the first part and not the second)."""
    if is_sqlite(bind):
        joiner = {"AND": " AND ", "OR": " OR ", "AND NOT": " NOT "}[op]
    else:
        joiner = {"AND": " & ", "OR": " | ", "AND NOT": " & !"}[op]
    return "(" + joiner.join(parts) + ")"


def search_matches(
    bind: Bind, docs: sa.Table, expression: str, best: int | None = None
) -> sa.Select[Any]:
    """The documents matching ``expression`` (a rendered search expression): ``record_id``,
    ``entity``, ``rank`` (lower is better) and the document columns; only the ``best``
    ranked ones when given (the index ranks them before any table is joined)."""
    if is_sqlite(bind):
        fts = sa.table(FTS_TABLE, sa.column("rowid"), sa.column("rank"))
        found = sa.select(fts.c.rowid, fts.c.rank).where(
            sa.literal_column(FTS_TABLE).op("MATCH")(expression)
        )
        if best is not None:
            found = found.order_by(fts.c.rank).limit(best)
        hits = found.subquery("oc_hits")
        return sa.select(
            docs.c.record_id, docs.c.entity, hits.c.rank.label("rank"), *_doc_columns(docs)
        ).select_from(hits.join(docs, docs.c.id == hits.c.rowid))
    document = docs.c.vector
    query = sa.func.to_tsquery(sa.literal_column("'simple'::regconfig"), expression)
    rank = (-sa.func.ts_rank(document, query)).label("rank")
    stmt = sa.select(docs.c.record_id, docs.c.entity, rank, *_doc_columns(docs)).where(
        document.op("@@")(query)
    )
    return stmt.order_by(rank).limit(best) if best is not None else stmt


def _doc_columns(docs: sa.Table) -> list[Col]:
    return [docs.c[c] for c in _DOC_COLUMNS]
