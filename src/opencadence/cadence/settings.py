"""The cadence runtime's settings (the composition root builds one ``Config``)."""

from __future__ import annotations

from dataclasses import dataclass

from opencadence.cadence import decision


@dataclass(frozen=True)
class Config:
    """Runtime settings (Salesforce's documented defaults)."""

    max_active_trackers: int = 150_000
    max_daisy_chain: int = decision.DEFAULT_MAX_DAISY_CHAIN
    # Call results and their categories are CallDisposition records (docs/runtime-decisions.md
    # "Calls"), seeded by the upgrade: no setting.
    #: trackers a worker claims per transaction
    batch_size: int = 500
