"""The one login form of the app and of the OAuth 2.0 authorization page.

``/app/login`` (the app's sign-in) and ``/services/oauth2/authorize`` (the web-server flow)
render the same form component (``templates/login_form.html``: fields labelled Username and
Password, a Log In button, the same error text) and check credentials with the same
``check`` (``Accounts.authenticate``: the password, the lockout after failed attempts,
inactive users). What differs is what follows a good login: the app opens a browser session,
the authorization page redirects to the client with a code. docs/web-decisions.md "Sign-in"."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import HTMLResponse

from opencadence import errors
from opencadence.org import Org
from opencadence.web import common

#: the answer to any failed login (wrong password, unknown or inactive user, locked out): it
#: does not say which, nor whether the user exists (Salesforce's text)
FAILED = (
    "Please check your username and password. If you still can't log in, "
    "contact your Salesforce administrator."
)


def check(org: Org, username: str, password: str) -> str | None:
    """The user id of valid credentials (a failed attempt counts towards the lockout), else
    None."""
    try:
        return org.accounts.authenticate(username, password)
    except errors.LoginFailed:
        return None


def page(
    template: str,
    *,
    action: str,
    hidden: Sequence[tuple[str, str]],
    username: str,
    error: str | None,
    status: int = 200,
    **context: object,
) -> HTMLResponse:
    """A page showing the login form: ``template`` includes ``login_form.html``, which posts
    ``hidden`` (name, value) pairs (the CSRF token, an authorization request's parameters)."""
    return common.render(
        template,
        status,
        action=action,
        hidden=list(hidden),
        username=username,
        error=error,
        **context,
    )
