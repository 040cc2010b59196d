"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from $OPENCADENCE_TEST_PG_URL (default: the local server's ``test``
database). Each test session creates its own database there and drops it at the end. When the
server is unreachable the PostgreSQL half is skipped locally but fails under CI=true, so CI can
never go green without it.

Every test starts from the state a fresh ``migrate.upgrade`` leaves: on SQLite a copy of a file
migrated once per session, on PostgreSQL the session's database restored from a snapshot of its
freshly migrated state (``tests/db_state.py``; ``test_fresh_state`` proves the two agree).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from opencadence.clock import ManualClock
from opencadence.metadata import registry as registries
from opencadence.storage import database, migrate, records

from . import db_state

PG_URL = os.environ.get("OPENCADENCE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def _pg_reachable() -> str | None:
    try:
        eng = sa.create_engine(database.normalize_url(PG_URL))
        with eng.connect():
            pass
        eng.dispose()
    except Exception as exc:  # any driver error means "not reachable"
        return str(exc).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of this test session's own on the PostgreSQL server."""
    problem = _pg_reachable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    admin = sa.create_engine(database.normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"oc_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(database.normalize_url(PG_URL)).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (creating tables once, not per test)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    eng = database.create_engine(f"sqlite:///{path}")
    migrate.upgrade(eng, registries.default_registry(), clock=ManualClock())
    eng.dispose()
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def pg_fresh(pg_url: str) -> Iterator[tuple[sa.Engine, db_state.Snapshot]]:
    """The session database migrated once, an engine to restore it with, and its snapshot."""
    eng = database.create_engine(pg_url)
    reg = registries.default_registry()
    migrate.upgrade(eng, reg, clock=ManualClock())
    yield eng, db_state.take(eng, reg)
    eng.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database URL, on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "oc.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    eng, snap = request.getfixturevalue("pg_fresh")
    db_state.restore(eng, registries.default_registry(), snap)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="module", params=BACKENDS)
def module_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    """One empty, migrated database per backend, shared by the tests of a module that only read
    what the module's fixtures put there. On PostgreSQL it is the session database, so a module
    using it must not also use ``db_url`` (whose reset would empty it between two tests)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("module") / "oc.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        restore_with, snap = request.getfixturevalue("pg_fresh")
        db_state.restore(restore_with, registries.default_registry(), snap)
        url = request.getfixturevalue("pg_url")
    eng = database.create_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = database.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: sa.Engine, clock: ManualClock) -> records.Store:
    return records.Store(engine, registries.default_registry(), clock)
