"""Credentials, sessions and connected apps (the OAuth and SOAP login back end).

Sessions are timed on their own clock (the wall clock, passed in by system.build), not the
org's: moving a manual org clock days ahead must not log anyone out. Like Salesforce's session
timeout, the default timeout is one of inactivity: each use extends the expiry (written at most
once per EXTEND_EVERY). A session opened with an explicit ttl keeps its fixed expiry.

Passwords and consumer secrets are stored as scrypt hashes (salted, memory-hard); session
tokens as SHA-256 digests, so a copy of the database does not hand out live sessions.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography import x509

from opencadence import errors, ids
from opencadence.clock import Clock, SystemClock
from opencadence.storage import authorization, fastread, records, schema, session_cache, values

#: Salesforce's default session timeout.
DEFAULT_SESSION_TTL = timedelta(hours=2)
#: An inactivity-timed session's expiry is rewritten when a use would move it this much or more.
EXTEND_EVERY = timedelta(minutes=1)
#: scrypt's cost for new hashes, as log2 of its N (2**14: about 50 ms and 16 MiB a hash)
SCRYPT_COST = 14
#: lowers (or raises) it: a test suite that makes thousands of users and logins sets a small
#: cost; each hash records its own, so every hash verifies whatever the setting is
COST_VARIABLE = "OPENCADENCE_PASSWORD_HASH_COST"
#: Salesforce's defaults for "Maximum invalid login attempts" and "Lockout effective period".
MAX_LOGIN_ATTEMPTS = 10
LOCKOUT_PERIOD = timedelta(minutes=15)
#: How long an authorization code of the web server flow may be exchanged (Salesforce: 15 min).
CODE_TTL = timedelta(minutes=15)
#: What a connected app may grant unless created with other scopes.
DEFAULT_APP_SCOPES = "api refresh_token offline_access"


def hash_cost() -> int:
    """The cost of new hashes: ``$OPENCADENCE_PASSWORD_HASH_COST`` (1 to 20), else
    SCRYPT_COST. Read at each hash, not at import: a test suite sets it after importing."""
    raw = os.environ.get(COST_VARIABLE, "").strip()
    if not raw:
        return SCRYPT_COST
    if not raw.isdigit() or not 1 <= int(raw) <= 20:
        raise ValueError(f"{COST_VARIABLE} must be a whole number from 1 to 20, not {raw!r}")
    return int(raw)


def hash_secret(secret: str) -> str:
    """``scrypt-<cost>$<salt>$<digest>`` (hex)."""
    salt, cost = secrets.token_bytes(16), hash_cost()
    return f"scrypt-{cost}${salt.hex()}${_scrypt(secret, salt, cost).hex()}"


def check_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` hashes (``hash_secret``'s form, or the older
    ``scrypt$<salt>$<digest>``, made at the default cost)."""
    try:
        scheme, salt, digest = stored.split("$")
        cost = SCRYPT_COST if scheme == "scrypt" else int(scheme.removeprefix("scrypt-"))
        actual = _scrypt(secret, bytes.fromhex(salt), cost)
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def _scrypt(secret: str, salt: bytes, cost: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=2**cost, r=8, p=1, dklen=32)


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches, checked when the username is unknown or inactive so that
    a failed login costs the same scrypt run either way (timing reveals no usernames)."""
    return hash_secret(secrets.token_hex(16))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def profile_of(admin: bool) -> str:
    """The profile a user has: System Administrator for an administrator, else Standard User."""
    return authorization.ADMIN_PROFILE_ID if admin else authorization.STANDARD_PROFILE_ID


def username_of(record: Mapping[str, Any]) -> tuple[bool, Any]:
    """(whether ``record`` sets Username, its value); field names are case-insensitive."""
    for key, value in record.items():
        if key.lower() == "username":
            return True, value
    return False, None


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    is_admin: bool
    time_zone: str
    expires_at: datetime
    #: the inactivity timeout each use extends expires_at by; None: a fixed expiry
    idle: timedelta | None = None
    #: names of the permission sets assigned to the user (read with the session)
    permission_sets: frozenset[str] = frozenset()

    @property
    def principal(self) -> authorization.Principal:
        """What the write checks of ``records.Tx`` need to know about this user."""
        return authorization.Principal(self.user_id, self.is_admin, self.permission_sets)

    @property
    def can_manage_cadences(self) -> bool:
        return self.principal.cadence_creator


class Accounts:
    """Users' credentials and sessions on top of the record store.

    ``clock`` times sessions (None: the wall clock); it is not the org's clock, which a
    manual-clock server moves days at a time."""

    def __init__(
        self,
        store: records.Store,
        session_ttl: timedelta = DEFAULT_SESSION_TTL,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.ttl = session_ttl
        #: the session and permission-set reads, prepared for storage.fastread on first use
        self._prepared: tuple[fastread.Prepared, fastread.Prepared] | None = None
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.meta = store.meta
        #: invalid attempts in a row that lock a user out, and for how long (0: never)
        self.max_attempts = MAX_LOGIN_ATTEMPTS
        self.lockout = LOCKOUT_PERIOD
        # Sessions are remembered between requests only while the auth generation stays the
        # one they were read under (storage/session_cache.py): a deactivation or a revocation
        # by another process (the CLI) still ends them at the very next request.
        self._generation = session_cache.Generation(store.engine, store.meta)
        self._remembered = session_cache.Remembered()

    # --- users ------------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        password: str,
        *,
        admin: bool = False,
        time_zone: str = "GMT",
        email: str | None = None,
        last_name: str | None = None,
        first_name: str | None = None,
    ) -> tuple[str, str]:
        """A User record plus credentials; returns (user id, security token)."""
        token = secrets.token_urlsafe(18)[:24]
        with records.duplicates_refused(), self.store.transaction() as tx:
            self.check_username(tx.conn, username)
            user_id = tx.insert(
                "User",
                {
                    "Username": username,
                    "LastName": last_name or username.split("@")[0],
                    "FirstName": first_name,
                    "Email": email or username,
                    "Alias": username.split("@")[0][:8],
                    "IsActive": True,
                    "TimeZoneSidKey": time_zone,
                    "LocaleSidKey": "en_US",
                    "LanguageLocaleKey": "en_US",
                    "EmailEncodingKey": "UTF-8",
                    "ProfileId": profile_of(admin),
                },
                system=True,
            )
            tx.conn.execute(
                self.meta.tables[schema.CREDENTIALS]
                .insert()
                .values(
                    user_id=user_id,
                    password_hash=hash_secret(password),
                    security_token=token,
                    is_admin=admin,
                )
            )
        return user_id, token

    def check_username(
        self, conn: records.Connection, username: Any, except_id: str | None = None
    ) -> None:
        """DUPLICATE_USERNAME when another user (deleted or not) has ``username``, compared
        case-insensitively as Salesforce does; run in the writing transaction."""
        if not isinstance(username, str) or not username:
            return  # a missing or mistyped value is the write's own error to report
        users = self.meta.tables["User"]
        query = sa.select(users.c.Id).where(
            sa.func.lower(users.c.Username) == sa.func.lower(username)
        )
        if except_id is not None:
            query = query.where(users.c.Id != except_id)
        if conn.execute(query.limit(1)).first() is not None:
            raise errors.DuplicateUsername()

    def find_user(self, username: str) -> dict[str, Any] | None:
        users = self.meta.tables["User"]
        with self.store.reading() as conn:
            row = (
                conn.execute(
                    # one match at most (a unique index on lower(Username)); ordered anyway,
                    # so the answer never depends on the database's choice
                    sa.select(users)
                    .where(
                        sa.func.lower(users.c.Username) == sa.func.lower(username),
                        users.c.IsDeleted == sa.false(),
                    )
                    .order_by(users.c.CreatedDate, users.c.Id)
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def set_admin(self, user_id: str, admin: bool) -> None:
        creds = self.meta.tables[schema.CREDENTIALS]
        with self.store.transaction() as tx:
            tx.conn.execute(creds.update().where(creds.c.user_id == user_id).values(is_admin=admin))
            tx.update("User", user_id, {"ProfileId": profile_of(admin)}, system=True)
            session_cache.bump(tx.conn, self.meta)  # is_admin is a session's

    def list_users(self) -> list[dict[str, Any]]:
        users, creds = self.meta.tables["User"], self.meta.tables[schema.CREDENTIALS]
        with self.store.reading() as conn:
            rows = (
                conn.execute(
                    sa.select(
                        users.c.Id,
                        users.c.Username,
                        users.c.IsActive,
                        users.c.TimeZoneSidKey,
                        creds.c.is_admin,
                    )
                    .select_from(users.join(creds, creds.c.user_id == users.c.Id))
                    .order_by(users.c.Username)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def set_active(self, username: str, active: bool) -> None:
        user = self.find_user(username)
        if user is None:
            raise errors.NotFound(f"no user {username}")
        with self.store.transaction() as tx:
            tx.update("User", user["Id"], {"IsActive": active}, system=True)
            self.end_sessions_if_inactive(tx.conn, user["Id"])

    def end_sessions_if_inactive(self, conn: records.Connection, user_id: str) -> None:
        """Deactivation ends the user's sessions at once, for good: run in the transaction
        that wrote User.IsActive (the CLI's and the API's), so reactivating the user does not
        bring them back."""
        users, sessions = self.meta.tables["User"], self.meta.tables[schema.SESSIONS]
        active = conn.execute(sa.select(users.c.IsActive).where(users.c.Id == user_id)).scalar()
        if not active:
            conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
            session_cache.bump(conn, self.meta)

    # --- login ------------------------------------------------------------------------------

    def authenticate(self, username: str, password: str, *, token_suffix: bool = False) -> str:
        """The user id for valid credentials (password may end with the security token).

        Every failure is the same LoginFailed, after one scrypt run whatever failed (unknown
        user, inactive, locked out, wrong password). ``max_attempts`` wrong passwords in a
        row lock the user out for ``lockout``, as Salesforce does; during it even the right
        password fails; a successful login clears the count."""
        user = self.find_user(username)
        cred = self._credentials(user["Id"]) if user else None
        if user is None or cred is None or not user["IsActive"]:
            check_secret(password, _dummy_hash())
            raise errors.LoginFailed("authentication failure")
        candidates = [password]
        if token_suffix and password.endswith(cred["security_token"]):
            candidates.insert(0, password[: -len(cred["security_token"])])
        matched = any(check_secret(p, cred["password_hash"]) for p in candidates)
        now = values.to_db_datetime(self.clock.now())
        if cred["locked_until"] is not None and cred["locked_until"] > now:
            raise errors.LoginFailed("authentication failure")
        self._count_attempt(str(user["Id"]), cred, matched, now)
        if not matched:
            raise errors.LoginFailed("authentication failure")
        return str(user["Id"])

    def _count_attempt(
        self, user_id: str, cred: Mapping[str, Any], matched: bool, now: datetime
    ) -> None:
        """Record a login attempt: a success clears the count, a failure adds one and locks
        the user out at ``max_attempts``. Writes only when something changes."""
        failed = cred["failed_logins"] or 0
        if matched and not failed and cred["locked_until"] is None:
            return
        creds = self.meta.tables[schema.CREDENTIALS]
        if matched:
            change: dict[str, Any] = {"failed_logins": None, "locked_until": None}
        elif self.max_attempts and failed + 1 >= self.max_attempts:
            change = {"failed_logins": None, "locked_until": now + self.lockout}
        else:
            change = {"failed_logins": creds.c.failed_logins + 1 if failed else 1}
        with self.store.transaction() as tx:
            tx.conn.execute(creds.update().where(creds.c.user_id == user_id).values(**change))

    def unlock(self, username: str) -> None:
        """End a lockout and clear the invalid attempts (an administrator's "Unlock")."""
        user = self.find_user(username)
        if user is None:
            raise errors.NotFound(f"no user {username}")
        creds = self.meta.tables[schema.CREDENTIALS]
        with self.store.transaction() as tx:
            tx.conn.execute(
                creds.update()
                .where(creds.c.user_id == user["Id"])
                .values(failed_logins=None, locked_until=None)
            )

    def _credentials(self, user_id: str) -> dict[str, Any] | None:
        creds = self.meta.tables[schema.CREDENTIALS]
        with self.store.reading() as conn:
            row = (
                conn.execute(sa.select(creds).where(creds.c.user_id == user_id)).mappings().first()
            )
        return dict(row) if row else None

    def open_session(
        self,
        user_id: str,
        client: str = "",
        ttl: timedelta | None = None,
        refresh_token: str | None = None,
    ) -> str:
        """A new session token for ``user_id`` (Salesforce style: org id ! random).

        Without ``ttl`` it expires after the accounts' timeout of inactivity; with one, ``ttl``
        after now however much it is used."""
        token = f"{ids.make_id('00D', 1)[:15]}!{secrets.token_urlsafe(48)}"
        now = values.to_db_datetime(self.clock.now())
        with self.store.transaction(user_id) as tx:
            sessions = self.meta.tables[schema.SESSIONS]
            tx.conn.execute(
                sessions.insert().values(
                    token_hash=_token_hash(token),
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + (ttl or self.ttl),
                    client=client[:255],
                    idle_seconds=None if ttl else int(self.ttl.total_seconds()),
                    refresh_hash=_token_hash(refresh_token) if refresh_token else None,
                )
            )
            tx.conn.execute(sessions.delete().where(sessions.c.expires_at < now))
        return token

    def session(self, token: str) -> Session:
        """The live session of ``token``, or INVALID_SESSION_ID.

        Remembered from an earlier request while no process has changed anything a session
        depends on since (storage/session_cache.py), else read from the database."""
        key = _token_hash(token)
        now = values.to_db_datetime(self.clock.now())
        if self.store.in_transaction():  # read through the open transaction, as ever
            return self._checked_session(key, now, self._load_session(key, now))
        generation = self._generation.read()  # before the session is read, never after
        found = self._remembered.get(key, generation)
        if found is None or found.expires_at <= now:  # past it: maybe extended elsewhere
            try:
                found = self._load_session(key, now)
            except errors.InvalidSession:
                self._remembered.drop(key)
                raise
        found = self._checked_session(key, now, found)
        self._remembered.put(key, generation, found)
        return found

    def _checked_session(self, key: str, now: datetime, found: Session) -> Session:
        """``found``, its inactivity timeout extended when due."""
        if found.idle is not None and now + found.idle - found.expires_at >= EXTEND_EVERY:
            found = self._extend(key, found, now + found.idle)
        return found

    def forget_sessions(self) -> None:
        """Forget every remembered session (the database was put back to earlier rows)."""
        self._remembered.clear()

    def _extend(self, key: str, found: Session, expires_at: datetime) -> Session:
        """``found`` used now: its inactivity timeout starts again (never shortened)."""
        sessions = self.meta.tables[schema.SESSIONS]
        with self.store.transaction() as tx:
            tx.conn.execute(
                sessions.update()
                .where(sessions.c.token_hash == key, sessions.c.expires_at < expires_at)
                .values(expires_at=expires_at)
            )
        return dataclasses.replace(found, expires_at=expires_at)

    def _session_select(self) -> sa.Select[Any]:
        """The session of token hash ``:key`` with what a request needs of its user."""
        sessions, creds, users = (
            self.meta.tables[n] for n in (schema.SESSIONS, schema.CREDENTIALS, "User")
        )
        return (
            sa.select(
                sessions.c.user_id,
                sessions.c.expires_at,
                sessions.c.idle_seconds,
                creds.c.is_admin,
                users.c.TimeZoneSidKey,
                users.c.IsActive,
            )
            .select_from(
                sessions.join(users, users.c.Id == sessions.c.user_id).outerjoin(
                    creds, creds.c.user_id == sessions.c.user_id
                )
            )
            .where(sessions.c.token_hash == sa.bindparam("key", type_=sa.String()))
        )

    def _sets_select(self) -> sa.Select[Any]:
        """The names of the permission sets assigned to user ``:user``."""
        assigned, sets = (
            self.meta.tables["PermissionSetAssignment"],
            self.meta.tables["PermissionSet"],
        )
        return (
            sa.select(sets.c.Name)
            .select_from(assigned.join(sets, sets.c.Id == assigned.c.PermissionSetId))
            .where(
                assigned.c.AssigneeId == sa.bindparam("user", type_=sa.String()),
                assigned.c.IsDeleted == sa.false(),
            )
        )

    def _load_session(self, key: str, now: datetime) -> Session:
        """Read when not remembered (``session``): both statements prepared once and run on
        the driver (storage.fastread) where it can, else through SQLAlchemy."""
        engine = self.store.engine
        if fastread.supported(engine) and not self.store.in_transaction():
            if self._prepared is None:
                self._prepared = (
                    fastread.prepare(engine, self._session_select(), ("key",)),
                    fastread.prepare(engine, self._sets_select(), ("user",)),
                )
            session_stmt, sets_stmt = self._prepared

            def read(light: fastread.Light) -> tuple[Any, list[Any]]:
                rows = light.rows(session_stmt, {"key": key})
                found = self._live(rows[0] if rows else None, now)
                return found, light.rows(sets_stmt, {"user": found[0]})

            with records.locks_refused():
                row, names = fastread.read(engine, read)
        else:
            with self.store.reading() as conn:
                found = conn.execute(self._session_select(), {"key": key}).first()
                row = self._live(tuple(found) if found is not None else None, now)
                names = list(conn.execute(self._sets_select(), {"user": row[0]}).all())
        user_id, expires_at, idle, is_admin, time_zone, _active = row
        return Session(
            user_id,
            bool(is_admin),
            time_zone or "GMT",
            expires_at,
            None if idle is None else timedelta(seconds=idle),
            frozenset(str(n[0]) for n in names),
        )

    @staticmethod
    def _live(row: Any, now: datetime) -> Any:
        if row is None or row[1] <= now or not row[5]:
            raise errors.InvalidSession("Session expired or invalid")
        return row

    # --- permissions and managers -----------------------------------------------------------

    def permission_set_id(self, name: str) -> str:
        """The Id of the permission set named ``name`` (its Name or Label, any case)."""
        sets = self.meta.tables["PermissionSet"]
        wanted = name.strip().lower()
        with self.store.reading() as conn:
            rows = conn.execute(sa.select(sets.c.Id, sets.c.Name, sets.c.Label)).all()
        for set_id, set_name, label in rows:
            if wanted in (str(set_name).lower(), str(label).lower()):
                return str(set_id)
        known = ", ".join(sorted(str(r[1]) for r in rows))
        raise errors.NotFound(f"no permission set {name} (known: {known})")

    def grant(self, user_id: str, permission: str) -> bool:
        """Assign a permission set (by Name or Label); False if the user already had it."""
        set_id = self.permission_set_id(permission)
        assigned = self.meta.tables["PermissionSetAssignment"]
        with self.store.transaction() as tx:
            have = tx.conn.execute(
                sa.select(assigned.c.Id).where(
                    assigned.c.AssigneeId == user_id,
                    assigned.c.PermissionSetId == set_id,
                    assigned.c.IsDeleted == sa.false(),
                )
            ).first()
            if have is None:
                tx.insert(
                    "PermissionSetAssignment",
                    {"AssigneeId": user_id, "PermissionSetId": set_id},
                    system=True,
                )
        return have is None

    def revoke_permission(self, user_id: str, permission: str) -> bool:
        """Remove a permission set assignment; False if the user did not have it."""
        set_id = self.permission_set_id(permission)
        assigned = self.meta.tables["PermissionSetAssignment"]
        with self.store.transaction() as tx:
            found = tx.conn.execute(
                sa.select(assigned.c.Id).where(
                    assigned.c.AssigneeId == user_id,
                    assigned.c.PermissionSetId == set_id,
                    assigned.c.IsDeleted == sa.false(),
                )
            ).scalars()
            gone = [str(i) for i in found]
            for assignment_id in gone:
                tx.delete("PermissionSetAssignment", assignment_id, system=True)
        return bool(gone)

    def permissions_of(self, user_id: str) -> frozenset[str]:
        with self.store.reading() as conn:
            names = conn.execute(self._sets_select(), {"user": user_id}).scalars()
            return frozenset(str(n) for n in names)

    def set_manager(self, user_id: str, manager_username: str | None) -> None:
        """Set (or clear, with None or "") the user's ManagerId; a manager sees and acts on
        the records of everyone below them in the chain (storage/visibility.py)."""
        manager_id = None
        if manager_username:
            manager = self.find_user(manager_username)
            if manager is None:
                raise errors.NotFound(f"no user {manager_username}")
            manager_id = manager["Id"]
            if manager_id == user_id:
                raise errors.InvalidOperation("a user cannot be their own manager")
        with self.store.transaction() as tx:
            tx.update("User", user_id, {"ManagerId": manager_id}, system=True)

    def revoke(self, token: str) -> bool:
        """End an access token, or a refresh token and every session issued from it (as
        Salesforce's revoke does); False when ``token`` is neither."""
        sessions, refresh = (self.meta.tables[n] for n in (schema.SESSIONS, schema.REFRESH_TOKENS))
        key = _token_hash(token)
        with self.store.transaction() as tx:
            ended = tx.conn.execute(sessions.delete().where(sessions.c.token_hash == key)).rowcount
            gone = tx.conn.execute(refresh.delete().where(refresh.c.token_hash == key)).rowcount
            if gone:
                tx.conn.execute(sessions.delete().where(sessions.c.refresh_hash == key))
            if ended or gone:
                session_cache.bump(tx.conn, self.meta)
        return bool(ended or gone)

    # --- org secrets ------------------------------------------------------------------------

    def secret(self, name: str) -> bytes:
        """A random per-org secret (e.g. signing tracking links), made on first use."""
        state = self.meta.tables[schema.SCHEMA_STATE]
        key = f"secret:{name}"
        with self.store.reading() as conn:
            found = conn.execute(sa.select(state.c.value).where(state.c.key == key)).scalar()
        if found is None:
            with self.store.transaction() as tx:
                found = tx.conn.execute(sa.select(state.c.value).where(state.c.key == key)).scalar()
                if found is None:
                    found = secrets.token_hex(32)
                    tx.conn.execute(state.insert().values(key=key, value=found))
        return bytes.fromhex(str(found))

    # --- connected apps ---------------------------------------------------------------------

    def create_app(
        self,
        name: str,
        run_as: str,
        *,
        callback_url: str | None = None,
        certificate: str | None = None,
        scopes: str | None = None,
    ) -> tuple[str, str]:
        """A connected app (client-credentials flow runs as ``run_as``); returns key, secret.

        ``callback_url``: where the web server flow may redirect, one URL per line (redirect_uri
        must equal one);
        ``certificate``: the PEM X.509 certificate JWT bearer assertions are verified with."""
        user = self.find_user(run_as)
        if user is None:
            raise errors.NotFound(f"no user {run_as}")
        if certificate is not None:
            certificate_key(certificate)  # refuse what is not a certificate now, not at login
        key, secret = "3MVG" + secrets.token_urlsafe(30), secrets.token_hex(32)
        with self.store.transaction() as tx:
            tx.conn.execute(
                self.meta.tables[schema.APPS]
                .insert()
                .values(
                    consumer_key=key,
                    secret_hash=hash_secret(secret),
                    name=name,
                    run_as_user_id=user["Id"],
                    callback_url=callback_url,
                    certificate=certificate,
                    scopes=scopes or DEFAULT_APP_SCOPES,
                )
            )
        return key, secret

    def app_user(self, key: str, secret: str) -> str:
        apps = self.meta.tables[schema.APPS]
        with self.store.reading() as conn:
            row = conn.execute(sa.select(apps).where(apps.c.consumer_key == key)).mappings().first()
        if row is None:  # Salesforce tells an unknown client id from a wrong secret
            raise errors.LoginFailed("client identifier invalid", oauth_error="invalid_client_id")
        if not check_secret(secret, row["secret_hash"]):
            raise errors.LoginFailed("invalid client credentials", oauth_error="invalid_client")
        return str(row["run_as_user_id"])

    def check_app(self, key: str, secret: str) -> None:
        self.app_user(key, secret)

    def app(self, key: str) -> dict[str, Any]:
        """The connected app of consumer key ``key``, or LoginFailed invalid_client_id."""
        apps = self.meta.tables[schema.APPS]
        with self.store.reading() as conn:
            row = conn.execute(sa.select(apps).where(apps.c.consumer_key == key)).mappings().first()
        if row is None:
            raise errors.LoginFailed("client identifier invalid", oauth_error="invalid_client_id")
        return dict(row)

    # --- refresh tokens and authorization codes ---------------------------------------------

    def issue_refresh_token(self, user_id: str, key: str, scope: str) -> str:
        """A new refresh token of app ``key`` for ``user_id``; only its digest is stored."""
        token = f"5Aep{secrets.token_urlsafe(60)}"
        now = values.to_db_datetime(self.clock.now())
        with self.store.transaction(user_id) as tx:
            tx.conn.execute(
                self.meta.tables[schema.REFRESH_TOKENS]
                .insert()
                .values(
                    token_hash=_token_hash(token),
                    user_id=user_id,
                    consumer_key=key,
                    scope=scope,
                    created_at=now,
                )
            )
        return token

    def refresh_grant(self, token: str, key: str) -> tuple[str, str]:
        """(user id, scope) of a live refresh token issued to app ``key``; an unknown or
        revoked token, one of another app, or an inactive user: invalid_grant."""
        refresh, users = self.meta.tables[schema.REFRESH_TOKENS], self.meta.tables["User"]
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(refresh.c.user_id, refresh.c.consumer_key, refresh.c.scope)
                .select_from(refresh.join(users, users.c.Id == refresh.c.user_id))
                .where(refresh.c.token_hash == _token_hash(token), users.c.IsActive == sa.true())
            ).first()
        if row is None or not hmac.compare_digest(str(row.consumer_key), key):
            raise errors.LoginFailed("expired access/refresh token", oauth_error="invalid_grant")
        return str(row.user_id), str(row.scope)

    def issue_code(
        self, user_id: str, key: str, redirect_uri: str, challenge: str | None, scope: str
    ) -> str:
        """A single-use authorization code, valid for CODE_TTL."""
        code = f"aPr{secrets.token_urlsafe(48)}"
        now = values.to_db_datetime(self.clock.now())
        codes = self.meta.tables[schema.AUTH_CODES]
        with self.store.transaction(user_id) as tx:
            tx.conn.execute(codes.delete().where(codes.c.expires_at < now))
            tx.conn.execute(
                codes.insert().values(
                    code_hash=_token_hash(code),
                    user_id=user_id,
                    consumer_key=key,
                    redirect_uri=redirect_uri,
                    code_challenge=challenge,
                    scope=scope,
                    expires_at=now + CODE_TTL,
                )
            )
        return code

    def redeem_code(self, code: str, key: str) -> dict[str, Any]:
        """The grant of ``code`` (user_id, redirect_uri, code_challenge, scope), deleted in
        the same transaction so that a code is used once, whatever the outcome of the
        exchange: a failed attempt burns it too (an attacker gets one guess at the verifier)."""
        codes = self.meta.tables[schema.AUTH_CODES]
        now = values.to_db_datetime(self.clock.now())
        with self.store.transaction() as tx:
            where = codes.c.code_hash == _token_hash(code)
            row = tx.conn.execute(sa.select(codes).where(where)).mappings().first()
            if row is not None:
                tx.conn.execute(codes.delete().where(where))
        if row is None or not hmac.compare_digest(str(row["consumer_key"]), key):
            raise errors.LoginFailed("invalid authorization code", oauth_error="invalid_grant")
        if row["expires_at"] <= now:
            raise errors.LoginFailed("expired authorization code", oauth_error="invalid_grant")
        return dict(row)


def certificate_key(pem: str) -> Any:
    """The public key of a PEM X.509 certificate; InvalidOperation if it is not one."""
    try:
        return x509.load_pem_x509_certificate(pem.encode()).public_key()
    except ValueError as exc:
        raise errors.InvalidOperation(f"not a PEM X.509 certificate: {exc}") from None
