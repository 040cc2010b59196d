"""Org and per-user email settings: switches, daily caps, the size limit, Sales Engagement access.

Stored as (scope, name, value) rows in ``oc_email_setting`` (scope "org" or a User Id) so
they are editable at run time (the API layer exposes them); a missing row means the default
below. Values are read in the caller's transaction, so a change applies to the next send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencadence.storage import mail, records

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
    # Sending window (email.windows), per cadence (scope = ActionCadence Id) or org-wide:
    # every day, all day, unless set.
    "window_days": 127,
    "window_start_minute": 0,
    "window_end_minute": 1440,
}


@dataclass(frozen=True, slots=True)
class OrgSettings:
    auto_email_enabled: bool
    email_enabled: bool
    org_daily_auto_cap: int
    org_daily_email_cap: int
    max_body_bytes: int


@dataclass(frozen=True)
class Snapshot:
    """Every setting row, read once (the worker reads them once per batch)."""

    rows: dict[str, dict[str, int]]

    @property
    def org(self) -> OrgSettings:
        v = {**DEFAULTS, **self.rows.get(ORG, {})}
        return OrgSettings(
            bool(v["auto_email_enabled"]),
            bool(v["email_enabled"]),
            v["org_daily_auto_cap"],
            v["org_daily_email_cap"],
            v["max_body_bytes"],
        )

    def user(self, user_id: str, name: str) -> int:
        """A per-user setting; the org-level row is the default for every user."""
        mine = self.rows.get(user_id, {})
        if name in mine:
            return mine[name]
        return {**DEFAULTS, **self.rows.get(ORG, {})}[name]


def load(conn: mail.Connection) -> Snapshot:
    return Snapshot(mail.read_settings(conn))


def read(store: records.Store) -> Snapshot:
    """Every setting, in a read of its own."""
    with store.reading() as conn:
        return load(conn)


def put(conn: mail.Connection, name: str, value: Any, scope: str = ORG) -> None:
    """Set one setting (``scope`` "org" or a User Id) in the caller's transaction."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown email setting {name}")
    mail.write_setting(conn, scope, name, int(value))


def put_all(store: records.Store, user_id: str, scope: str, changes: dict[str, int]) -> None:
    """Set several settings of one scope in one transaction of ``user_id``."""
    with store.transaction(user_id) as tx:
        for name, value in changes.items():
            put(tx.conn, name, value, scope=scope)
