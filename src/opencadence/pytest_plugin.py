"""pytest fixtures for testing a Salesforce integration against a real local org.

Installed with opencadence (the ``pytest11`` entry point), so a project that depends on it gets:

- ``opencadence_org``: a fresh org for the test, served on a free 127.0.0.1 port with a manual
  clock (``.sf`` a logged-in simple-salesforce client, ``.instance_url``, ``.access_token``,
  ``.ca_file``, ``.env()`` for subprocess clients, ``.advance(days=…)``, ``.org`` the facade);
- ``opencadence_start``: the org's clock at the start of a test (override it to choose);
- ``opencadence_template``: the migrated database each test's org starts from, and
  ``opencadence_server``: the TLS server each test's org is mounted on (one of each per
  session). The server keeps one org and puts its rows back to the template's between tests,
  so a test costs a few small writes, not a migration, a database copy or a server start.

``--opencadence-database URL`` (or ``$OPENCADENCE_PYTEST_DATABASE``) runs the orgs on a
PostgreSQL server instead of SQLite files. Nothing is imported until a fixture is used, so the
plugin costs a project that does not use it nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from opencadence.testing import LocalOrg, Server, Template

#: The environment variable naming the database server for the orgs.
DATABASE_ENV = "OPENCADENCE_PYTEST_DATABASE"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opencadence")
    group.addoption(
        "--opencadence-database",
        default=None,
        help=f"a PostgreSQL URL for the opencadence_org fixture's orgs (${DATABASE_ENV}); "
        "default: SQLite files in a temporary directory",
    )


@pytest.fixture(scope="session")
def opencadence_template(request: pytest.FixtureRequest) -> Iterator[Template]:
    """The session's prepared database (migrated once, with the admin user)."""
    from opencadence.testing import Template

    url = request.config.getoption("--opencadence-database") or os.environ.get(DATABASE_ENV)
    with Template.prepared(url) as template:
        yield template


@pytest.fixture(scope="session")
def opencadence_server(opencadence_template: Template) -> Iterator[Server]:
    """The session's server on a free 127.0.0.1 port; each test's org is mounted on it."""
    from opencadence.testing import Server

    with Server(opencadence_template) as server:
        yield server


@pytest.fixture
def opencadence_start() -> datetime | None:
    """Where the org's clock starts (None: Monday 2026-01-05 09:00 UTC). Override to choose."""
    return None


@pytest.fixture
def opencadence_org(
    opencadence_template: Template,
    opencadence_server: Server,
    opencadence_start: datetime | None,
) -> Iterator[LocalOrg]:
    """A fresh org served on 127.0.0.1 for this test, gone after it."""
    from opencadence.testing import LocalOrg

    with LocalOrg(opencadence_template, opencadence_start, opencadence_server) as org:
        yield org
