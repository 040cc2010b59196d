"""Unmodified jsforce (node, npm) against a real server: its array create/update/retrieve/
destroy/upsert go to ``/composite/sobjects`` at its default API version (50.0)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import Server
from .test_jsforce_soap import jsforce_dir

__all__ = ["jsforce_dir"]  # the fixture, imported for this module's tests

SCRIPT = r"""
const jsforce = require('jsforce');
(async () => {
  const [url, token] = process.argv.slice(1);
  const conn = new jsforce.Connection({ instanceUrl: url, accessToken: token });
  const out = { version: conn.version };
  const Contact = conn.sobject('Contact');
  const made = await Contact.create([{ LastName: 'One', Email: 'one@x.io' },
                                     { LastName: 'Two' }, { LastName: 'x'.repeat(81) }]);
  out.created = made.map((r) => [r.success, r.success ? null : r.errors[0].statusCode]);
  const ids = made.filter((r) => r.success).map((r) => r.id);
  const upd = await Contact.update(ids.map((Id) => ({ Id, Title: 'T' })));
  out.updated = upd.map((r) => r.success);
  const got = await Contact.retrieve(ids, { fields: ['LastName', 'Title'] });
  out.retrieved = got.map((r) => [r.LastName, r.Title]);
  const ups = await Contact.upsert([{ Email: 'one@x.io', LastName: 'Uno' },
                                   { Email: 'three@x.io', LastName: 'Three' }], 'Email');
  out.upserted = ups.map((r) => [r.success, r.created]);
  const del = await Contact.destroy(ids);
  out.destroyed = del.map((r) => r.success);
  const left = await conn.query('SELECT LastName FROM Contact');
  out.left = left.records.map((r) => r.LastName);
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(1); });
"""


def test_jsforce_multi_record_crud_retrieve_and_upsert(server: Server, jsforce_dir: Path) -> None:
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    token = server.org.accounts.open_session(user["Id"])
    done = subprocess.run(
        ["node", "-e", SCRIPT, f"https://{server.instance}", token],
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
    assert out["version"] == "50.0"
    assert out["created"] == [[True, None], [True, None], [False, "STRING_TOO_LONG"]]
    assert out["updated"] == [True, True]
    assert out["retrieved"] == [["One", "T"], ["Two", "T"]]
    assert out["upserted"] == [[True, False], [True, True]]
    assert out["destroyed"] == [True, True]
    assert out["left"] == ["Three"]
