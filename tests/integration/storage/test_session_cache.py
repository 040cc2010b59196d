"""Remembered sessions (storage/session_cache.py): a request whose session was read before
reads one row, not the session; every way a session ends or changes still applies to the very
next request, in this process and in another one (a second engine on the same database: its
own pool, its own memory, as `opencadence users ...` or a second `serve --processes` child)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import errors, system
from opencadence.clock import ManualClock
from opencadence.storage import accounts as accounts_module
from opencadence.storage import authorization, database, schema, session_cache

Accounts = accounts_module.Accounts


@pytest.fixture
def session_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def build(db_url: str, session_clock: ManualClock) -> Iterator[Callable[[], system.System]]:
    """Builds a process's System on the test's database (each its own engine)."""
    built: list[system.System] = []
    engines: list[sa.Engine] = []

    def make() -> system.System:
        engine = database.create_engine(db_url)
        engines.append(engine)
        settings = system.Settings(clock=ManualClock(), session_clock=session_clock, upgrade=False)
        oc = system.build(settings, engine=engine)
        built.append(oc)
        return oc

    yield make
    for oc in built:
        oc.close()
    for engine in engines:
        engine.dispose()


def counting_reads(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sessions ``accounts`` reads from the database (not remembered), by token digest."""
    reads: list[str] = []
    real = accounts._load_session

    def load(key: str, now: Any) -> accounts_module.Session:
        reads.append(key)
        return real(key, now)

    monkeypatch.setattr(accounts, "_load_session", load)
    return reads


def rep(oc: system.System) -> tuple[str, str]:
    user_id, _ = oc.org.accounts.create_user("rep@oc.test", "pw", time_zone="Europe/Paris")
    return user_id, oc.org.accounts.open_session(user_id)


def refused(accounts: Accounts, token: str) -> bool:
    try:
        accounts.session(token)
    except errors.InvalidSession:
        return True
    return False


def test_a_used_session_is_remembered(
    build: Callable[[], system.System], monkeypatch: pytest.MonkeyPatch
) -> None:
    oc = build()
    _user, token = rep(oc)
    reads = counting_reads(oc.org.accounts, monkeypatch)
    first = oc.org.accounts.session(token)
    assert oc.org.accounts.session(token) == first
    assert oc.org.accounts.session(token) == first
    assert len(reads) == 1  # read once, then remembered


def test_an_unrelated_write_keeps_sessions_remembered(
    build: Callable[[], system.System], monkeypatch: pytest.MonkeyPatch
) -> None:
    oc = build()
    _user, token = rep(oc)
    reads = counting_reads(oc.org.accounts, monkeypatch)
    oc.org.accounts.session(token)
    with oc.store.transaction() as tx:
        tx.insert("Contact", {"LastName": "Not a user"})
    oc.org.accounts.session(token)
    assert len(reads) == 1


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_a_revoked_session_ends_at_once(build: Callable[[], system.System], where: str) -> None:
    server = build()
    _user, token = rep(server)
    assert not refused(server.org.accounts, token)  # remembered now
    other = server if where == "here" else build()
    assert other.org.accounts.revoke(token)  # OAuth revoke, SOAP logout
    assert refused(server.org.accounts, token)


def test_revoking_a_refresh_token_ends_its_sessions_at_once(
    build: Callable[[], system.System],
) -> None:
    server = build()
    user_id, _ = rep(server)
    refresh = server.org.accounts.issue_refresh_token(user_id, "app-key", "api")
    token = server.org.accounts.open_session(user_id, refresh_token=refresh)
    assert not refused(server.org.accounts, token)
    assert build().org.accounts.revoke(refresh)
    assert refused(server.org.accounts, token)


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_deactivation_ends_sessions_at_once(build: Callable[[], system.System], where: str) -> None:
    server = build()
    _user, token = rep(server)
    assert not refused(server.org.accounts, token)
    other = server if where == "here" else build()
    other.org.accounts.set_active("rep@oc.test", False)  # `opencadence users deactivate`
    assert refused(server.org.accounts, token)
    other.org.accounts.set_active("rep@oc.test", True)
    assert refused(server.org.accounts, token)  # for good


def test_deactivation_through_the_api_ends_sessions_at_once(
    build: Callable[[], system.System],
) -> None:
    server = build()
    user_id, token = rep(server)
    assert not refused(server.org.accounts, token)
    other = build()
    admin_id, _ = other.org.accounts.create_user("admin@oc.test", "pw", admin=True)
    admin = other.org.accounts.session(other.org.accounts.open_session(admin_id))
    other.org.update(admin, "User", user_id, {"IsActive": False}, "59.0")
    assert refused(server.org.accounts, token)


def test_an_expired_session_is_refused_though_remembered(
    build: Callable[[], system.System], session_clock: ManualClock
) -> None:
    server = build()
    user_id, _ = rep(server)
    token = server.org.accounts.open_session(user_id, ttl=timedelta(minutes=30))
    assert not refused(server.org.accounts, token)
    session_clock.advance(minutes=29)
    assert not refused(server.org.accounts, token)
    session_clock.advance(minutes=1)
    assert refused(server.org.accounts, token)


def test_an_idle_session_expires_though_remembered(
    build: Callable[[], system.System], session_clock: ManualClock
) -> None:
    server = build()
    _user, token = rep(server)
    assert not refused(server.org.accounts, token)
    session_clock.advance(hours=2)
    assert refused(server.org.accounts, token)


def test_a_session_extended_by_another_process_stays_live(
    build: Callable[[], system.System], session_clock: ManualClock
) -> None:
    """The remembered expiry is this process's last reading: past it, the session is read
    again, and another process may have extended it since."""
    server, other = build(), build()
    _user, token = rep(server)
    assert not refused(server.org.accounts, token)  # remembered: expires in 2 h
    session_clock.advance(minutes=90)
    assert not refused(other.org.accounts, token)  # used there: expires 2 h from now
    session_clock.advance(minutes=60)  # past what the server remembered
    assert not refused(server.org.accounts, token)


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_a_permission_set_change_applies_at_once(
    build: Callable[[], system.System], where: str
) -> None:
    server = build()
    user_id, token = rep(server)
    assert authorization.CADENCE_CREATOR not in server.org.accounts.session(token).permission_sets
    other = server if where == "here" else build()
    assert other.org.accounts.grant(user_id, authorization.CADENCE_CREATOR)
    assert authorization.CADENCE_CREATOR in server.org.accounts.session(token).permission_sets
    assert other.org.accounts.revoke_permission(user_id, authorization.CADENCE_CREATOR)
    assert authorization.CADENCE_CREATOR not in server.org.accounts.session(token).permission_sets


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_making_a_user_an_administrator_applies_at_once(
    build: Callable[[], system.System], where: str
) -> None:
    server = build()
    user_id, token = rep(server)
    assert not server.org.accounts.session(token).is_admin
    other = server if where == "here" else build()
    other.org.accounts.set_admin(user_id, True)
    assert server.org.accounts.session(token).is_admin
    other.org.accounts.set_admin(user_id, False)
    assert not server.org.accounts.session(token).is_admin


def test_a_time_zone_change_applies_at_once(build: Callable[[], system.System]) -> None:
    server, other = build(), build()
    user_id, token = rep(server)
    assert server.org.accounts.session(token).time_zone == "Europe/Paris"
    with other.store.transaction() as tx:
        tx.update("User", user_id, {"TimeZoneSidKey": "Asia/Tokyo"}, system=True)
    assert server.org.accounts.session(token).time_zone == "Asia/Tokyo"


def test_a_rolled_back_change_keeps_the_generation(build: Callable[[], system.System]) -> None:
    oc = build()
    user_id, _ = rep(oc)
    generation = session_cache.Generation(oc.engine, oc.store.meta)
    before = generation.read()
    with pytest.raises(RuntimeError), oc.store.transaction() as tx:
        tx.update("User", user_id, {"TimeZoneSidKey": "Asia/Tokyo"}, system=True)
        raise RuntimeError("rolled back")
    assert generation.read() == before
    with oc.store.transaction() as tx:
        tx.update("User", user_id, {"TimeZoneSidKey": "Asia/Tokyo"}, system=True)
    assert generation.read() not in (before, None)


def test_a_database_put_back_forgets_remembered_sessions(
    build: Callable[[], system.System],
) -> None:
    """What opencadence.testing does between tests: the rows are put back (the session row
    and the generation with them), then ``forget_sessions``."""
    oc = build()
    _user, token = rep(oc)
    assert not refused(oc.org.accounts, token)
    with oc.engine.begin() as conn:  # the rows put back: the session is gone, the row as was
        conn.execute(oc.store.meta.tables[schema.SESSIONS].delete())
    oc.org.accounts.forget_sessions()
    assert refused(oc.org.accounts, token)
