"""Record visibility for users without "View All Data" (reps), enforced inside the SQL.

opencadence's sharing model, a simplification of Salesforce's private org-wide defaults for
the objects a rep works with (everything else is public read):

- ActionCadenceTracker: the rep owns it (OwnerId).
- ActionCadenceStepTracker: its tracker is the rep's, or the rep completed it.
- Contact, Lead: the rep owns the record, or it is the target of one of the rep's trackers.
- Task: the rep owns it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

Col = sa.ColumnElement[Any]


def _my_trackers(
    meta: sa.MetaData, user_id: str, column: str, *, live_only: bool = True
) -> sa.Select[Any]:
    trackers = meta.tables["ActionCadenceTracker"]
    stmt = sa.select(trackers.c[column]).where(
        trackers.c.OwnerId == user_id, trackers.c[column].is_not(None)
    )
    return stmt.where(trackers.c.IsDeleted == sa.false()) if live_only else stmt


def _tracker(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return table.c.OwnerId == user_id


def _step_tracker(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    # deleted trackers count: their step trackers are deleted with them (runtime.delete_tracker)
    # and their owner still sees those in queryAll and getDeleted
    return sa.or_(
        table.c.ActionCadenceTrackerId.in_(_my_trackers(meta, user_id, "Id", live_only=False)),
        table.c.CompletedById == user_id,
    )


def _target(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return sa.or_(
        table.c.OwnerId == user_id, table.c.Id.in_(_my_trackers(meta, user_id, "TargetId"))
    )


def _owned(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return table.c.OwnerId == user_id


RULES: dict[str, Callable[[sa.FromClause, sa.MetaData, str], Col]] = {
    "ActionCadenceTracker": _tracker,
    "ActionCadenceStepTracker": _step_tracker,
    "Contact": _target,
    "Lead": _target,
    "Task": _owned,
}


def predicate(
    object_name: str, table: sa.FromClause, meta: sa.MetaData, user_id: str | None
) -> Col | None:
    """The condition limiting ``table`` to what ``user_id`` may see (None: no limit)."""
    rule = RULES.get(object_name)
    if rule is None or user_id is None:
        return None
    return rule(table, meta, user_id)


# -- checks on single records (the Sales Engagement actions, deleting a tracker) ---------------
# Built on ``predicate`` so every rule above (and any added later) applies to them as well.

#: How far up the ManagerId chain a team check looks (a cycle or a deep chain stops there).
MAX_MANAGER_DEPTH = 32


def visible_owners(
    conn: sa.Connection,
    meta: sa.MetaData,
    object_name: str,
    record_ids: Sequence[str],
    user_id: str | None,
    *,
    include_deleted: bool = False,
) -> dict[str, str | None]:
    """Id -> OwnerId (None for an object without owners) of the records among ``record_ids``
    that ``user_id`` may see (None: sees everything); live ones only unless
    ``include_deleted``."""
    table = meta.tables[object_name]
    owner = table.c.OwnerId if "OwnerId" in table.c else sa.null()
    out: dict[str, str | None] = {}
    wanted = sorted(set(record_ids))
    for start in range(0, len(wanted), 500):
        stmt = sa.select(table.c.Id, owner).where(table.c.Id.in_(wanted[start : start + 500]))
        if not include_deleted:
            stmt = stmt.where(table.c.IsDeleted == sa.false())
        visible = predicate(object_name, table, meta, user_id)
        if visible is not None:
            stmt = stmt.where(visible)
        out.update({rid: who for rid, who in conn.execute(stmt)})
    return out


def managers_of(conn: sa.Connection, meta: sa.MetaData, user_id: str) -> list[str]:
    """The ManagerId chain above ``user_id``, nearest first."""
    users = meta.tables["User"]
    chain: list[str] = []
    current: str | None = user_id
    while current is not None and len(chain) < MAX_MANAGER_DEPTH:
        current = conn.execute(
            sa.select(users.c.ManagerId).where(users.c.Id == current)
        ).scalar_one_or_none()
        if current is None or current == user_id or current in chain:
            break
        chain.append(current)
    return chain


def acts_for(conn: sa.Connection, meta: sa.MetaData, user_id: str, other_id: str | None) -> bool:
    """Whether ``user_id`` may act for ``other_id``: themselves or a manager above them."""
    if other_id is None:
        return False
    return other_id == user_id or user_id in managers_of(conn, meta, other_id)


def record_visible(
    conn: sa.Connection, meta: sa.MetaData, object_name: str, record_id: str, user_id: str | None
) -> bool:
    """Whether the live record ``record_id`` exists and ``user_id`` may see it."""
    return record_id in visible_owners(conn, meta, object_name, [record_id], user_id)
