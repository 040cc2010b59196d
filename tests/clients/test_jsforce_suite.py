"""The jsforce suite: unmodified jsforce (npm) against a real server, on both databases.

``node/jsforce_suite.cjs`` logs in through ``loginUrl`` with a username and password (jsforce's
SOAP login), creates 450 contacts (jsforce splits them into Collections calls of 200), queries
them back with autoFetch through pages of 200, updates, retrieves, upserts by Email and destroys
several records, and reads identity, describeGlobal and describe (also with If-Modified-Since).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from opencadence.storage import migrate

from .conftest import Server
from .test_jsforce_soap import jsforce_dir

__all__ = ["jsforce_dir"]  # the fixture, imported for this module's tests

SCRIPT = Path(__file__).parent / "node" / "jsforce_suite.cjs"


def test_jsforce_suite(server: Server, jsforce_dir: Path) -> None:
    url = f"https://{server.instance}"
    done = subprocess.run(
        ["node", str(SCRIPT), url, server.admin, server.admin_password + server.admin_token],
        capture_output=True,
        text=True,
        timeout=180,
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

    assert out["instanceUrl"] == url
    assert out["login"]["id"] == user["Id"] and out["login"]["organizationId"] == migrate.ORG_ID
    assert out["created"] == 450
    assert out["query"] == {
        "totalSize": 450,
        "records": 450,
        "pages": 3,  # 200 + 200 + 50, each page one fetch event
        "first": "Suite 000",
        "last": "Suite 449",
    }
    assert out["maxFetched"] == 300  # autoFetch stops at maxFetch
    assert out["updated"] == [True, True, True]
    assert out["retrieved"] == [[f"Suite {i:03d}", "Engineer"] for i in range(3)]
    assert out["upserted"] == [[True, False], [True, True]]
    assert out["upsertedOne"] == [True, False]
    assert out["destroyed"] == 50
    assert out["left"] == 401  # 450 + 1 upserted - 50 destroyed
    assert out["identity"] == {
        "user_id": user["Id"],
        "organization_id": migrate.ORG_ID,
        "username": server.admin,
        "display_name": out["identity"]["display_name"],
    }
    assert out["identity"]["display_name"]
    assert out["global"] is True
    assert out["describe"] == {
        "name": "Contact",
        "keyPrefix": "003",
        "email": "email",
        "accountRelationship": "Account",
    }
    # 304: jsforce reads an empty body; no error
    assert out["ifModifiedSince"] == {"result": ""}, out["ifModifiedSince"]
