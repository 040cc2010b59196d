"""The Salesforce CLI (``sf``, from the npm registry, unmodified) against a real server.

``@salesforce/cli`` is pinned in node/package.json (the last release that runs on node 20, with
``@jsforce/jsforce-node`` held at 3.10.16: later ones need undici 8, which needs node 22). Each
test gives the CLI a HOME of its own (its auth files go there), telemetry and update checks off,
and the server's certificate through NODE_EXTRA_CA_CERTS. The CLI takes about a second to
start, so one test per database runs the whole sequence: ``org login access-token``,
``org display``, ``data import tree``, ``data query``, ``data export tree`` and
``org login jwt`` with a certificate uploaded to a connected app.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from opencadence import testing
from opencadence.clock import ManualClock, SystemClock
from opencadence.storage import migrate

from .conftest import Server
from .test_bulk import bulk_server
from .test_pubsub_node import install, node_clients_dir

__all__ = ["bulk_server"]  # a fixture


@pytest.fixture
def session_clock() -> ManualClock:
    """Sessions and JWT expiry on wall time: the CLI signs its assertion with Date.now()."""
    return ManualClock(SystemClock().now())


@pytest.fixture(scope="session")
def sf_bin() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed for the sf CLI test")
        pytest.skip("node/npm not installed")
    folder = node_clients_dir()
    install(folder)
    sf = folder / "node_modules" / ".bin" / "sf"
    assert sf.exists(), f"{sf}: not installed (node/package.json pins @salesforce/cli)"
    return sf


def _sf(sf_bin: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(sf_bin), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=env["HOME"],
    )
    try:
        out: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"sf {' '.join(args)}: {done.stdout}\n{done.stderr}") from None
    assert done.returncode == 0 and out["status"] == 0, (args, out)
    return out


def _certificate(folder: Path) -> tuple[Path, str]:
    """A private key file for the CLI and the matching certificate (PEM) for the app."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sf-cli.oc.test")])
    now = SystemClock().now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_file = folder / "jwt.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key_file, cert.public_bytes(serialization.Encoding.PEM).decode()


TREE = {
    "records": [
        {
            "attributes": {"type": "Account", "referenceId": "AcmeRef"},
            "Name": "Acme",
            "Contacts": {
                "records": [
                    {
                        "attributes": {"type": "Contact", "referenceId": "NgRef"},
                        "LastName": "Ng",
                        "Email": "ng@acme.test",
                    },
                    {
                        "attributes": {"type": "Contact", "referenceId": "OkaforRef"},
                        "LastName": "Okafor",
                    },
                ]
            },
        }
    ]
}


def test_sf_login_display_import_query_export_and_jwt(
    bulk_server: Server, sf_bin: Path, tmp_path: Path
) -> None:
    server = bulk_server  # the test server with its worker loop: it runs the Bulk query job
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    home = tmp_path / "home"
    home.mkdir()
    url = f"https://{server.instance}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "SF_ACCESS_TOKEN": server.org.accounts.open_session(user["Id"]),
        "NODE_EXTRA_CA_CERTS": str(server.cert),
        "SF_DISABLE_TELEMETRY": "true",
        "SFDX_DISABLE_TELEMETRY": "true",
        "SF_AUTOUPDATE_DISABLE": "true",
        "SFDX_AUTOUPDATE_DISABLE": "true",
        "SF_SKIP_NEW_VERSION_CHECK": "true",
        "SF_USE_GENERIC_UNIX_KEYCHAIN": "true",
        "SF_DISABLE_LOG_FILE": "true",
    }

    login = _sf(
        sf_bin, env, "org", "login", "access-token", "--instance-url", url, "--no-prompt",
        "--alias", "oc",
    )["result"]  # fmt: skip
    assert login["username"] == server.admin and login["orgId"] == migrate.ORG_ID
    display = _sf(sf_bin, env, "org", "display", "--target-org", "oc")["result"]
    assert display["connectedStatus"] == "Connected"
    assert display["id"] == login["orgId"] and display["username"] == server.admin

    (home / "tree.json").write_text(json.dumps(TREE))
    imported = _sf(
        sf_bin, env, "data", "import", "tree", "--files", "tree.json", "--target-org", "oc"
    )["result"]
    assert sorted(r["refId"] for r in imported) == ["AcmeRef", "NgRef", "OkaforRef"]
    account = next(r["id"] for r in imported if r["refId"] == "AcmeRef")

    soql = (
        "SELECT Id, Name, Owner.Username, (SELECT LastName FROM Contacts ORDER BY LastName) "
        "FROM Account"
    )
    queried = _sf(sf_bin, env, "data", "query", "--query", soql, "--target-org", "oc")["result"]
    assert queried["totalSize"] == 1
    row = queried["records"][0]
    assert row["Id"] == account and row["Owner"]["Username"] == server.admin
    assert [c["LastName"] for c in row["Contacts"]["records"]] == ["Ng", "Okafor"]

    exported = _sf(
        sf_bin, env, "data", "export", "tree", "--query",
        "SELECT Name, (SELECT LastName, Email FROM Contacts ORDER BY LastName) FROM Account",
        "--output-dir", "out", "--target-org", "oc",
    )["result"]  # fmt: skip
    written = json.loads((home / "out" / "Account-Contact.json").read_text())
    assert written == exported
    [acme] = written["records"]
    assert acme["Name"] == "Acme" and acme["attributes"]["type"] == "Account"
    contacts = acme["Contacts"]["records"]
    assert [(c["LastName"], c.get("Email")) for c in contacts] == [
        ("Ng", "ng@acme.test"),
        ("Okafor", None),
    ]

    key_file, pem = _certificate(home)
    consumer_key, _ = server.org.accounts.create_app("sf-cli", server.admin, certificate=pem)
    jwt = _sf(
        sf_bin, env, "org", "login", "jwt", "--client-id", consumer_key, "--jwt-key-file",
        str(key_file), "--username", server.admin, "--instance-url", url, "--alias", "ci",
    )["result"]  # fmt: skip
    assert jwt["orgId"] == login["orgId"] and jwt["username"] == server.admin
    again = _sf(sf_bin, env, "data", "query", "--query", "SELECT Name FROM Account", "-o", "ci")
    assert [r["Name"] for r in again["result"]["records"]] == ["Acme"]
    # a Bulk API 2.0 query job, run by the server's worker
    _sf(
        sf_bin, env, "data", "export", "bulk", "--query",
        "SELECT LastName, Email FROM Contact ORDER BY LastName", "--output-file", "bulk.json",
        "--result-format", "json", "--wait", "2", "-o", "ci",
    )  # fmt: skip
    exported_rows = json.loads((home / "bulk.json").read_text())
    assert [(r["LastName"], r["Email"] or None) for r in exported_rows] == [
        ("Ng", "ng@acme.test"),
        ("Okafor", None),
    ]


def test_repeated_slashes_in_a_path_are_one(server: Server) -> None:
    """The CLI joins ``https://host/`` and ``/services/data/…``: ``//services/data`` is served."""
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    auth = {"Authorization": f"Bearer {server.org.accounts.open_session(user['Id'])}"}
    s = server.session()
    base = f"https://{server.instance}"
    versions = s.get(f"{base}//services/data", headers=auth)
    assert versions.status_code == 200 and versions.json()[-1]["version"] == "67.0"
    q = s.get(f"{base}//services//data/v59.0//query", params={"q": "SELECT Id FROM User"}, headers=auth)  # fmt: skip
    assert q.status_code == 200 and q.json()["totalSize"] >= 1


def test_a_jwt_exp_in_milliseconds_is_read_as_the_cli_means_it(
    server: Server, session_clock: ManualClock, tmp_path: Path
) -> None:
    """@salesforce/core signs ``exp: Date.now() + 300`` (milliseconds): accepted while in the
    future; a past one in milliseconds is expired, and seconds far ahead are still refused."""
    from .test_oauth_flows import _error, _jwt, _token

    key_file, pem = _certificate(tmp_path)
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    consumer_key, _ = server.org.accounts.create_app("ms", server.admin, certificate=pem)
    s = server.session()
    now = session_clock.now().timestamp()
    claims = {"iss": consumer_key, "sub": server.admin, "aud": "https://login.salesforce.com"}
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def token(exp: float):  # type: ignore[no-untyped-def]
        return _token(s, server, grant_type=grant, assertion=_jwt(private, {**claims, "exp": exp}))

    ok = token(int(now * 1000) + 300)
    assert ok.status_code == 200, ok.text
    assert _error(token(int(now * 1000) - 1000)) == (
        400,
        "invalid_grant",
        "expired authorization code",
    )
    assert _error(token(int(now) + 3600)) == (400, "invalid_grant", "invalid assertion")


def test_the_pytest_plugin_s_org_env_logs_the_cli_in(sf_bin: Path, tmp_path: Path) -> None:
    """``LocalOrg.env()`` is what a subprocess sf CLI needs (docs/how-to/sf-cli.md)."""
    with testing.Template.prepared() as template, testing.LocalOrg(template) as org:
        org.sf.Contact.create({"LastName": "From the plugin"})
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **org.env()}
        env["SF_USE_GENERIC_UNIX_KEYCHAIN"] = "true"
        _sf(sf_bin, env, "org", "login", "access-token", "--instance-url", org.instance_url,
            "--no-prompt", "--alias", "plugin")  # fmt: skip
        soql = "SELECT LastName FROM Contact"
        got = _sf(sf_bin, env, "data", "query", "--query", soql, "--target-org", "plugin")
        assert [r["LastName"] for r in got["result"]["records"]] == ["From the plugin"]
