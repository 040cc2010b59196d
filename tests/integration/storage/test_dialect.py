"""storage.dialect: the helpers other layers call behave per database as documented."""

from __future__ import annotations

import sqlalchemy as sa

from opencadence.storage import dialect, executemany, schema


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


def test_driver_executemany_stores_what_sqlalchemy_stores(engine: sa.Engine) -> None:
    """``storage/executemany.py`` (the driver's executemany, values through their columns'
    bind processors: how the runtime's batches and ``Tx.insert_many`` on SQLite insert)
    leaves the same stored values as SQLAlchemy's insert, for every column type records use,
    None included; a row without some column gets NULL there, as a row inserted alone would."""
    from datetime import date, datetime

    meta = sa.MetaData()

    def table(name: str) -> sa.Table:
        return sa.Table(
            name,
            meta,
            sa.Column("k", sa.String(18), primary_key=True),
            sa.Column("flag", sa.Boolean()),
            sa.Column("n", sa.Integer()),
            sa.Column("x", sa.Double()),
            sa.Column("day", sa.Date()),
            sa.Column("at", sa.DateTime()),
            sa.Column("txt", sa.Text()),
        )

    ours, theirs = table("a"), table("b")
    values = [
        {
            "flag": True,
            "n": 7,
            "x": 0.1,
            "day": date(2026, 2, 28),
            "at": datetime(2026, 12, 1, 23, 59, 58, 123456),
            "txt": "é'\"?",
        },
        {
            "flag": False,
            "n": -1,
            "x": 1e300,
            "day": date(1, 1, 1),
            "at": datetime(2026, 1, 1),
            "txt": "",
        },
        {"flag": None, "n": None, "x": None, "day": None, "at": None, "txt": None},
        {"n": 3},
        {"txt": "only", "at": datetime(2026, 6, 1, 12)},
    ]
    rows = [{"k": f"r{i}", **v} for i, v in enumerate(values)]
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            c = executemany.compiled({}, conn, "t", executemany.insert_statement, ours)
            executemany.run(conn, c, executemany.tuples(c, rows))
            for row in rows:
                conn.execute(theirs.insert(), row)
        with engine.connect() as conn:  # the stored values, as the driver returns them
            stored = [
                conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY k").all() for t in ("a", "b")
            ]
        assert stored[0] == stored[1] and len(stored[0]) == len(rows)
    finally:
        meta.drop_all(engine)
