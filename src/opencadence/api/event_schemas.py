"""The event schema REST resources of change event entities (the schemas Pub/Sub also serves).

- ``GET /services/data/vXX.X/sobjects/<Object>ChangeEvent/eventSchema``
- ``GET /services/data/vXX.X/event/eventSchema/<schemaId>``
- ``GET /services/data/vXX.X/sobjects/<Object>ChangeEvent/describe`` (the change event entity's
  describe: Salesforce's describeSObjects is the one call these entities support)

Both answer the compact form: the Avro schema JSON with its schema id as ``uuid`` (as Salesforce
answers ``payloadFormat=COMPACT``); opencadence answers the compact form for every
``payloadFormat``. An unknown entity or schema id is 404 NOT_FOUND.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.routing import Route

from opencadence import errors
from opencadence.api import rest
from opencadence.metadata import event_schema, model
from opencadence.org import Org
from opencadence.storage import accounts


class _ChangeEventName(Convertor[str]):
    """A path segment naming a change event entity, so these routes take no other sObject."""

    regex = "[A-Za-z][A-Za-z0-9_]*ChangeEvent"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("changeevent", _ChangeEventName())


def _entity(request: Request, org: Org, version: str) -> model.ObjectDef:
    obj = event_schema.by_event_name(org.registry, request.path_params["entity"])
    if obj is None or not obj.visible_in(version):
        raise errors.NotFound("The requested resource does not exist")
    return obj


def _compact(obj: model.ObjectDef) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(event_schema.schema_json(obj))
    schema["uuid"] = event_schema.schema_id(obj)
    return schema


def by_entity(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    return _compact(_entity(request, org, version))


def describe(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    return event_schema.describe(_entity(request, org, version), version)


def by_id(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    obj = event_schema.by_schema_id(org.registry, request.path_params["schema_id"])
    if obj is None:
        raise errors.NotFound("The requested resource does not exist")
    return _compact(obj)


def routes() -> list[Route]:
    """Before the REST routes: ``/sobjects/{sobject}/{id}`` would take them otherwise."""
    v = "/services/data/v{version}"
    e = f"{v}/sobjects/{{entity:changeevent}}"
    return [
        Route(f"{e}/eventSchema", rest.endpoint(by_entity), methods=["GET"]),
        Route(f"{e}/describe", rest.endpoint(describe), methods=["GET"]),
        Route(f"{e}/describe/", rest.endpoint(describe), methods=["GET"]),
        Route(f"{v}/event/eventSchema/{{schema_id}}", rest.endpoint(by_id), methods=["GET"]),
    ]
