"""The cadence worker: claims due trackers in batches and applies their transitions.

``run_once`` is one transaction: claim up to ``batch_size`` due run-state rows (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so workers side by side take disjoint batches; SQLite: the single
writer), decide each tracker's transition, send due automated emails, write everything and
commit. If the batch meets a concurrent change (StaleTransition) it is rolled back and redone
one tracker per transaction, so one conflict never blocks the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from opencadence import errors
from opencadence.cadence import applying, decision, engine, loading
from opencadence.cadence import sender as senders
from opencadence.cadence.settings import Config
from opencadence.clock import SystemClock, as_utc
from opencadence.storage import heartbeats, records
from opencadence.storage.runs import RunStore

log = logging.getLogger(__name__)

#: Upper bound on batches per ``run_until_idle`` (a guard against a timer that never clears).
MAX_ROUNDS = 100_000


#: Backoff of the loop after a failed batch: the first wait, doubling up to the last.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


class Heartbeat:
    """A worker loop's liveness: the wall time of its last finished batch (idle or not) and
    the failures since then. Written by the loop's thread, read by health checks."""

    def __init__(self) -> None:
        self.last_beat: datetime | None = None
        self.failures = 0
        self.last_error: str | None = None
        #: told of every beat and failure (``Worker.publish``: the heartbeat row)
        self.sink: Callable[[Heartbeat], None] | None = None

    def beat(self) -> None:
        self.last_beat, self.failures, self.last_error = SystemClock().now(), 0, None
        if self.sink is not None:
            self.sink(self)

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = _brief(exc)
        if self.sink is not None:
            self.sink(self)


class Published:
    """A worker loop's heartbeat kept in ``storage.heartbeats`` (one row for this loop), so
    the health endpoint of every server process on the database lists it. Writes at most
    every ``heartbeats.WRITE_EVERY`` (a failure at once); a write that fails (the database
    is away) is left to the next beat; ``close`` deletes the row."""

    def __init__(self, worker: Worker, role: str) -> None:
        self.worker, self.role = worker, role
        self.rows = heartbeats.Heartbeats(worker.store)
        self.row_id: str | None = None
        self.written = float("-inf")
        self.failures = 0
        self._write(worker.health)

    def __call__(self, beat: Heartbeat) -> None:
        due = time.monotonic() - self.written >= heartbeats.WRITE_EVERY.total_seconds()
        if due or beat.failures != self.failures:
            self._write(beat)

    def _write(self, beat: Heartbeat) -> None:
        try:
            if self.row_id is None or not self.rows.beat(
                self.row_id,
                failures=beat.failures,
                last_error=beat.last_error,
                transitions=self.worker.transitions,
            ):
                self.row_id = self.rows.register(self.role)
            self.written, self.failures = time.monotonic(), beat.failures
        except Exception as exc:  # the database is away: the loop reports its own failure
            log.debug("heartbeat not written (%s)", _brief(exc))

    def close(self) -> None:
        if self.worker.health.sink is self:
            self.worker.health.sink = None
        if self.row_id is not None:
            try:
                self.rows.remove(self.row_id)
            except Exception as exc:
                log.debug("heartbeat row not removed (%s)", _brief(exc))


def _brief(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def naive(now: datetime) -> datetime:
    return as_utc(now).replace(tzinfo=None, microsecond=now.microsecond // 1000 * 1000)


class Worker:
    """Applies due transitions of one database."""

    def __init__(
        self,
        store: records.Store,
        sender: senders.Sender | None = None,
        config: Config | None = None,
    ) -> None:
        self.store = store
        self.config = config or Config()
        self.runs = RunStore(store)
        self.sender: senders.Sender = sender or senders.RecordingSender()
        #: transitions (step-tracker rows created or changed) applied so far
        self.transitions = 0
        #: when the loop last finished a batch, and its failures since (for health checks)
        self.health = Heartbeat()
        #: set to end the loop's idle wait early (``rest``): work arrived in this process
        self.wake = threading.Event()
        #: other work the loop runs after each cadence batch (the Bulk API jobs'), each
        #: returning how much it did (0: nothing was waiting)
        self.tasks: list[Callable[[], int]] = []
        # a sender that delivers after the commit (the SMTP sender) completes the steps of the
        # emails it delivered in the transaction recording them, through ``complete_sent``
        bind = getattr(self.sender, "bind_worker", None)
        if bind is not None:
            bind(self)

    def rest(self, seconds: float) -> None:
        """Wait ``seconds``, or until ``wake`` is set (a Bulk API job became ready here): the
        ``sleep`` a server passes to ``loop`` (setting ``wake`` after its stop flag ends it)."""
        self.wake.wait(seconds)
        self.wake.clear()

    def publish(self, role: str) -> Published:
        """Keep this worker's heartbeat in the database (``role``: "worker" for the
        ``opencadence worker`` command, "server" for the thread of ``serve``) until the
        returned object is closed."""
        published = Published(self, role)
        self.health.sink = published
        return published

    def run_once(self, now: datetime | None = None) -> int:
        """Handle one batch of due trackers; returns how many were handled."""
        at = naive(now or self.store.clock.now())
        try:
            return self._batch(at, None)
        except errors.StaleTransition:
            with self.store.reading() as conn:
                due = self.runs.claim_due(conn, at, self.config.batch_size)
            done = 0
            for tracker_id in due:
                try:
                    done += self._batch(at, [tracker_id])
                except errors.StaleTransition:
                    log.info("tracker %s changed concurrently; retried later", tracker_id)
            return done

    def run_until_idle(self, now: datetime | None = None) -> int:
        """Run batches until nothing is due at ``now``; returns trackers handled."""
        total = 0
        for _ in range(MAX_ROUNDS):
            n = self.run_once(now)
            if n == 0:
                return total
            total += n
        raise RuntimeError("cadence worker did not become idle")

    def loop(
        self,
        poll_seconds: float = 1.0,
        stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        """Run until ``stop()`` (the ``opencadence worker`` command, the server's thread),
        sleeping when idle.

        A failed batch (the database connection lost, the database restarting, a lock not
        obtained) is rolled back by its transaction; the loop logs it, backs off (doubling up
        to BACKOFF_MAX_SECONDS) and carries on, reconnecting through the pool, so a database
        outage pauses cadences and email instead of ending them. ``sleep`` may return early
        (the server passes its stop event's ``wait``)."""
        delay = 0.0
        while not stop():
            try:
                handled = self.run_once()
                for task in self.tasks:
                    handled += task()
            except Exception as exc:
                delay = min(BACKOFF_MAX_SECONDS, max(BACKOFF_FIRST_SECONDS, delay * 2))
                self.health.failed(exc)
                log.warning("worker batch failed (%s); retrying in %.1f s", _brief(exc), delay)
                sleep(delay)
                continue
            delay = 0.0
            self.health.beat()
            if handled == 0:
                self._idle()
                sleep(poll_seconds)

    def _idle(self) -> None:
        """Nothing was due: a sender with work of its own outside the trackers (reps' emails
        to deliver again, ``SmtpSender.deliver_manual``) does it now. Its failure is logged;
        the loop carries on."""
        deliver = getattr(self.sender, "deliver_manual", None)
        if deliver is None:
            return
        try:
            deliver()
        except Exception as exc:  # noqa: BLE001 - the next idle turn tries again
            log.warning("redelivering reps' emails failed (%s)", _brief(exc))

    def _batch(self, now: datetime, only: Sequence[str] | None) -> int:
        cancels: list[str] = []
        with self.store.transaction() as tx:
            claimed = (
                self.runs.claim_due(tx.conn, now, self.config.batch_size)
                if only is None
                else self.runs.claim_these(tx.conn, now, only)
            )
            if not claimed:
                return 0
            self.sender.begin(tx)
            loaded = loading.Loaded(self.runs, tx.conn, self.config)
            sits = loading.situations(self.runs, tx.conn, loaded, claimed)
            ctx = loaded.context()
            decisions = self._decide_all(ctx, sits, claimed, now, tx.user_id)
            applying.apply(tx, self.runs, decisions)
            cancels = [
                e.step_tracker_id
                for d in decisions
                for e in d.effects
                if isinstance(e, decision.CancelEmail)
            ]
            self.transitions += sum(d.transitions for d in decisions)
        for key in cancels:  # only once the cancellation is committed
            self.sender.cancel(key)
        self.sender.after_commit()
        return len(claimed)

    def complete_sent(
        self, tx: records.Tx, sent: Mapping[str, str], now: datetime
    ) -> tuple[list[str], list[str]]:
        """In ``tx``, the sender recording emails it just delivered: the transitions of their
        trackers (``sent``: tracker id -> the step tracker whose email went out), decided and
        written exactly as a batch of ``run_once`` would (the sender's ``send`` reports each
        one sent), so a sent email completes its step in the commit that records it, with no
        second batch. Only trackers that are due (as the delivery left them), not held by
        another worker and still on that step are taken; returns (tracker ids done, step
        trackers to ``cancel`` after the commit). The others are left to the next batch."""
        claimed = self.runs.claim_these(tx.conn, now, sorted(sent))
        if not claimed:
            return [], []
        loaded = loading.Loaded(self.runs, tx.conn, self.config)
        sits = loading.situations(self.runs, tx.conn, loaded, claimed)
        mine = [
            tid
            for tid in claimed
            if (sit := sits.get(tid)) is not None
            and sit.step is not None
            and sit.step["Id"] == sent[tid]
        ]
        if not mine:
            return [], []
        ctx = loaded.context()
        decisions = self._decide_all(ctx, sits, mine, now, tx.user_id)
        applying.apply(tx, self.runs, decisions)
        self.transitions += sum(d.transitions for d in decisions)
        cancels = [
            e.step_tracker_id
            for d in decisions
            for e in d.effects
            if isinstance(e, decision.CancelEmail)
        ]
        return mine, cancels

    def _decide_all(
        self,
        ctx: decision.Context,
        sits: Mapping[str, decision.Situation],
        tracker_ids: Sequence[str],
        now: datetime,
        user: str,
    ) -> list[decision.Decision]:
        """The engine's decisions; a due automated email is sent before the engine is told.
        The wake-ups come first (they read nothing the sends write), so a sender that reads
        ahead (``prefetch``: the SMTP sender's rows of the whole batch in a few statements)
        is told every email of the batch before the first ``send``."""
        woken = [(tid, engine.wake(ctx, sits.get(tid), tid, now, user)) for tid in tracker_ids]
        emails = {
            tid: senders.OutgoingEmail(
                str(d.send.step_tracker), d.send.template_id, d.send.owner_id, d.send.target_id
            )
            for tid, d in woken
            if d.send is not None and sits.get(tid) is not None
        }
        prefetch = getattr(self.sender, "prefetch", None)
        if emails and prefetch is not None:
            prefetch(list(emails.values()), now)
        decisions = []
        for tid, d in woken:
            if d.warning is not None:
                log.warning("tracker %s: %s", tid, d.warning)
            email = emails.get(tid)
            if email is not None:
                sit = sits[tid]
                result = self.sender.send(email, now)
                cadence = ctx.cadences[sit.tracker["ActionCadenceId"]]
                d = engine.on_sent(ctx, cadence, sit, now, user, result)
            decisions.append(d)
        flush = getattr(self.sender, "flush", None)
        if emails and flush is not None:  # what the sends wrote together (one statement)
            flush()
        return decisions
