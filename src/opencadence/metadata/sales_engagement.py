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
