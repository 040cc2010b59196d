"""HTTP details clients trip on (issue 11, items 8-11), through the real server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from simple_salesforce import Salesforce

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
        assert r.json() == [INVALID_SESSION]  # no "fields" key, as Salesforce
    r = s.request(method, _url(server, path), data="{not json", headers=headers | _bearer(server))
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


NOT_FOUND = [
    {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND", "fields": []}
]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{V}/sobjects/Nope"),
        ("GET", f"{V}/sobjects/Nope/"),
        ("POST", f"{V}/sobjects/Nope/"),
        ("GET", f"{V}/sobjects/Nope/describe"),
        ("GET", f"{V}/sobjects/Nope/0030C0000000ZZZAAA"),
        ("PATCH", f"{V}/sobjects/Nope/0030C0000000ZZZAAA"),
        ("DELETE", f"{V}/sobjects/Nope/0030C0000000ZZZAAA"),
        ("GET", f"{V}/sobjects/Nope/updated/?start=2026-11-30T06:30:00Z&end=2026-12-01T00:00:00Z"),
        ("GET", f"{V}/sobjects/Nope/deleted/?start=2026-11-30T06:30:00Z&end=2026-12-01T00:00:00Z"),
    ],
)
def test_unknown_sobject_in_a_url_is_404_not_found(server: Server, method: str, path: str) -> None:
    s = server.session()
    r = s.request(method, _url(server, path), json={"LastName": "x"}, headers=_bearer(server))
    assert r.status_code == 404 and r.json() == NOT_FOUND


def test_unknown_sobject_in_soql_stays_invalid_type(server: Server) -> None:
    s = server.session()
    r = s.get(
        _url(server, f"{V}/query"), params={"q": "SELECT Id FROM Nope"}, headers=_bearer(server)
    )
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_TYPE"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", f"{V}/sobjects/Contact/0030C0000000ZZZAAA", "HEAD,GET,PATCH,DELETE"),
        ("PATCH", f"{V}/sobjects/Contact/", "HEAD,GET,POST"),
        ("DELETE", f"{V}/sobjects/Contact/describe", "HEAD,GET"),
        ("PATCH", f"{V}/sobjects/Contact/updated", "HEAD,GET"),
        ("DELETE", f"{V}/sobjects/Contact/deleted", "HEAD,GET"),
        ("POST", f"{V}/query", "HEAD,GET"),
        ("GET", "/services/oauth2/token", "POST"),
        ("PUT", f"{V}/actions/standard/assignTargetToSalesCadence", "HEAD,GET,POST"),
    ],
)
def test_405_lists_the_methods_the_resource_allows(
    server: Server, method: str, path: str, allowed: str
) -> None:
    r = server.session().request(method, _url(server, path), headers=_bearer(server))
    assert r.status_code == 405
    assert r.json() == [
        {
            "message": f"HTTP Method '{method}' not allowed. Allowed are {allowed}",
            "errorCode": "METHOD_NOT_ALLOWED",
            "fields": [],
        }
    ]
    assert r.headers["Allow"] == allowed.replace(",", ", ")


def test_password_grant_requires_a_connected_app(server: Server) -> None:
    s = server.session()
    token_url = _url(server, "/services/oauth2/token")
    login = {"grant_type": "password", "username": server.admin}
    login["password"] = server.admin_password + server.admin_token
    for extra in ({}, {"client_id": ""}, {"client_secret": "anything"}):
        r = s.post(token_url, data=login | extra)
        assert r.status_code == 400
        assert r.json() == {
            "error": "invalid_client_id",
            "error_description": "client identifier invalid",
        }
    key, secret = server.org.accounts.create_app("ci", server.admin)
    r = s.post(token_url, data=login | {"client_id": "3MVG9unknown", "client_secret": secret})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_client_id")
    r = s.post(token_url, data=login | {"client_id": key, "client_secret": "wrong"})
    assert (r.status_code, r.json()) == (
        400,
        {"error": "invalid_client", "error_description": "invalid client credentials"},
    )
    r = s.post(token_url, data=login | {"client_id": key, "client_secret": secret})
    assert r.status_code == 200 and r.json()["access_token"]
    # simple-salesforce's username/password/token login is SOAP: no connected app needed
    sf = Salesforce(
        username=server.admin,
        password=server.admin_password,
        security_token=server.admin_token,
        session=server.session(),
    )
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] >= 1


@pytest.mark.parametrize("kind", ["updated", "deleted"])
def test_replication_dates_with_an_unencoded_plus(server: Server, kind: str) -> None:
    """Salesforce's docs write ``?start=2026-11-30T06:30:00+00:00``: the '+' a query string
    decodes to a space is the offset's sign."""
    s = server.session()
    now = server.clock.now()
    start = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    end = now.strftime("%Y-%m-%dT%H:%M:%S")
    for offset in ("+00:00", "+0000", "%2B00:00"):
        path = f"{V}/sobjects/Contact/{kind}/?start={start}{offset}&end={end}{offset}"
        r = s.get(_url(server, path), headers=_bearer(server))
        assert r.status_code == 200, r.text
        assert "latestDateCovered" in r.json()
    # a space anywhere else is still no date
    path = f"{V}/sobjects/Contact/{kind}/?start={start.replace('T', '+')}Z&end={end}Z"
    r = s.get(_url(server, path), headers=_bearer(server))
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
