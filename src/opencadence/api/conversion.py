"""Lead conversion over REST: ``POST /services/data/vXX.X/sobjects/Lead/{id}/convert``.

Salesforce has no REST resource for ``convertLead`` (only the SOAP call and Apex's
``Database.convertLead``); this one is opencadence's own, documented in
docs/runtime-decisions.md ("Lead conversion"). The body is a LeadConvert without ``leadId``
(the URL names the lead), in the SOAP API's names; the answer is its LeadConvertResult as JSON,
200. A lead that cannot be converted answers 400 with Salesforce's REST error list, and
nothing is written.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from opencadence import errors
from opencadence.api import rest
from opencadence.cadence import conversion
from opencadence.org import Org
from opencadence.storage import accounts


def convert(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    lead_id = request.path_params["id"]
    body = dict(request.state.body or {})
    given = body.pop("leadId", None)
    if given not in (None, "", lead_id):
        raise errors.FieldIntegrity(
            "leadId in the body must be the lead of the URL", fields=["leadId"]
        )
    converted = org.convert_lead(
        session,
        conversion.from_mapping(body, lead_id=lead_id),
        version,
        client=rest.call_client(request),
    )
    return result(converted)


def result(converted: conversion.Converted) -> dict[str, Any]:
    """A LeadConvertResult that succeeded, as JSON (the SOAP element names)."""
    return {
        "accountId": converted.account_id,
        "contactId": converted.contact_id,
        "errors": [],
        "leadId": converted.lead_id,
        "opportunityId": converted.opportunity_id,
        "success": True,
    }


def routes() -> list[Route]:
    """Before rest's ``/sobjects/{sobject}/{field}/{value}``, which would take it for a GET."""
    path = "/services/data/v{version}/sobjects/Lead/{id}/convert"
    return [Route(path, rest.endpoint(convert), methods=["POST"])]
