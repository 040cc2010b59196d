"""CometD clients shared by every server process on one database (table ``oc_cometd_client``).

``opencadence serve --processes N`` runs N children on one socket, and a client's next Bayeux
message may reach any of them, so its state lives in one row, not in one child's memory: the
user and viewer it handshook as, its subscriptions with their replay cursors, whether its first
/meta/connect was answered, the /meta/connect being held for it (``holder``, with a bound
``held_until`` so a killed process's hold runs out) and when its last response went out
(``answered_at``, wall time, for the reconnect timeout).

``version`` grows with every change a delivery must not race: a subscription added or
removed, a cursor advanced, a new /meta/connect taking over. A delivery reads the row, reads
the events past its cursors, and advances them with a compare-and-set on the version it read
(``advance``); when another process changed the row meanwhile it gets False and reads again,
so two connects can never both hand over the same events.

Whoever changes what a held connect must learn (a subscription, a disconnect, a newer connect)
sends a NOTIFY on ``dialect.COMETD_CLIENTS_CHANNEL`` with the client id (PostgreSQL, at commit);
every process's one LISTEN connection (``storage.wakeup.Beacon.listen_notices``) passes it on to
the connects it holds for that client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from opencadence.clock import SystemClock, as_utc
from opencadence.storage import dialect, records, schema

#: The NOTIFY channel of client changes (payload: the client id).
CHANNEL = dialect.COMETD_CLIENTS_CHANNEL
#: The advisory lock key handshakes take, so the org-wide client limit holds across processes.
_HANDSHAKE_LOCK_KEY = 0x0C_0C_E7_D1


@dataclass(frozen=True)
class ClientRow:
    """One client as its row says now."""

    client_id: str
    user_id: str
    viewer: str | None
    subscriptions: dict[str, int]
    connected: bool
    version: int
    holder: str | None


def _now() -> datetime:
    """Wall time, naive UTC to the millisecond, as the database stores datetimes."""
    now = as_utc(SystemClock().now())
    return now.replace(tzinfo=None, microsecond=now.microsecond // 1000 * 1000)


class CometdClients:
    """The shared CometD clients of one database."""

    def __init__(self, store: records.Store) -> None:
        self.store = store
        self.table = store.meta.tables[schema.COMETD_CLIENTS]

    def _idle(self, now: datetime, idle: timedelta) -> sa.ColumnElement[bool]:
        """Rows past the reconnect timeout: no response since ``idle`` and no live hold."""
        t = self.table
        return sa.and_(
            t.c.answered_at < now - idle,
            sa.or_(t.c.holder.is_(None), t.c.held_until < now),
        )

    def create(
        self, client_id: str, user_id: str, viewer: str | None, *, idle: timedelta, limit: int
    ) -> bool:
        """A new client; False when ``limit`` clients exist already (idle ones are dropped
        first). Handshakes take one lock, so concurrent ones in many processes count right."""
        t, now = self.table, _now()
        with self.store.transaction() as tx:
            dialect.transaction_lock(tx.conn, _HANDSHAKE_LOCK_KEY)
            tx.conn.execute(t.delete().where(self._idle(now, idle)))
            count = tx.conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            if count >= limit:
                return False
            tx.conn.execute(
                t.insert().values(
                    client_id=client_id,
                    user_id=user_id,
                    viewer=viewer,
                    subscriptions="{}",
                    connected=False,
                    version=0,
                    holder=None,
                    held_until=None,
                    answered_at=now,
                )
            )
        return True

    def get(self, client_id: str, *, idle: timedelta) -> ClientRow | None:
        """The client, or None when it is unknown or past the reconnect timeout."""
        t, now = self.table, _now()
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(t, self._idle(now, idle).label("expired")).where(
                    t.c.client_id == client_id
                )
            ).one_or_none()
        if row is None:
            return None
        if row.expired:
            self.remove(client_id, notify=False)
            return None
        return ClientRow(
            client_id=row.client_id,
            user_id=row.user_id,
            viewer=row.viewer,
            subscriptions=json.loads(row.subscriptions),
            connected=bool(row.connected),
            version=int(row.version),
            holder=row.holder,
        )

    def count(self, *, idle: timedelta) -> int:
        """Clients within the reconnect timeout, org-wide."""
        t, now = self.table, _now()
        with self.store.reading() as conn:
            found = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(sa.not_(self._idle(now, idle)))
            ).scalar_one()
        return int(found)

    def _change_subscriptions(self, client_id: str, channel: str, cursor: int | None) -> bool:
        """Set (or, with None, remove) one subscription; False when the client is gone."""
        t = self.table
        while True:
            with self.store.transaction() as tx:
                row = tx.conn.execute(
                    sa.select(t.c.subscriptions, t.c.version).where(t.c.client_id == client_id)
                ).one_or_none()
                if row is None:
                    return False
                subs = json.loads(row.subscriptions)
                if cursor is None:
                    subs.pop(channel, None)
                else:
                    subs[channel] = cursor
                done = tx.conn.execute(
                    t.update()
                    .where(t.c.client_id == client_id, t.c.version == row.version)
                    .values(
                        subscriptions=json.dumps(subs),
                        version=t.c.version + 1,
                        answered_at=_now(),
                    )
                )
                if done.rowcount:
                    dialect.notify(tx.conn, CHANNEL, client_id)
                    return True
            # another process changed the row between the read and the write: again

    def subscribe(self, client_id: str, channel: str, cursor: int) -> bool:
        return self._change_subscriptions(client_id, channel, cursor)

    def unsubscribe(self, client_id: str, channel: str) -> bool:
        return self._change_subscriptions(client_id, channel, None)

    def remove(self, client_id: str, *, notify: bool = True) -> None:
        """The client is gone (/meta/disconnect, or expired); its held connects end."""
        with self.store.transaction() as tx:
            tx.conn.execute(self.table.delete().where(self.table.c.client_id == client_id))
            if notify:
                dialect.notify(tx.conn, CHANNEL, client_id)

    def connected(self, client_id: str) -> None:
        """Its first /meta/connect is answered (the next ones are held)."""
        t = self.table
        with self.store.transaction() as tx:
            dialect.relaxed_commit(tx.conn)  # lost in a crash: the next connect is answered at once
            tx.conn.execute(
                t.update()
                .where(t.c.client_id == client_id)
                .values(connected=True, answered_at=_now())
            )

    def hold(self, client_id: str, connect_id: str, *, at_most: timedelta) -> ClientRow | None:
        """``connect_id`` is now the client's one held /meta/connect (for ``at_most``); an
        older one, in whichever process, is told to answer at once. The client as it is now
        held; None: the client is gone. (A hold lost in a database crash is harmless: its
        commit does not wait for the WAL flush.)"""
        t = self.table
        while True:
            with self.store.transaction() as tx:
                dialect.relaxed_commit(tx.conn)
                row = tx.conn.execute(sa.select(t).where(t.c.client_id == client_id)).one_or_none()
                if row is None:
                    return None
                now = _now()
                done = tx.conn.execute(
                    t.update()
                    .where(t.c.client_id == client_id, t.c.version == row.version)
                    .values(holder=connect_id, held_until=now + at_most, version=t.c.version + 1)
                )
                if done.rowcount:
                    if row.holder is not None and row.held_until >= now:
                        dialect.notify(tx.conn, CHANNEL, client_id)  # the older one answers
                    return ClientRow(
                        client_id=client_id,
                        user_id=row.user_id,
                        viewer=row.viewer,
                        subscriptions=json.loads(row.subscriptions),
                        connected=bool(row.connected),
                        version=int(row.version) + 1,
                        holder=connect_id,
                    )

    def advance(
        self,
        client_id: str,
        version: int,
        cursors: dict[str, int],
        *,
        release: str | None = None,
    ) -> bool:
        """Move the cursors to ``cursors`` if the row is still at ``version`` (nothing took
        these events, subscribed or took over meanwhile); with ``release``, that connect is
        answered in the same write. False: read again."""
        t = self.table
        values: dict[str, object] = {
            "subscriptions": json.dumps(cursors),
            "version": t.c.version + 1,
        }
        if release is not None:
            values.update(holder=None, held_until=None, answered_at=_now())
        with self.store.transaction() as tx:
            done = tx.conn.execute(
                t.update()
                .where(t.c.client_id == client_id, t.c.version == version)
                .values(**values)
            )
        return bool(done.rowcount)

    def release(self, client_id: str, connect_id: str) -> None:
        """The held ``connect_id`` is answered: its reconnect timeout starts (the hold is
        cleared if it is still this connect's)."""
        t = self.table
        with self.store.transaction() as tx:
            dialect.relaxed_commit(tx.conn)  # lost in a crash: the hold runs out by itself
            tx.conn.execute(
                t.update()
                .where(t.c.client_id == client_id)
                .values(
                    holder=sa.case((t.c.holder == connect_id, sa.null()), else_=t.c.holder),
                    held_until=sa.case((t.c.holder == connect_id, sa.null()), else_=t.c.held_until),
                    answered_at=_now(),
                )
            )

    def answered(self, client_id: str) -> None:
        """A response to the client went out: its reconnect timeout starts again."""
        t = self.table
        with self.store.transaction() as tx:
            dialect.relaxed_commit(tx.conn)
            tx.conn.execute(t.update().where(t.c.client_id == client_id).values(answered_at=_now()))
