"""Every test's database is exactly what a fresh ``migrate.upgrade`` gives, on both backends.

The fixtures do not upgrade per test: SQLite copies a file migrated once, PostgreSQL restores a
snapshot (tests/db_state.py). These tests compare the result, table by table and sequence by
sequence, with a database created and upgraded from nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence.clock import ManualClock
from opencadence.metadata import registry as registries
from opencadence.org import Org
from opencadence.storage import database, migrate, records, schema
from tests import db_state
from tests.conftest import PgDatabase


def _fresh(url: str, tmp_path: Path) -> dict[str, Any]:
    """The state of a brand-new database on ``url``'s backend, upgraded from nothing."""
    if url.startswith("sqlite"):
        return _upgraded_dump(f"sqlite:///{tmp_path / 'fresh.db'}")
    admin = sa.create_engine(database.normalize_url(url), isolation_level="AUTOCOMMIT")
    name = f"oc_fresh_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        other = sa.make_url(database.normalize_url(url)).set(database=name)
        return _upgraded_dump(other.render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """``_fresh`` for a URL's backend, computed once per backend for the module."""
    cache: dict[str, dict[str, Any]] = {}

    def state(url: str) -> dict[str, Any]:
        backend = url.split(":", 1)[0]
        if backend not in cache:
            cache[backend] = _fresh(url, tmp_path_factory.mktemp("fresh"))
        return cache[backend]

    return state


def _upgraded_dump(url: str) -> dict[str, Any]:
    eng = database.create_engine(url)
    migrate.upgrade(eng, registries.default_registry(), clock=ManualClock())
    state = db_state.dump(eng)
    eng.dispose()
    return state


def _dirty(store: records.Store) -> None:
    """Touch every kind of state a test can leave: rows in empty tables, changed bootstrap
    rows, used sequences (also by a rolled-back insert), an extra bookkeeping row."""
    org = Org(store)
    org.accounts.open_session(org.accounts.create_user("dirt@oc.test", "pw")[0])
    with store.transaction() as tx:
        gone = tx.insert("Contact", {"LastName": "Gone"})
        tx.insert("Account", {"Name": "Acme"})
        tx.update("User", records.AUTOMATED_USER, {"LastName": "Renamed"}, system=True)
    with store.transaction() as tx:
        tx.delete("Contact", gone)
    tables = schema.metadata_for(store.registry).tables
    email_events = tables[schema.EMAIL_EVENTS]
    row = {"key": "k", "kind": "open", "at": ManualClock().now().replace(tzinfo=None)}
    with store.engine.begin() as conn:
        conn.execute(email_events.insert().values(row))
        conn.execute(tables["Organization"].update().values(Name="Renamed"))
        conn.execute(
            sa.table(schema.SCHEMA_STATE, sa.column("key"), sa.column("value"))
            .insert()
            .values(key="extra", value="x")
        )
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        conn.execute(email_events.insert().values(row))  # uses the id sequence, rolled back
        raise RuntimeError("roll back")


def test_a_test_starts_from_a_fresh_database(
    db_url: str, engine: sa.Engine, fresh: Callable[[str], dict[str, Any]]
) -> None:
    assert db_state.dump(engine) == fresh(db_url)


@pytest.fixture
def pg_engine(pg_fresh: PgDatabase) -> Iterator[sa.Engine]:
    """The session's PostgreSQL database, restored, without the SQLite half of ``engine``."""
    eng = database.create_engine(pg_fresh.restore())
    yield eng
    eng.dispose()


@pytest.mark.postgresql
def test_restore_undoes_every_kind_of_write(
    pg_engine: sa.Engine, pg_fresh: PgDatabase, fresh: Callable[[str], dict[str, Any]]
) -> None:
    state = fresh(pg_engine.url.render_as_string(hide_password=False))
    _dirty(records.Store(pg_engine, registries.default_registry(), ManualClock()))
    assert db_state.dump(pg_engine) != state
    pg_fresh.restore()
    assert db_state.dump(pg_engine) == state


@pytest.mark.postgresql
def test_restore_rebuilds_a_dropped_schema(
    pg_engine: sa.Engine, pg_fresh: PgDatabase, fresh: Callable[[str], dict[str, Any]]
) -> None:
    state = fresh(pg_engine.url.render_as_string(hide_password=False))
    with pg_engine.begin() as conn:  # what test_migrate's empty database does
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    pg_fresh.restore()
    assert db_state.dump(pg_engine) == state
