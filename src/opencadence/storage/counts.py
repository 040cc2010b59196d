"""Live-row counts per object, kept exact in the writing transaction.

A query without filters needs the object's row count for its ``totalSize``; counting a
million rows costs tens of milliseconds, a counter costs one indexed read. Counters are
sharded (each transaction bumps one random shard) so concurrent writers on PostgreSQL do not
queue on a single row. Rows written around the store (bulk loads) are fixed by ``recount``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from opencadence.storage import dialect, schema

SHARDS = 16


def table(meta: sa.MetaData) -> sa.Table:
    return meta.tables[schema.ROW_COUNTS]


def apply(conn: sa.Connection, meta: sa.MetaData, deltas: Counter[str]) -> None:
    """Add this transaction's net inserts/deletes to one shard per object."""
    counts = table(meta)
    shard = random.randrange(SHARDS)
    for entity, delta in deltas.items():
        if not delta:
            continue
        done = conn.execute(
            counts.update()
            .where(counts.c.entity == entity, counts.c.shard == shard)
            .values(live=counts.c.live + delta)
        ).rowcount
        if not done:  # the shard's first write; a concurrent first writer may race this one
            row = {"entity": entity, "shard": shard, "live": delta}
            add = {"live": counts.c.live + delta}
            conn.execute(dialect.upsert(conn, counts, row, ("entity", "shard"), add))


def live(conn: sa.Connection, meta: sa.MetaData, entity: str) -> int:
    total = conn.execute(live_select(meta, entity)).scalar()
    return int(total or 0)


def live_select(meta: sa.MetaData, entity: str) -> sa.Select[Any]:
    """The live-row count of ``entity`` (the sum of its shards; null when it has none)."""
    counts = table(meta)
    return sa.select(sa.func.sum(counts.c.live)).where(counts.c.entity == entity)


def recount(conn: sa.Connection, meta: sa.MetaData, entities: Iterable[str]) -> None:
    """Set the counters from the tables themselves (after a bulk load, or a first upgrade)."""
    counts = table(meta)
    for entity in entities:
        t = meta.tables[entity]
        n = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.IsDeleted == sa.false())
        ).scalar_one()
        conn.execute(counts.delete().where(counts.c.entity == entity))
        conn.execute(counts.insert().values(entity=entity, shard=0, live=int(n)))
