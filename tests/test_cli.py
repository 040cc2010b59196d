"""The console command, run as a real subprocess."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from opencadence import system
from opencadence.storage import clock_state, records
from opencadence.storage.schema import SESSIONS


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opencadence", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_describe_prints_salesforce_json() -> None:
    out = _run("describe", "ActionCadenceStepTracker", "--version", "59.0")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["name"] == "ActionCadenceStepTracker"
    assert "GoToStepIterationCount" in {f["name"] for f in result["fields"]}
    old = json.loads(_run("describe", "ActionCadenceStepTracker", "--version", "50.0").stdout)
    assert "GoToStepIterationCount" not in {f["name"] for f in old["fields"]}


def test_describe_unknown_object_fails_with_error_code() -> None:
    out = _run("describe", "Nope")
    assert out.returncode == 1
    assert out.stderr.startswith("INVALID_TYPE: sObject type 'Nope' is not supported.")


def test_demo_serves_a_seeded_org_and_its_snippet_works(tmp_path: Path) -> None:
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "opencadence", "demo", "--port", str(port)]
        + ["--pubsub-port", str(_free_port())],  # not the default: tests run side by side
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        _check_demo(proc, port, tmp_path)
    assert (tmp_path / "opencadence.db").exists()
    again = _run("demo", "--no-serve", cwd=tmp_path)  # seeded once: a second run only serves
    assert again.returncode == 0 and "seeding" not in again.stderr
    init = _run("init", "--database", f"sqlite:///{tmp_path / 'opencadence.db'}")
    assert init.returncode == 0 and "0 change(s) applied" in init.stderr


def _check_demo(proc: subprocess.Popen[str], port: int, cwd: Path) -> None:
    try:
        lines = []
        for _ in range(40):  # the banner: three lines, then shell lines ending with curl
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]
            if "curl " in lines[-1] or not lines[-1]:
                break
        assert "access token: " in lines[2] and "!" in lines[2]  # Salesforce-style token
        script = "".join(lines[3:])
        assert "simple_salesforce" in script and f"127.0.0.1:{port}" in script
        assert "pip install -q simple-salesforce" in script  # what the main command lacks
        for _ in range(100):  # the banner comes before uvicorn listens
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        # pasted as printed into an interactive bash (history expansion on), where the demo ran
        out = subprocess.run(
            ["bash", "--norc", "--noprofile", "-i"],
            input=script + "exit\n",
            capture_output=True,
            text=True,
            timeout=120,
            cwd=cwd,
        )
        assert "event not found" not in out.stderr, out.stderr
        assert "Traceback" not in out.stderr, out.stderr
        rows = [r for r in out.stdout.splitlines() if " | " in r]
        assert len(rows) > 20 and any("| Intro call |" in r for r in rows), out.stderr
        assert {"Active", "Completed", "Paused", "Scheduled", "InProgress", "Cancelled"} <= {
            r.rsplit("| ", 1)[1] for r in rows
        }
        moved = json.loads(out.stdout.splitlines()[-1])  # the curl line moved the clock
        assert set(moved) == {"now"}, out.stdout
        _check_web_app(script, port)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _check_web_app(script: str, port: int) -> None:
    """The banner's web app URL serves the login page, and its rep login reaches My Work."""
    found = re.search(r"web app \(My Work\): (\S+)  log in as the rep: (\S+) / (\S+)", script)
    assert found, script
    url, username, password = found.groups()
    assert url == f"https://127.0.0.1:{port}/app/"
    with httpx.Client(verify=False, trust_env=False, follow_redirects=True) as client:
        page = client.get(url)
        assert page.status_code == 200 and ">Log In</button>" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        work = client.post(
            url + "login",
            data={"username": username, "password": password, "csrf": csrf.group(1)},
        )
        assert work.status_code == 200 and "<h1>My Work</h1>" in work.text
        assert 'class="target"' in work.text  # the seeded open steps
    manager = re.search(
        r"web app dashboard: (\S+)  log in as the manager: (\S+) / (\S+)  \(the rep's team\)",
        script,
    )
    admin = re.search(r"web app, everything: log in as the admin: (\S+) / (\S+)", script)
    assert manager and admin, script
    dashboard, *logins = manager.groups()
    assert dashboard == f"https://127.0.0.1:{port}/app/dashboard"
    for username, password in (logins, admin.groups()):
        with httpx.Client(verify=False, trust_env=False, follow_redirects=True) as client:
            page = client.get(dashboard)  # not signed in: the login page
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf
            client.post(
                url + "login",
                data={"username": username, "password": password, "csrf": csrf.group(1)},
            )
            board = client.get(dashboard)
            assert board.status_code == 200 and "<h1>Dashboard</h1>" in board.text, username
            assert 'id="t-steps"' in board.text and 'id="t-reps"' in board.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_query_prints_table_json_csv_and_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    out = _run("query", "SELECT Id, Username, IsActive FROM User", "--database", db)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["Id", "Username", "IsActive"]
    assert "autoproc@opencadence.local" in out.stdout and lines[-1] == "(1 record)"
    as_json = json.loads(
        _run("query", "SELECT Name FROM Organization", "--database", db, "--format", "json").stdout
    )
    assert as_json["totalSize"] == 1 and as_json["records"][0]["Name"] == "opencadence"
    as_csv = _run("query", "SELECT COUNT() FROM Contact", "--database", db, "--format", "csv")
    assert as_csv.returncode == 0
    bad = _run(
        "query",
        'SELECT Id FROM ActionCadenceStepTracker WHERE StepType="Completed"',
        "--database",
        db,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("MALFORMED_QUERY:")
    assert "ERROR at Row:1:Column:" in bad.stderr


def test_users_apps_and_token_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'u.db'}"
    made = _run(
        "users",
        "create",
        "--username",
        "ann@x.io",
        "--password",
        "pw1",
        "--admin",
        "--time-zone",
        "Europe/Paris",
        "--database",
        db,
    )
    assert (
        made.returncode == 0
        and "created user ann@x.io (005" in made.stdout
        and "security token:" in made.stdout
    )
    listed = _run("users", "list", "--database", db).stdout
    assert "ann@x.io  Europe/Paris  admin active" in listed
    token = _run("token", "--username", "ann@x.io", "--database", db)
    assert token.returncode == 0 and token.stdout.startswith("00D0C0000000001!")
    app = _run("apps", "create", "--name", "ci", "--run-as", "ann@x.io", "--database", db)
    assert "consumer key:    3MVG" in app.stdout and "consumer secret:" in app.stdout
    assert _run("users", "deactivate", "--username", "ann@x.io", "--database", db).returncode == 0
    assert "inactive" in _run("users", "list", "--database", db).stdout
    missing = _run("token", "--username", "nobody@x.io", "--database", db)
    assert missing.returncode == 1 and missing.stderr.startswith("INVALID_LOGIN")


def test_query_into_a_closed_pipe_ends_quietly(db_url: str, store: records.Store) -> None:
    """``opencadence query ... | head``: the reader leaves early; no traceback, exit 0."""
    with store.transaction() as tx:
        tx.insert_many("Lead", [{"LastName": f"L{n:05d}", "Company": "Pipe"} for n in range(3000)])
    for fmt in ("table", "csv", "json"):
        with subprocess.Popen(
            [sys.executable, "-m", "opencadence", "query", "SELECT Id, LastName, Company FROM Lead"]
            + ["--database", db_url, "--format", fmt],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline()  # what `head -1` reads, then it exits
            proc.stdout.close()
            err = proc.stderr.read()
            assert proc.wait(timeout=120) == 0, err
        assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


def _sessions(store: records.Store) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(sa.table(SESSIONS))).scalar_one()
        )


def test_demo_on_a_busy_port_fails_and_mints_no_token(
    db_url: str, store: records.Store, tmp_path: Path
) -> None:
    before = _sessions(store)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "opencadence",
                "demo",
                "--port",
                str(port),
                "--database",
                db_url,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    assert out.returncode == 1
    assert out.stderr.startswith(f"cannot listen on 127.0.0.1:{port}:"), out.stderr
    assert "access token" not in out.stdout and "seeding" not in out.stderr
    assert _sessions(store) == before


def test_users_permissions_and_manager(tmp_path: Path) -> None:
    """Issue 10 item 6: permission sets and the manager are granted from the CLI and are
    visible through the API (PermissionSetAssignment, User.ManagerId)."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    boss = _run("users", "create", "--username", "boss@x.io", "--password", "pw", "--database", db)
    assert boss.returncode == 0
    made = _run(
        "users",
        "create",
        "--username",
        "rep@x.io",
        "--password",
        "pw",
        "--permission",
        "SalesEngagementCadenceCreator",
        "--manager",
        "boss@x.io",
        "--database",
        db,
    )
    assert made.returncode == 0, made.stderr
    listed = _run("users", "list", "--database", db).stdout
    assert "rep@x.io  GMT  active  SalesEngagementCadenceCreator" in listed
    soql = (
        "SELECT Assignee.Username, PermissionSet.Label FROM PermissionSetAssignment "
        "WHERE Assignee.Username = 'rep@x.io'"
    )
    shown = _run("query", soql, "--database", db)
    assert "Sales Engagement Cadence Creator" in shown.stdout, shown.stderr
    managed = _run(
        "query", "SELECT Manager.Username FROM User WHERE Username = 'rep@x.io'", "--database", db
    )
    assert "boss@x.io" in managed.stdout
    revoked = _run(
        "users",
        "update",
        "--username",
        "rep@x.io",
        "--revoke-permission",
        "sales engagement cadence creator",
        "--manager",
        "",
        "--admin",
        "--database",
        db,
    )
    assert revoked.returncode == 0 and "permission sets none" in revoked.stdout
    listed = _run("users", "list", "--database", db).stdout
    assert "rep@x.io  GMT  admin active\n" in listed
    unknown = _run(
        "users", "update", "--username", "rep@x.io", "--permission", "Nope", "--database", db
    )
    assert unknown.returncode == 1 and unknown.stderr.startswith("NOT_FOUND:")
    assert "SalesEngagementCadenceCreator" in unknown.stderr  # the known names are listed


def test_serve_on_a_busy_port_says_so_and_exits_1(db_url: str, tmp_path: Path) -> None:
    """Bound before the system starts: one line naming the address, status 1 (was uvicorn's
    own message and status 3 after workers had started)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "opencadence", "serve", "--port", str(port)]
            + ["--database", db_url],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(f"cannot listen on 127.0.0.1:{port}:"), out.stderr
    assert "opencadence API on" not in out.stderr


def test_apps_create_stores_the_callback_url_certificate_and_scopes(tmp_path: Path) -> None:
    from opencadence import system
    from opencadence.api import tls

    db = f"sqlite:///{tmp_path / 'a.db'}"
    made = _run("users", "create", "--username", "ci@x.io", "--password", "pw1", "--database", db)
    assert made.returncode == 0, made.stderr
    cert, _ = tls.self_signed(tmp_path / "tls")
    app = _run(
        "apps", "create", "--name", "ci", "--run-as", "ci@x.io", "--database", db,
        "--callback-url", "https://app.x.io/cb", "--callback-url", "http://localhost:1717/cb",
        "--certificate", str(cert),
        "--scope", "api", "--scope", "refresh_token",
    )  # fmt: skip
    assert app.returncode == 0, app.stderr
    key = app.stdout.split("consumer key:")[1].split()[0]
    with system.build(system.Settings(database_url=db, worker=False)) as built:
        stored = built.org.accounts.app(key)
    assert stored["callback_url"] == "https://app.x.io/cb\nhttp://localhost:1717/cb"
    assert stored["certificate"] == cert.read_text()
    assert stored["scopes"] == "api refresh_token"
    (tmp_path / "bad.pem").write_text("not a certificate")
    bad = _run(
        "apps", "create", "--name", "x", "--run-as", "ci@x.io", "--database", db,
        "--certificate", str(tmp_path / "bad.pem"),
    )  # fmt: skip
    assert bad.returncode == 1 and "not a PEM X.509 certificate" in bad.stderr
    missing = _run(
        "apps", "create", "--name", "x", "--run-as", "ci@x.io", "--database", db,
        "--certificate", str(tmp_path / "none.pem"),
    )  # fmt: skip
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_query_runs_at_the_orgs_saved_manual_clock(db_url: str, oc: system.System) -> None:
    """A manual-clock org moved three days ahead is queried at that position: TODAY is its day,
    not the machine's (the CLI used to compute date literals from the wall clock)."""
    assert oc.manual_clock is not None
    ahead = datetime.now(UTC) + timedelta(days=3)
    oc.manual_clock.set(ahead)
    clock_state.save(oc.store, ahead)
    with oc.store.transaction() as tx:
        tx.insert("Lead", {"LastName": "Ahead", "Company": "Clock"})
    out = _run("query", "SELECT LastName FROM Lead WHERE CreatedDate = TODAY", "--database", db_url)
    assert out.returncode == 0, out.stderr
    assert "Ahead" in out.stdout and out.stdout.splitlines()[-1] == "(1 record)"
