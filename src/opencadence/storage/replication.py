"""The reads of replication (getUpdated / getDeleted): which records changed or went in a window.

The caller (``org.Org``) parses and checks the window and the id cap; these functions read
the half-open window [``lo``, ``hi``) (naive UTC), oldest first, at most ``limit`` rows.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from opencadence.storage import records, schema, visibility


def updated_ids(
    store: records.Store,
    object_name: str,
    lo: datetime,
    hi: datetime,
    *,
    viewer: str | None,
    limit: int,
) -> list[str]:
    """Ids of live ``object_name`` records whose SystemModstamp falls in the window, limited to
    what ``viewer`` may see (None: everything)."""
    table = store.meta.tables[object_name]
    conds = [
        table.c.SystemModstamp >= lo,
        table.c.SystemModstamp < hi,
        table.c.IsDeleted == sa.false(),
    ]
    visible = visibility.predicate(object_name, table, store.meta, viewer)
    if visible is not None:
        conds.append(visible)
    with store.reading() as conn:
        found = conn.execute(
            sa.select(table.c.Id).where(*conds).order_by(table.c.SystemModstamp).limit(limit)
        ).scalars()
        return [str(i) for i in found]


def deleted(
    store: records.Store,
    object_name: str,
    lo: datetime,
    hi: datetime,
    *,
    limit: int,
    viewer: str | None = None,
) -> tuple[list[tuple[str, datetime]], datetime | None]:
    """((record Id, deleted date) of the window, oldest first; the earliest deletion of
    ``object_name`` still in the deleted log, None if none), read in one snapshot.

    Limited, as getUpdated is, to the records ``viewer`` could see (None: everything): the
    deleted row is still in its table, so the visibility rule applies to it as it stood."""
    log = store.meta.tables[schema.DELETED]
    conds = [log.c.entity == object_name, log.c.deleted_date >= lo, log.c.deleted_date < hi]
    table = store.meta.tables[object_name]
    visible = visibility.predicate(object_name, table, store.meta, viewer)
    if visible is not None:
        conds.append(log.c.record_id.in_(sa.select(table.c.Id).where(visible)))
    with store.reading() as conn:
        rows = conn.execute(
            sa.select(log.c.record_id, log.c.deleted_date)
            .where(*conds)
            .order_by(log.c.deleted_date)
            .limit(limit)
        ).all()
        earliest = conn.execute(
            sa.select(sa.func.min(log.c.deleted_date)).where(log.c.entity == object_name)
        ).scalar()
    return [(str(r[0]), r[1]) for r in rows], earliest
