"""The OpenAPI 3 document of the whole HTTP surface (``/services/data/openapi.json``).

Built from the registry and the action table, so it lists exactly the objects, versions and
actions the server has.
"""

from __future__ import annotations

from typing import Any

from opencadence.api import versions
from opencadence.metadata import actions as action_specs
from opencadence.metadata.registry import Registry

_ERRORS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "errorCode": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def _param(name: str, where: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


def _op(
    summary: str, params: list[dict[str, Any]], body: dict[str, Any] | None = None, ok: str = "200"
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params,
        "responses": {
            ok: {"description": "success"},
            "400": {
                "description": "bad request",
                "content": {"application/json": {"schema": _ERRORS}},
            },
            "401": {
                "description": "INVALID_SESSION_ID",
                "content": {"application/json": {"schema": _ERRORS}},
            },
            "404": {
                "description": "NOT_FOUND",
                "content": {"application/json": {"schema": _ERRORS}},
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _composite(
    v: str,
    version: dict[str, Any],
    sobject: dict[str, Any],
    field: dict[str, Any],
    record: dict[str, Any],
) -> dict[str, Any]:
    """sObject Collections, composite, batch and tree (api/collections.py, api/composite.py)."""
    records = {"type": "array", "maxItems": 201, "items": record}
    many = {
        "type": "object",
        "properties": {"allOrNone": {"type": "boolean"}, "records": records},
    }
    ids = {"type": "array", "maxItems": 201, "items": {"type": "string", "maxLength": 18}}
    fields = {"type": "array", "items": {"type": "string", "maxLength": 80}}
    retrieve_body = {"type": "object", "properties": {"ids": ids, "fields": fields}}
    text = {"type": "string"}
    subrequest = {
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": ["GET", "POST", "PATCH", "DELETE"]},
            "url": text,
            "referenceId": text,
            "body": record,
            "richInput": record,
        },
    }
    c = f"{v}/composite/sobjects"
    return {
        c: {
            "post": _op("create records (sObject Collections)", [version], many),
            "patch": _op("update records (sObject Collections)", [version], many),
            "delete": _op(
                "delete records (sObject Collections)",
                [version, _param("ids", "query", text), _param("allOrNone", "query", text, False)],
            ),
        },
        f"{c}/{{sobject}}": {
            "get": _op(
                "retrieve records (sObject Collections)",
                [version, sobject, _param("ids", "query", text), _param("fields", "query", text)],
            ),
            "post": _op(
                "retrieve records, ids in the body (sObject Collections)",
                [version, sobject],
                retrieve_body,
            ),
        },
        f"{c}/{{sobject}}/{{field}}": {
            "patch": _op(
                "upsert records by external id (sObject Collections)",
                [version, sobject, field],
                many,
            ),
        },
        f"{v}/composite": {
            "post": _op(
                "composite: up to 25 subrequests with references",
                [version],
                {
                    "type": "object",
                    "properties": {
                        "allOrNone": {"type": "boolean"},
                        "collateSubrequests": {"type": "boolean"},
                        "compositeRequest": {"type": "array", "maxItems": 26, "items": subrequest},
                    },
                },
            )
        },
        f"{v}/composite/batch": {
            "post": _op(
                "batch: up to 25 independent subrequests",
                [version],
                {
                    "type": "object",
                    "properties": {
                        "haltOnError": {"type": "boolean"},
                        "batchRequests": {"type": "array", "maxItems": 26, "items": subrequest},
                    },
                },
            )
        },
        f"{v}/composite/tree/{{sobject}}": {
            "post": _op(
                "sObject tree: records with nested children",
                [version, sobject],
                {"type": "object", "properties": {"records": records}},
                ok="201",
            )
        },
    }


#: The LeadConvert fields of ``POST .../sobjects/Lead/{id}/convert`` (api/conversion.py).
_CONVERT_STRINGS = (
    "convertedStatus",
    "accountId",
    "contactId",
    "opportunityId",
    "opportunityName",
    "ownerId",
)
_CONVERT_FLAGS = ("doNotCreateOpportunity", "overwriteLeadSource", "sendNotificationEmail")


def document(registry: Registry) -> dict[str, Any]:
    """The OpenAPI document."""
    version = _param(
        "version",
        "path",
        {"type": "string", "enum": [v["version"] for v in versions.all_versions()]},
    )
    sobject = _param(
        "sobject", "path", {"type": "string", "enum": sorted(o.name for o in registry)}
    )
    record_id = _param("id", "path", {"type": "string", "minLength": 1, "maxLength": 40})
    when = {"type": "string", "example": "2026-01-05T09:00:00+00:00"}
    record_body = {"type": "object", "additionalProperties": True}
    action_body = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "inputs": {"type": "array", "items": {"type": "object", "additionalProperties": True}}
        },
    }
    field = _param("field", "path", {"type": "string", "minLength": 1, "maxLength": 80})
    value = _param("value", "path", {"type": "string", "minLength": 1, "maxLength": 255})
    v = "/services/data/v{version}"
    s = f"{v}/sobjects/{{sobject}}"
    paths: dict[str, Any] = {
        "/services/data/": {"get": _op("API versions", [])},
        f"{v}/": {"get": _op("resources of a version", [version])},
        f"{v}/sobjects": {"get": _op("describeGlobal", [version])},
        s: {
            "get": _op("basic object information", [version, sobject]),
            "post": _op("create a record", [version, sobject], record_body, ok="201"),
        },
        f"{s}/describe": {"get": _op("describeSObject", [version, sobject])},
        f"{s}/updated/": {
            "get": _op(
                "getUpdated",
                [version, sobject, _param("start", "query", when), _param("end", "query", when)],
            )
        },
        f"{s}/deleted/": {
            "get": _op(
                "getDeleted",
                [version, sobject, _param("start", "query", when), _param("end", "query", when)],
            )
        },
        f"{s}/{{id}}": {
            "get": _op(
                "retrieve a record",
                [version, sobject, record_id, _param("fields", "query", {"type": "string"}, False)],
            ),
            "patch": _op("update a record", [version, sobject, record_id], record_body, ok="204"),
            "delete": _op("delete a record", [version, sobject, record_id], ok="204"),
        },
        f"{s}/{{field}}/{{value}}": {
            "get": _op("retrieve a record by external id", [version, sobject, field, value]),
            "patch": _op(
                "upsert a record by external id", [version, sobject, field, value], record_body
            ),
        },
        **_composite(v, version, sobject, field, record_body),
        f"{v}/sobjects/Lead/{{id}}/convert": {
            "post": _op(
                "convert a lead (opencadence's route for SOAP convertLead)",
                [version, record_id],
                {
                    "type": "object",
                    "properties": {
                        **{name: {"type": "string"} for name in _CONVERT_STRINGS},
                        **{name: {"type": "boolean"} for name in _CONVERT_FLAGS},
                    },
                },
            )
        },
        f"{v}/query/": {
            "get": _op("SOQL query", [version, _param("q", "query", {"type": "string"})])
        },
        f"{v}/queryAll/": {
            "get": _op(
                "SOQL query including deleted records",
                [version, _param("q", "query", {"type": "string"})],
            )
        },
        f"{v}/query/{{locator}}": {
            "get": _op(
                "next page of a query", [version, _param("locator", "path", {"type": "string"})]
            )
        },
        f"{v}/search/": {
            "get": _op("SOSL search", [version, _param("q", "query", {"type": "string"})])
        },
        f"{v}/parameterizedSearch/": {
            "get": _op(
                "search by parameters",
                [
                    version,
                    _param("q", "query", {"type": "string"}),
                    _param("sobject", "query", {"type": "string"}, required=False),
                    _param("in", "query", {"type": "string"}, required=False),
                ],
            ),
            "post": _op("search by a JSON body", [version], record_body),
        },
        f"{v}/limits/": {"get": _op("org limits", [version])},
        f"{v}/limits/recordCount": {
            "get": _op(
                "live records per object",
                [version, _param("sObjects", "query", {"type": "string"}, required=False)],
            )
        },
        f"{v}/actions": {"get": _op("kinds of invocable actions", [version])},
        f"{v}/actions/custom": {"get": _op("custom invocable actions (none)", [version])},
        f"{v}/actions/standard": {"get": _op("Sales Engagement actions", [version])},
        f"{v}/actions/standard/{{action}}": {
            "get": _op(
                "describe an action",
                [
                    version,
                    _param(
                        "action", "path", {"type": "string", "enum": sorted(action_specs.ACTIONS)}
                    ),
                ],
            ),
            "post": _op(
                "invoke an action",
                [
                    version,
                    _param(
                        "action", "path", {"type": "string", "enum": sorted(action_specs.ACTIONS)}
                    ),
                ],
                action_body,
            ),
        },
        f"{v}/opencadence/email-settings": {
            "get": _op("email settings (admins)", [version]),
            "patch": _op(
                "change email settings (admins)",
                [version],
                {
                    "type": "object",
                    "properties": {
                        "scope": {"type": "string"},
                        "values": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
            ),
        },
        "/services/oauth2/token": {
            "post": {
                "summary": "OAuth 2.0 token (password, client_credentials)",
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "grant_type": {"type": "string"},
                                    "username": {"type": "string"},
                                    "password": {"type": "string"},
                                    "client_id": {"type": "string"},
                                    "client_secret": {"type": "string"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": {"description": "token"},
                    "400": {"description": "OAuth error"},
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "opencadence — Salesforce Sales Engagement API",
            "version": versions.all_versions()[-1]["version"],
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
