"""Browser sessions and CSRF tokens of the web app.

The cookie holds an ordinary API session token (``Accounts.open_session``), so expiry,
inactivity and deactivation are the API's. CSRF: a signed-in form carries an HMAC of the
session token under a per-org secret (session-bound); the login form, before any session,
uses a double-submit cookie."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from opencadence import errors
from opencadence.org import Org
from opencadence.storage import accounts

SESSION_COOKIE = "oc_app_session"
LOGIN_COOKIE = "oc_app_login"
#: the secret the CSRF tokens are signed with (``Accounts.secret``)
CSRF_SECRET = "web-csrf"


def secure(request: Request) -> bool:
    """Cookies are Secure when the app is served over TLS."""
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path="/app", httponly=True, samesite="lax", secure=secure(request)
    )


def current(request: Request, org: Org) -> tuple[str, accounts.Session] | None:
    """The request's (token, session), or None: no cookie, expired, ended or user inactive."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return token, org.accounts.session(token)
    except errors.OpenCadenceError:
        return None


def csrf_token(org: Org, session_token: str) -> str:
    key = org.accounts.secret(CSRF_SECRET)
    return hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(org: Org, session_token: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(org, session_token), sent or "")


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def login_token_ok(request: Request, sent: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    return bool(cookie) and bool(sent) and hmac.compare_digest(cookie, sent or "")
