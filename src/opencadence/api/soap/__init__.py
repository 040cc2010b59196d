"""The SOAP API: the partner endpoint, its WSDL and their routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence.api import errors as api_errors
from opencadence.api.soap import envelope, partner, wsdl


async def partner_wsdl(request: Request) -> Response:
    """The partner WSDL (``/soap/wsdl.jsp?type=*``; without ``type`` Salesforce serves the
    enterprise WSDL, which is not served here yet: 404)."""
    if request.url.path.endswith("wsdl.jsp") and request.query_params.get("type") != "*":
        return await api_errors.not_found(request, Exception())
    base = f"{request.url.scheme}://{request.url.netloc}"
    return Response(wsdl.partner(base), media_type=envelope.MEDIA_TYPE)


def routes() -> list[Route]:
    return [
        Route("/services/Soap/u/{version}", partner.endpoint, methods=["POST"]),
        Route("/services/Soap/u/{version}/{org}", partner.endpoint, methods=["POST"]),
        Route("/soap/wsdl.jsp", partner_wsdl, methods=["GET"]),
        Route("/services/wsdl/partner", partner_wsdl, methods=["GET"]),
    ]
