"""The console command keeps usernames unique and imports all or nothing, on both databases."""

from __future__ import annotations

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
