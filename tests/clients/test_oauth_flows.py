"""The OAuth flows CI and web apps use, end to end through a real server: refresh tokens, the
authorization code (web server) flow with PKCE through the login page, the JWT bearer flow
with a certificate made in the test, and revoke."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from simple_salesforce import Salesforce

from opencadence.clock import ManualClock

from .conftest import Server

CALLBACK = "https://app.example.test/oauth/callback"


def _url(server: Server, path: str) -> str:
    return f"https://{server.instance}{path}"


def _token(s: requests.Session, server: Server, **form: str) -> requests.Response:
    return s.post(_url(server, "/services/oauth2/token"), data=form)


def _sf(server: Server, access_token: str) -> Salesforce:
    return Salesforce(session_id=access_token, instance=server.instance, session=server.session())


def _error(r: requests.Response) -> tuple[int, str, str]:
    body = r.json()
    return r.status_code, body["error"], body["error_description"]


# --- refresh tokens -----------------------------------------------------------------------


def test_refresh_token_issued_when_asked_then_refreshed_and_revoked(server: Server) -> None:
    key, secret = server.org.accounts.create_app("ci", server.admin)
    s = server.session()
    login = {
        "grant_type": "password",
        "client_id": key,
        "client_secret": secret,
        "username": server.admin,
        "password": server.admin_password + server.admin_token,
    }
    plain = _token(s, server, **login).json()
    assert "refresh_token" not in plain  # the username-password flow: only when asked for
    first = _token(s, server, **login, scope="api refresh_token").json()
    refresh = first["refresh_token"]
    assert first["scope"] == "api refresh_token"
    r = _token(s, server, grant_type="refresh_token", client_id=key, refresh_token=refresh)
    assert r.status_code == 200, r.text
    renewed = r.json()
    assert "refresh_token" not in renewed  # no new refresh token by default
    assert renewed["access_token"] != first["access_token"]
    assert renewed["id"] == first["id"] and renewed["instance_url"] == first["instance_url"]
    sf = _sf(server, renewed["access_token"])
    assert sf.query("SELECT Username FROM User WHERE Username = 'admin@oc.test'")["totalSize"] == 1
    # with the secret too; a wrong secret or another app is refused
    ok = _token(
        s,
        server,
        grant_type="refresh_token",
        client_id=key,
        client_secret=secret,
        refresh_token=refresh,
    )
    assert ok.status_code == 200
    wrong = _token(
        s,
        server,
        grant_type="refresh_token",
        client_id=key,
        client_secret="x",
        refresh_token=refresh,
    )
    assert _error(wrong)[:2] == (400, "invalid_client")
    other, _ = server.org.accounts.create_app("other", server.admin)
    stolen = _token(s, server, grant_type="refresh_token", client_id=other, refresh_token=refresh)
    assert _error(stolen) == (400, "invalid_grant", "expired access/refresh token")
    missing = _token(s, server, grant_type="refresh_token", refresh_token=refresh)
    assert _error(missing) == (400, "invalid_client_id", "client identifier invalid")
    # revoking the refresh token ends it and the sessions issued from it
    assert (
        s.post(_url(server, "/services/oauth2/revoke"), data={"token": refresh}).status_code == 200
    )
    again = _token(s, server, grant_type="refresh_token", client_id=key, refresh_token=refresh)
    assert _error(again) == (400, "invalid_grant", "expired access/refresh token")
    gone = s.get(
        _url(server, "/services/data/v59.0/sobjects"),
        headers={"Authorization": f"Bearer {renewed['access_token']}"},
    )
    assert gone.status_code == 401


def test_refresh_tokens_are_stored_as_digests(server: Server) -> None:
    import sqlalchemy as sa

    from opencadence.storage import schema

    accounts = server.org.accounts
    key, _ = accounts.create_app("ci", server.admin)
    user = accounts.find_user(server.admin)
    assert user is not None
    token = accounts.issue_refresh_token(user["Id"], key, "api refresh_token")
    table = server.org.store.meta.tables[schema.REFRESH_TOKENS]
    with server.org.store.reading() as conn:
        stored = conn.execute(sa.select(table.c.token_hash)).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_revoke_of_an_unknown_token_is_refused_as_salesforce_does(server: Server) -> None:
    s = server.session()
    r = s.post(_url(server, "/services/oauth2/revoke"), data={"token": "not-a-token"})
    assert _error(r) == (400, "unsupported_token_type", "this token type is not supported")


# --- authorization code with PKCE ---------------------------------------------------------


class _Form(HTMLParser):
    """The login page's form: its action, inputs and buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.inputs: dict[str, str] = {}
        self.labels: list[str] = []
        self.buttons: list[str] = []
        self._label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input":
            self.inputs[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.buttons.append(a.get("value", ""))
        self._label = tag == "label"

    def handle_data(self, data: str) -> None:
        if self._label:
            self.labels.append(data.strip())
            self._label = False


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize(
    s: requests.Session, server: Server, key: str, challenge: str | None, **extra: str
) -> requests.Response:
    params = {
        "response_type": "code",
        "client_id": key,
        "redirect_uri": CALLBACK,
        "state": "st-42",
        **({"code_challenge": challenge, "code_challenge_method": "S256"} if challenge else {}),
        **extra,
    }
    return s.get(_url(server, "/services/oauth2/authorize"), params=params, allow_redirects=False)


def _log_in(
    s: requests.Session, server: Server, page: requests.Response, password: str | None = None
) -> requests.Response:
    """Fill the login page's form as a browser would and submit it."""
    form = _Form()
    form.feed(page.text)
    fields = dict(form.inputs)
    fields.update(username=server.admin, password=password or server.admin_password)
    return s.post(_url(server, form.action), data=fields, allow_redirects=False)


def _code_of(r: requests.Response) -> str:
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-42"]
    return query["code"][0]


def test_authorization_code_with_pkce_end_to_end(server: Server) -> None:
    key, _ = server.org.accounts.create_app("web", server.admin, callback_url=CALLBACK)
    s = server.session()
    verifier, challenge = _pkce()
    page = _authorize(s, server, key, challenge)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    form = _Form()
    form.feed(page.text)
    assert form.labels == ["Username", "Password"] and form.buttons == ["Log In"]
    assert form.action == "/services/oauth2/authorize" and form.inputs["csrf_token"]
    code = _code_of(_log_in(s, server, page))
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": key,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    r = _token(s, server, **exchange)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refresh_token"] and "refresh_token" in body["scope"].split()
    sf = _sf(server, body["access_token"])
    assert sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["totalSize"] == 1
    reused = _token(s, server, **exchange)  # single use
    assert _error(reused) == (400, "invalid_grant", "invalid authorization code")
    renewed = _token(
        s, server, grant_type="refresh_token", client_id=key, refresh_token=body["refresh_token"]
    )
    assert renewed.status_code == 200
    assert (
        _sf(server, renewed.json()["access_token"]).query("SELECT COUNT() FROM Contact")[
            "totalSize"
        ]
        == 0
    )


def test_pkce_mismatch_wrong_redirect_and_expiry_are_refused(
    server: Server, session_clock: ManualClock
) -> None:
    key, secret = server.org.accounts.create_app("web", server.admin, callback_url=CALLBACK)
    s = server.session()

    def code(challenge: str | None) -> str:
        return _code_of(_log_in(s, server, _authorize(s, server, key, challenge)))

    verifier, challenge = _pkce()
    base = {"grant_type": "authorization_code", "client_id": key, "redirect_uri": CALLBACK}
    bad = _token(s, server, **base, code=code(challenge), code_verifier=verifier + "x")
    assert _error(bad) == (400, "invalid_grant", "invalid code verifier")
    none = _token(s, server, **base, code=code(challenge))
    assert _error(none) == (400, "invalid_grant", "invalid code verifier")
    elsewhere = _token(
        s,
        server,
        **{**base, "redirect_uri": CALLBACK + "/x"},
        code=code(challenge),
        code_verifier=verifier,
    )
    assert _error(elsewhere)[:2] == (400, "redirect_uri_mismatch")
    # without PKCE the client is confidential: its secret is required
    no_secret = _token(s, server, **base, code=code(None))
    assert _error(no_secret)[:2] == (400, "invalid_client")
    with_secret = _token(s, server, **base, code=code(None), client_secret=secret)
    assert with_secret.status_code == 200, with_secret.text
    late = code(challenge)
    session_clock.advance(minutes=16)  # codes live 15 minutes
    expired = _token(s, server, **base, code=late, code_verifier=verifier)
    assert _error(expired) == (400, "invalid_grant", "expired authorization code")
    other, _ = server.org.accounts.create_app("other", server.admin, callback_url=CALLBACK)
    theirs = _token(
        s, server, **{**base, "client_id": other}, code=code(challenge), code_verifier=verifier
    )
    assert _error(theirs) == (400, "invalid_grant", "invalid authorization code")


def test_authorize_refuses_bad_requests_without_redirecting(server: Server) -> None:
    key, _ = server.org.accounts.create_app(
        "web", server.admin, callback_url=f"http://localhost:1717/cb\n{CALLBACK}"
    )
    s = server.session()
    for prefix in (CALLBACK[:-1], CALLBACK + "/", "http://localhost:1717/"):
        near = _authorize(s, server, key, None, redirect_uri=prefix)
        assert near.status_code == 400 and "redirect_uri_mismatch" in near.text, prefix
    assert (
        _authorize(s, server, key, None, redirect_uri="http://localhost:1717/cb").status_code == 200
    )
    wrong = _authorize(s, server, key, None, redirect_uri="https://evil.example.test/cb")
    assert wrong.status_code == 400 and "redirect_uri_mismatch" in wrong.text
    unknown = _authorize(s, server, "3MVGnope", None)
    assert unknown.status_code == 400 and "invalid_client_id" in unknown.text
    # a trusted redirect_uri gets the error there
    token_flow = _authorize(s, server, key, None, response_type="token")
    assert token_flow.status_code == 302
    query = parse_qs(urlsplit(token_flow.headers["location"]).query)
    assert query["error"] == ["unsupported_response_type"] and query["state"] == ["st-42"]
    # a wrong password shows the page again, with no code
    page = _authorize(s, server, key, None)
    again = _log_in(s, server, page, password="wrong")
    assert again.status_code == 200 and "check your username and password" in again.text
    # the form without the page's cookie (a cross-site post) is refused
    form = _Form()
    form.feed(page.text)
    stranger = server.session()
    forged = stranger.post(
        _url(server, "/services/oauth2/authorize"),
        data={**form.inputs, "username": server.admin, "password": server.admin_password},
        allow_redirects=False,
    )
    assert forged.status_code == 400 and "CSRF" in forged.text
    # values are escaped into the page
    hostile = _authorize(s, server, key, None, state='"><script>x</script>')
    assert hostile.status_code == 200 and "<script>x" not in hostile.text


# --- JWT bearer ---------------------------------------------------------------------------


def _certificate() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci.oc.test")])
    now = ManualClock().now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(key: rsa.RSAPrivateKey, claims: dict[str, Any], alg: str = "RS256") -> str:
    head = _b64(json.dumps({"alg": alg}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(signature)}"


JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_jwt_bearer_with_an_uploaded_certificate(
    server: Server, session_clock: ManualClock
) -> None:
    private, pem = _certificate()
    key, _ = server.org.accounts.create_app("ci", server.admin, certificate=pem)
    s = server.session()
    now = int(session_clock.now().timestamp())
    claims = {
        "iss": key,
        "sub": server.admin,
        "aud": "https://login.salesforce.com",
        "exp": now + 180,
    }
    r = _token(s, server, grant_type=JWT, assertion=_jwt(private, claims))
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body  # the JWT bearer flow issues none
    assert body["instance_url"] == f"https://{server.instance}"
    sf = _sf(server, body["access_token"])
    assert sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["totalSize"] == 1
    for aud in ("https://test.salesforce.com", f"https://{server.instance}"):
        ok = _token(s, server, grant_type=JWT, assertion=_jwt(private, {**claims, "aud": aud}))
        assert ok.status_code == 200, (aud, ok.text)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"exp": -10}, ("invalid_grant", "expired authorization code")),
        ({"exp": 3600}, ("invalid_grant", "invalid assertion")),
        ({"aud": "https://elsewhere.example.test"}, ("invalid_grant", "invalid assertion")),
        ({"sub": "nobody@oc.test"}, ("invalid_grant", "invalid assertion")),
        ({"iss": "3MVGunknown"}, ("invalid_client_id", "client identifier invalid")),
        ({"signer": "other"}, ("invalid_grant", "invalid assertion")),
        ({"alg": "HS256"}, ("invalid_grant", "invalid assertion")),
        ({"assertion": "not.a.jwt"}, ("invalid_grant", "invalid assertion")),
    ],
)
def test_jwt_bearer_refusals(
    server: Server, session_clock: ManualClock, change: dict[str, Any], expected: tuple[str, str]
) -> None:
    private, pem = _certificate()
    key, _ = server.org.accounts.create_app("ci", server.admin, certificate=pem)
    now = int(session_clock.now().timestamp())
    claims = {
        "iss": key,
        "sub": server.admin,
        "aud": "https://login.salesforce.com",
        "exp": now + 120,
    }
    for name in ("iss", "sub", "aud"):
        claims[name] = change.get(name, claims[name])
    claims["exp"] = now + change.get("exp", 120)
    signer = _certificate()[0] if change.get("signer") else private
    assertion = change.get("assertion") or _jwt(signer, claims, change.get("alg", "RS256"))
    r = _token(server.session(), server, grant_type=JWT, assertion=assertion)
    assert _error(r) == (400, *expected)


def test_an_app_without_a_certificate_refuses_jwt(
    server: Server, session_clock: ManualClock
) -> None:
    private, _ = _certificate()
    key, _ = server.org.accounts.create_app("ci", server.admin)
    claims = {
        "iss": key,
        "sub": server.admin,
        "aud": "https://login.salesforce.com",
        "exp": int(session_clock.now().timestamp()) + 60,
    }
    r = _token(server.session(), server, grant_type=JWT, assertion=_jwt(private, claims))
    assert _error(r) == (400, "invalid_grant", "invalid assertion")


def test_a_connected_app_refuses_what_is_not_a_certificate(server: Server) -> None:
    from opencadence import errors

    with pytest.raises(errors.InvalidOperation, match="not a PEM X.509 certificate"):
        server.org.accounts.create_app("ci", server.admin, certificate="nonsense")
    assert re.search("3MVG", server.org.accounts.create_app("ok", server.admin)[0])


def test_the_login_form_is_capped(server: Server) -> None:
    from opencadence.api import bodies

    form = {"username": "u", "password": "p" * bodies.OAUTH_FORM_MAX}
    r = server.session().post(_url(server, "/services/oauth2/authorize"), data=form)
    assert r.status_code == 413


def test_a_deactivated_user_s_refresh_token_is_refused(server: Server) -> None:
    accounts = server.org.accounts
    user_id, _ = accounts.create_user("rep@oc.test", "pw-rep-1")
    key, _ = accounts.create_app("ci", server.admin)
    refresh = accounts.issue_refresh_token(user_id, key, "api refresh_token")
    s = server.session()
    ok = _token(s, server, grant_type="refresh_token", client_id=key, refresh_token=refresh)
    assert ok.status_code == 200
    accounts.set_active("rep@oc.test", False)
    r = _token(s, server, grant_type="refresh_token", client_id=key, refresh_token=refresh)
    assert _error(r) == (400, "invalid_grant", "expired access/refresh token")
