"""The eight Sales Engagement invocable actions, declared once.

Each action's label, the API version it appeared in, its inputs and its outputs (Salesforce's
Actions Developer Guide). The runtime (``cadence.actions``) implements them under these names;
the REST layer lists and describes them from here, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from opencadence.metadata.model import exists_at
from opencadence.metadata.sales_engagement import TRACKER


@dataclass(frozen=True, slots=True)
class Param:
    """One input (``required`` says whether it must be given) or output of an action.

    The keys of Salesforce's action describe come from here: ``label``, ``description``,
    ``maxOccurs``, ``byteLength``, ``sobjectType`` and ``picklistValues`` (fixed ``values``,
    or the values of the field ``picklist_of`` = (object, field) names).
    """

    name: str
    type: str
    required: bool = False
    label: str = ""
    description: str = ""
    values: tuple[str, ...] = ()
    picklist_of: tuple[str, str] | None = None
    max_occurs: int = 1
    byte_length: int = 0
    sobject_type: str | None = None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    label: str
    since: str
    inputs: tuple[Param, ...]
    outputs: tuple[Param, ...] = ()
    description: str = ""

    def visible_in(self, version: str | None) -> bool:
        return exists_at(self.since, version)

    def input(self, name: str) -> Param | None:
        return next((p for p in self.inputs if p.name == name), None)


_DISPOSITION = (TRACKER, "CompletionDisposition")
_ATTRIBUTION = (TRACKER, "RelatedToAttributionType")

_TARGET = Param(
    "targetId",
    "ID",
    True,
    "Target ID",
    "The ID of the contact, lead or person account in the cadence.",
)


#: inputs several actions share, declared once
_RELATED_TO = Param(
    "relatedToId",
    "ID",
    False,
    "Related Record ID",
    "The opportunity the target's cadence is related to.",
)
_ATTRIBUTION_TYPE = Param(
    "relatedToAttributionType",
    "STRING",
    False,
    "Attribution Type",
    "How the cadence is attributed to the related opportunity.",
    picklist_of=_ATTRIBUTION,
)


def _target(required: bool = True, description: str = _TARGET.description) -> Param:
    return Param("targetId", "ID", required, _TARGET.label, description)


#: name -> spec, in Salesforce's documentation order
ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "assignTargetToSalesCadence",
            "Assign Target to Sales Cadence",
            "45.0",
            (
                Param(
                    "salesCadenceNameOrId",
                    "STRING",
                    True,
                    "Cadence Name or ID",
                    "The name or ID of the cadence.",
                ),
                _target(description="The ID of the contact, lead or person account to assign."),
                Param(
                    "startStepNameOrId",
                    "STRING",
                    False,
                    "Start Step Name or ID",
                    "The name or ID of the cadence step where the target starts.",
                ),
                Param(
                    "userId",
                    "ID",
                    False,
                    "Assignee ID",
                    "The user who works the target's steps; the running user if not given.",
                ),
                _RELATED_TO,
            ),
            (
                Param(
                    "actionCadenceTrackerId",
                    "ID",
                    label="Cadence Tracker ID",
                    description="The ID of the cadence tracker created for the target.",
                ),
            ),
            "Assign a target to a cadence.",
        ),
        ActionSpec(
            "removeTargetFromSalesCadence",
            "Remove Target from Sales Cadence",
            "45.0",
            (
                _target(
                    False,
                    "The ID of the contact, lead or person account to remove. Required if "
                    "actionCadenceTrackerId isn't given.",
                ),
                Param(
                    "actionCadenceTrackerId",
                    "ID",
                    False,
                    "Cadence Tracker ID",
                    "The ID of the cadence tracker to complete. Required if targetId isn't given.",
                ),
                Param(
                    "completionReasonCode",
                    "STRING",
                    True,
                    "Completion Reason Code",
                    "Why the target leaves the cadence: ManuallyRemoved.",
                    values=("ManuallyRemoved",),
                ),
                Param(
                    "completionDisposition",
                    "STRING",
                    False,
                    "Target Disposition",
                    "The target's disposition when it leaves the cadence.",
                    picklist_of=_DISPOSITION,
                ),
                _RELATED_TO,
                _ATTRIBUTION_TYPE,
                Param(
                    "shouldApplyUserContext",
                    "BOOLEAN",
                    False,
                    "Apply User Context",
                    "Whether only a tracker the running user owns is removed.",
                ),
            ),
            (),
            "Remove a target from its cadence.",
        ),
        ActionSpec(
            "pauseSalesCadenceTracker",
            "Pause Sales Cadence Tracker",
            "50.0",
            (
                _target(description="The ID of the target whose cadence tracker is paused."),
                Param(
                    "resumeTime",
                    "DATETIME",
                    False,
                    "Resume Time",
                    "When the paused tracker resumes by itself.",
                ),
            ),
            (),
            "Pause a target's cadence tracker.",
        ),
        ActionSpec(
            "resumeSalesCadenceTracker",
            "Resume Sales Cadence Tracker",
            "50.0",
            (_target(description="The ID of the target whose paused cadence tracker resumes."),),
            (),
            "Resume a paused cadence tracker.",
        ),
        ActionSpec(
            "changeSalesCadenceTargetAssignee",
            "Change Sales Cadence Target Assignee",
            "50.0",
            (
                _target(description="The ID of the target whose assignee changes."),
                Param(
                    "userId",
                    "ID",
                    False,
                    "Assignee ID",
                    "The user who works the target's steps from now on; the running user if "
                    "not given.",
                ),
            ),
            (),
            "Change the user who works a target's cadence steps.",
        ),
        ActionSpec(
            "modifyCadenceTrackerAttributes",
            "Modify Cadence Tracker Attributes",
            "51.0",
            (
                Param(
                    "actionCadenceTrackerId",
                    "ID",
                    True,
                    "Cadence Tracker ID",
                    "The ID of the cadence tracker to change.",
                ),
                Param(
                    "completionDisposition",
                    "STRING",
                    False,
                    "Target Disposition",
                    "The target's disposition.",
                    picklist_of=_DISPOSITION,
                ),
                _RELATED_TO,
                _ATTRIBUTION_TYPE,
            ),
            (),
            "Change the disposition and related record of a cadence tracker.",
        ),
        ActionSpec(
            "sendSalesCadenceEvent",
            "Send Sales Cadence Event",
            "52.0",
            (
                Param(
                    "recordId",
                    "ID",
                    True,
                    "Step Tracker ID",
                    "The ID of the cadence step tracker the event is for.",
                ),
                Param(
                    "eventType",
                    "STRING",
                    True,
                    "Event Type",
                    "Skip or ManualComplete the step.",
                    values=("Skip", "ManualComplete"),
                ),
            ),
            (),
            "Skip or complete a target's current cadence step.",
        ),
        ActionSpec(
            "selectTemplateForSalesCadenceStepTracker",
            "Select Template for Sales Cadence Step Tracker",
            "53.0",
            (
                Param(
                    "stepTrackerId",
                    "ID",
                    True,
                    "Step Tracker ID",
                    "The ID of the cadence step tracker.",
                ),
            ),
            (
                Param(
                    "output",
                    "STRING",
                    label="Output",
                    description="JSON with the ID of the email template or call script the step "
                    "tracker uses and its split percentage.",
                ),
                Param(
                    "error",
                    "STRING",
                    label="Error",
                    description="Why no template could be selected; null when one was.",
                ),
            ),
            "Select the email template or call script variant a step tracker uses.",
        ),
    )
}
