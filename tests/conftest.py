"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from $OPENCADENCE_TEST_PG_URL (default: the local server's ``test``
database). Each test session creates its own databases there and drops them at the end. When the
server is unreachable the PostgreSQL half is skipped locally but fails under CI=true, so CI can
never go green without it.

Every test starts from the state a fresh ``migrate.upgrade`` leaves: on SQLite a copy of a file
migrated once per session, on PostgreSQL the session's database restored from a snapshot of its
freshly migrated state (``tests/db_state.py``; ``test_fresh_state`` proves the two agree).
``module_engine`` gives a module one such database per backend to share among tests that only
read; on PostgreSQL it is a second database, so the per-test resets never touch it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from opencadence import system
from opencadence.clock import ManualClock
from opencadence.metadata import registry as registries
from opencadence.storage import accounts, database, migrate, records

from . import db_state

PG_URL = os.environ.get("OPENCADENCE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def pytest_configure(config: pytest.Config) -> None:
    # thousands of users and logins: scrypt at a small cost (each hash records its own; the
    # default's is tested in tests/unit/storage/test_password_hash.py), inherited by the
    # xdist workers and by every process a test starts
    os.environ.setdefault(accounts.COST_VARIABLE, "4")
    config.addinivalue_line(
        "markers", "writes: the test changes its org, so it gets its own (see soql/conftest.py)"
    )


@dataclass(frozen=True)
class PgDatabase:
    """One migrated database of this session, with what restoring it needs."""

    url: str
    engine: sa.Engine  # restores through its own pool, apart from the tests' engines
    snapshot: db_state.Snapshot

    def restore(self) -> str:
        db_state.restore(self.engine, registries.default_registry(), self.snapshot)
        return self.url


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
def pg_admin() -> Iterator[sa.Engine]:
    """The PostgreSQL server, to create and drop this session's databases on."""
    problem = _pg_reachable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    admin = sa.create_engine(database.normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    yield admin
    admin.dispose()


def _create_database(admin: sa.Engine, name: str, template: str | None = None) -> str:
    with admin.connect() as conn:
        copy = f' TEMPLATE "{template}"' if template else ""
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
    url = sa.make_url(database.normalize_url(PG_URL)).set(database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_databases(pg_admin: sa.Engine) -> Iterator[tuple[PgDatabase, PgDatabase]]:
    """This session's two databases: one migrated once and snapshotted, one cloned from it."""
    name = f"oc_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    names = [name, f"{name}_m"]
    url = _create_database(pg_admin, name)
    fresh = database.create_engine(url)
    try:
        migrate.upgrade(fresh, registries.default_registry(), clock=ManualClock())
        snap = db_state.take(fresh, registries.default_registry())
        fresh.dispose()  # a template database must have no connections
        shared_url = _create_database(pg_admin, names[1], template=name)  # faster than upgrading
        shared = database.create_engine(shared_url)
        yield PgDatabase(url, fresh, snap), PgDatabase(shared_url, shared, snap)
        shared.dispose()
    finally:
        fresh.dispose()
        with pg_admin.connect() as conn:
            for n in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_fresh(pg_databases: tuple[PgDatabase, PgDatabase]) -> PgDatabase:
    """The session's database that ``db_url`` restores before each test."""
    return pg_databases[0]


@pytest.fixture(scope="session")
def pg_url(pg_fresh: PgDatabase) -> str:
    return pg_fresh.url


@pytest.fixture(scope="session")
def pg_shared(pg_databases: tuple[PgDatabase, PgDatabase]) -> PgDatabase:
    """The session's second database, for ``module_engine``."""
    return pg_databases[1]


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


def _sqlite_copy(request: pytest.FixtureRequest, folder: Path) -> str:
    path = folder / "oc.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """What ``db_url`` gives, for a backend named at run time ("sqlite" or "postgresql")."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return _sqlite_copy(request, tmp_path)
        db: PgDatabase = request.getfixturevalue("pg_fresh")
        return db.restore()

    return make


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, fresh_url: Callable[[str], str]) -> str:
    """An empty, migrated database URL, on each backend in turn."""
    return fresh_url(request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def module_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    """An empty, migrated database per backend, shared by the tests of one module that only
    read what the module's fixtures put there."""
    if request.param == "sqlite":
        url = _sqlite_copy(request, tmp_path_factory.mktemp("module"))
    else:
        db: PgDatabase = request.getfixturevalue("pg_shared")
        url = db.restore()
    eng = database.create_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = database.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def oc(engine: sa.Engine, clock: ManualClock) -> Iterator[system.System]:
    """The org as a process would wire it (system.build), on the test's database and clock."""
    with system.build(system.Settings(clock=clock, upgrade=False), engine=engine) as built:
        yield built


@pytest.fixture
def store(oc: system.System) -> records.Store:
    return oc.store
