"""Create and upgrade-in-place, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from opencadence import errors, ids
from opencadence.clock import ManualClock
from opencadence.metadata import model
from opencadence.metadata.registry import Registry, default_registry
from opencadence.storage import database, migrate, records


def _older_registry() -> Registry:
    """The current registry as an older release had it: no monthly metrics object, and the
    step tracker without its API 58.0 fields."""
    objs = []
    for obj in default_registry():
        if obj.name == "ActionCdncStpMonthlyMetric":
            continue
        if obj.name == "ActionCadenceStepTracker":
            kept = tuple(f for f in obj.fields if model.version_key(f.since) < (58, 0))
            obj = dataclasses.replace(obj, fields=kept)
        objs.append(obj)
    return Registry(objs)


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, tmp_path: object, db_url: str) -> str:
    """A database with no tables at all, on each backend."""
    eng = database.create_engine(db_url)
    with eng.begin() as conn:
        if eng.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
            conn.exec_driver_sql("DROP SEQUENCE IF EXISTS oc_id_seq")
        else:
            for name in sa.inspect(conn).get_table_names():
                # IF EXISTS: dropping the search index's FTS5 table drops its shadow tables
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    eng.dispose()
    return db_url


def test_upgrade_in_place_keeps_data(empty_url: str) -> None:
    eng = database.create_engine(empty_url)
    clock = ManualClock()
    old = _older_registry()
    created = migrate.upgrade(eng, old, clock=clock)
    assert "created table ActionCadenceStepTracker" in created
    old_store = records.Store(eng, old, clock)
    with old_store.transaction() as tx:
        sid = tx.insert(
            "ActionCadenceStepTracker",
            {"ActionCadenceTrackerId": ids.make_id("0cT", 5), "State": "Active"},
            system=True,
        )
    lines: list[str] = []
    applied = migrate.upgrade(eng, default_registry(), progress=lines.append, clock=clock)
    assert "created table ActionCdncStpMonthlyMetric" in applied
    assert "added column ActionCadenceStepTracker.GoToStepIterationCount" in applied
    assert "added column ActionCadenceStepTracker.ScheduledStartDateTime" in applied
    assert lines == applied
    new_store = records.Store(eng, default_registry(), clock)
    row = new_store.get("ActionCadenceStepTracker", sid)
    assert row is not None and row["State"] == "Active" and row["GoToStepIterationCount"] is None
    assert migrate.upgrade(eng, default_registry(), clock=clock) == []  # idempotent
    with new_store.transaction() as tx:  # ids keep counting after the upgrade
        assert tx.insert("Contact", {"LastName": "x"}) != sid
    eng.dispose()


def test_bootstrap_rows_exist_once(engine: sa.Engine) -> None:
    migrate.upgrade(engine, default_registry())
    store = records.Store(engine, default_registry())
    user = store.get("User", records.AUTOMATED_USER)
    org = store.get("Organization", migrate.ORG_ID)
    assert user is not None and user["Name"] == "Automated Process"
    assert org is not None
    with store.reading() as conn:
        assert conn.execute(sa.text('SELECT count(*) FROM "User"')).scalar_one() == 1


def test_destructive_change_is_refused(empty_url: str) -> None:
    eng = database.create_engine(empty_url)
    migrate.upgrade(eng, default_registry())
    with pytest.raises(errors.InvalidDefinition, match="hand-written migration"):
        migrate.upgrade(eng, _older_registry())
    eng.dispose()


def test_an_older_database_gains_the_unique_indexes(engine: sa.Engine) -> None:
    """A database made before the bookkeeping tables had their unique indexes (and before the
    fingerprint covered them) gets them at its next upgrade, data kept."""
    migrate.upgrade(engine, default_registry())
    names = ("ux_oc_cadence_run_target_id", "ux_oc_email_outbox_message_id")
    with engine.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        conn.exec_driver_sql("UPDATE oc_schema_state SET value = 'older' WHERE key = 'fingerprint'")
    applied = migrate.upgrade(engine, default_registry())
    assert [f"created index {name}" for name in names] == sorted(
        line for line in applied if line.startswith("created index ux_")
    )
    with engine.connect() as conn:
        found = {
            i["name"]: i["unique"]
            for table in ("oc_cadence_run", "oc_email_outbox")
            for i in sa.inspect(conn).get_indexes(table)
        }
    assert all(found.get(name) for name in names)
    assert migrate.upgrade(engine, default_registry()) == []


def test_an_older_database_gains_case_insensitive_unique_usernames(engine: sa.Engine) -> None:
    """A database from before usernames were unique gets the index at its next upgrade (the
    fingerprint lists it); usernames that already collide are refused by name, not dropped."""
    migrate.upgrade(engine, default_registry())
    with engine.begin() as conn:
        conn.exec_driver_sql('DROP INDEX "ux_User_Username_lower"')
        conn.exec_driver_sql("UPDATE oc_schema_state SET value = 'older' WHERE key = 'fingerprint'")
    store = records.Store(engine, default_registry(), ManualClock())
    user = {"LastName": "A", "Email": "a@x.io", "Alias": "a", "TimeZoneSidKey": "GMT"}
    more = {"LocaleSidKey": "en_US", "LanguageLocaleKey": "en_US", "EmailEncodingKey": "UTF-8"}
    with store.transaction() as tx:
        tx.insert("User", {**user, **more, "Username": "Ann@X.io"}, system=True)
        dup = tx.insert("User", {**user, **more, "Username": "ann@x.io"}, system=True)
    with pytest.raises(errors.InvalidDefinition, match="ann@x.io appear more than once"):
        migrate.upgrade(engine, default_registry())
    with store.transaction() as tx:
        tx.update("User", dup, {"Username": "ann2@x.io"}, system=True)
    assert "created index ux_User_Username_lower" in migrate.upgrade(engine, default_registry())
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql(
            """UPDATE "User" SET "Username" = 'ANN@x.io' WHERE "Id" = '%s'""" % dup
        )
    assert migrate.upgrade(engine, default_registry()) == []


def test_an_older_database_gains_unique_template_developer_names(engine: sa.Engine) -> None:
    """The index on lower(DeveloperName) counts live templates only: a deleted template's name
    may be taken again, and live names that collide stop the upgrade by name."""
    migrate.upgrade(engine, default_registry())
    with engine.begin() as conn:
        conn.exec_driver_sql('DROP INDEX "ux_EmailTemplate_DeveloperName_lower"')
        conn.exec_driver_sql("UPDATE oc_schema_state SET value = 'older' WHERE key = 'fingerprint'")
    store = records.Store(engine, default_registry(), ManualClock())
    body = {"Name": "T", "TemplateType": "text", "Subject": "s", "Body": "b", "IsActive": True}
    with store.transaction() as tx:
        folder = tx.insert(
            "User",
            {
                "LastName": "A",
                "Email": "a@x.io",
                "Alias": "a",
                "TimeZoneSidKey": "GMT",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
                "Username": "a@x.io",
            },
            system=True,
        )
        gone = tx.insert("EmailTemplate", {**body, "FolderId": folder, "DeveloperName": "Old"})
        tx.delete("EmailTemplate", gone)
        tx.insert("EmailTemplate", {**body, "FolderId": folder, "DeveloperName": "old"})
        tx.insert("EmailTemplate", {**body, "FolderId": folder, "DeveloperName": "Intro"})
        dup = tx.insert("EmailTemplate", {**body, "FolderId": folder, "DeveloperName": "INTRO"})
    with pytest.raises(errors.InvalidDefinition, match="intro appear more than once"):
        migrate.upgrade(engine, default_registry())
    with store.transaction() as tx:
        tx.update("EmailTemplate", dup, {"DeveloperName": "Intro_2"})
    applied = migrate.upgrade(engine, default_registry())
    assert "created index ux_EmailTemplate_DeveloperName_lower" in applied
    with pytest.raises(errors.DuplicateDeveloperName), records.duplicates_refused():
        with store.transaction() as tx:
            tx.update("EmailTemplate", dup, {"DeveloperName": "iNtRo"})
    assert migrate.upgrade(engine, default_registry()) == []


def test_concurrent_upgrades_of_an_empty_database(empty_url: str) -> None:
    """`serve` and N `worker` processes started together each upgrade at start: on an empty
    database every one must succeed, and the schema and bootstrap rows exist once."""
    import threading

    results: list[object] = []
    start = threading.Barrier(3)

    def run() -> None:
        eng = database.create_engine(empty_url)
        try:
            start.wait()
            results.append(migrate.upgrade(eng, default_registry()))
        except Exception as exc:  # noqa: BLE001 — the test reports it below
            results.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, failures
    created = [r for r in results if r]
    assert len(created) == 1  # one process created the schema; the others found it current
    eng = database.create_engine(empty_url)
    with eng.connect() as conn:
        users = conn.execute(
            sa.text('SELECT COUNT(*) FROM "User" WHERE "Id" = :id'), {"id": records.AUTOMATED_USER}
        ).scalar()
    eng.dispose()
    assert users == 1


def _index_names(engine: sa.Engine, tables: tuple[str, ...]) -> set[str]:
    with engine.connect() as conn:
        return {str(i["name"]) for t in tables for i in sa.inspect(conn).get_indexes(t)}


def test_postgresql_has_the_nulls_first_index_instead_of_its_default_order_twin(
    engine: sa.Engine,
) -> None:
    """PostgreSQL's NULLS FIRST indexes of the trackers serve every query their default-order
    twin served (SOQL's default orders included), so it has only them; SQLite keeps the twins.
    A PostgreSQL database made with both loses the twins at its next upgrade, and a later
    upgrade does not bring them back."""
    from opencadence.storage import schema

    migrate.upgrade(engine, default_registry())
    tables = ("ActionCadenceStepTracker", "ActionCadenceTracker")
    twins = set(schema.PG_REPLACED_INDEXES)
    assert twins == {
        "ix_ActionCadenceStepTracker_State_DueDateTime",
        "ix_ActionCadenceStepTracker_ScheduledStartDateTime",
        "ix_ActionCadenceTracker_State_ScheduledResumeDateTime",
    }
    names = _index_names(engine, tables)
    if engine.dialect.name == "sqlite":
        assert twins <= names
        return
    assert not twins & names
    assert {n for _t, n, _c in schema.PG_EXTRA_INDEXES} <= names
    with engine.begin() as conn:  # as an older release left it
        for table, _name, columns in schema.PG_EXTRA_INDEXES:
            cols = ", ".join(f'"{c}"' for c in columns)
            conn.exec_driver_sql(
                f'CREATE INDEX "ix_{table}_{"_".join(columns)}" ON "{table}" ({cols})'
            )
        conn.exec_driver_sql("UPDATE oc_schema_state SET value = 'older' WHERE key = 'fingerprint'")
    assert twins <= _index_names(engine, tables)
    applied = migrate.upgrade(engine, default_registry())
    assert sorted(f"dropped index {n}" for n in twins) == sorted(
        line for line in applied if line.startswith("dropped index")
    )
    assert not any(line.startswith("created index") for line in applied)
    assert not twins & _index_names(engine, tables)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE oc_schema_state SET value = 'older' WHERE key = 'fingerprint'")
    assert migrate.upgrade(engine, default_registry()) == []
    assert not twins & _index_names(engine, tables)
