"""Record visibility for users without "View All Data" (reps), enforced inside the SQL.

opencadence's sharing model, a simplification of Salesforce's private org-wide defaults for
the objects a rep works with (everything else is public read):

- ActionCadenceTracker: the rep owns it (OwnerId).
- ActionCadenceStepTracker: its tracker is the rep's, or the rep completed it.
- Contact, Lead: the rep owns the record, or it is the target of one of the rep's trackers.
- Task: the rep owns it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

Col = sa.ColumnElement[Any]


def _my_trackers(meta: sa.MetaData, user_id: str, column: str) -> sa.Select[Any]:
    trackers = meta.tables["ActionCadenceTracker"]
    return sa.select(trackers.c[column]).where(
        trackers.c.OwnerId == user_id,
        trackers.c.IsDeleted == sa.false(),
        trackers.c[column].is_not(None),
    )


def _tracker(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return table.c.OwnerId == user_id


def _step_tracker(table: sa.FromClause, meta: sa.MetaData, user_id: str) -> Col:
    return sa.or_(
        table.c.ActionCadenceTrackerId.in_(_my_trackers(meta, user_id, "Id")),
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
