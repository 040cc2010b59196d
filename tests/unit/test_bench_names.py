"""``python bench/x.py`` puts bench/ first on sys.path: a script named after a standard-library
module (bench/collections.py once) hides that module from every other script."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_bench_script_shadows_a_standard_library_module() -> None:
    names = {p.stem for p in BENCH.glob("*.py")} - {"__init__"}
    assert names, "bench/ has no scripts"
    assert not names & set(sys.stdlib_module_names)
