"""The email-sender interface AutoSendAnEmail steps use, and a recording test sender.

The worker calls ``send`` inside the transaction that records the result. Each message
carries an idempotency key (the step tracker's Id): if that transaction fails after the send,
the retry sends with the same key, so a real sender (the email issue's SMTP sender) can drop
the duplicate — the runtime itself never sends one step tracker's email twice once committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from opencadence.cadence import decision
from opencadence.storage import records


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One automated cadence email to send."""

    key: str  # the step tracker's Id (idempotency key)
    template_id: str | None
    owner_id: str  # sent as the tracker's assignee
    target_id: str


class Sender(Protocol):
    def begin(self, tx: records.Tx) -> None:
        """The worker's transaction the next ``send`` calls run in (a sender may write its
        outbox there, committed with the steps' results)."""
        ...

    def after_commit(self) -> None:
        """That transaction committed: deliver what ``send`` handed over."""
        ...

    def send(self, email: OutgoingEmail, now: datetime) -> decision.SendResult:
        """Send (or hand over for sending) one email; report the outcome."""
        ...

    def cancel(self, key: str) -> None:
        """Unsend: the step tracker ``key`` was cancelled or exited before its send."""
        ...


@dataclass
class RecordingSender:
    """A sender for tests and benchmarks: records sends, fails on request, never sends twice.

    ``fail`` maps a target id to the ErrorCode its sends fail with; ``retry`` maps a target
    id to a retry time (RETRY_LATER-style transient failures).
    """

    sent: list[OutgoingEmail] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)
    retry: dict[str, datetime] = field(default_factory=dict)
    duplicates: int = 0
    _keys: set[str] = field(default_factory=set)

    def send(self, email: OutgoingEmail, now: datetime) -> decision.SendResult:
        if email.target_id in self.fail:
            return decision.SendResult(False, self.fail[email.target_id])
        retry_at = self.retry.pop(email.target_id, None)
        if retry_at is not None:
            return decision.SendResult(False, "RETRY_LATER", retry_at)
        if email.key in self._keys:
            self.duplicates += 1
        else:
            self._keys.add(email.key)
            self.sent.append(email)
        return decision.SendResult(True)

    def begin(self, tx: records.Tx) -> None:
        pass

    def after_commit(self) -> None:
        pass

    def cancel(self, key: str) -> None:
        self.cancelled.append(key)
