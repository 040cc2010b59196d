"""Where a manual clock stands, kept in oc_schema_state so a restart does not go behind it.

A ``--clock manual`` org writes records days ahead of the wall clock; a restarted server whose
clock started at wall time again would be days before them. ``system.build`` saves each move
here and starts the next run's manual clock at max(wall time, the saved position).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from opencadence.clock import as_utc
from opencadence.storage import records, schema

KEY = "manual_clock"


def load(store: records.Store) -> datetime | None:
    """The last saved position of the org's manual clock (timezone-aware UTC), or None."""
    state = store.meta.tables[schema.SCHEMA_STATE]
    with store.reading() as conn:
        found = conn.execute(sa.select(state.c.value).where(state.c.key == KEY)).scalar()
    return None if found is None else as_utc(datetime.fromisoformat(str(found)))


def save(store: records.Store, when: datetime) -> None:
    """Remember ``when`` as the manual clock's position; never moves a saved one back."""
    state = store.meta.tables[schema.SCHEMA_STATE]
    text = as_utc(when).isoformat()  # to the microsecond
    with store.transaction() as tx:
        found = tx.conn.execute(sa.select(state.c.value).where(state.c.key == KEY)).scalar()
        if found is None:
            tx.conn.execute(state.insert().values(key=KEY, value=text))
        elif as_utc(datetime.fromisoformat(str(found))) < as_utc(when):
            tx.conn.execute(state.update().where(state.c.key == KEY).values(value=text))
