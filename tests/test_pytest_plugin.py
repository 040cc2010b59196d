"""The pytest plugin, used as a project that is not opencadence uses it: the example test module
in examples/pytest-plugin/ runs in a subprocess, in a directory of its own, with nothing but the
installed package (its ``pytest11`` entry point) providing the fixtures."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from opencadence import testing

from .conftest import BACKENDS, PG_URL

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pytest-plugin"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _org_databases(admin: sa.Engine) -> list[str]:
    with admin.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'oc\\_tpl\\_%' "
                "OR datname LIKE 'oc\\_org\\_%'"
            )
        )
        return [r[0] for r in rows]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_example_project_passes_with_the_installed_plugin(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args: list[str] = []
    if backend == "postgresql":
        admin = request.getfixturevalue("pg_admin")
        before = set(_org_databases(admin))
        args = ["--opencadence-database", PG_URL]
    out = _run(tmp_path, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout
    if backend == "postgresql":  # every template and org database it made is gone
        assert set(_org_databases(admin)) <= before


def test_the_plugin_is_listed_by_pytest(tmp_path: Path) -> None:
    out = _run(tmp_path, "--fixtures")
    for name in ("opencadence_org", "opencadence_template", "opencadence_start"):
        assert name in out.stdout, out.stdout


def test_each_org_is_a_fresh_copy_served_with_its_own_clock(tmp_path: Path) -> None:
    with testing.Template.prepared() as template:
        with testing.LocalOrg(template) as first:
            first.sf.Contact.create({"LastName": "Only here"})
            first.advance(days=3)
            assert first.now().isoformat() == "2026-01-08T09:00:00+00:00"
            env = first.env()
            assert env["SF_INSTANCE_URL"] == first.instance_url
            assert env["NODE_EXTRA_CA_CERTS"] == first.ca_file
            first_url = first.database_url
        assert not Path(first_url.removeprefix("sqlite:///")).exists()
        with testing.LocalOrg(template) as second:
            assert second.sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
            assert second.now().isoformat() == "2026-01-05T09:00:00+00:00"
            assert second.port != first.port or second.database_url != first_url
            r = second.session().post(
                f"{second.instance_url}/services/oauth2/token",
                data={"grant_type": "password", "username": second.username},
            )
            assert r.status_code == 400  # a real OAuth endpoint: no client_id, no password


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_session_s_server_reuses_one_org_put_back_to_the_template_between_tests(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """What the fixture does per test with the session's server: one org (database, System,
    app) reused, its rows put back to the template's between tests, each test on its own
    clock."""
    url = None
    if backend == "postgresql":
        request.getfixturevalue("pg_admin")  # skips (fails under CI) without a server
        url = PG_URL
    later = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    with testing.Template.prepared(url) as template, testing.Server(template) as server:
        with testing.LocalOrg(template, server=server) as first:
            made = first.sf.Contact.create({"LastName": "Only here"})["id"]
            first.sf.Account.create({"Name": "Acme"})
            first.advance(days=3)
            assert first.now().isoformat() == "2026-01-08T09:00:00+00:00"
            reused = first.database_url
            first.sf.query("SELECT Id FROM Contact")
            used = first.sf.api_usage["api-usage"].used
        with testing.LocalOrg(template, later, server=server) as second:
            assert second.database_url == reused  # the same database, put back
            sf = second.sf
            assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
            assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 0
            assert second.now() == later
            again = sf.Contact.create({"LastName": "Again"})["id"]
            assert again == made  # the id counters were put back too
            assert sf.api_usage["api-usage"].used < used  # the day's count starts again
            admin = sf.query(f"SELECT Username FROM User WHERE Id = '{template.admin_id}'")
            assert admin["records"][0]["Username"] == testing.ADMIN_USERNAME
            second.advance(days=1)
            assert second.now() == later + timedelta(days=1)
