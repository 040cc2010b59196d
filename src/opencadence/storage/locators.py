"""The query-locator tables' SQL: a cursor per paged query and the sort key of each page start.

``soql/execute.py`` decides what a locator means (the query, its caller, the keyset position);
this module only stores and reads the rows, so a ``nextRecordsUrl`` fetched twice finds the same
page and an expired locator is swept with two indexed deletes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opencadence.storage import dialect, fastread, schema


def save_cursor(
    conn: sa.Connection,
    meta: sa.MetaData,
    cursor: dict[str, Any],
    position: int,
    after_key: str,
    *,
    relaxed: bool = False,
) -> None:
    """A new cursor row (``cursor`` holds its columns) and the start of its second page.
    ``relaxed``: the transaction writes nothing else, so its commit need not wait for the
    WAL flush (``dialect.relaxed_commit``; a locator lost in a crash: the query runs again)."""
    if relaxed:
        dialect.relaxed_commit(conn)
    conn.execute(meta.tables[schema.CURSORS].insert().values(**cursor))
    conn.execute(
        meta.tables[schema.CURSOR_PAGES]
        .insert()
        .values(locator=cursor["locator"], position=position, after_key=after_key)
    )


def prepared_saves(engine: sa.Engine, meta: sa.MetaData) -> tuple[fastread.Write, fastread.Write]:
    """``save_cursor``'s two inserts compiled for ``fastread.write``: the cursor row (its
    columns as parameters) and the start of its second page (locator, position, after_key)."""

    def insert(name: str) -> fastread.Write:
        table = meta.tables[name]
        return fastread.prepare_write(
            engine,
            table.insert().values({c.name: sa.bindparam(c.name, type_=c.type) for c in table.c}),
        )

    return insert(schema.CURSORS), insert(schema.CURSOR_PAGES)


def save_page(
    conn: sa.Connection,
    meta: sa.MetaData,
    locator: str,
    position: int,
    after_key: str,
    *,
    relaxed: bool = False,
) -> None:
    """Remember where the page at ``position`` starts, once (a retried fetch writes nothing);
    ``relaxed`` as in ``save_cursor``."""
    if relaxed:
        dialect.relaxed_commit(conn)
    pages = meta.tables[schema.CURSOR_PAGES]
    exists = conn.execute(
        sa.select(pages.c.position).where(pages.c.locator == locator, pages.c.position == position)
    ).first()
    if exists is None:
        conn.execute(pages.insert().values(locator=locator, position=position, after_key=after_key))


def load(
    conn: sa.Connection, meta: sa.MetaData, locator: str, position: int
) -> tuple[dict[str, Any] | None, str | None]:
    """The cursor row of ``locator`` and the stored start key of its page at ``position``."""
    cursors, pages = meta.tables[schema.CURSORS], meta.tables[schema.CURSOR_PAGES]
    row = conn.execute(sa.select(cursors).where(cursors.c.locator == locator)).mappings().first()
    if row is None:
        return None, None
    key = conn.execute(
        sa.select(pages.c.after_key).where(pages.c.locator == locator, pages.c.position == position)
    ).scalar()
    return dict(row), key


def prune(conn: sa.Connection, meta: sa.MetaData, cutoff: datetime) -> None:
    """Drop the locators created before ``cutoff`` (cheap: indexed by creation time)."""
    cursors, pages = meta.tables[schema.CURSORS], meta.tables[schema.CURSOR_PAGES]
    expired = sa.select(cursors.c.locator).where(cursors.c.created_at < cutoff)
    conn.execute(pages.delete().where(pages.c.locator.in_(expired)))
    conn.execute(cursors.delete().where(cursors.c.created_at < cutoff))
