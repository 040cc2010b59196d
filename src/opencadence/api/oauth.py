"""OAuth 2.0 (password and client-credentials grants, revoke, userinfo) and SOAP login.

Shapes follow Salesforce: the token response carries access_token, instance_url, id,
token_type, issued_at and signature; failures are ``{"error", "error_description"}`` with
HTTP 400. The SOAP partner ``login`` is what simple-salesforce's username/password/token
login sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies
from opencadence.api.rest import json_response, session_of
from opencadence.org import Org
from opencadence.storage import migrate

_SOAP_NS = "urn:partner.soap.sforce.com"


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _oauth_error(error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, status=400)


def _token_body(request: Request, org: Org, user_id: str, token: str) -> dict[str, Any]:
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
        "scope": "api full",
    }


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a token or revoke request, read within its cap (the form is
    the credentials: there is nothing to authenticate before reading it)."""
    raw = await bodies.read(request, bodies.OAUTH_FORM_MAX)
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)  # a repeated name: the last value, as Starlette's form() keeps it


async def token(request: Request) -> Response:
    org: Org = request.app.state.org
    form = await _form(request)
    grant = str(form.get("grant_type", ""))
    key, secret = _client(request, form)

    def grant_session() -> Response:
        try:
            if grant == "password":
                # Salesforce's username-password flow names a connected app (client_id)
                if not key:
                    return _oauth_error("invalid_client_id", "client identifier invalid")
                org.accounts.check_app(key, secret)
                user_id = org.accounts.authenticate(
                    str(form.get("username", "")), str(form.get("password", "")), token_suffix=True
                )
            elif grant == "client_credentials":
                user_id = org.accounts.app_user(key, secret)
            else:
                return _oauth_error("unsupported_grant_type", "grant type not supported")
        except errors.LoginFailed as exc:
            return _oauth_error(exc.oauth_error, exc.message)
        session = org.accounts.open_session(user_id, client=key or "oauth")
        return json_response(_token_body(request, org, user_id, session))

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
    org: Org = request.app.state.org
    form = await _form(request)
    value = str(form.get("token", "") or request.query_params.get("token", ""))
    await run_in_threadpool(org.accounts.revoke, value)
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
        Route("/services/oauth2/revoke", revoke, methods=["POST", "GET"]),
        Route("/services/oauth2/userinfo", userinfo, methods=["GET", "POST"]),
    ]
