"""The console command keeps usernames unique and imports all or nothing, on both databases."""

from __future__ import annotations

from pathlib import Path

from opencadence.cadence import definition_file
from opencadence.storage import records

from .integration.cadence.helpers import email_template
from .integration.cadence.test_builder import full
from .integration.cadence.test_import_all_or_nothing import _broken
from .test_cli import _run


def _create(db_url: str, username: str) -> tuple[int, str, str]:
    made = _run(
        "users", "create", "--username", username, "--password", "pw1", "--database", db_url
    )
    return made.returncode, made.stdout, made.stderr


def test_users_create_refuses_an_existing_username_case_insensitively(db_url: str) -> None:
    code, out, err = _create(db_url, "Admin@X.io")
    assert code == 0, err
    code, out, err = _create(db_url, "admin@x.io")
    assert code == 1 and out == ""
    assert err.startswith("DUPLICATE_USERNAME: Duplicate Username.<br>The username already exists")
    listed = _run("users", "list", "--database", db_url).stdout
    assert listed.lower().count("admin@x.io") == 1
    assert _run("token", "--username", "admin@x.io", "--database", db_url).returncode == 0


def test_cadence_import_is_all_or_nothing(
    db_url: str, tmp_path: Path, store: records.Store
) -> None:
    template_id = email_template(store)  # the AutoSendAnEmail step's (activation needs one)
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(definition_file.dump(_broken(template_id)))
    good.write_text(definition_file.dump(full(template_id)))
    failed = _run("cadence", "import", str(bad), "--database", db_url)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith(
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Step call: ParentStepName 'nowhere' names no step"
    )
    left = _run(
        "query", "SELECT COUNT() FROM ActionCadence", "--database", db_url, "--format", "json"
    )
    assert left.returncode == 0 and '"totalSize": 0' in left.stdout
    imported = _run("cadence", "import", str(good), "--database", db_url)
    assert imported.returncode == 0 and imported.stdout.startswith("77C"), imported.stderr
