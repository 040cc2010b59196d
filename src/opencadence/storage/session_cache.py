"""The sessions a process remembers between requests, and how every process learns to forget.

Reading a session costs two statements (the session with its user and credentials, then the
user's permission sets); a request that finds its session remembered reads one instead: the
**auth generation**, a row of ``oc_sequence`` that every write able to end a session or change
what one carries sets to a new random value, in that write's own transaction:

- a session ended: revoked (OAuth revoke, SOAP logout), or the user deactivated
  (``Accounts.revoke``, ``Accounts.end_sessions_if_inactive``);
- any write of a User (IsActive, TimeZoneSidKey, ProfileId), a PermissionSet or a
  PermissionSetAssignment through ``records.Tx`` (the API's, the CLI's, Bulk's);
- a user made or unmade an administrator (``Accounts.set_admin``).

A remembered session is used only while the generation read by the request is the one read
when it was remembered, and only until its own expiry (past it, it is read again: another
process may have extended it). So a change committed by any process -- the server's own
threads, a second ``serve --processes`` child, the CLI -- applies to the very next request,
as when every request read the session: no time window, no message to miss. A random value
rather than a counter: a database put back to an earlier state (opencadence.testing restores
its rows) cannot bring an old value back by counting up to it. Opening a session changes
nothing here (a new token is in no process's memory).

What is not covered: a session row or a user changed by hand-written SQL outside opencadence
(it should set the generation too: ``UPDATE oc_sequence SET value = value + 1 WHERE name =
'auth_generation'``), and a database restored under a running server by other means than
opencadence.testing (which calls ``Accounts.forget_sessions``).

The generation is read on a SQLite file through one connection kept for it (in autocommit: a
single-statement read sees the last commit, and in WAL mode never waits for a writer), about
a tenth of a pooled checkout with its BEGIN/ROLLBACK; on PostgreSQL through
``storage.fastread`` (its kept connections: one round trip).
"""

from __future__ import annotations

import secrets
import threading
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from opencadence.storage import dialect, fastread, schema

#: The ``oc_sequence`` row holding the auth generation.
GENERATION = "auth_generation"
#: Objects whose writes can change what a session carries (its user's activity, time zone and
#: profile; the user's permission sets).
AUTH_OBJECTS = frozenset({"User", "PermissionSet", "PermissionSetAssignment"})
#: Sessions one process remembers; past it, it forgets them all and starts again.
MAX_SESSIONS = 10_000


def bump(conn: sa.Connection, meta: sa.MetaData) -> None:
    """Set the auth generation to a new value, in the transaction of ``conn`` (which must be
    the write that makes remembered sessions stale: it commits or rolls back with it)."""
    seq = meta.tables[schema.SEQUENCES]
    value = secrets.randbits(62)
    done = conn.execute(seq.update().where(seq.c.name == GENERATION).values(value=value)).rowcount
    if done:
        return
    row = {"name": GENERATION, "value": value}
    conn.execute(dialect.upsert(conn, seq, row, ("name",), {"value": value}))


class Generation:
    """Reads the auth generation of one engine (None while no write has set it)."""

    def __init__(self, engine: Engine, meta: sa.MetaData) -> None:
        self.engine = engine
        seq = meta.tables[schema.SEQUENCES]
        self._select = sa.select(seq.c.value).where(seq.c.name == GENERATION)
        self._prepared: fastread.Prepared | None = None
        self._sqlite = engine.dialect.name == "sqlite" and fastread.supported(engine)
        self._lock = threading.Lock()
        self._kept: Any = None  # the SQLite driver connection kept for this read
        self._sql = ""
        self._params: Any = ()
        if self._sqlite:
            owner = weakref.ref(self)

            def disposed(_engine: Engine) -> None:
                found = owner()
                if found is not None:
                    found.close()

            sa.event.listen(engine, "engine_disposed", disposed)

    def read(self) -> int | None:
        if self._sqlite:
            return self._read_kept()
        if not fastread.supported(self.engine):  # one shared in-memory SQLite: no light reads
            with self.engine.connect() as conn:
                value = conn.execute(self._select).scalar()
                conn.rollback()
            return None if value is None else int(value)
        prepared = self._prepare()
        value = fastread.read(self.engine, lambda light: light.scalar(prepared))
        return None if value is None else int(value)

    def _prepare(self) -> fastread.Prepared:
        if self._prepared is None:
            self._prepared = fastread.prepare(self.engine, self._select)
        return self._prepared

    def _read_kept(self) -> int | None:
        with self._lock:
            if self._kept is None:
                prepared = self._prepare()
                fairy = self.engine.raw_connection()  # set up as every pooled connection
                self._kept = fairy.driver_connection
                fairy.detach()  # ours now (isolation_level None: autocommit)
                self._sql, self._params = prepared.sql, prepared.params
            try:
                row = self._kept.execute(self._sql, self._params).fetchone()
            except self.engine.dialect.loaded_dbapi.Error:
                self._close_kept()
                raise
        return None if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._close_kept()

    def _close_kept(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            try:
                kept.close()
            except Exception:  # closing a broken connection: nothing to do
                pass


class Remembered:
    """Sessions by token digest, each with the generation it was read under."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int | None, Any]] = {}

    def get(self, key: str, generation: int | None) -> Any:
        found = self._entries.get(key)
        if found is None or found[0] != generation:
            return None
        return found[1]

    def put(self, key: str, generation: int | None, session: Any) -> None:
        if len(self._entries) >= MAX_SESSIONS:
            self._entries.clear()
        self._entries[key] = (generation, session)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
