"""Database engines for SQLite (embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine as Engine  # re-exported: the type layers above hold

from opencadence.storage import dialect

#: Where the embedded database lives when no URL is given.
DEFAULT_SQLITE_PATH = "opencadence.db"


def default_url() -> str:
    """``$OPENCADENCE_DATABASE_URL`` or a SQLite file in the working directory."""
    return os.environ.get("OPENCADENCE_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and a bare file path for SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{url}"
    return url


def create_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An Engine for ``url`` with the settings opencadence relies on.

    Each SQLite connection is set up by ``dialect.setup_sqlite`` (WAL, busy timeout, the SQL
    functions SQLite lacks, IMMEDIATE write transactions: see ``dialect.WRITE_OPTION``).
    """
    url = normalize_url(url or default_url())
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("connect_args", dialect.postgres_connect_args())
    _size_pool(kwargs)
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


#: Pooled connections: enough for every request thread (anyio's 40) plus the server's own
#: threads, since a request holds exactly one connection and must never wait on the pool.
POOL_SIZE, POOL_OVERFLOW = 5, 45


def _size_pool(kwargs: dict[str, Any]) -> None:
    if kwargs.get("poolclass") is None:
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_OVERFLOW)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if memory:
        kwargs.setdefault("poolclass", sa.pool.StaticPool)
    else:
        _size_pool(kwargs)
    connect = {"check_same_thread": False, "timeout": dialect.LOCK_WAIT_SECONDS}
    engine = sa.create_engine(url, connect_args=connect, **kwargs)
    dialect.setup_sqlite(engine, wal=not memory)
    return engine


def ping(engine: Engine) -> str | None:
    """None when the database answers a trivial query on a pooled connection, else why not
    (for health checks; a dead pooled connection is replaced by the pool's pre-ping)."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        return (str(cause).strip().splitlines() or [""])[0]
    return None


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or the connection was lost
    (a restart, a terminated backend, a network fault), as opposed to a wrong statement or
    wrong settings: what a long-running process waits out instead of exiting."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
