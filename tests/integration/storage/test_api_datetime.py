"""``dialect.api_datetime`` writes stored dateTimes as Salesforce's REST API does, on both
databases; on SQLite its cheap cut of the stored text gives exactly what strftime gives."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from opencadence.storage import database, dialect

VALUES = [
    datetime(2026, 3, 10, 12, 0),
    datetime(2026, 3, 10, 12, 0, 5, 123000),
    datetime(1999, 12, 31, 23, 59, 59, 999000),
    datetime(2026, 1, 1, 0, 0, 0, 1000),
]


def test_api_datetime_on_both_databases(db_url: str) -> None:
    engine = database.create_engine(db_url)
    meta = sa.MetaData()
    t = sa.Table(
        "t_api_dt", meta, sa.Column("n", sa.Integer, primary_key=True), sa.Column("v", sa.DateTime)
    )
    try:
        with engine.begin() as conn:
            meta.create_all(conn)
            conn.execute(t.insert(), [{"n": i, "v": v} for i, v in enumerate(VALUES)])
            conn.execute(t.insert(), [{"n": len(VALUES), "v": None}])
            got = conn.execute(sa.select(dialect.api_datetime(t.c.v)).order_by(t.c.n)).scalars()
            expected = [
                f"{v:%Y-%m-%dT%H:%M:%S}.{v.microsecond // 1000:03d}+0000" for v in VALUES
            ] + [None]
            assert list(got) == expected
    finally:
        with engine.begin() as conn:
            meta.drop_all(conn)
        engine.dispose()


def test_sqlite_cut_equals_strftime_for_any_stored_text(tmp_path: object) -> None:
    engine = database.create_engine(f"sqlite:///{tmp_path}/cut.db")
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("n", sa.Integer, primary_key=True), sa.Column("v", sa.Text))
    texts = [
        "2026-03-10 12:00:00.000000",
        "2026-03-10 12:00:00.123000",
        "2026-03-10 23:59:59.999600",  # not whole milliseconds: strftime rounds
        "2026-03-10 12:00:00",
        "2026-03-10T12:00:00.000000",
        "2026-03-10 12:00:00.5",
        "garbage text of 26 chars!!",
        "xxxx-xx-xx xx:xx:xx.xxx000",
        None,
    ]
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(t.insert(), [{"n": i, "v": v} for i, v in enumerate(texts)])
        cut = conn.execute(sa.select(dialect.api_datetime(t.c.v)).order_by(t.c.n)).scalars()
        strftime = conn.execute(
            sa.select(sa.func.strftime("%Y-%m-%dT%H:%M:%f+0000", t.c.v)).order_by(t.c.n)
        ).scalars()
        assert list(cut) == list(strftime)
    engine.dispose()


def test_sqlite_date_cut_equals_strftime(tmp_path: object) -> None:
    engine = database.create_engine(f"sqlite:///{tmp_path}/cut.db")
    meta = sa.MetaData()
    t = sa.Table("d", meta, sa.Column("n", sa.Integer, primary_key=True), sa.Column("v", sa.Text))
    texts = ["2026-03-10", "1999-12-31", "2026-03-10 12:00:00", "garbage", None]
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(t.insert(), [{"n": i, "v": v} for i, v in enumerate(texts)])
        cut = conn.execute(sa.select(dialect.api_date(t.c.v)).order_by(t.c.n)).scalars()
        strftime = conn.execute(
            sa.select(sa.func.strftime("%Y-%m-%d", t.c.v)).order_by(t.c.n)
        ).scalars()
        assert list(cut) == list(strftime)
    engine.dispose()
