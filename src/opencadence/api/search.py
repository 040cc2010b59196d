"""REST search: ``/search?q=<SOSL>`` and ``/parameterizedSearch`` (GET parameters or a POST
JSON body), answering ``{"searchRecords": [...]}`` as Salesforce does."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from opencadence import errors
from opencadence.api import rest
from opencadence.org import Org
from opencadence.sosl import parser
from opencadence.storage import accounts


def search(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    sosl = request.query_params.get("q")
    if not sosl or not sosl.strip():
        raise errors.MalformedSearch(parser.NO_TERM)
    return org.search(session, sosl, version)


def parameterized(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    if request.method == "POST":
        params: dict[str, Any] = dict(request.state.body or {})
    else:
        params = _from_query(request)
    return org.parameterized_search(session, params, version)


def _from_query(request: Request) -> dict[str, Any]:
    """GET parameters as the POST body spells them: ``sobject`` (repeatable) with
    ``<sobject>.fields`` / ``.limit`` / ``.where`` / ``.orderBy``."""
    query = request.query_params
    params: dict[str, Any] = {
        key: query.get(key) for key in ("q", "in", "fields", "overallLimit", "defaultLimit")
    }
    sobjects = []
    for name in query.getlist("sobject"):
        for part in name.split(","):
            part = part.strip()
            if not part:
                continue
            spec: dict[str, Any] = {"name": part}
            for key in ("fields", "limit", "where", "orderBy"):
                value = query.get(f"{part}.{key}")
                if value is not None:
                    spec[key] = value
            sobjects.append(spec)
    params["sobjects"] = sobjects
    return params


def routes() -> list[Route]:
    v = "/services/data/v{version}"
    return [
        Route(f"{v}/search", rest.endpoint(search), methods=["GET"]),
        Route(f"{v}/search/", rest.endpoint(search), methods=["GET"]),
        Route(f"{v}/parameterizedSearch", rest.endpoint(parameterized), methods=["GET", "POST"]),
        Route(f"{v}/parameterizedSearch/", rest.endpoint(parameterized), methods=["GET", "POST"]),
    ]
