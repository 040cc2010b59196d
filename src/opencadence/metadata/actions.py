"""The eight Sales Engagement invocable actions, declared once.

Each action"s label, the API version it appeared in, its inputs and its outputs (Salesforce"s
Actions Developer Guide). The runtime (``cadence.actions``) implements them under these names;
the REST layer lists and describes them from here, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from opencadence.metadata.model import exists_at


@dataclass(frozen=True, slots=True)
class Param:
    """One input (``required`` says whether it must be given) or output of an action."""

    name: str
    type: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    label: str
    since: str
    inputs: tuple[Param, ...]
    outputs: tuple[Param, ...] = ()

    def visible_in(self, version: str | None) -> bool:
        return exists_at(self.since, version)


def _spec(
    name: str,
    label: str,
    since: str,
    inputs: list[tuple[str, str, bool]],
    outputs: list[tuple[str, str]],
) -> ActionSpec:
    return ActionSpec(
        name,
        label,
        since,
        tuple(Param(n, t, r) for n, t, r in inputs),
        tuple(Param(n, t) for n, t in outputs),
    )


#: name -> spec, in Salesforce"s documentation order
ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "assignTargetToSalesCadence",
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
        _spec(
            "removeTargetFromSalesCadence",
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
        _spec(
            "pauseSalesCadenceTracker",
            "Pause Sales Cadence Tracker",
            "50.0",
            [("targetId", "ID", True), ("resumeTime", "DATETIME", False)],
            [],
        ),
        _spec(
            "resumeSalesCadenceTracker",
            "Resume Sales Cadence Tracker",
            "50.0",
            [("targetId", "ID", True)],
            [],
        ),
        _spec(
            "changeSalesCadenceTargetAssignee",
            "Change Sales Cadence Target Assignee",
            "50.0",
            [("targetId", "ID", True), ("userId", "ID", False)],
            [],
        ),
        _spec(
            "modifyCadenceTrackerAttributes",
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
        _spec(
            "sendSalesCadenceEvent",
            "Send Sales Cadence Event",
            "52.0",
            [("recordId", "ID", True), ("eventType", "STRING", True)],
            [],
        ),
        _spec(
            "selectTemplateForSalesCadenceStepTracker",
            "Select Template for Sales Cadence Step Tracker",
            "53.0",
            [("stepTrackerId", "ID", True)],
            [("output", "STRING"), ("error", "STRING")],
        ),
    )
}
