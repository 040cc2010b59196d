"""Prepared databases, copied: a migrated database made once and cloned for each test.

Migrating takes about a second (hundreds of tables and indexes); a copy takes milliseconds, which
is what makes a fresh org per test affordable (``opencadence.testing``). A closed SQLite file is
copied as bytes, one with a write-ahead log through SQLite's online backup (a plain copy would
miss the pages still in the log); PostgreSQL databases are cloned with ``CREATE DATABASE … TEMPLATE``, which needs the
template to have no open connections (dispose its engine first).

Cheaper still, a database already open can be put back to a prepared one's rows in place
(``take`` a ``Snapshot`` once, ``restore`` it after each test): the pytest plugin's session org
does that, so a test costs neither a copy nor a new engine.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from opencadence.metadata.registry import Registry
from opencadence.storage import database, dialect, schema

#: What a database name made here may contain (it is quoted into DDL).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]{1,63}$")


def is_sqlite(url: str) -> bool:
    return database.normalize_url(url).startswith("sqlite")


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL (``sqlite:///relative`` or ``sqlite:////absolute``)."""
    path = sa.make_url(database.normalize_url(url)).database
    if not path or path == ":memory:":
        raise ValueError(f"{url}: a prepared database must be a file, not in memory")
    return Path(path)


def clone(template_url: str, name: str, directory: Path | None = None) -> str:
    """A new database with the template's contents; returns its URL.

    SQLite: the file ``name``.db in ``directory`` (the template's own directory by default).
    PostgreSQL: the database ``name`` on the template's server."""
    _check_name(name)
    if is_sqlite(template_url):
        source = sqlite_path(template_url)
        target = (directory or source.parent) / f"{name}.db"
        _copy_sqlite(source, target)
        return f"sqlite:///{target}"
    template = sa.make_url(database.normalize_url(template_url))
    with _admin(template_url) as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template.database}"')
    return template.set(database=name).render_as_string(hide_password=False)


def not_durable(url: str) -> None:
    """A throwaway PostgreSQL database (a test's org) commits without waiting for its WAL to
    reach the disk (``synchronous_commit = off`` for its future connections): a crash could
    lose the last commits of a database that is dropped at the end anyway, and each commit
    costs a fraction of a millisecond instead of a disk flush. SQLite's copies need nothing:
    their write-ahead log is not synced at commit already."""
    if is_sqlite(url):
        return
    name = sa.make_url(database.normalize_url(url)).database or ""
    _check_name(name)
    with _admin(url) as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')


def create_empty(server_url: str, name: str) -> str:
    """A new, empty PostgreSQL database ``name`` on the server of ``server_url``; its URL."""
    _check_name(name)
    with _admin(server_url) as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(database.normalize_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False)


def drop(url: str) -> None:
    """Remove a database ``clone`` made (a SQLite file and its WAL files; a PostgreSQL
    database, closing whatever connections are still open on it)."""
    if is_sqlite(url):
        path = sqlite_path(url)
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        return
    name = sa.make_url(database.normalize_url(url)).database or ""
    _check_name(name)
    with _admin(url) as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Snapshot:
    """What a prepared database holds: the rows of every table that has any (the bootstrap
    records, the admin user and session, row counts, counters: a few dozen rows)."""

    rows: dict[str, list[dict[str, Any]]]
    #: PostgreSQL: each sequence's last value (None: never used)
    sequences: dict[str, int | None]


_SEQUENCES = "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = current_schema()"


def take(engine: sa.Engine, registry: Registry) -> Snapshot:
    """The snapshot of a database just prepared (migrated, its users made)."""
    meta = schema.metadata_for(registry)
    with engine.connect() as conn:
        rows = {
            name: [dict(r) for r in conn.execute(sa.select(table)).mappings()]
            for name, table in meta.tables.items()
        }
        sequences: dict[str, int | None] = {}
        if conn.dialect.name == "postgresql":
            sequences = {name: last for name, last in conn.exec_driver_sql(_SEQUENCES)}
    return Snapshot({name: found for name, found in rows.items() if found}, sequences)


def restore(engine: sa.Engine, registry: Registry, snap: Snapshot) -> None:
    """Put ``snap`` back, in place, in one transaction: empty the tables that have rows now
    (one query finds them) and the snapshot's own tables, insert the snapshot's rows, restart
    the PostgreSQL sequences that were used. The engine, its pooled connections and whatever
    is built on them stay: no new database, no first connection (opencadence.testing)."""
    meta = schema.metadata_for(registry)
    empty = [name for name in meta.tables if name not in snap.rows]
    probe = " UNION ALL ".join(
        f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in empty
    )
    with engine.connect() as conn:
        conn = conn.execution_options(**{dialect.WRITE_OPTION: True})
        with conn.begin():
            written = list(conn.exec_driver_sql(probe).scalars()) if empty else []
            for name in [*written, *snap.rows]:
                conn.execute(meta.tables[name].delete())
            for name, rows in snap.rows.items():
                conn.execute(meta.tables[name].insert(), rows)
            if conn.dialect.name == "postgresql":
                for name, last in list(conn.exec_driver_sql(_SEQUENCES)):
                    was = snap.sequences.get(name)
                    if last == was:
                        continue
                    _check_name(name)
                    if was is None:
                        conn.exec_driver_sql(f'ALTER SEQUENCE "{name}" RESTART')
                    else:
                        conn.exec_driver_sql(f"SELECT setval('\"{name}\"', {int(was)}, true)")


def _copy_sqlite(source: Path, target: Path) -> None:
    """A closed database whose log was checkpointed away is its file alone: copied as bytes
    (a millisecond). One with a log, or open elsewhere, goes through the online backup."""
    log = Path(f"{source}-wal")
    if not log.exists() or log.stat().st_size == 0:
        shutil.copyfile(source, target)
        return
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _admin(url: str) -> sa.Connection:
    """An autocommit connection to the server's maintenance database (CREATE/DROP DATABASE
    cannot run inside a transaction, nor on the database they act on)."""
    admin_url = sa.make_url(database.normalize_url(url)).set(database="postgres")
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    return engine.connect()


def _check_name(name: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"{name!r}: a database name here is letters, digits and _ (≤ 63)")
