"""The Sales Engagement objects the cadence runtime keeps, named once.

Declared here, below storage and cadence, because both read them: storage's run-state
queries (``storage/runs.py``), the pure engine, the email checks and the actions.
"""

from __future__ import annotations

from collections.abc import Mapping

from opencadence.metadata.registry import default_registry

TRACKER = "ActionCadenceTracker"
STEP = "ActionCadenceStepTracker"
#: Step-tracker states of a step that is still the target's current step.
OPEN_STATES = frozenset({"Active", "InProgress", "Paused", "Queued", "Scheduled", "Error"})
#: Tracker states with IsTrackerActive = true (OR-TR).
ACTIVE_TRACKER_STATES = frozenset({"Running", "Paused", "Processing", "Initializing"})
#: Folder AccessType values whose email templates any user may send (automated steps included).
PUBLIC_FOLDER_ACCESS = frozenset({"Public", "PublicInternal", "Shared"})
#: The objects a cadence targets, by key prefix.
TARGET_OBJECTS: Mapping[str, str] = {
    default_registry().prefix(name): name for name in ("Contact", "Lead")
}

#: The call-result categories (CallDispositionCategory.Category, the value a Branch condition or
#: a global exit rule compares) and their labels: Salesforce's five, fixed.
CALL_CATEGORIES: Mapping[str, str] = {
    "CallMeaningfulConnect": "Meaningful Connect",
    "CallUnqualified": "Unqualified",
    "CallLeftVoicemail": "Left Voicemail",
    "CallNotInterested": "Not Interested",
    "CallCallBackLater": "Call Back Later",
}
#: The call results a new org starts with (CallDisposition.Disposition -> its category), seeded
#: once by the upgrade; Task.CallDisposition holds the Disposition a rep picked.
DEFAULT_CALL_DISPOSITIONS: Mapping[str, str] = {
    label: category for category, label in CALL_CATEGORIES.items()
}
#: CallTemplate's counter per category, and for a call with no categorized result.
CALL_TEMPLATE_COUNTERS: Mapping[str | None, str] = {
    "CallMeaningfulConnect": "TotalCallsMeaningfulConnect",
    "CallUnqualified": "TotalCallsUnqualified",
    "CallLeftVoicemail": "TotalCallsLeftVoicemail",
    "CallNotInterested": "TotalCallsNotInterested",
    "CallCallBackLater": "TotalCallsCallBackLater",
    None: "TotalCallsUncategorized",
}
