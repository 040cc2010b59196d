"""HTTP details clients trip on (issue 11, items 8-11), through the real server."""

from __future__ import annotations

import pytest

from .conftest import Server

V = "/services/data/v59.0"
INVALID_SESSION = {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}


def _url(server: Server, path: str) -> str:
    return f"https://{server.instance}{path}"


def _bearer(server: Server) -> dict[str, str]:
    user = server.org.accounts.find_user(server.admin)
    assert user is not None
    return {"Authorization": f"Bearer {server.org.accounts.open_session(user['Id'])}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{V}/sobjects/Contact/"),
        ("PATCH", f"{V}/sobjects/Contact/0030C0000000ZZZAAA"),
        ("POST", f"{V}/actions/standard/assignTargetToSalesCadence"),
        ("PATCH", f"{V}/opencadence/email-settings"),
        ("POST", "/_opencadence/clock"),
    ],
)
def test_session_is_checked_before_the_body(server: Server, method: str, path: str) -> None:
    s = server.session()
    headers = {"Content-Type": "application/json"}
    for auth in ({}, {"Authorization": "Bearer 00D!nope"}):
        r = s.request(method, _url(server, path), data="{not json", headers=headers | auth)
        assert r.status_code == 401
        assert r.json() == [INVALID_SESSION | {"fields": []}]
    r = s.request(method, _url(server, path), data="{not json", headers=headers | _bearer(server))
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
