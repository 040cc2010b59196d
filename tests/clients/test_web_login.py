"""The app's login page and the OAuth 2.0 authorization page are one login form (web/login.py)
in real Chromium against a real TLS server, on both databases: the same fields, button and
error text, one credential check (failed attempts on either page count towards the same
lockout), and the authorization page's login ends at the client's redirect_uri with a code
and the state."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.clients.conftest import Server
from tests.clients.test_web_app import (  # noqa: F401 (fixtures)
    REP,
    REP_PASSWORD,
    base,
    browser,
    context,
    log_in,
    org_server,
    pytestmark,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"
CALLBACK = "http://localhost:1717/cb"


def _authorize_url(srv: Server) -> str:
    key, _ = srv.org.accounts.create_app("web", srv.admin, callback_url=CALLBACK)
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": key,
        "redirect_uri": CALLBACK,
        "state": "st-7",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"https://{srv.instance}/services/oauth2/authorize?{urlencode(params)}"


def _fill(page: Any, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log In").click()


def _form(page: Any) -> tuple[list[str], list[str]]:
    form = page.locator("form")
    labels = [t.strip() for t in form.locator("label").all_inner_texts()]
    buttons = [t.strip() for t in form.locator("button").all_inner_texts()]
    return labels, buttons


def test_the_app_login_and_the_authorization_page_are_one_form(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    backend = "pg" if "postgres" in request.node.name else "sqlite"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = _authorize_url(org_server)
    page = context.new_page()
    page.goto(url)
    assert _form(page) == (["Username", "Password"], ["Log In"])
    assert "web is asking to access your data" in page.content()
    page.screenshot(path=str(ARTIFACTS / f"authorize-{backend}.png"), full_page=True)
    _fill(page, REP, "wrong")
    oauth_error = page.get_by_role("alert").inner_text()

    app = context.new_page()
    app.goto(f"{base(org_server)}/login")
    assert _form(app) == (["Username", "Password"], ["Log In"])
    app.screenshot(path=str(ARTIFACTS / f"login-{backend}.png"), full_page=True)
    _fill(app, REP, "wrong")
    assert app.get_by_role("alert").inner_text() == oauth_error
    assert "check your username and password" in oauth_error
    # the same stylesheet: one look for both pages
    css = [
        page.evaluate("getComputedStyle(document.querySelector('section')).maxWidth"),
        app.evaluate("getComputedStyle(document.querySelector('section')).maxWidth"),
    ]
    assert css[0] == css[1] == "380px"

    # a good login on the authorization page: to the client's redirect_uri with a code (the
    # browser then leaves for the client, not listening here)
    with page.expect_response(
        lambda r: "/services/oauth2/authorize" in r.url and r.request.method == "POST"
    ) as answer:
        _fill(page, REP, REP_PASSWORD)
    assert answer.value.status == 302
    location = urlsplit(answer.value.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-7"] and query["code"][0]


def test_failed_attempts_on_either_page_share_one_lockout(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
) -> None:
    org_server.org.accounts.max_attempts = 3
    url = _authorize_url(org_server)
    page = context.new_page()
    for _ in range(2):
        page.goto(url)
        _fill(page, REP, "wrong")
        page.get_by_role("alert").wait_for()
    log_in(page, org_server, REP, "wrong")  # the third, on the app's page: locked out
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("alert").wait_for()
    assert page.url.endswith("/app/login")
    page.goto(url)
    _fill(page, REP, REP_PASSWORD)  # the authorization page refuses too
    page.get_by_role("alert").wait_for()
    assert "/services/oauth2/authorize" in page.url
    org_server.org.accounts.unlock(REP)
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
