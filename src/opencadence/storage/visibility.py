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
from collections.abc import Callable
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


def _team_trackers(meta: sa.MetaData, user_id: str, column: str) -> sa.Select[Any]:
    trackers = meta.tables["ActionCadenceTracker"]
    return sa.select(trackers.c[column]).where(
        trackers.c.OwnerId.in_(team(meta, user_id)),
        trackers.c.IsDeleted == sa.false(),
        trackers.c[column].is_not(None),
    )


def _owned(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return table.c.OwnerId.in_(team(meta, user_id))


def _step_tracker(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return sa.or_(
        table.c.ActionCadenceTrackerId.in_(_team_trackers(meta, user_id, "Id")),
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
