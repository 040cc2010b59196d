"""The README's "Where every state and completion reason comes from" lists exactly the
picklist values of the step tracker's and the tracker's State, StepType and CompletionReason,
each once with what produces it, and names only decision sections that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opencadence.metadata.registry import default_registry

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
TITLE = "## Where every state and completion reason comes from"
FIELDS = [
    ("ActionCadenceStepTracker", "State"),
    ("ActionCadenceStepTracker", "StepType"),
    ("ActionCadenceStepTracker", "CompletionReason"),
    ("ActionCadenceTracker", "State"),
    ("ActionCadenceTracker", "CompletionReason"),
]


def _section() -> str:
    start = README.index(TITLE)
    end = README.find("\n## ", start + len(TITLE))
    return README[start : end if end != -1 else None]


def _listed(obj: str, field: str) -> list[str]:
    part = _section().split(f"### {obj}.{field}\n", 1)[1].split("\n### ", 1)[0]
    bullets = re.findall(r"^- `([A-Za-z]+)` — (\S.*)$", part, re.MULTILINE)
    return [value for value, _ in bullets]


@pytest.mark.parametrize(("obj", "field"), FIELDS)
def test_the_section_lists_exactly_the_picklist_values(obj: str, field: str) -> None:
    values = [v.value for v in default_registry().object(obj).field(field).picklist]
    listed = _listed(obj, field)
    assert len(listed) == len(set(listed)), f"{obj}.{field} lists a value twice"
    assert sorted(listed) == sorted(values)


def test_the_section_has_no_other_fields() -> None:
    headings = re.findall(r"^### (\w+)\.(\w+)$", _section(), re.MULTILINE)
    assert headings == FIELDS


def test_the_decision_sections_it_names_exist() -> None:
    headings = set()
    for doc in ("docs/runtime-decisions.md", "docs/email-decisions.md"):
        for heading in re.findall(r"^## (.+)$", (ROOT / doc).read_text(), re.MULTILINE):
            headings |= {heading, heading.split(" (")[0]}  # with or without its "(file)" part
    named = {re.sub(r"\s+", " ", n) for n in re.findall(r'"([A-Z][^"]+)"', _section())}
    assert named, "no section named"
    assert named <= headings, sorted(named - headings)
