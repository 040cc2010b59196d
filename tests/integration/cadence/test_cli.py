"""The cadence commands, driven through argparse as the main CLI will wire them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from opencadence.cadence import definition_file
from opencadence.cli import cadence as cli
from opencadence.storage import records
from tests.integration.cadence.test_builder import full


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="opencadence")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_import_export_and_worker_commands(
    store: records.Store,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    template_id: str,
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(definition_file.dump(full(template_id)))
    assert _run(["cadence", "import", str(path), "--database", db_url]) == 0
    assert capsys.readouterr().out.startswith("77C")
    out = tmp_path / "out.yaml"
    assert _run(["cadence", "export", "Outbound", "--database", db_url, "-o", str(out)]) == 0
    assert out.read_text() == path.read_text()
    assert _run(["worker", "--once", "--database", db_url]) == 0
