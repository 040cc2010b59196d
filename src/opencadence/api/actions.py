"""``/actions``, ``/actions/custom`` and ``/actions/standard``: the eight Sales Engagement invocable actions over REST.

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
        return _describe(org, name, version)
    inputs = _inputs(request.state.body)
    if org.actions is None:
        raise errors.OpenCadenceError("the cadence runtime is not running in this server")
    results = org.invoke_action(session, name, inputs)
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


def _describe(org: Org, name: str, version: str) -> dict[str, Any]:
    """Salesforce's describe of an invocable action, every key from ``metadata.actions``."""
    spec = action_specs.ACTIONS[name]
    return {
        "description": spec.description,
        "inputs": [{**_param(org, p, version), "required": p.required} for p in spec.inputs],
        "label": spec.label,
        "name": name,
        "outputs": [_param(org, p, version) for p in spec.outputs],
        "standard": True,
        "targetEntityName": None,
        "type": "SALES_ENGAGEMENT",
    }


def _param(org: Org, p: action_specs.Param, version: str) -> dict[str, Any]:
    return {
        "byteLength": p.byte_length,
        "description": p.description,
        "label": p.label or p.name,
        "maxOccurs": p.max_occurs,
        "name": p.name,
        "picklistValues": _picklist(org, p, version),
        "sobjectType": p.sobject_type,
        "type": p.type,
    }


def _picklist(org: Org, p: action_specs.Param, version: str) -> list[dict[str, Any]] | None:
    """The fixed values of ``p``, or its field's values at ``version``; None if it has none."""
    if p.picklist_of is not None:
        obj, field_name = p.picklist_of
        f = org.registry.object(obj).field(field_name)
        assert f is not None
        entries = [(v.value, v.label, v.active, v.default) for v in f.picklist_values(version)]
    elif p.values:
        entries = [(v, v, True, False) for v in p.values]
    else:
        return None
    return [
        {"active": a, "defaultValue": d, "label": label, "validFor": None, "value": value}
        for value, label, a, d in entries
    ]


def action_kinds(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    """``/actions``: the links to the standard and the custom actions, as Salesforce lists them."""
    base = f"/services/data/v{version}/actions"
    return {"standard": f"{base}/standard", "custom": f"{base}/custom"}


def custom_actions(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    """``/actions/custom``: Salesforce maps each custom action type (apex, flow, quickAction,
    ...) to its list; this org has none of those types, so the map is empty."""
    return {}


def routes() -> list[Route]:
    a = "/services/data/v{version}/actions"
    v = f"{a}/standard"
    return [
        Route(a, endpoint(action_kinds), methods=["GET"]),
        Route(f"{a}/", endpoint(action_kinds), methods=["GET"]),
        Route(f"{a}/custom", endpoint(custom_actions), methods=["GET"]),
        Route(f"{a}/custom/", endpoint(custom_actions), methods=["GET"]),
        Route(v, endpoint(list_actions), methods=["GET"]),
        Route(f"{v}/", endpoint(list_actions), methods=["GET"]),
        Route(f"{v}/{{action}}", endpoint(action), methods=["GET", "POST"]),
    ]
