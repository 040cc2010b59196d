"""The console command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opencadence", *args], capture_output=True, text=True, cwd=cwd, timeout=120
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


def test_demo_creates_then_upgrades_the_database(tmp_path: Path) -> None:
    first = _run("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "opencadence.db").exists()
    assert "created table ActionCadenceStepTracker" in first.stderr
    assert json.loads(first.stdout)["name"] == "ActionCadenceStepTracker"
    again = _run("init", "--database", f"sqlite:///{tmp_path / 'opencadence.db'}")
    assert again.returncode == 0 and "0 change(s) applied" in again.stderr


def test_query_prints_table_json_csv_and_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    out = _run("query", "SELECT Id, Username, IsActive FROM User", "--database", db)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["Id", "Username", "IsActive"]
    assert "autoproc@opencadence.local" in out.stdout and lines[-1] == "(1 record)"
    as_json = json.loads(_run("query", "SELECT Name FROM Organization", "--database", db, "--format", "json").stdout)
    assert as_json["totalSize"] == 1 and as_json["records"][0]["Name"] == "opencadence"
    as_csv = _run("query", "SELECT COUNT() FROM Contact", "--database", db, "--format", "csv")
    assert as_csv.returncode == 0
    bad = _run("query", "SELECT Id FROM ActionCadenceStepTracker WHERE StepType=\"Completed\"", "--database", db)
    assert bad.returncode == 1 and bad.stderr.startswith("MALFORMED_QUERY:")
    assert "ERROR at Row:1:Column:" in bad.stderr
