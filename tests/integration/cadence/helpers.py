"""Helpers of the cadence scenarios."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from opencadence import ids
from opencadence.cadence import actions
from opencadence.storage import migrate, records


def step_trackers(store: records.Store, tracker_id: str) -> list[dict[str, Any]]:
    """A tracker's step trackers, oldest first, with calculated fields."""
    t = store.meta.tables["ActionCadenceStepTracker"]
    with store.reading() as conn:
        ids_ = list(
            conn.execute(
                sa.select(t.c.Id).where(t.c.ActionCadenceTrackerId == tracker_id)
            ).scalars()
        )
    return sorted(
        (store.get("ActionCadenceStepTracker", i) or {} for i in ids_),
        key=lambda r: (r["CreatedDate"], counter(r["Id"])),
    )


def counter(record_id: str) -> int:
    """The counter of an opencadence Id (base-62 order is not ASCII order)."""
    n = 0
    for ch in record_id[6:15]:
        n = n * 62 + ids.BASE62.index(ch)
    return n


def tracker_of(store: records.Store, target_id: str) -> dict[str, Any]:
    """The latest tracker of a target."""
    t = store.meta.tables["ActionCadenceTracker"]
    with store.reading() as conn:
        tids = list(conn.execute(sa.select(t.c.Id).where(t.c.TargetId == target_id)).scalars())
    rows = [store.get("ActionCadenceTracker", i) or {} for i in tids]
    return max(rows, key=lambda r: (r["CreatedDate"], counter(r["Id"])))


def assign(acts: actions.Actions, cadence: str, target: str, user: str, **extra: Any) -> None:
    (res,) = acts.assignTargetToSalesCadence(
        [{"salesCadenceNameOrId": cadence, "targetId": target, "userId": user, **extra}], user
    )
    assert res["isSuccess"], res


def email_template(store: records.Store, **fields: Any) -> str:
    """An active EmailTemplate in the organization's folder: what an AutoSendAnEmail step
    needs to be activated (and sent)."""
    name = f"T{ids.BASE62[len(_templates) % 62]}{len(_templates)}"
    _templates.append(name)
    with store.transaction() as tx:
        return tx.insert(
            "EmailTemplate",
            {
                "Name": name,
                "DeveloperName": name,
                "TemplateType": "text",
                "FolderId": migrate.ORG_ID,
                "IsActive": True,
                "Subject": "Hello {!Contact.FirstName, there}",
                "Body": "Hi {!Contact.FirstName, there}.",
                **fields,
            },
        )


_templates: list[str] = []
