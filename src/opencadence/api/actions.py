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
from opencadence.metadata import actions as action_specs
from opencadence.org import Org
from opencadence.storage import accounts

MAX_INPUTS = 200  # Salesforce caps invocable-action batches at 200 inputs


def _visible(name: str, version: str) -> bool:
    spec = action_specs.ACTIONS.get(name)
    return spec is not None and spec.visible_in(version)


def list_actions(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    base = f"/services/data/v{version}/actions/standard"
    return {
        "actions": [
            {"label": spec.label, "name": name, "type": "SALES_ENGAGEMENT", "url": f"{base}/{name}"}
            for name, spec in action_specs.ACTIONS.items()
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
    spec = action_specs.ACTIONS[name]
    return {
        "name": name,
        "label": spec.label,
        "type": "SALES_ENGAGEMENT",
        "standard": True,
        "inputs": [
            {"name": p.name, "label": p.name, "type": p.type, "required": p.required}
            for p in spec.inputs
        ],
        "outputs": [{"name": p.name, "label": p.name, "type": p.type} for p in spec.outputs],
    }


def routes() -> list[Route]:
    v = "/services/data/v{version}/actions/standard"
    return [
        Route(v, endpoint(list_actions), methods=["GET"]),
        Route(f"{v}/", endpoint(list_actions), methods=["GET"]),
        Route(f"{v}/{{action}}", endpoint(action), methods=["GET", "POST"]),
    ]
