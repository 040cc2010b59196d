"""The user guide builds without a warning, and what it tells a reader to run runs.

A fenced block preceded by ``<!-- runnable -->`` (a shell block is run, a YAML block is
imported as a cadence definition), ``<!-- runnable NAME -->`` (saved as NAME; a ``.py`` file is
then run, a ``test_*.py`` file with pytest), ``<!-- runnable setup -->`` (a shell block) or
``<!-- runnable background -->`` (a shell command left running: the server) is executed in page
order, in an empty directory, with port 8443 replaced by a free one so that parallel runs do not
clash.

The API how-to guides share one directory and one server, as a reader who follows several of
them does: their ``setup`` and ``background`` blocks are the same text on every page (a test
checks it), run once, by the first page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
RUNNABLE = re.compile(
    r"^<!-- runnable(?: (?P<arg>\S+))? -->\n```(?P<lang>\w+)[^\n]*\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
#: the port the guide's pages use
PAGE_PORT = "8443"


#: the how-to guides run one after another on one server (``test_the_api_how_tos_run_as_written``)
API_HOW_TOS = (
    "how-to/oauth.md",
    "how-to/collections.md",
    "how-to/search.md",
    "how-to/streaming.md",
    "how-to/calls.md",
    "how-to/lead-conversion.md",
    "how-to/tracks.md",
    "how-to/metrics.md",
    "how-to/upgrade.md",
    "how-to/version-control.md",
)
#: blocks run once per directory, however many pages hold them
ONCE = ("setup", "background")


@dataclass
class Block:
    arg: str | None
    lang: str
    body: str


def runnable_blocks(page: str) -> list[Block]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return [Block(m["arg"], m["lang"], m["body"]) for m in RUNNABLE.finditer(text)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def guide_env() -> dict[str, str]:
    """A reader's shell: the virtual environment first, no database named, no proxies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCADENCE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def run(args: list[str], cwd: Path, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args,
        cwd=cwd,
        env={**guide_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{args}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def node_env(cwd: Path) -> dict[str, str] | None:
    """What a reader's ``npm install jsforce`` and the server's certificate give node: the
    node clients the client tests install (``~/.cache/opencadence/node-clients``, or
    ``$OPENCADENCE_NODE_CLIENTS``). None without them (the block is left out locally; under
    CI that fails)."""
    folder = Path(
        os.environ.get(
            "OPENCADENCE_NODE_CLIENTS", Path.home() / ".cache" / "opencadence" / "node-clients"
        )
    )
    if not (folder / "node_modules" / "jsforce").exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            raise AssertionError(f"node or jsforce missing ({folder}); .ci/run installs them")
        return None
    return {
        "NODE_PATH": str(folder / "node_modules"),
        "NODE_EXTRA_CA_CERTS": str(cwd / ".opencadence-tls" / "cert.pem"),
    }


def wait_healthy(cwd: Path, port: str, proc: subprocess.Popen[bytes]) -> None:
    cert = cwd / ".opencadence-tls" / "cert.pem"
    deadline = time.monotonic() + 60
    session = requests.Session()
    session.trust_env = False
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        if cert.exists():
            try:
                url = f"https://127.0.0.1:{port}/_opencadence/health"
                if session.get(url, verify=str(cert), timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy")


@dataclass
class Directory:
    """Where pages run: the directory, the port its server listens on, what ran there once."""

    path: Path
    port: str
    ran: set[str]


def run_page(page: str, cwd: Path, started: list[subprocess.Popen[bytes]]) -> list[str]:
    """Run a page's runnable blocks in order; returns their outputs."""
    return run_pages([page], cwd, started)[page]


def run_pages(
    pages: list[str], cwd: Path, started: list[subprocess.Popen[bytes]]
) -> dict[str, list[str]]:
    """Run the pages' runnable blocks in order in one directory; each page's outputs."""
    where = Directory(cwd, str(free_port()), set())
    return {page: _run_blocks(page, where, started) for page in pages}


def _run_blocks(page: str, where: Directory, started: list[subprocess.Popen[bytes]]) -> list[str]:
    cwd, port = where.path, where.port
    outputs = []
    blocks = runnable_blocks(page)
    assert blocks, f"{page} has no runnable block"
    for i, block in enumerate(blocks):
        body = block.body.replace(PAGE_PORT, port)
        if block.arg in ONCE:
            if body in where.ran:
                continue
            where.ran.add(body)
        if block.arg == "background":
            proc = subprocess.Popen(
                ["bash", "-c", body],
                cwd=cwd,
                env=guide_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            started.append(proc)
            wait_healthy(cwd, port, proc)
        elif block.arg is not None and block.arg != "setup":
            (cwd / block.arg).write_text(body, encoding="utf-8")
            if block.arg.startswith("test_") and block.arg.endswith(".py"):
                pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", block.arg]
                outputs.append(run([sys.executable, *pytest_args], cwd))
            elif block.arg.endswith(".py"):
                outputs.append(run([sys.executable, block.arg], cwd))
            elif block.arg.endswith(".cjs"):
                env = node_env(cwd)
                # "" when node or the node clients are missing (locally only)
                outputs.append("" if env is None else run(["node", block.arg], cwd, env=env))
        elif block.lang == "sh":
            outputs.append(run(["bash", "-e", "-c", body], cwd))
        elif block.lang == "yaml":
            name = f"block{i}.yaml"
            (cwd / name).write_text(body, encoding="utf-8")
            if "init" not in where.ran:  # a reader creates the database once
                outputs.append(run(["opencadence", "init"], cwd))
                where.ran.add("init")
            outputs.append(run(["opencadence", "cadence", "import", name], cwd))
        else:
            raise AssertionError(f"{page}: a runnable {block.lang} block needs a file name")
    return outputs


def test_the_guide_builds_in_strict_mode(tmp_path: Path) -> None:
    """mkdocs --strict turns every warning (a broken link or anchor, a page left out of the
    nav, a failed snippet include) into a failed build."""
    done = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**guide_env(), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    actions = (tmp_path / "site" / "reference" / "actions" / "index.html").read_text()
    assert "assignTargetToSalesCadence" in actions and "<!-- generate" not in actions


def test_the_generated_reference_covers_the_code() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import mkdocs_hooks
    finally:
        sys.path.pop(0)
    from opencadence.metadata.actions import ACTIONS
    from opencadence.metadata.registry import default_registry

    objects = mkdocs_hooks.objects()
    assert all(f"## {o.name}\n" in objects for o in default_registry())
    actions = mkdocs_hooks.actions()
    assert len(ACTIONS) == 8 and all(f"## {name}\n" in actions for name in ACTIONS)
    cli = mkdocs_hooks.cli()
    assert "## opencadence cadence import\n" in cli and "--permission PERMISSION_SET" in cli
    http = mkdocs_hooks.http()
    assert "Other" not in http  # every route the server mounts falls in a titled group
    for path in ("/services/data/v{version}/composite/sobjects", "/cometd/{version}", "/app/work"):
        assert f"| `{path}` |" in http
    assert "`convertLead`" in http and "`SessionHeader`" in http
    page = (ROOT / "docs" / "reference" / "definition-file.md").read_text(encoding="utf-8")
    step_types = page.split("## Step types", 1)[1].split("\n## ", 1)[0]
    types = default_registry().object("ActionCadenceStep").field("Type")
    assert types is not None
    missing = [p.value for p in types.picklist if f"`{p.value}`" not in step_types]
    assert not missing, f"step types missing from the definition-file reference: {missing}"
    definition = mkdocs_hooks.definition()
    assert "`ParentStepName`" in definition and "`ActionCadenceId`" not in definition


def test_a_teams_first_cadence_runs_as_written(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    outputs = run_page("tutorials/first-cadence.md", tmp_path, background)
    script = outputs[2]  # first_day.py: what it printed after the call and the skip
    assert "Ada Byron | First call | AutomaticallyCompleted" in script
    assert "Alan Turing | First call | ManuallySkipped" in script
    moved, overdue = outputs[-1].splitlines()  # the clock's answer, then the query's
    assert moved.startswith('{"now":')
    seconds = [r["SecondsOverdue"] for r in json.loads(overdue)["records"]]
    assert len(seconds) == 2 and all(s > 86400 for s in seconds), overdue


def test_the_web_app_tutorial_runs_as_written(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    """Its forms, sent as the browser sends them, against the demo it starts."""
    [script] = run_page("tutorials/first-day-web.md", tmp_path, background)
    assert script.splitlines() == [
        "Lu Lin: ('Intro call MakeACall', ['call', 'skip', 'pause', 'remove'])",
        "Lu Lin after the call: None",
        "Ann Able after Mark Complete: ('Connect on LinkedIn LinkedInConnection', "
        "['complete', 'skip', 'pause', 'remove'])",
        "Add to Cadence: results Mo Marsh : Added to the cadence",
        "True",
        "Queued",
    ], script


def test_the_definition_file_example_imports_and_activates(tmp_path: Path) -> None:
    run_page("reference/definition-file.md", tmp_path, [])
    exported = run(["opencadence", "cadence", "export", "Full example"], tmp_path)
    assert "state: Active" in exported


def test_the_testing_tutorial_runs_as_written(tmp_path: Path) -> None:
    """Its days-long test, run with pytest and the installed plugin."""
    [days] = run_page("tutorials/testing-an-integration.md", tmp_path, [])
    assert "1 passed" in days, days


def test_the_change_event_example_passes(tmp_path: Path) -> None:
    """The testing tutorial's subscriber, run as its own project with the installed plugin."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "change-events", project)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=guide_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_the_client_how_to_matches_the_tested_readme_snippets() -> None:
    """The simple-salesforce, zeep and aiosfstream-ng snippets are the README's (whose
    simple-salesforce ones tests/clients/test_readme_logins.py runs); the Pub/Sub one is run
    below."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = python_blocks((ROOT / "docs" / "how-to" / "clients.md").read_text(encoding="utf-8"))
    assert len(page) == 5
    assert all(block in readme for block in page[:4])
    assert "import grpc" in page[4]


def test_the_pubsub_python_snippet_runs(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    port, pubsub_port = str(free_port()), str(free_port())
    # `users create` creates the database as `init` would
    run(
        [
            "opencadence",
            "users",
            "create",
            "--username",
            "a@x.test",
            "--password",
            "Pw-1a",
            "--admin",
        ],
        tmp_path,
    )
    token = run(["opencadence", "token", "--username", "a@x.test"], tmp_path).strip()
    from opencadence.storage import migrate

    org_id = migrate.ORG_ID  # every org's Id (what `SELECT Id FROM Organization` answers)
    serve = ["opencadence", "serve", "--tls", "--port", port, "--pubsub-port", pubsub_port]
    proc = subprocess.Popen(
        serve,
        cwd=tmp_path,
        env=guide_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    background.append(proc)
    wait_healthy(tmp_path, port, proc)
    page = python_blocks((ROOT / "docs" / "how-to" / "clients.md").read_text(encoding="utf-8"))
    code = (
        page[4]
        .replace("127.0.0.1:7443", f"127.0.0.1:{pubsub_port}")
        .replace("127.0.0.1:8443", f"127.0.0.1:{port}")
        .replace("PASTE-THE-TOKEN", token)
        .replace("PASTE-THE-ORG-ID", org_id)
    )
    (tmp_path / "pubsub.py").write_text(code, encoding="utf-8")
    schema_id = run([sys.executable, "pubsub.py"], tmp_path).strip()
    assert len(schema_id) == 22, schema_id


def test_the_api_how_tos_share_their_setup() -> None:
    """What run_pages runs once is the same text on every page that has it."""
    once: dict[str, str] = {}
    for page in API_HOW_TOS:
        for block in runnable_blocks(page):
            if block.arg in ONCE:
                assert once.setdefault(block.arg, block.body) == block.body, page


def test_the_api_how_tos_run_as_written(
    tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    out = run_pages(list(API_HOW_TOS), tmp_path, background)
    oauth = out["how-to/oauth.md"][-1].splitlines()
    assert oauth[0].startswith("password: ['access_token'") and "refresh_token" in oauth[0]
    assert oauth[1:4] == [
        "refresh_token: admin@example.com False",
        "authorization_code: admin@example.com ['xyz']",
        "jwt-bearer: admin@example.com False",
    ]
    assert oauth[4].startswith("after revoke: 400 {'error': 'invalid_grant'")
    collections = out["how-to/collections.md"][-2]
    assert "upsert many: [False, True]" in collections and "delete: [True, True]" in collections
    assert "composite: [201, 201, 200]" in collections
    search = out["how-to/search.md"][-1].splitlines()
    assert search == [
        "[('Contact', 'René Descartes'), ('Lead', 'Blaise Pascal')]",
        "['René Descartes']",
        "['Contact']",
        "[('Blaise Pascal', 'Port-Royal')]",
    ]
    tail = out["how-to/streaming.md"][-1].splitlines()
    assert tail[0].startswith('{"id":"003') and tail[-1].endswith(" CREATE Tail"), tail
    calls = out["how-to/calls.md"][-1]
    assert "step: Completed AutomaticallyCompleted\nscript: 1 1\nstep counter: 1" in calls
    lead = out["how-to/lead-conversion.md"][-1]
    assert "tracker: Complete LeadConverted" in lead and "CANNOT_UPDATE_CONVERTED_LEAD" in lead
    tracks = out["how-to/tracks.md"][-1].splitlines()
    assert tracks[2] == (
        "cold: [('Start', 'Completed'), ('Intro call', 'Completed'), "
        "('Negative', 'Completed'), ('Try in a quarter', 'Scheduled')]"
    )
    assert tracks[1].endswith("('Positive', 'Completed'), ('Book a meeting', 'Active')]")
    assert (
        tracks[3]
        == "busy: [('Call until reached', 'Completed'), ('Call until reached', 'Scheduled')]"
    )
    assert "every counter agrees with history" in out["how-to/metrics.md"][-1]
    assert out["how-to/version-control.md"][-1].rstrip().endswith("same")
    jsforce = json.loads(out["how-to/collections.md"][-1] or "null")
    if jsforce is None:
        print("node or jsforce missing: the jsforce block was not run (CI fails instead)")
        return
    assert jsforce["retrieved"] == [["Byron", "Analyst"], ["Turing", "Analyst"]], jsforce
    assert jsforce["upserted"] == {"success": True, "created": False}
    assert jsforce["destroyed"] == [True, True]
