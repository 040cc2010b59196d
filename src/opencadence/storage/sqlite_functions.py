"""Python functions registered on every SQLite connection (SQLite has no Unicode case folding
and no time-zone database). The SOQL constructs emit calls to them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=4096)
def _lower_char(ch: str) -> str:
    # Full lowercase mappings with more than one character (only 'İ' → 'i̇') keep their first
    # character, which is the simple mapping PostgreSQL's per-character lower() uses.
    return ch.lower()[:1] or ch


def simple_lower(text: str) -> str:
    """Per-character Unicode lowercase, as PostgreSQL's ``lower()`` does it."""
    if text.isascii():
        return text.lower()
    return "".join(_lower_char(ch) for ch in text)


def _sqlite_lower(value: Any) -> Any:
    return simple_lower(value) if isinstance(value, str) else value


def _sqlite_to_local(value: Any, tz: Any) -> str | None:
    """A stored naive-UTC dateTime ('YYYY-MM-DD HH:MM:SS.ffffff') as local time in ``tz``."""
    if value is None or tz is None:
        return None
    utc = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    return utc.astimezone(_zone(str(tz))).strftime("%Y-%m-%d %H:%M:%S.%f")


def register(dbapi_conn: Any) -> None:
    """Register the SQL functions these constructs emit on a new sqlite3 connection."""
    dbapi_conn.create_function("oc_lower", 1, _sqlite_lower, deterministic=True)
    dbapi_conn.create_function("oc_to_local", 2, _sqlite_to_local, deterministic=True)
