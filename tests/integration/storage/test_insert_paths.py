"""``Tx.insert_many``'s way to the database (``Tx._insert_rows``): a batch of
``records.COPY_ROWS`` or more goes through ``executemany.insert`` (the driver's executemany
on SQLite, one COPY on PostgreSQL); it stores the rows SQLAlchemy's INSERT stores, and a
duplicate key in it is refused as in a small batch, writing nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import errors
from opencadence.storage import counts, records


def _contacts(tag: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "LastName": f"{tag} {i} é'\"",
            "FirstName": None if i % 3 else f"F{i}",
            "Email": f"{tag.lower()}{i}@example.com",
            "EmailBouncedDate": None if i % 4 else datetime(2026, 1, 1 + i % 28, 9, 30, 0, 5),
            "DoNotCall": bool(i % 2),
        }
        for i in range(n)
    ]


def _stored(store: records.Store, tag: str) -> list[tuple[Any, ...]]:
    """The rows of ``tag``, less what differs by design (Id, the tag itself)."""
    t = store.meta.tables["Contact"]
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.LastName.like(f"{tag} %")).order_by(t.c.Email)
        ).mappings()
        return [
            tuple(
                (v.replace(tag, "").replace(tag.lower(), "") if isinstance(v, str) else v)
                for k, v in row.items()
                if k not in ("Id", "Name")
            )
            for row in rows
        ]


def test_a_large_batch_stores_what_sqlalchemy_s_insert_stores(
    store: records.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = records.COPY_ROWS + 10
    with store.transaction() as tx:
        tx.insert_many("Contact", _contacts("Big", n))

    def sqlalchemy_insert(tx: records.Tx, obj: Any, rows: list[dict[str, Any]]) -> None:
        tx.conn.execute(store.meta.tables[obj.name].insert(), rows)

    monkeypatch.setattr(records.Tx, "_insert_rows", sqlalchemy_insert)  # the reference
    with store.transaction() as tx:
        tx.insert_many("Contact", _contacts("Small", n))
    big, small = _stored(store, "Big"), _stored(store, "Small")
    assert len(big) == n and big == small
    with store.engine.connect() as conn:  # the row counters saw both
        assert counts.live(conn, store.meta, "Contact") == 2 * n


def test_a_duplicate_key_in_a_large_batch_writes_nothing(store: records.Store) -> None:
    users = [
        {
            "Username": f"u{i}@copy.test",
            "LastName": f"U{i}",
            "Email": f"u{i}@copy.test",
            "Alias": f"u{i}",
            "TimeZoneSidKey": "America/Los_Angeles",
            "LocaleSidKey": "en_US",
            "LanguageLocaleKey": "en_US",
            "EmailEncodingKey": "UTF-8",
        }
        for i in range(records.COPY_ROWS + 5)
    ]
    users[-1]["Username"] = "U0@COPY.TEST"  # the case-insensitive unique index
    with pytest.raises(errors.DuplicateUsername):
        with records.duplicates_refused(), store.transaction() as tx:
            tx.insert_many("User", users, system=True)
    t = store.meta.tables["User"]
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).where(t.c.Username.like("%@copy.test")))
        assert left.scalar() == 0
