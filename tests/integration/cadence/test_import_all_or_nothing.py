"""A cadence import is all or nothing: a file that fails leaves nothing behind (no cadence, no
steps, no change events), so the corrected file imports under the same Name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from opencadence import errors
from opencadence.cadence import definition_file, validate
from opencadence.storage import records
from tests.integration.cadence.test_builder import FULL, full
from tests.integration.cadence.test_cli import _run

BUILDER_OBJECTS = (
    "ActionCadence",
    "ActionCadenceStep",
    "ActionCadenceRule",
    "ActionCadenceRuleCondition",
    "ActionCadenceStepVariant",
)


def _broken(template_id: str) -> dict[str, Any]:
    """FULL with its call step pointing at a parent that does not exist: activation refuses."""
    data = full(template_id)
    data["steps"][1]["ParentStepName"] = "nowhere"
    return data


def _left_behind(store: records.Store) -> tuple[dict[str, int], int]:
    """Live rows of every builder object and the change events written."""
    with store.reading() as conn:
        counted = {name: len(_ids(conn, store, name)) for name in BUILDER_OBJECTS}
    return counted, len(store.read_events(entity=None, limit=100_000))


def _ids(conn: Any, store: records.Store, name: str) -> list[str]:
    table = store.meta.tables[name]
    return [row[0] for row in conn.execute(table.select().with_only_columns(table.c.Id))]


def test_a_failed_import_leaves_nothing_and_the_fixed_file_imports(
    store: records.Store, template_id: str
) -> None:
    before = _left_behind(store)
    with pytest.raises(validate.CadenceInvalid, match="Step call: ParentStepName 'nowhere'"):
        definition_file.import_definition(store, _broken(template_id))
    assert _left_behind(store) == before
    cadence_id = definition_file.import_definition(store, full(template_id))
    assert (store.get("ActionCadence", cadence_id) or {})["State"] == "Active"
    assert definition_file.export_definition(store, "Outbound") == full(template_id)


def test_a_bad_value_in_a_step_leaves_nothing_either(store: records.Store) -> None:
    before = _left_behind(store)
    data = copy.deepcopy(FULL)
    data["steps"][2]["Type"] = "Bogus"
    with pytest.raises(errors.InvalidPicklistValue):
        definition_file.import_definition(store, data)
    assert _left_behind(store) == before


def test_cli_import_of_a_bad_file_fails_naming_the_step_then_the_fixed_file_imports(
    store: records.Store,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    template_id: str,
) -> None:
    before = _left_behind(store)
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(definition_file.dump(_broken(template_id)))
    good.write_text(definition_file.dump(full(template_id)))
    with pytest.raises(validate.CadenceInvalid) as info:  # main() prints it and exits 1
        _run(["cadence", "import", str(bad), "--database", db_url])
    assert "Step call: ParentStepName 'nowhere' names no step" in info.value.message
    assert capsys.readouterr().out == ""
    assert _left_behind(store) == before
    assert _run(["cadence", "import", str(good), "--database", db_url]) == 0
    assert capsys.readouterr().out.startswith("77C")
