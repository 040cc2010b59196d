"""``/actions/standard``: the eight Sales Engagement invocable actions over REST.

POST ``{"inputs": [...]}`` answers one result per input, in order, like Salesforce:
``{"actionName", "errors", "isSuccess", "outputValues", "version"}``; a bad input fails alone.
The response is HTTP 200 whenever the request itself is well formed (per-input failures are in
the body); a malformed body is a 400 that changes nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from opencadence import errors
from opencadence.api.rest import endpoint
from opencadence.org import Org
from opencadence.storage import accounts

MAX_INPUTS = 200  # Salesforce caps invocable-action batches at 200 inputs

#: name -> (label, API version, [(input, type, required)], [(output, type)])
SPECS: dict[str, tuple[str, str, list[tuple[str, str, bool]], list[tuple[str, str]]]] = {
    "assignTargetToSalesCadence": (
        "Assign Target to Sales Cadence",
        "45.0",
        [
            ("salesCadenceNameOrId", "STRING", True),
            ("targetId", "ID", True),
            ("startStepNameOrId", "STRING", False),
            ("userId", "ID", False),
            ("relatedToId", "ID", False),
        ],
        [("actionCadenceTrackerId", "ID")],
    ),
    "removeTargetFromSalesCadence": (
        "Remove Target from Sales Cadence",
        "45.0",
        [
            ("targetId", "ID", False),
            ("actionCadenceTrackerId", "ID", False),
            ("completionReasonCode", "STRING", True),
            ("completionDisposition", "STRING", False),
            ("relatedToId", "ID", False),
            ("relatedToAttributionType", "STRING", False),
            ("shouldApplyUserContext", "BOOLEAN", False),
        ],
        [],
    ),
    "pauseSalesCadenceTracker": (
        "Pause Sales Cadence Tracker",
        "50.0",
        [("targetId", "ID", True), ("resumeTime", "DATETIME", False)],
        [],
    ),
    "resumeSalesCadenceTracker": (
        "Resume Sales Cadence Tracker",
        "50.0",
        [("targetId", "ID", True)],
        [],
    ),
    "changeSalesCadenceTargetAssignee": (
        "Change Sales Cadence Target Assignee",
        "50.0",
        [("targetId", "ID", True), ("userId", "ID", False)],
        [],
    ),
    "modifyCadenceTrackerAttributes": (
        "Modify Cadence Tracker Attributes",
        "51.0",
        [
            ("actionCadenceTrackerId", "ID", True),
            ("completionDisposition", "STRING", False),
            ("relatedToId", "ID", False),
            ("relatedToAttributionType", "STRING", False),
        ],
        [],
    ),
    "sendSalesCadenceEvent": (
        "Send Sales Cadence Event",
        "52.0",
        [("recordId", "ID", True), ("eventType", "STRING", True)],
        [],
    ),
    "selectTemplateForSalesCadenceStepTracker": (
        "Select Template for Sales Cadence Step Tracker",
        "53.0",
        [("stepTrackerId", "ID", True)],
        [("output", "STRING"), ("error", "STRING")],
    ),
}


def _visible(name: str, version: str) -> bool:
    spec = SPECS.get(name)
    return spec is not None and float(spec[1]) <= float(version)


def list_actions(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    base = f"/services/data/v{version}/actions/standard"
    return {
        "actions": [
            {"label": spec[0], "name": name, "type": "SALES_ENGAGEMENT", "url": f"{base}/{name}"}
            for name, spec in SPECS.items()
            if _visible(name, version)
        ]
    }


def action(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    name = request.path_params["action"]
    if not _visible(name, version):
        raise errors.NotFound("The requested resource does not exist")
    if request.method == "GET":
        return _describe(name)
    inputs = _inputs(request.state.body)
    if org.actions is None:
        raise errors.OpenCadenceError("the cadence runtime is not running in this server")
    results = org.actions.invoke(name, inputs, session.user_id)
    return [
        {
            "actionName": name,
            "errors": r["errors"] or None,
            "isSuccess": r["isSuccess"],
            "outputValues": r["outputValues"],
            "version": 1,
        }
        for r in results
    ]


def _inputs(body: Any) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise errors.JsonParserError('expected a body of the form {"inputs": [ {...}, ... ]}')
    if len(inputs) > MAX_INPUTS:
        raise errors.JsonParserError(f"at most {MAX_INPUTS} inputs per request")
    if not all(isinstance(i, dict) for i in inputs):
        raise errors.JsonParserError("each input must be a JSON object")
    return inputs


def _describe(name: str) -> dict[str, Any]:
    label, _since, inputs, outputs = SPECS[name]
    return {
        "name": name,
        "label": label,
        "type": "SALES_ENGAGEMENT",
        "standard": True,
        "inputs": [{"name": n, "label": n, "type": t, "required": r} for n, t, r in inputs],
        "outputs": [{"name": n, "label": n, "type": t} for n, t in outputs],
    }


def routes() -> list[Route]:
    v = "/services/data/v{version}/actions/standard"
    return [
        Route(v, endpoint(list_actions), methods=["GET"]),
        Route(f"{v}/", endpoint(list_actions), methods=["GET"]),
        Route(f"{v}/{{action}}", endpoint(action), methods=["GET", "POST"]),
    ]
