"""The Pub/Sub API's reads of the change-event log: events after a replay id that a user may see.

The same log and replay ids as CometD (``storage/events.py``). A rep (a user without "View All
Data") receives an event only while its record is visible to them by the rules of
``storage/visibility.py``, judged on the record as it is now (deleted records included): the
rule SOQL applies, so a subscriber never learns of a record a query would not show. Events a
user may not see still move the subscriber's cursor, so they are skipped once, not re-read.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from opencadence.storage import events, records, visibility

#: How many log rows one scan reads while looking for visible events, and how many scans one
#: call makes at most (so a rep far behind in a log of others' events gets keepalives between
#: calls instead of one read of the whole log).
SCAN_ROWS = 500
MAX_SCANS = 20


def bounds(store: records.Store) -> tuple[int | None, int | None]:
    """The smallest and largest replay id still in the log (None, None when it is empty)."""
    with store.reading() as conn:
        return events.replay_bounds(conn, store.meta)


def read_visible(
    store: records.Store,
    *,
    after: int,
    entity: str | None,
    limit: int,
    viewer: str | None,
    known: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """(up to ``limit`` events after replay id ``after`` that ``viewer`` may see (None: all),
    oldest first, decoded as ``events.decode`` does; the replay id the scan got to).

    The second value is where the next read starts: past the last event returned, or past
    every event examined when fewer than ``limit`` were visible (at most MAX_SCANS * SCAN_ROWS
    rows are examined per call). ``known`` is a replay id the caller knows to be committed
    (every smaller one is, too: replay ids follow commit order): when the scan reaches the end
    of the log, the cursor is at least ``known``, so a one-object topic whose last events are
    another object's does not read again for commits it has already looked past."""
    found: list[dict[str, Any]] = []
    cursor = after
    ended = False
    with store.reading() as conn:
        for _ in range(MAX_SCANS):
            if len(found) >= limit:
                break
            batch = events.read(conn, store.meta, after=cursor, entity=entity, limit=SCAN_ROWS)
            allowed = _visible_ids(conn, store.meta, batch, viewer) if batch else None
            taken = 0
            for ev in batch:
                if len(found) == limit:
                    break
                taken += 1
                cursor = ev["event"]["replayId"]
                header = ev["payload"]["ChangeEventHeader"]
                if allowed is None or _allowed(header, allowed):
                    found.append(ev)
            if len(batch) < SCAN_ROWS and taken == len(batch):
                ended = True
                break
    return found, max(cursor, known) if ended else cursor


def _allowed(header: dict[str, Any], allowed: dict[str, set[str]]) -> bool:
    entity = header["entityName"]
    if entity not in allowed:
        return True  # an object without a visibility rule
    return any(rid in allowed[entity] for rid in header["recordIds"])


def _visible_ids(
    conn: sa.Connection, meta: sa.MetaData, batch: list[dict[str, Any]], viewer: str | None
) -> dict[str, set[str]] | None:
    """Object name -> the ids of ``batch`` that ``viewer`` may see, for the objects that have a
    visibility rule (None: ``viewer`` sees everything)."""
    if viewer is None:
        return None
    wanted: dict[str, set[str]] = defaultdict(set)
    for ev in batch:
        header = ev["payload"]["ChangeEventHeader"]
        if header["entityName"] in visibility.RULES:
            wanted[header["entityName"]].update(header["recordIds"])
    out: dict[str, set[str]] = {}
    for name, record_ids in wanted.items():
        table = meta.tables[name]
        rule = visibility.predicate(name, table, meta, viewer)
        stmt = sa.select(table.c.Id).where(table.c.Id.in_(sorted(record_ids)))
        if rule is not None:
            stmt = stmt.where(rule)
        out[name] = {str(i) for i in conn.execute(stmt).scalars()}
    return out
