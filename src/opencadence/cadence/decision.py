"""The vocabulary of the cadence engine: decisions and what they are made from.

A ``Decision`` lists the rows to insert (``Insert``, named by ``Ref`` keys until storage
gives them Ids), the guarded updates (``Update``: change these fields if the stored values
still equal ``expect``), the run-state changes (``RunOp``: next wake-up, call outcome, listener
signals, pause bookkeeping) and the side effects (send or unsend an email). The objects they
name are those of ``metadata.sales_engagement``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opencadence import errors
from opencadence.cadence import graph
from opencadence.metadata.sales_engagement import STEP

#: Instantaneous steps chained in one transition are capped (a GoTo cycle of branches).
MAX_CASCADE = 64
DEFAULT_MAX_DAISY_CHAIN = 10


class Refused(errors.OpenCadenceError):
    """The operation does not apply to the record in its current state."""

    error_code = "INVALID_OPERATION"
    http_status = 400

    def __init__(self, message: str, code: str = "INVALID_OPERATION") -> None:
        super().__init__(message)
        self.error_code = code


@dataclass(frozen=True, slots=True)
class Ref:
    """A row created by the same decision; replaced by the new Id when it is written."""

    key: str


RowId = str | Ref


@dataclass(slots=True)
class Insert:
    key: Ref
    object: str
    fields: dict[str, Any]


@dataclass(slots=True)
class Update:
    object: str
    id: RowId
    changes: dict[str, Any]
    expect: dict[str, Any]
    #: The row's LastModifiedById before the change (a change event names a new modifier).
    modified_by: str | None = None


@dataclass(slots=True)
class RunOp:
    """A change to the run-state row (``oc_cadence_run``) of one tracker."""

    kind: str  # insert | update | delete
    tracker: RowId
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendEmail:
    step_tracker: RowId
    template_id: str | None
    owner_id: str
    target_id: str


@dataclass(frozen=True, slots=True)
class CancelEmail:
    step_tracker_id: str


Effect = SendEmail | CancelEmail


@dataclass(slots=True)
class Decision:
    ops: list[Insert | Update] = field(default_factory=list)
    run: list[RunOp] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    #: Set when a due automated email must be sent first (the worker calls ``on_sent``).
    send: SendEmail | None = None
    #: Why a wake-up found nothing to do (the worker logs it).
    warning: str | None = None
    #: The logged call this decision applies, as (call-result category,) (None: no category):
    #: counted on the MakeACall step it completes (storage/metrics.py).
    logged_call: tuple[str | None] | None = None
    _keys: int = 0

    def new_ref(self) -> Ref:
        self._keys += 1
        return Ref(f"n{self._keys}")

    @property
    def transitions(self) -> int:
        """Step-tracker rows created or changed (the bench's unit of work)."""
        return sum(1 for op in self.ops if op.object == STEP)


@dataclass(frozen=True, slots=True)
class Run:
    """Bookkeeping of a running tracker: next wake-up, last call outcome, listener signals."""

    tracker_id: str
    due_at: datetime | None = None
    call_outcome: str | None = None
    signals: frozenset[str] = frozenset()
    paused_at: datetime | None = None
    paused_state: str | None = None
    held_due_at: datetime | None = None


@dataclass(frozen=True)
class Situation:
    """Everything the engine reads about one tracker."""

    tracker: Mapping[str, Any]
    step: Mapping[str, Any] | None
    run: Run
    #: step name -> step trackers created so far for it (loaded only for cadences with loops)
    visits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Definitions and facts around a transition."""

    cadences: Mapping[str, graph.Cadence]
    time_zones: Mapping[str, str | None] = field(default_factory=dict)
    max_daisy_chain: int = DEFAULT_MAX_DAISY_CHAIN


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the sender reported for one automated email."""

    sent: bool
    error_code: str | None = None
    retry_at: datetime | None = None
