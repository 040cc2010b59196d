"""Sessions are timed on the wall clock (a session clock), not the org's manual clock, and
expire after two hours of inactivity; a token minted with an explicit ttl keeps its expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

from opencadence.clock import ManualClock

from .conftest import Server
from .test_simple_salesforce import by_login

INVALID = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def _token_client(server: Server, ttl: timedelta | None = None) -> Salesforce:
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    token = server.org.accounts.open_session(user["Id"], ttl=ttl)
    return Salesforce(session_id=token, instance=server.instance, session=server.session())


def _count(sf: Salesforce) -> int:
    return int(sf.query("SELECT COUNT() FROM Contact")["totalSize"])


def test_moving_the_org_clock_days_keeps_a_password_login_session(server: Server) -> None:
    sf = by_login(server)
    token = sf.session_id
    assert _count(sf) == 0
    before = server.clock.now()
    out = sf.restful("../../../_opencadence/clock", method="POST", data='{"advance": 259200}')
    assert out is not None and server.clock.now() >= before + timedelta(days=3)
    assert _count(sf) == 0
    assert sf.session_id == token  # not logged out (and in again)
    server.org.accounts.session(token)  # still live


def test_a_session_unused_for_two_hours_expires(server: Server, session_clock: ManualClock) -> None:
    sf = _token_client(server)
    assert _count(sf) == 0
    session_clock.advance(hours=2)
    with pytest.raises(SalesforceExpiredSession) as info:
        _count(sf)
    assert info.value.status == 401
    assert info.value.content == INVALID


def test_a_session_used_every_hour_stays_valid(server: Server, session_clock: ManualClock) -> None:
    sf = _token_client(server)
    for _hour in range(5):
        assert _count(sf) == 0
        session_clock.advance(hours=1)
    assert _count(sf) == 0  # five hours after it was opened
    session_clock.advance(hours=2)
    with pytest.raises(SalesforceExpiredSession) as info:
        _count(sf)
    assert info.value.content == INVALID


def test_a_token_with_an_explicit_ttl_keeps_its_expiry(
    server: Server, session_clock: ManualClock
) -> None:
    sf = _token_client(server, ttl=timedelta(hours=3))
    for _hour in range(2):
        assert _count(sf) == 0
        session_clock.advance(hours=1)
    assert _count(sf) == 0
    session_clock.advance(hours=1)  # three hours after it was minted, however much it was used
    with pytest.raises(SalesforceExpiredSession):
        _count(sf)
