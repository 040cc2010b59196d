"""OAuth 2.0 (password, client-credentials, refresh-token, authorization-code with PKCE and JWT
bearer grants; the authorize login page; revoke, userinfo) and SOAP login.

Shapes follow Salesforce: the token response carries access_token, instance_url, id,
token_type, issued_at and signature; failures are ``{"error", "error_description"}`` with
HTTP 400. The SOAP partner ``login`` is what simple-salesforce's username/password/token
login sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import string
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from defusedxml import DefusedXmlException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies
from opencadence.api.rest import json_response, session_of
from opencadence.org import Org
from opencadence.storage import accounts, migrate
from opencadence.web import login as login_form

_SOAP_NS = "urn:partner.soap.sforce.com"


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _oauth_error(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, status=400)


def _token_body(
    request: Request, org: Org, user_id: str, token: str, scope: str = "api full"
) -> dict[str, Any]:
    issued = str(int(org.store.clock.now().timestamp() * 1000))
    base = _base(request)
    ident = f"{base}/id/{migrate.ORG_ID}/{user_id}"
    signature = base64.b64encode(
        hmac.new(token.encode(), (ident + issued).encode(), hashlib.sha256).digest()
    ).decode()
    return {
        "access_token": token,
        "instance_url": base,
        "id": ident,
        "token_type": "Bearer",
        "issued_at": issued,
        "signature": signature,
        "scope": scope,
    }


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a token or revoke request, read within its cap (the form is
    the credentials: there is nothing to authenticate before reading it)."""
    raw = await bodies.read(request, bodies.OAUTH_FORM_MAX)
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)  # a repeated name: the last value, as Starlette's form() keeps it


#: Scopes that ask for a refresh token (Salesforce: either one).
REFRESH_SCOPES = frozenset({"refresh_token", "offline_access"})
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def granted_scope(app: dict[str, Any], requested: str | None) -> str:
    """The scopes a token gets: those requested that the app may grant; without a request,
    all the app's scopes (Salesforce's rule for the web server flow)."""
    allowed = (app.get("scopes") or accounts.DEFAULT_APP_SCOPES).split()
    if requested is None or not requested.strip():
        return " ".join(allowed)
    return " ".join(s for s in requested.split() if s in allowed or s in ("full", "id"))


def _wants_refresh(scope: str) -> bool:
    return bool(REFRESH_SCOPES & set(scope.split()))


def _issue(
    request: Request,
    org: Org,
    user_id: str,
    key: str,
    scope: str,
    refresh: bool,
    parent: str | None = None,
) -> Response:
    """The token response: a new session, and a refresh token when ``refresh``. The session
    belongs to the new refresh token or to ``parent`` (the one it was refreshed with), so
    revoking that ends it too."""
    refresh_token = org.accounts.issue_refresh_token(user_id, key, scope) if refresh else None
    session = org.accounts.open_session(
        user_id, client=key or "oauth", refresh_token=refresh_token or parent
    )
    body = _token_body(request, org, user_id, session, scope)
    if refresh_token:
        body["refresh_token"] = refresh_token
    return json_response(body)


def _grant(request: Request, org: Org, form: dict[str, str], key: str, secret: str) -> Response:
    grant = form.get("grant_type", "")
    if grant == "client_credentials":
        user_id = org.accounts.app_user(key, secret)
        return _issue(request, org, user_id, key, "api full", False)
    if grant not in ("password", "refresh_token", "authorization_code", JWT_GRANT):
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    # every other flow names a connected app (client_id; for JWT bearer, the assertion's iss)
    if grant == JWT_GRANT:
        user_id, key = jwt_bearer(request, org, form.get("assertion", ""))
        return _issue(request, org, user_id, key, granted_scope(org.accounts.app(key), None), False)
    if not key:
        return _oauth_error("invalid_client_id", "client identifier invalid")
    app = org.accounts.app(key)
    if grant == "password":
        org.accounts.check_app(key, secret)
        user_id = org.accounts.authenticate(
            form.get("username", ""), form.get("password", ""), token_suffix=True
        )
        # the username-password flow issues a refresh token only when one is asked for
        scope = granted_scope(app, form.get("scope") or "api full")
        return _issue(request, org, user_id, key, scope, _wants_refresh(scope))
    if grant == "refresh_token":
        if secret:  # optional, as Salesforce allows; checked when sent
            org.accounts.check_app(key, secret)
        presented = form.get("refresh_token", "")
        user_id, scope = org.accounts.refresh_grant(presented, key)
        return _issue(request, org, user_id, key, scope, False, parent=presented)
    return _exchange_code(request, org, form, app, secret)


def _exchange_code(
    request: Request, org: Org, form: dict[str, str], app: dict[str, Any], secret: str
) -> Response:
    """grant_type=authorization_code: the code (single use, CODE_TTL), the same redirect_uri
    as the authorization request, and the PKCE verifier or, without PKCE, the secret."""
    key = str(app["consumer_key"])
    grant = org.accounts.redeem_code(form.get("code", ""), key)
    if form.get("redirect_uri", "") != grant["redirect_uri"]:
        return _oauth_error("redirect_uri_mismatch", "redirect_uri must match configuration")
    challenge = grant["code_challenge"]
    if challenge is not None:
        if not hmac.compare_digest(pkce_challenge(form.get("code_verifier", "")), challenge):
            return _oauth_error("invalid_grant", "invalid code verifier")
        if secret:
            org.accounts.check_app(key, secret)
    else:
        org.accounts.check_app(key, secret)  # a confidential client proves itself
    scope = str(grant["scope"])
    return _issue(request, org, str(grant["user_id"]), key, scope, _wants_refresh(scope))


def pkce_challenge(verifier: str) -> str:
    """S256: BASE64URL(SHA256(verifier)) without padding (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def token(request: Request) -> Response:
    org: Org = request.app.state.org
    form = await _form(request)
    key, secret = _client(request, form)

    def grant_session() -> Response:
        try:
            return _grant(request, org, form, key, secret)
        except errors.LoginFailed as exc:
            return _oauth_error(exc.oauth_error, exc.message)

    return await run_in_threadpool(grant_session)


def _client(request: Request, form: Any) -> tuple[str, str]:
    """Client id/secret from the form or an HTTP Basic header (client-credentials flow)."""
    key, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    header = request.headers.get("authorization", "")
    if not key and header.lower().startswith("basic "):
        try:
            key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            pass
    return key, secret


async def revoke(request: Request) -> Response:
    """Revoke an access or refresh token. An unknown one answers 400 unsupported_token_type,
    as Salesforce does (not RFC 7009's 200)."""
    org: Org = request.app.state.org
    form = await _form(request)
    value = str(form.get("token", "") or request.query_params.get("token", ""))
    if not await run_in_threadpool(org.accounts.revoke, value):
        return _oauth_error("unsupported_token_type", "this token type is not supported")
    return Response(status_code=200)


async def userinfo(request: Request) -> Response:
    org: Org = request.app.state.org

    def info() -> dict[str, Any]:
        session = session_of(request, org)
        user = org.store.get("User", session.user_id) or {}
        return {
            "sub": f"{_base(request)}/id/{migrate.ORG_ID}/{session.user_id}",
            "user_id": session.user_id,
            "organization_id": migrate.ORG_ID,
            "preferred_username": user.get("Username"),
            "email": user.get("Email"),
            "name": user.get("Name"),
            "zoneinfo": session.time_zone,
            "active": True,
        }

    return json_response(await run_in_threadpool(info))


# --- authorization code (web server flow) with PKCE -----------------------------------------

_CSRF_COOKIE = "oc_authorize_csrf"
#: The parameters of an authorization request the login form carries back in hidden fields.
_AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
)
_ERROR_PAGE = string.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Error | opencadence</title></head>
<body><main><h1>OAuth Error</h1><p>error=$error</p><p>error_description=$description</p>
</main></body></html>
"""
)
#: The login page may not be framed (clickjacking) nor cached, and sends no referrer.
_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class _AuthorizeError(Exception):
    """An authorization request refused with a page (no redirect: the client or its
    redirect_uri is not trusted) or, when ``redirect`` is set, by redirecting with the error."""

    def __init__(self, error: str, description: str, redirect: str | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.redirect = error, description, redirect


def _check_authorize(org: Org, params: dict[str, str]) -> dict[str, Any]:
    """The connected app of a valid authorization request, else _AuthorizeError."""
    try:
        app = org.accounts.app(params.get("client_id", ""))
    except errors.LoginFailed:
        raise _AuthorizeError("invalid_client_id", "client identifier invalid") from None
    redirect = params.get("redirect_uri", "")
    # the app's callback URLs, one per line as Salesforce lists them; an exact match only
    if redirect not in (app.get("callback_url") or "").split():
        raise _AuthorizeError("redirect_uri_mismatch", "redirect_uri must match configuration")
    if params.get("response_type") != "code":
        raise _AuthorizeError("unsupported_response_type", "response type not supported", redirect)
    if params.get("code_challenge_method", "S256") != "S256":
        raise _AuthorizeError("invalid_request", "invalid code_challenge_method", redirect)
    return app


def _redirect(uri: str, values: dict[str, str]) -> Response:
    sep = "&" if urlsplit(uri).query else "?"
    query = urlencode({k: v for k, v in values.items() if v})
    return Response(status_code=302, headers={"Location": f"{uri}{sep}{query}", **_PAGE_HEADERS})


def _refusal(exc: _AuthorizeError, state: str) -> Response:
    if exc.redirect is not None:
        values = {"error": exc.error, "error_description": exc.description, "state": state}
        return _redirect(exc.redirect, values)
    page = _ERROR_PAGE.substitute(
        error=html.escape(exc.error), description=html.escape(exc.description)
    )
    return HTMLResponse(page, status_code=400, headers=_PAGE_HEADERS)


def _csrf_token(org: Org) -> str:
    nonce = secrets.token_urlsafe(24)
    mac = hmac.new(org.accounts.secret("authorize-csrf"), nonce.encode(), hashlib.sha256)
    return f"{nonce}.{mac.hexdigest()}"


def _csrf_valid(org: Org, field: str, cookie: str) -> bool:
    """The form's token equals the cookie's (double submit) and was signed by this org:
    another site can make a browser post the form, but cannot read or set the cookie."""
    nonce, _, mac = field.partition(".")
    wanted = hmac.new(org.accounts.secret("authorize-csrf"), nonce.encode(), hashlib.sha256)
    return (
        bool(nonce)
        and hmac.compare_digest(field, cookie)
        and hmac.compare_digest(mac, wanted.hexdigest())
    )


def _login_page(
    request: Request, org: Org, app: dict[str, Any], params: dict[str, str], error: str = ""
) -> Response:
    """The authorization request's login page: the app's login form (web/login.py, the same
    component and credential check as /app/login), posting back here with the request's
    parameters and a CSRF token in hidden fields."""
    token = _csrf_token(org)
    hidden = [(name, params[name]) for name in _AUTHORIZE_PARAMS if params.get(name)]
    hidden.append(("csrf_token", token))
    response = login_form.page(
        "authorize.html",
        action="/services/oauth2/authorize",
        hidden=hidden,
        username=params.get("username", ""),
        error=error or None,
        app_name=str(app["name"]),
        scope=granted_scope(app, params.get("scope")),
    )
    response.headers.update(_PAGE_HEADERS)
    response.set_cookie(
        _CSRF_COOKIE,
        token,
        path="/services/oauth2/authorize",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


async def authorize(request: Request) -> Response:
    """GET: the login page of an authorization request; POST: the filled form, answered with
    a redirect to redirect_uri carrying a code and the state."""
    org: Org = request.app.state.org
    if request.method == "GET":
        params = dict(request.query_params)
    else:
        params = await _form(request)  # within the OAuth form cap (413 above it)
    cookie = request.cookies.get(_CSRF_COOKIE, "")

    def answer() -> Response:
        state = params.get("state", "")
        try:
            app = _check_authorize(org, params)
        except _AuthorizeError as exc:
            return _refusal(exc, state)
        if request.method == "GET":
            return _login_page(request, org, app, params)
        if not _csrf_valid(org, params.get("csrf_token", ""), cookie):
            return _refusal(_AuthorizeError("invalid_request", "invalid or missing CSRF token"), "")
        user_id = login_form.check(org, params.get("username", ""), params.get("password", ""))
        if user_id is None:  # the app's login page answers the same (web/login.py)
            return _login_page(request, org, app, params, login_form.FAILED)
        code = org.accounts.issue_code(
            user_id,
            str(app["consumer_key"]),
            params["redirect_uri"],
            params.get("code_challenge") or None,
            granted_scope(app, params.get("scope")),
        )
        return _redirect(params["redirect_uri"], {"code": code, "state": state})

    return await run_in_threadpool(answer)


# --- JWT bearer ---------------------------------------------------------------------------

#: How far ahead an assertion's exp may be: Salesforce asks for "within 3 minutes"; a minute of
#: leeway for the clock skew between a CI runner and the server.
JWT_MAX_AHEAD = 180 + 60
#: An exp past this is read as milliseconds (year 5138 in seconds): @salesforce/core, behind
#: `sf org login jwt`, signs ``exp: Date.now() + 300`` and Salesforce accepts its assertions
#: (docs/sf-cli.md).
EXP_MILLISECONDS = 10**11
#: The audiences Salesforce accepts, besides the server's own URL.
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _invalid_assertion() -> errors.LoginFailed:
    return errors.LoginFailed("invalid assertion", oauth_error="invalid_grant")


def _claims(assertion: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(claims, signed part, signature) of a compact JWS signed with RS256."""
    try:
        head, body, sig = assertion.split(".")
        header, claims = json.loads(_b64url(head)), json.loads(_b64url(body))
        signature = _b64url(sig)
    except (ValueError, UnicodeDecodeError):
        raise _invalid_assertion() from None
    if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
        raise _invalid_assertion()
    return claims, f"{head}.{body}".encode(), signature


def jwt_bearer(request: Request, org: Org, assertion: str) -> tuple[str, str]:
    """(user id, consumer key) of a valid JWT bearer assertion: iss a connected app with a
    certificate, the signature verified with it, aud a login URL, exp within JWT_MAX_AHEAD
    seconds from now and not past, sub an active user."""
    claims, signed, signature = _claims(assertion)
    app = org.accounts.app(str(claims.get("iss", "")))
    if not app.get("certificate"):
        raise _invalid_assertion()
    public_key = accounts.certificate_key(str(app["certificate"]))
    try:
        public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, TypeError, AttributeError):
        raise _invalid_assertion() from None  # TypeError, AttributeError: not an RSA key
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    accepted = {*JWT_AUDIENCES, _base(request)}
    if not any(isinstance(a, str) and a.rstrip("/") in accepted for a in audiences):
        raise _invalid_assertion()
    exp, now = claims.get("exp"), org.accounts.clock.now().timestamp()
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise _invalid_assertion()
    if exp > EXP_MILLISECONDS:  # the sf CLI writes Date.now() + 300: milliseconds
        exp = exp / 1000
    if exp <= now:
        raise errors.LoginFailed("expired authorization code", oauth_error="invalid_grant")
    if exp > now + JWT_MAX_AHEAD:
        raise _invalid_assertion()
    user = org.accounts.find_user(str(claims.get("sub", "")))
    if user is None or not user["IsActive"]:
        raise _invalid_assertion()
    return str(user["Id"]), str(app["consumer_key"])


# --- SOAP login ---------------------------------------------------------------------------


def _soap_fault(code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>"
        f"<faultstring>{code}: {escape(message)}</faultstring>"
        f'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, status_code=500, media_type="text/xml; charset=utf-8")


def _login_fields(raw: bytes) -> tuple[str, str]:
    root = SafeET.fromstring(raw, forbid_dtd=True)
    found: dict[str, str] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("username", "password"):
            found[tag] = element.text or ""
    if "username" not in found:
        raise errors.LoginFailed("Invalid username, password, security token; or user locked out.")
    return found["username"], found.get("password", "")


def _client_fault(message: str, status: int = 500) -> Response:
    """A SOAP client fault (not XML, a DTD, too large): a SOAP client reads a fault, not
    JSON. SOAP 1.1 answers faults with HTTP 500, as Salesforce does."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>"
        f"<faultstring>{escape(message)}</faultstring></soapenv:Fault></soapenv:Body>"
        "</soapenv:Envelope>"
    )
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


async def soap_login(request: Request) -> Response:
    org: Org = request.app.state.org
    try:
        raw = await bodies.read(request, bodies.SOAP_LOGIN_MAX)
    except errors.RequestTooLarge as exc:
        return _client_fault(f"EXCEEDED_MAX_SIZE_REQUEST: {exc.message}", 413)
    version = request.path_params["version"]

    def login() -> Response:
        try:
            username, password = _login_fields(raw)
        except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
            # DefusedXmlException: a DTD or entity declaration, refused unparsed
            return _client_fault(f"Unable to parse the SOAP envelope: {type(exc).__name__}")
        except errors.LoginFailed:
            username, password = "", ""
        try:
            user_id = org.accounts.authenticate(username, password, token_suffix=True)
        except errors.LoginFailed:
            return _soap_fault(
                "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."
            )
        session = org.accounts.open_session(user_id, client="soap")
        server = f"{_base(request)}/services/Soap/u/{version}/{migrate.ORG_ID[:15]}"
        metadata = f"{_base(request)}/services/Soap/m/{version}/{migrate.ORG_ID[:15]}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns="{_SOAP_NS}"><soapenv:Body><loginResponse><result>'
            f"<metadataServerUrl>{escape(metadata)}</metadataServerUrl><passwordExpired>false</passwordExpired>"
            f"<sandbox>false</sandbox><serverUrl>{escape(server)}</serverUrl><sessionId>{escape(session)}</sessionId>"
            f"<userId>{user_id}</userId><userInfo><organizationId>{migrate.ORG_ID}</organizationId>"
            f"<userId>{user_id}</userId><userName>{escape(username)}</userName></userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(body, media_type="text/xml; charset=utf-8")

    return await run_in_threadpool(login)


def routes() -> list[Route]:
    return [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/oauth2/authorize", authorize, methods=["GET", "POST"]),
        Route("/services/oauth2/revoke", revoke, methods=["POST", "GET"]),
        Route("/services/oauth2/userinfo", userinfo, methods=["GET", "POST"]),
    ]
