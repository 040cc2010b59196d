"""The README's simple-salesforce login snippets work as printed against a real server."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from .conftest import Server

README = (Path(__file__).parents[2] / "README.md").read_text()


def _snippets() -> list[str]:
    section = README.split("## Logging in from clients", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_readme_documents_every_login() -> None:
    found = _snippets()
    assert len(found) == 5
    assert sum("from simple_salesforce import" in s for s in found) == 3
    assert "PasswordAuthenticator" in found[3]
    assert "import zeep" in found[4]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["session-id", "soap-login", "oauth-password"])
def test_readme_simple_salesforce_snippet_works(server: Server, which: int) -> None:
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    key, secret = server.org.accounts.create_app(f"readme{which}", server.admin)
    code = (
        _snippets()[which]
        .replace("127.0.0.1:8443", server.instance)
        .replace(".opencadence-tls/cert.pem", str(server.cert))
        .replace("admin@demo.opencadence.dev", server.admin)
        .replace("demo-admin-1", server.admin_password)
        .replace("PASTE-THE-TOKEN", server.org.accounts.open_session(user["Id"]))
        .replace("PASTE-THE-CONSUMER-KEY", key)
        .replace("PASTE-THE-CONSUMER-SECRET", secret)
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README snippet {which}", "exec"), {})  # noqa: S102
    assert out.getvalue().strip() == "0"
