"""The Sales Engagement names the runtime declares agree with the registry's declarations."""

from __future__ import annotations

from opencadence.metadata import sales_engagement
from opencadence.metadata.registry import default_registry


def test_target_objects_and_tracker_objects_are_the_registry_s() -> None:
    reg = default_registry()
    for prefix, name in sales_engagement.TARGET_OBJECTS.items():
        assert reg.object(name).key_prefix == prefix
    tracker = reg.object(sales_engagement.TRACKER)
    target = tracker.field("TargetId")
    assert target is not None and set(target.reference_to) >= set(
        sales_engagement.TARGET_OBJECTS.values()
    )
    step = reg.object(sales_engagement.STEP)
    state = step.field("State")
    assert state is not None
    values = {v.value for v in state.picklist_values()}
    assert sales_engagement.OPEN_STATES <= values
    tracker_state = tracker.field("State")
    assert tracker_state is not None
    states = {v.value for v in tracker_state.picklist_values()}
    assert sales_engagement.ACTIVE_TRACKER_STATES <= states
