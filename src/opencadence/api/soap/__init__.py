"""The SOAP API: the partner and enterprise endpoints, their WSDLs and their routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence.api import errors as api_errors
from opencadence.api.soap import envelope, partner, schema, wsdl
from opencadence.org import Org


async def wsdl_jsp(request: Request) -> Response:
    """Setup's download address: ``?type=*`` is the partner WSDL, no type the enterprise one."""
    kind = request.query_params.get("type")
    if kind == "*":
        return await partner_wsdl(request)
    if kind is None:
        return await enterprise_wsdl(request)
    return await api_errors.not_found(request, Exception())


async def partner_wsdl(request: Request) -> Response:
    return Response(wsdl.partner(_base(request)), media_type=envelope.MEDIA_TYPE)


async def enterprise_wsdl(request: Request) -> Response:
    org: Org = request.app.state.org
    document = wsdl.enterprise_wsdl(_base(request), org.registry)
    return Response(document, media_type=envelope.MEDIA_TYPE)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def routes() -> list[Route]:
    out = []
    for flavor in (schema.PARTNER, schema.ENTERPRISE):
        handler = partner.endpoint(flavor)
        path = f"/services/Soap/{flavor.letter}/{{version}}"
        out += [
            Route(path, handler, methods=["POST"]),
            Route(f"{path}/{{org}}", handler, methods=["POST"]),
        ]
    return out + [
        Route("/soap/wsdl.jsp", wsdl_jsp, methods=["GET"]),
        Route("/services/wsdl/partner", partner_wsdl, methods=["GET"]),
        Route("/services/wsdl/enterprise", enterprise_wsdl, methods=["GET"]),
    ]
