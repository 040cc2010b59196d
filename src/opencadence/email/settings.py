"""Org and per-user email settings: switches, daily caps, the size limit, Sales Engagement access.

Stored as (scope, name, value) rows in ``oc_email_setting`` (scope "org" or a User Id) so
they are editable at run time (the API layer exposes them); a missing row means the default
below. Values are read in the caller's transaction, so a change applies to the next send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from opencadence.storage import schema

ORG = "org"

#: Defaults (documented in docs/email-decisions.md).
DEFAULTS: dict[str, int] = {
    "auto_email_enabled": 1,
    "email_enabled": 1,
    "user_daily_auto_cap": 1000,
    "org_daily_auto_cap": 5000,
    "org_daily_email_cap": 5000,
    # Gmail clips bodies over ~102 KB: a longer cadence email would not be read as written.
    "max_body_bytes": 102_400,
    # A user keeps Sales Engagement access unless it is revoked (per-user scope).
    "hvs_access": 1,
}


@dataclass(frozen=True, slots=True)
class OrgSettings:
    auto_email_enabled: bool
    email_enabled: bool
    org_daily_auto_cap: int
    org_daily_email_cap: int
    max_body_bytes: int


def _table(conn: sa.Connection) -> sa.Table:
    meta = sa.MetaData()
    return sa.Table(schema.EMAIL_SETTINGS, meta, sa.Column("scope"), sa.Column("name"),
                    sa.Column("value"))


def _values(conn: sa.Connection, scope: str) -> dict[str, int]:
    t = _table(conn)
    got = {r[0]: int(r[1]) for r in conn.execute(
        sa.select(t.c.name, t.c.value).where(t.c.scope == scope))}
    return got


def org(conn: sa.Connection) -> OrgSettings:
    v = {**DEFAULTS, **_values(conn, ORG)}
    return OrgSettings(bool(v["auto_email_enabled"]), bool(v["email_enabled"]),
                       v["org_daily_auto_cap"], v["org_daily_email_cap"], v["max_body_bytes"])


def user_value(conn: sa.Connection, user_id: str, name: str) -> int:
    """A per-user setting; the org-level row is the default for every user."""
    mine = _values(conn, user_id)
    if name in mine:
        return mine[name]
    return {**DEFAULTS, **_values(conn, ORG)}[name]


def put(conn: sa.Connection, name: str, value: Any, scope: str = ORG) -> None:
    """Set one setting (``scope`` "org" or a User Id) in the caller's transaction."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown email setting {name}")
    t = _table(conn)
    conn.execute(sa.delete(t).where(t.c.scope == scope, t.c.name == name))
    conn.execute(sa.insert(t).values(scope=scope, name=name, value=str(int(value))))
