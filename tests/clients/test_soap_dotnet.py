"""A typed .NET client: the proxy Mono's ``wsdl`` tool (the .NET Framework's wsdl.exe; Debian
``mono-devel``, which ``.ci/run`` installs) generates from the served enterprise WSDL, compiled
with ``mcs`` and run against the real server on 127.0.0.1 over TLS, on both databases: login, a
typed query with a parent, the LimitInfoHeader, a create whose Owner is set by Username, and a
fault. Mono's ``svcutil`` reads only assemblies and metadata exchange, not a WSDL file, so the
wsdl.exe generator is the one run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .conftest import Server

SOURCE = Path(__file__).parent / "dotnet" / "EnterpriseClient.cs"


def _tools() -> tuple[str, str, str]:
    found = [shutil.which(t) for t in ("wsdl", "mcs", "mono")]
    if None in found:
        if os.environ.get("CI"):
            pytest.fail(
                "Mono's wsdl/mcs are missing: .ci/run installs the Debian mono-devel package"
            )
        pytest.skip("Mono's wsdl and mcs are not installed (apt-get install mono-devel)")
    return found[0], found[1], found[2]  # type: ignore[return-value]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dotnet_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated proxy and the client, compiled (the WSDL does not depend on the database)."""
    wsdl_tool, mcs, _ = _tools()
    from opencadence.api.soap import wsdl
    from opencadence.metadata.registry import default_registry

    work = tmp_path_factory.mktemp("dotnet")
    (work / "enterprise.wsdl").write_bytes(
        wsdl.enterprise_wsdl("https://127.0.0.1:1", default_registry())
    )
    generated = _run([wsdl_tool, "enterprise.wsdl", "-out:Enterprise.cs"], work)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "error" not in generated.stdout.lower() + generated.stderr.lower()
    compiled = _run(
        [mcs, "-r:System.Web.Services", "-r:System.Xml", "-out:client.exe"]
        + ["Enterprise.cs", str(SOURCE)],
        work,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return work / "client.exe"


def test_wsdl_exe_generated_dotnet_client_runs(server: Server, dotnet_client: Path) -> None:
    _, _, mono = _tools()
    with server.org.store.transaction() as tx:
        acme = tx.insert("Account", {"Name": "Acme & Co"})
        tx.insert("Contact", {"LastName": "Able", "AccountId": acme})
        tx.insert("Contact", {"LastName": "Baker"})
    certificate = x509.load_pem_x509_certificate(server.cert.read_bytes())
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 (an identifier)
    run = _run(
        [
            mono,
            str(dotnet_client),
            f"https://{server.instance}/services/Soap/c/59.0",
            server.admin,
            server.admin_password + server.admin_token,
            thumbprint,
        ],
        dotnet_client.parent,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[:3] == ["size=2", "contact=Able|Acme & Co", "contact=Baker|-"]
    kind, _, limit = lines[3].removeprefix("limit=").split("|")
    assert (kind, int(limit)) == ("API REQUESTS", server.org.daily_api_requests_max)
    success, made = lines[4].removeprefix("created=").split("|")
    assert success == "True", run.stdout
    admin = server.org.accounts.find_user(server.admin)
    assert admin is not None
    assert server.org.store.get("Contact", made)["OwnerId"] == admin["Id"]
    assert lines[5] == "fault=INVALID_FIELD"
