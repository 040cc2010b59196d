"""Database engines for SQLite (embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine as Engine  # re-exported: the type layers above hold

from opencadence.storage import sqlite_functions

#: Execution option marking a connection that will write (SQLite begins it IMMEDIATE).
WRITE_OPTION = "opencadence_write"

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

    SQLite runs in WAL mode with a busy timeout, so a worker and a server can share one file;
    write transactions (execution option WRITE_OPTION) begin IMMEDIATE so the single writer is
    chosen up front instead of failing at the first write (``SQLITE_BUSY`` upgrades of read locks).
    """
    url = normalize_url(url or default_url())
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if memory:
        kwargs.setdefault("poolclass", sa.pool.StaticPool)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQL functions the SOQL compiler emits (Unicode lower, time zones)
        sqlite_functions.register(dbapi_conn)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_sqlite(engine: Engine | sa.Connection) -> bool:
    return engine.dialect.name == "sqlite"
