"""Every statement on the email tables: the outbox, the engagement events, the email settings.

The email layer decides (checks, caps, the two-phase delivery, what a bounce means); this
module only reads and writes rows, on the connection of a ``Store`` transaction or read
(``Connection``), so each of those decisions commits with the transaction that made it.

Outbox statuses: ``waiting`` (held by a daily cap), ``pending`` (staged, its worker's lease
running), ``sending`` (the final "." is going out), ``accepted`` (the relay answered 250; the
send is not recorded yet), ``unknown`` (a worker died while the row was ``sending``: the "."
may or may not have reached the relay), ``sent``, ``retry``, ``failed``, ``cancelled``;
``email/smtp_sender.py`` describes the transitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from opencadence import ids
from opencadence.storage import schema

#: The handle every function here runs on: ``Store.transaction().conn`` or ``Store.reading()``.
Connection = sa.Connection
#: Any failure of the database itself: the transaction it happened in is unusable and must be
#: rolled back (callers that otherwise swallow errors let this one through).
DatabaseError = sa.exc.SQLAlchemyError

#: Statuses a cancelled step tracker's row may still leave (it never reached the relay).
CANCELLABLE = ("pending", "retry", "waiting")
#: Statuses of a message the relay has (or, for ``sending``/``unknown``, may have).
REACHED_RELAY = ("sent", "sending", "accepted", "unknown")
#: The engagement-event kind recording that a send's outcome was unknown after a crash.
UNKNOWN_EVENT = "unknown"
#: Keys per UPDATE ... IN (...) RETURNING of ``mark_sent`` (well under SQLite's 32,766 variables).
_MARK_CHUNK = 500


class Outbox:
    """The outbox table of one schema, one row per AutoSendAnEmail step tracker (``key``)."""

    def __init__(self, meta: sa.MetaData) -> None:
        self.table = t = meta.tables[schema.EMAIL_OUTBOX]
        # statements of the delivery hot path, built once
        self._insert = sa.insert(t)
        self._by_key = sa.select(t).where(t.c.key == sa.bindparam("k"))
        self._mark_sending = (
            sa.update(t)
            .where(t.c.key == sa.bindparam("k"), t.c.status == "pending")
            .values(status="sending", lease_until=sa.bindparam("lease"), attempts=t.c.attempts + 1)
        )
        this = t.c.key == sa.bindparam("k")
        self._mark_next = (
            sa.update(t)
            .where(
                sa.or_(
                    sa.and_(this, t.c.status == "pending"),
                    sa.and_(t.c.key == sa.bindparam("prev"), t.c.status == "sending"),
                )
            )
            .values(
                status=sa.case((this, "sending"), else_="accepted"),
                lease_until=sa.case((this, sa.bindparam("lease")), else_=t.c.lease_until),
                attempts=sa.case((this, t.c.attempts + 1), else_=t.c.attempts),
            )
            .returning(t.c.key)
        )

    # -- rows --------------------------------------------------------------------------------

    def row(self, conn: Connection, key: str) -> dict[str, Any] | None:
        found = conn.execute(self._by_key, {"k": key}).mappings().first()
        return None if found is None else dict(found)

    def by_message_id(self, conn: Connection, message_id: str | None) -> dict[str, Any] | None:
        t = self.table
        found = conn.execute(sa.select(t).where(t.c.message_id == message_id)).mappings().first()
        return None if found is None else dict(found)

    def rows(self, conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of ``keys`` (those that exist), by key."""
        t = self.table
        return {
            r["key"]: dict(r)
            for r in conn.execute(sa.select(t).where(t.c.key.in_(keys))).mappings()
        }

    def insert(self, conn: Connection, values: Mapping[str, Any]) -> None:
        # one statement object with the values as parameters: compiled once
        conn.execute(self._insert, dict(values))

    def insert_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows with the same columns, in one executemany statement (in their order)."""
        if rows:
            conn.execute(self._insert, [dict(r) for r in rows])

    def update(self, conn: Connection, key: str, values: Mapping[str, Any]) -> None:
        t = self.table
        conn.execute(sa.update(t).where(t.c.key == key).values(**values))

    def update_if(
        self, conn: Connection, key: str, statuses: Iterable[str], values: Mapping[str, Any]
    ) -> None:
        """Update the row only while its status is one of ``statuses``."""
        t = self.table
        conn.execute(
            sa.update(t).where(t.c.key == key, t.c.status.in_(list(statuses))).values(**values)
        )

    # -- delivery ----------------------------------------------------------------------------

    def stage(self, conn: Connection, key: str, lease_until: datetime, now: datetime) -> bool:
        """Pending again, leased to the caller (a dead worker's row, a retry now due, a send
        whose outcome was unknown); False if another worker took the row since it was read
        (marked it ``sending``, or staged it under a lease still running)."""
        t = self.table
        n = conn.execute(
            sa.update(t)
            .where(
                t.c.key == key,
                t.c.status.in_(("pending", "retry", "unknown")),
                sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now),
            )
            .values(status="pending", lease_until=lease_until)
        ).rowcount
        return bool(n == 1)

    def due_manual(
        self,
        conn: Connection,
        meta: sa.MetaData,
        now: datetime,
        limit: int,
        *,
        unknown: bool = True,
    ) -> list[str]:
        """Keys of reps' own emails (rows of manual SendAnEmail step trackers) to deliver
        again: ``pending`` whose lease ran out (the process died before the relay answered),
        ``retry`` now due and (``unknown``) those a crash left in doubt. The runtime's rows
        are resent by their step's wake-up; a manual step completed when it was sent and
        never wakes."""
        t, st = self.table, meta.tables["ActionCadenceStepTracker"]
        statuses = ("pending", "unknown") if unknown else ("pending",)
        due = sa.or_(
            sa.and_(
                t.c.status.in_(statuses),
                sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now),
            ),
            sa.and_(t.c.status == "retry", t.c.next_at <= now),
        )
        manual = sa.exists().where(st.c.Id == t.c.key, st.c.StepType == "SendAnEmail")
        rows = conn.execute(sa.select(t.c.key).where(due, manual).order_by(t.c.key).limit(limit))
        return [str(k) for k in rows.scalars()]

    def cancel(self, conn: Connection, key: str) -> None:
        self.update_if(conn, key, CANCELLABLE, {"status": "cancelled"})

    def cancel_tracker(self, conn: Connection, tracker_id: str) -> int:
        """Cancel every email of one tracker that has not reached the relay; returns how many."""
        t = self.table
        stmt = (
            sa.update(t)
            .where(t.c.tracker_id == tracker_id, t.c.status.in_(CANCELLABLE))
            .values(status="cancelled")
        )
        return int(conn.execute(stmt).rowcount)

    def mark_sending(self, conn: Connection, key: str, lease_until: datetime) -> bool:
        """``pending`` -> ``sending`` (one more attempt); False if the row was not pending (another
        worker took it): the guard makes sure only one worker reaches the final "."."""
        n = conn.execute(self._mark_sending, {"k": key, "lease": lease_until}).rowcount
        return bool(n == 1)

    def mark_next(
        self, conn: Connection, key: str, lease_until: datetime, accepted: Sequence[str]
    ) -> bool:
        """``mark_sending`` of ``key`` and ``mark_accepted`` of ``accepted`` (in a delivery,
        the one message before it) in one statement of one shape, compiled once: the
        per-message commit of a delivery; False if ``key`` was not pending (the acceptances
        are recorded all the same)."""
        earlier = [k for k in accepted if k != key]
        self.mark_accepted(conn, earlier[:-1])  # only after a failed message: more than one
        prev = earlier[-1] if earlier else None
        params = {"k": key, "lease": lease_until, "prev": prev}
        return key in conn.execute(self._mark_next, params).scalars().all()

    def mark_accepted(self, conn: Connection, keys: Sequence[str]) -> None:
        """``sending`` -> ``accepted``: the relay answered 250 (recorded with the next mark)."""
        if keys:
            t = self.table
            conn.execute(
                sa.update(t)
                .where(t.c.key == sa.bindparam("k"), t.c.status == "sending")
                .values(status="accepted"),
                [{"k": k} for k in keys],
            )

    def mark_sent(self, conn: Connection, keys: Sequence[str], now: datetime) -> set[str]:
        """``sending``/``accepted`` -> ``sent`` for every key; returns the keys it moved. A key
        it did not move was recorded by someone else first (a restarted worker's reconcile
        after this one's lease ran out): its send is not this caller's to record again."""
        t = self.table
        moved: set[str] = set()
        for i in range(0, len(keys), _MARK_CHUNK):
            moved.update(
                conn.execute(
                    sa.update(t)
                    .where(
                        t.c.key.in_(keys[i : i + _MARK_CHUNK]),
                        t.c.status.in_(("sending", "accepted")),
                    )
                    .values(status="sent", sent_at=now, lease_until=None)
                    .returning(t.c.key)
                ).scalars()
            )
        return moved

    def reconcile_sent(self, conn: Connection, key: str, now: datetime) -> bool:
        """A row left ``accepted`` by a dead worker: the relay said 250, so it is sent. False
        if it was not ``accepted`` any more (its worker was alive after all and recorded it
        while this transaction waited for the row: its send is recorded already)."""
        detail = "reconciled: the relay had accepted it"
        return self._move(conn, key, "accepted", status="sent", sent_at=now, detail=detail)

    def mark_unknown(self, conn: Connection, key: str) -> bool:
        """``sending`` (its worker dead) -> ``unknown``; False if the row was not ``sending``."""
        detail = "unknown: the worker died between the sending mark and the relay's reply"
        return self._move(conn, key, "sending", status="unknown", detail=detail)

    def _move(self, conn: Connection, key: str, was: str, **values: Any) -> bool:
        """Row ``key`` from status ``was`` to ``values`` (its lease ended); False if it was not
        ``was``."""
        t = self.table
        stmt = sa.update(t).where(t.c.key == key, t.c.status == was)
        return conn.execute(stmt.values(lease_until=None, **values)).rowcount == 1

    def abandoned(self, conn: Connection, now: datetime) -> list[tuple[str, str]]:
        """(key, status) of rows left ``sending``/``accepted`` whose lease ran out (or never
        had one): their worker died in the middle of a delivery."""
        t = self.table
        rows = conn.execute(
            sa.select(t.c.key, t.c.status).where(
                t.c.status.in_(("sending", "accepted")),
                sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now),
            )
        ).all()
        return [(str(k), str(s)) for k, s in rows]

    # -- daily caps --------------------------------------------------------------------------

    def admitted(self, conn: Connection, day: str, owner_id: str | None) -> int:
        """Sends admitted on ``day`` (by ``owner_id``, or org-wide for None)."""
        t = self.table
        cond = t.c.cap_day == day
        if owner_id is not None:
            cond = sa.and_(cond, t.c.owner_id == owner_id)
        return int(conn.execute(sa.select(sa.func.count()).select_from(t).where(cond)).scalar_one())

    def any_waiting(self, conn: Connection) -> bool:
        t = self.table
        found = conn.execute(sa.select(t.c.key).where(t.c.status == "waiting").limit(1)).first()
        return found is not None

    def waiting_ahead(
        self, conn: Connection, key: str, enrolled_at: datetime | None, owner_id: str | None
    ) -> int:
        """Sends other than ``key`` waiting for a cap, enrolled before ``enrolled_at`` (all
        of them for None), of ``owner_id`` (or anyone's for None)."""
        t = self.table
        waiting = sa.and_(t.c.status == "waiting", t.c.key != key)
        if enrolled_at is not None:
            waiting = sa.and_(waiting, t.c.enrolled_at < enrolled_at)
        if owner_id is not None:
            waiting = sa.and_(waiting, t.c.owner_id == owner_id)
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(t).where(waiting)).scalar_one()
        )

    # -- threading ---------------------------------------------------------------------------

    def thread(self, conn: Connection, tracker_id: str, key: str) -> list[tuple[str, str]]:
        """(Message-ID, MIME) of the tracker's emails other than ``key`` that reached the relay,
        oldest first."""
        t = self.table
        rows = conn.execute(
            sa.select(t.c.message_id, t.c.mime)
            .where(
                t.c.tracker_id == tracker_id,
                t.c.key != key,
                t.c.sent_at.is_not(None),
                t.c.message_id.is_not(None),
            )
            .order_by(t.c.sent_at, t.c.created_at)
        ).all()
        return [(str(r[0]), str(r[1] or "")) for r in rows]


class EventLog:
    """The engagement events (send, open, click, reply, bounces), each naming an outbox row."""

    def __init__(self, meta: sa.MetaData) -> None:
        self.table = meta.tables[schema.EMAIL_EVENTS]
        self._outbox = meta.tables[schema.EMAIL_OUTBOX]
        self._insert = sa.insert(self.table)

    def record(
        self, conn: Connection, key: str, kind: str, at: datetime, detail: str | None = None
    ) -> None:
        conn.execute(self._insert.values(key=key, kind=kind, at=at, detail=detail))

    def record_many(
        self, conn: Connection, kind: str, at: datetime, events: Sequence[tuple[str, str | None]]
    ) -> None:
        """(key, detail) events of one kind and time, one executemany."""
        conn.execute(
            self._insert, [{"key": k, "kind": kind, "at": at, "detail": d} for k, d in events]
        )

    def keys_of_kind(self, conn: Connection, kind: str) -> list[str]:
        """The outbox keys with an event of ``kind`` (e.g. every send whose outcome a crash
        made unknown), oldest first."""
        ev = self.table
        rows = conn.execute(sa.select(ev.c.key).where(ev.c.kind == kind).order_by(ev.c.id))
        return list(dict.fromkeys(str(k) for k in rows.scalars()))

    def seen(self, conn: Connection, key: str, kind: str, detail: str | None) -> bool:
        """Whether the same event (kind and detail) of ``key`` is already recorded."""
        ev = self.table
        found = conn.execute(
            sa.select(ev.c.id).where(ev.c.key == key, ev.c.kind == kind, ev.c.detail == detail)
        ).first()
        return found is not None

    def of_keys(self, conn: Connection, keys: Sequence[str]) -> list[tuple[str, str, datetime]]:
        """(key, kind, at) of the events of the outbox rows ``keys``, oldest first."""
        if not keys:
            return []
        ev = self.table
        rows = conn.execute(
            sa.select(ev.c.key, ev.c.kind, ev.c.at)
            .where(ev.c.key.in_(list(keys)))
            .order_by(ev.c.at, ev.c.id)
        ).all()
        return [(str(key), str(kind), at) for key, kind, at in rows]

    def of_step(self, conn: Connection, step_id: str) -> list[tuple[str, str | None, str]]:
        """Distinct (kind, detail, key) of the events of the emails of one ActionCadenceStep."""
        ev, ob = self.table, self._outbox
        of_step = sa.select(ob.c.key).where(ob.c.step_id == step_id).scalar_subquery()
        rows = conn.execute(
            sa.select(ev.c.kind, ev.c.detail, ev.c.key).where(ev.c.key.in_(of_step)).distinct()
        ).all()
        return [(str(kind), detail, str(key)) for kind, detail, key in rows]


@lru_cache(maxsize=8)
def outbox(meta: sa.MetaData) -> Outbox:
    """The (cached) outbox of a schema's MetaData."""
    return Outbox(meta)


@lru_cache(maxsize=8)
def event_log(meta: sa.MetaData) -> EventLog:
    """The (cached) engagement event log of a schema's MetaData."""
    return EventLog(meta)


# -- the step tracker an outbox row belongs to -------------------------------------------------


def enrolment(
    conn: Connection, meta: sa.MetaData, key: str
) -> tuple[str | None, str | None, datetime | None]:
    """(tracker Id, step Id, tracker CreatedDate) of the step tracker ``key``."""
    st = meta.tables["ActionCadenceStepTracker"]
    tr = meta.tables["ActionCadenceTracker"]
    row = conn.execute(
        sa.select(st.c.ActionCadenceTrackerId, st.c.ActionCadenceStepId, tr.c.CreatedDate)
        .select_from(st.join(tr, tr.c.Id == st.c.ActionCadenceTrackerId))
        .where(st.c.Id == ids.parse(key))
    ).first()
    if row is None:
        return None, None, None
    return row[0], row[1], row[2]


def enrolments(
    conn: Connection, meta: sa.MetaData, keys: Sequence[str]
) -> dict[str, tuple[str | None, str | None, datetime | None, str | None]]:
    """``enrolment`` and ``cadence_of`` of many step trackers in one statement per 500:
    key -> (tracker Id, step Id, tracker CreatedDate, ActionCadence Id); keys not found (or
    without their tracker) are left out."""
    st = meta.tables["ActionCadenceStepTracker"]
    tr = meta.tables["ActionCadenceTracker"]
    wanted = sorted({ids.parse(k) for k in keys})
    out: dict[str, tuple[str | None, str | None, datetime | None, str | None]] = {}
    for i in range(0, len(wanted), 500):
        rows = conn.execute(
            sa.select(
                st.c.Id,
                st.c.ActionCadenceTrackerId,
                st.c.ActionCadenceStepId,
                tr.c.CreatedDate,
                st.c.ActionCadenceId,
            )
            .select_from(st.join(tr, tr.c.Id == st.c.ActionCadenceTrackerId))
            .where(st.c.Id.in_(wanted[i : i + 500]))
        )
        for key, tracker, step, created, cadence in rows:
            out[str(key)] = (tracker, step, created, None if cadence is None else str(cadence))
    return out


def cadence_of(conn: Connection, meta: sa.MetaData, key: str) -> str | None:
    """The ActionCadence Id of the step tracker ``key``."""
    st = meta.tables["ActionCadenceStepTracker"]
    found = conn.execute(sa.select(st.c.ActionCadenceId).where(st.c.Id == key)).scalar()
    return None if found is None else str(found)


# -- settings ----------------------------------------------------------------------------------

# The settings table on its own MetaData (same columns as schema's): settings are read and
# written with nothing but a connection, no registry at hand.
_SETTINGS = sa.Table(
    schema.EMAIL_SETTINGS,
    sa.MetaData(),
    sa.Column("scope", sa.String(18)),
    sa.Column("name", sa.String(40)),
    sa.Column("value", sa.Text()),
)


def read_settings(conn: Connection) -> dict[str, dict[str, int]]:
    """Every stored setting: scope -> name -> value."""
    t = _SETTINGS
    rows: dict[str, dict[str, int]] = {}
    for scope, name, value in conn.execute(sa.select(t.c.scope, t.c.name, t.c.value)):
        rows.setdefault(str(scope), {})[str(name)] = int(value)
    return rows


def write_setting(conn: Connection, scope: str, name: str, value: int) -> None:
    """Replace the (scope, name) setting."""
    t = _SETTINGS
    conn.execute(sa.delete(t).where(t.c.scope == scope, t.c.name == name))
    conn.execute(sa.insert(t).values(scope=scope, name=name, value=str(value)))


def contact_accounts(
    conn: Connection, meta: sa.MetaData, contact_ids: Iterable[str]
) -> dict[str, Any]:
    """AccountId of each Contact (deleted ones too), in one statement: what the Task and the
    EmailMessage of a sent email relate to. Ids that are not found are left out."""
    wanted = sorted(set(contact_ids))
    if not wanted:
        return {}
    contacts = meta.tables["Contact"]
    rows = conn.execute(
        sa.select(contacts.c.Id, contacts.c.AccountId).where(contacts.c.Id.in_(wanted))
    )
    return {str(i): a for i, a in rows}


def time_zones(conn: Connection, meta: sa.MetaData, user_ids: Iterable[str]) -> dict[str, Any]:
    """TimeZoneSidKey of each live User, in one statement (missing users are left out)."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return {}
    users = meta.tables["User"]
    rows = conn.execute(
        sa.select(users.c.Id, users.c.TimeZoneSidKey).where(
            users.c.Id.in_(wanted), users.c.IsDeleted == sa.false()
        )
    )
    return {str(i): z for i, z in rows}
