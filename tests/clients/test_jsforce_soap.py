"""jsforce (node, from the npm registry, unmodified): SOAP login and logout against a real server.

jsforce's ``login(username, password)`` is the partner SOAP login; its ``logout()`` of such a
session is the partner ``logout`` call, posted to ``/services/Soap/u/{version}`` with the
SessionHeader. The package is installed once into a cache folder; without node or npm the test
is skipped locally and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Server

JSFORCE = "jsforce@3"
SCRIPT = r"""
const jsforce = require('jsforce');
(async () => {
  const [url, user, password] = process.argv.slice(1);
  const conn = new jsforce.Connection({ loginUrl: url, version: '59.0' });
  const info = await conn.login(user, password);
  const before = await conn.query('SELECT Id FROM User');
  const token = conn.accessToken;
  await conn.logout();
  const after = new jsforce.Connection({ instanceUrl: url, accessToken: token, version: '59.0' });
  let code = null;
  try { await after.query('SELECT Id FROM User'); } catch (e) { code = e.errorCode || e.name; }
  console.log(JSON.stringify({ org: info.organizationId, user: info.id, size: before.totalSize,
                               instance: conn.instanceUrl, afterLogout: code,
                               cleared: conn.accessToken === undefined || conn.accessToken === null }));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(1); });
"""


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def jsforce_dir() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed for the jsforce test")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = cache / "opencadence-tests" / "jsforce3"
    if not (folder / "node_modules" / "jsforce" / "package.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                str(npm),
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--prefix",
                str(folder),
                JSFORCE,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            _unavailable(f"npm install {JSFORCE} failed: {done.stderr[-500:]}")
    return folder


def test_jsforce_soap_login_and_logout(server: Server, jsforce_dir: Path) -> None:
    url = f"https://{server.instance}"
    done = subprocess.run(
        ["node", "-e", SCRIPT, url, server.admin, server.admin_password + server.admin_token],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=jsforce_dir,
        env={
            **os.environ,
            "NODE_EXTRA_CA_CERTS": str(server.cert),
            "NODE_PATH": str(jsforce_dir / "node_modules"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    assert out["user"] == user["Id"] and out["size"] >= 1
    assert out["afterLogout"] == "INVALID_SESSION_ID"  # logout ended the session server-side
