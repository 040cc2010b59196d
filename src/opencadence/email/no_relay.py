"""The sender of a process without ``--smtp-relay``: automated emails are recorded, not sent.

Nothing leaves the machine, but nothing is pretended either: each email goes through the
same checks and rendering as under a relay (a step with a broken template or a target without
an address errors with the same ErrorCode), and a send that passes leaves the EmailMessage
and Task a real send leaves, in the worker's transaction that completes the step. What a relay
adds (the outbox, Message-IDs, daily caps, sending windows, tracking links, bounces) is not
simulated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from opencadence.cadence import sender as senders
from opencadence.cadence.decision import SendResult
from opencadence.email import activity, checks, templates
from opencadence.storage import mail, records

log = logging.getLogger(__name__)


@dataclass
class NoRelaySender:
    """Records each automated email as sent (see the module docstring)."""

    store: records.Store
    #: the emails recorded as sent, oldest first (what a test or the demo can look at)
    sent: list[activity.SentEmail] = field(default_factory=list)
    _tx: records.Tx | None = None
    _cache: checks.Cache | None = None

    def begin(self, tx: records.Tx) -> None:
        self._tx, self._cache = tx, checks.Cache(self.store, tx.conn)

    def after_commit(self) -> None:
        self._tx, self._cache = None, None

    def cancel(self, key: str) -> None:
        """Nothing was queued anywhere: a cancelled step simply never sends."""

    def send_composed(
        self, email: senders.OutgoingEmail, composed: templates.Rendered, now: datetime
    ) -> None:
        """A rep's own email on a manual step: checked and recorded as sent (SendRefused if
        a check fails), in the caller's transaction."""
        tx, cache = self._tx, self._cache
        if tx is None or cache is None:
            raise RuntimeError("NoRelaySender.send_composed outside a transaction")
        prepared = checks.prepare(
            cache,
            auto=False,
            template_id=None,
            owner_id=email.owner_id,
            target_id=email.target_id,
            composed=composed,
        )
        tracker_id, _, _ = mail.enrolment(tx.conn, self.store.meta, email.key)
        sent = activity.from_prepared(
            prepared,
            key=email.key,
            tracker_id=tracker_id,
            owner_id=email.owner_id,
            target_id=email.target_id,
        )
        activity.log_sent(tx, [sent], now)
        self.sent.append(sent)

    def send(self, email: senders.OutgoingEmail, now: datetime) -> SendResult:
        tx, cache = self._tx, self._cache
        if tx is None or cache is None:
            raise RuntimeError("NoRelaySender.send outside a worker transaction")
        try:
            prepared = checks.prepare(
                cache,
                auto=True,
                template_id=email.template_id,
                owner_id=email.owner_id,
                target_id=email.target_id,
            )
        except checks.SendRefused as exc:
            return SendResult(False, exc.code, exc.retry_at)
        tracker_id, _, _ = mail.enrolment(tx.conn, self.store.meta, email.key)
        sent = activity.from_prepared(
            prepared,
            key=email.key,
            tracker_id=tracker_id,
            owner_id=email.owner_id,
            target_id=email.target_id,
        )
        activity.log_sent(tx, [sent], now)
        self.sent.append(sent)
        return SendResult(True)
