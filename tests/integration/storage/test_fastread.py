"""storage.fastread: light reads give SQLAlchemy's values; on PostgreSQL a kept connection
whose backend died is replaced without the caller seeing an error."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from opencadence.storage import database, fastread


def _table(engine: sa.Engine) -> sa.Table:
    meta = sa.MetaData()
    t = sa.Table(
        "t_fastread",
        meta,
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20)),
        sa.Column("at", sa.DateTime),
        sa.Column("ok", sa.Boolean),
    )
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(
            t.insert(),
            [
                {"n": 1, "name": "a", "at": datetime(2026, 3, 10, 12, 0, 0, 5000), "ok": True},
                {"n": 2, "name": "b", "at": None, "ok": False},
            ],
        )
    return t


def test_light_rows_equal_sqlalchemy_rows(db_url: str) -> None:
    engine = database.create_engine(db_url)
    try:
        t = _table(engine)
        stmt = (
            sa.select(t).where(t.c.name == sa.bindparam("name", type_=sa.String())).order_by(t.c.n)
        )
        prepared = fastread.prepare(engine, stmt, ("name",))
        with engine.connect() as conn:
            expected = [tuple(r) for r in conn.execute(stmt, {"name": "a"})]
        got = fastread.read(engine, lambda light: light.rows(prepared, {"name": "a"}))
        assert [tuple(r) for r in got] == expected
        assert isinstance(got[0][2], datetime) and got[0][3] is True
        everything = fastread.prepare(engine, sa.select(t).order_by(t.c.n))
        assert len(fastread.read(engine, lambda light: light.rows(everything))) == 2
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS t_fastread"))
        engine.dispose()


def test_a_dead_kept_connection_is_replaced(db_url: str) -> None:
    engine = database.create_engine(db_url)
    try:
        t = _table(engine)
        prepared = fastread.prepare(engine, sa.select(t.c.n).order_by(t.c.n))
        pid = (
            fastread.prepare(engine, sa.select(sa.func.pg_backend_pid()))
            if "postgresql" in db_url
            else None
        )
        assert fastread.read(engine, lambda light: light.rows(prepared)) == [(1,), (2,)]
        if pid is not None:  # kill the kept connection's backend, as a server restart would
            backend = fastread.read(engine, lambda light: light.scalar(pid))
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": backend})
            assert fastread.read(engine, lambda light: light.rows(prepared)) == [(1,), (2,)]
            assert fastread.read(engine, lambda light: light.scalar(pid)) != backend
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS t_fastread"))
        engine.dispose()
