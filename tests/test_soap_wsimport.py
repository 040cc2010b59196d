"""JAX-WS ``wsimport`` (the Debian ``jaxws`` package; ``.ci/run`` installs it) compiles both
WSDLs, the bytes ``/services/wsdl/{partner,enterprise}`` serve, into Java classes: a strict
WSDL/XML Schema compiler, as WSC and svcutil-style generators are.

``-XadditionalHeaders`` binds the SOAP headers as parameters, so the generated ``query`` takes a
``SessionHeader`` and answers the ``LimitInfoHeader`` in a ``Holder``, as generated from
Salesforce's own WSDLs. Without the tool the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from opencadence.api.soap import wsdl
from opencadence.metadata.registry import default_registry

BASE = "https://127.0.0.1:8443"


def _wsimport() -> str:
    found = shutil.which("wsimport")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("wsimport is missing: .ci/run installs the Debian jaxws package")
        pytest.skip("wsimport is not installed (apt-get install jaxws)")
    return found


@pytest.mark.parametrize("flavor", ["partner", "enterprise"])
def test_wsimport_compiles_the_wsdl(flavor: str, tmp_path: Path) -> None:
    tool = _wsimport()
    if flavor == "partner":
        document = wsdl.partner(BASE)
    else:
        document = wsdl.enterprise_wsdl(BASE, default_registry())
    source = tmp_path / f"{flavor}.wsdl"
    source.write_bytes(document)
    classes, java = tmp_path / "classes", tmp_path / "java"
    classes.mkdir()
    java.mkdir()
    done = subprocess.run(
        [tool, "-XadditionalHeaders", "-keep", "-d", str(classes), "-s", str(java), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "[ERROR]" not in output, output
    package = f"com/sforce/soap/{flavor}"
    for name in ("SforceService", "Soap", "QueryResult", "LimitInfoHeader", "SaveResult"):
        assert (classes / package / f"{name}.class").is_file(), name
    soap = (java / package / "Soap.java").read_text()
    query = soap[soap.index("public QueryResult query(") :].split(";", 1)[0]
    assert "SessionHeader sessionHeader" in query
    assert re.search(r"Holder<LimitInfoHeader> limitInfoHeader", query)
    if flavor == "enterprise":  # one typed class per object, its relationships typed
        contact = (java / "com/sforce/soap/enterprise/sobject/Contact.java").read_text()
        assert "protected JAXBElement<Account> account;" in contact
        assert "protected JAXBElement<QueryResult> actionCadenceTrackers;" in contact
        assert (
            classes / "com/sforce/soap/enterprise/sobject/ActionCadenceStepTracker.class"
        ).is_file()
