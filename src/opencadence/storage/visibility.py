"""Record visibility and edit rights of users without "View All Data", inside the SQL.

opencadence's sharing model (docs/security-model.md), a simplification of Salesforce's
private org-wide defaults with "Grant Access Using Hierarchies" on. A user's *team* is the
user and everyone below them in the User.ManagerId chain (recursively), so a manager sees and
acts on what their reports (and their reports' reports) own:

- ActionCadenceTracker: the team owns it (OwnerId).
- ActionCadenceStepTracker: its tracker is the team's, or someone of the team completed it.
- Contact, Lead: the team owns the record, or it is the target of one of the team's trackers.
- Task: the team owns it.
- EmailMessage: someone of the team created it, or its activity (ActivityId) is a team Task.

Everything else is public read. Edit (update, delete, undelete) of the private objects above
needs ownership by the team; a Contact or Lead seen only as the target of a team tracker is
read-only (``editable``). Which objects need a permission to change at all is in
``storage/authorization.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

Col = sa.ColumnElement[Any]
Rule = Callable[[sa.FromClause, sa.MetaData, str], Col]

#: CTE names must be unique within one statement; a query may hold several team lookups
_cte_names = itertools.count()


def team(meta: sa.MetaData, user_id: str) -> sa.Select[Any]:
    """Ids of ``user_id`` and of every user below them in the ManagerId chain.

    A recursive CTE (WITH RECURSIVE on both SQLite and PostgreSQL); UNION rather than UNION
    ALL, so a cycle in the chain ends instead of recursing forever."""
    users = meta.tables["User"]
    seed = sa.select(users.c.Id.label("Id")).where(users.c.Id == user_id)
    members = seed.cte(f"oc_team_{next(_cte_names) % 1_000_000}", recursive=True)
    below = users.alias()
    members = members.union(sa.select(below.c.Id).where(below.c.ManagerId == members.c.Id))
    return sa.select(members.c.Id)


def _team_trackers(
    meta: sa.MetaData, user_id: str, column: str, *, live_only: bool = True
) -> sa.Select[Any]:
    trackers = meta.tables["ActionCadenceTracker"]
    stmt = sa.select(trackers.c[column]).where(
        trackers.c.OwnerId.in_(team(meta, user_id)), trackers.c[column].is_not(None)
    )
    return stmt.where(trackers.c.IsDeleted == sa.false()) if live_only else stmt


def _owned(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return table.c.OwnerId.in_(team(meta, user_id))


def _step_tracker(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    # deleted trackers count: their step trackers are deleted with them (runtime.delete_tracker)
    # and their owner still sees those in queryAll and getDeleted
    return sa.or_(
        table.c.ActionCadenceTrackerId.in_(_team_trackers(meta, user_id, "Id", live_only=False)),
        table.c.CompletedById.in_(team(meta, user_id)),
    )


def _step_tracker_edit(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return table.c.ActionCadenceTrackerId.in_(_team_trackers(meta, user_id, "Id"))


def _target(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return sa.or_(
        table.c.OwnerId.in_(team(meta, user_id)),
        table.c.Id.in_(_team_trackers(meta, user_id, "TargetId")),
    )


def _email(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    tasks = meta.tables["Task"]
    team_tasks = sa.select(tasks.c.Id).where(tasks.c.OwnerId.in_(team(meta, user_id)))
    return sa.or_(table.c.CreatedById.in_(team(meta, user_id)), table.c.ActivityId.in_(team_tasks))


RULES: dict[str, Rule] = {
    "ActionCadenceTracker": _owned,
    "ActionCadenceStepTracker": _step_tracker,
    "Contact": _target,
    "Lead": _target,
    "Task": _owned,
    "EmailMessage": _email,
}

#: Who may edit a private record (defaults to RULES: seeing it is enough).
EDIT_RULES: dict[str, Rule] = {
    "ActionCadenceStepTracker": _step_tracker_edit,
    "Contact": _owned,
    "Lead": _owned,
}

#: The objects whose records are private (not public read).
PRIVATE = frozenset(RULES)


def predicate(
    object_name: str, table: sa.FromClause, meta: sa.MetaData, user_id: str | None
) -> Col | None:
    """The condition limiting ``table`` to what ``user_id`` may see (None: no limit)."""
    rule = RULES.get(object_name)
    if rule is None or user_id is None:
        return None
    return rule(table, meta, user_id)


def editable(
    object_name: str, table: sa.FromClause, meta: sa.MetaData, user_id: str | None
) -> Col | None:
    """The condition limiting ``table`` to what ``user_id`` may change (None: no limit)."""
    rule = EDIT_RULES.get(object_name) or RULES.get(object_name)
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
