"""Unmodified zeep, loading the served partner WSDL, against a real server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
import zeep
from zeep.transports import Transport

from .conftest import Server

PARTNER = "{urn:partner.soap.sforce.com}SoapBinding"


def client(server: Server) -> zeep.Client:
    transport = Transport(session=server.session())
    return zeep.Client(f"https://{server.instance}/soap/wsdl.jsp?type=*", transport=transport)


def login(server: Server) -> tuple[zeep.Client, Any, dict[str, Any]]:
    c = client(server)
    result = c.service.login(server.admin, server.admin_password + server.admin_token)
    service = c.create_service(PARTNER, result.serverUrl)
    return c, service, {"SessionHeader": {"sessionId": result.sessionId}}


def test_smoke(server: Server) -> None:
    c, service, headers = login(server)
    r = service.query("SELECT Id, Name FROM User", _soapheaders=headers)
    print(r)
    d = service.describeSObjects(["ActionCadenceStepTracker"], _soapheaders=headers)
    print(d[0].name, len(d[0].fields))
