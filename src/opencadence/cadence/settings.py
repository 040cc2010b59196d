"""The cadence runtime's settings (the composition root builds one ``Config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opencadence.cadence import decision

DEFAULT_DISPOSITIONS: Mapping[str, str] = {
    "Meaningful Connect": "CallMeaningfulConnect",
    "Unqualified": "CallUnqualified",
    "Left Voicemail": "CallLeftVoicemail",
    "Not Interested": "CallNotInterested",
    "Call Back Later": "CallCallBackLater",
}


@dataclass(frozen=True)
class Config:
    """Runtime settings (Salesforce's documented defaults)."""

    max_active_trackers: int = 150_000
    max_daisy_chain: int = decision.DEFAULT_MAX_DAISY_CHAIN
    #: Task.CallDisposition -> call-result category (CallMeaningfulConnect ...)
    call_dispositions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DISPOSITIONS))
    #: trackers a worker claims per transaction
    batch_size: int = 500
