"""storage.dialect: the helpers other layers call behave per database as documented."""

from __future__ import annotations

import sqlalchemy as sa

from opencadence.storage import dialect, schema


def _run_state() -> sa.TableClause:
    return sa.table(schema.CADENCE_RUN, sa.column("tracker_id"), sa.column("due_at"))


def test_row_locks_exist_on_postgresql_only(engine: sa.Engine) -> None:
    assert dialect.supports_row_locks(engine) is (engine.dialect.name == "postgresql")
    assert dialect.is_sqlite(engine) is (engine.dialect.name == "sqlite")


def test_for_update_locks_where_the_database_can(engine: sa.Engine) -> None:
    run = _run_state()
    plain = sa.select(run.c.tracker_id).where(run.c.due_at.is_not(None))
    with engine.begin() as conn:
        for skip_locked, clause in ((False, "FOR UPDATE"), (True, "FOR UPDATE SKIP LOCKED")):
            stmt = dialect.for_update(plain, conn, skip_locked=skip_locked)
            sql = str(stmt.compile(dialect=engine.dialect))
            if dialect.supports_row_locks(conn):
                assert sql.endswith(clause)
            else:
                assert stmt is plain and "FOR UPDATE" not in sql
            assert conn.execute(stmt).all() == []


def test_id_blocks_never_overlap(engine: sa.Engine) -> None:
    def reserve() -> int:
        with engine.begin() as conn:
            return dialect.reserve_id_block(
                conn,
                counter_table=schema.SEQUENCES,
                sequence=schema.ID_SEQUENCE,
                block=schema.ID_BLOCK,
            )

    first, second = reserve(), reserve()
    assert second - first >= schema.ID_BLOCK
