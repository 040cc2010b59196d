"""Row counters (storage/counts.py): two transactions that are both the first writer of one
shard both count, the second waiting for the first instead of failing on its key."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from opencadence.storage import counts, records


def test_two_first_writers_of_one_shard_both_count(
    store: records.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = store.meta
    monkeypatch.setattr(counts.random, "randrange", lambda n: 7)  # both on one fresh shard
    table = counts.table(meta)
    with store.engine.begin() as conn:
        conn.execute(table.delete().where(table.c.entity == "Contact"))
    if store.engine.dialect.name == "sqlite":  # one writer at a time: one after the other
        for _ in range(2):
            with store.engine.begin() as conn:
                counts.apply(conn, meta, Counter(Contact=1))
    else:
        failures: list[BaseException] = []
        first = store.engine.connect()
        first.begin()
        counts.apply(first, meta, Counter(Contact=1))  # inserted the shard's row, uncommitted

        def second() -> None:
            try:
                with store.engine.begin() as conn:  # its UPDATE finds no row; its INSERT waits
                    counts.apply(conn, meta, Counter(Contact=1))
            except BaseException as exc:  # noqa: BLE001 (reported below)
                failures.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)  # waiting on the first's uncommitted key
        first.commit()
        first.close()
        thread.join(10)
        assert not thread.is_alive() and failures == []
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.shard, table.c.live).where(table.c.entity == "Contact")
        )
        assert rows.all() == [(7, 2)]
        assert counts.live(conn, meta, "Contact") == 2
