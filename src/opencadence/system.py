"""The composition root: a ``Settings`` in, everything one process runs out (a ``System``).

``serve``, ``worker``, ``demo``, every CLI command that opens a database and the benchmarks
wire engine, registry, schema, Store, Org, cadence worker, email sender and inbound listener
here and nowhere else, so two entry points cannot wire them differently. Settings are plain
values (the CLI turns its arguments into them); nothing here knows about argparse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Literal, TypeAlias

from opencadence.bulk import jobs as bulk_jobs
from opencadence.bulk import runner as bulk_runner
from opencadence.cadence import actions
from opencadence.cadence.sender import Sender

# The runtime's settings (batch size, caps): named in this one place.
from opencadence.cadence.settings import Config as RuntimeConfig
from opencadence.cadence.worker import Worker
from opencadence.clock import Clock, ManualClock, SystemClock
from opencadence.email import inbound, no_relay, smtp_sender, tracking
from opencadence.metadata import registry
from opencadence.metadata.registry import Registry
from opencadence.org import Org
from opencadence.storage import accounts, clock_state, database, events, migrate, records

__all__ = ["ClockSetting", "RuntimeConfig", "Settings", "SmtpRelay", "System", "build"]

#: "system" (wall clock), "manual" (starts now, or where the last run on the database left it
#: if that is later; moves with POST /_opencadence/clock) or a clock.
ClockSetting: TypeAlias = Literal["system", "manual"] | Clock


@dataclass(frozen=True)
class SmtpRelay:
    """The relay automated emails go through. A missing user or password falls back to
    $OPENCADENCE_SMTP_USER / $OPENCADENCE_SMTP_PASSWORD when the sender is built."""

    address: str  # HOST:PORT (checked when the sender is built)
    user: str | None = None
    password: str | None = None
    tls: str = "starttls"  # starttls | tls | none
    #: base URL of open/click tracking links; None: emails go out untracked
    public_url: str | None = None


@dataclass(frozen=True)
class Settings:
    """What one process is: its database, its clock and which parts it runs."""

    database_url: str = field(default_factory=database.default_url)
    clock: ClockSetting = "system"
    #: the clock sessions are timed on (None: the wall clock); never the org's manual clock,
    #: which would log every client out when it moves past the session timeout
    session_clock: Clock | None = None
    #: invalid login attempts in a row that lock a user out (0: never), and for how long
    login_max_attempts: int = accounts.MAX_LOGIN_ATTEMPTS
    login_lockout: timedelta = accounts.LOCKOUT_PERIOD
    #: how long change events stay replayable
    event_retention: timedelta = events.DEFAULT_RETENTION
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    #: False: the caller has brought the schema up to date (or will, with System.upgrade)
    upgrade: bool = True
    #: this process applies cadence transitions (builds the worker and, with a relay, the
    #: SMTP sender, whose interrupted sends are reconciled at once)
    worker: bool = True
    #: None: automated emails are checked, rendered and recorded as sent (EmailMessage and
    #: Task written), nothing leaves the machine (email/no_relay.py)
    relay: SmtpRelay | None = None
    #: this process answers open/click tracking links (makes the org's tracking secret)
    tracking: bool = False
    #: listen for replies and bounces on this port (None: no listener)
    inbound_smtp_port: int | None = None
    inbound_smtp_host: str = "127.0.0.1"
    #: refuse API requests past this many a UTC day (REQUEST_LIMIT_EXCEEDED); None: count only
    api_request_limit: int | None = None


@dataclass
class System:
    """Everything a process runs, built by ``build``; ``close`` (or ``with``) releases it."""

    settings: Settings
    engine: database.Engine
    store: records.Store
    org: Org
    #: the clock when it is manual (the API then serves the clock endpoint)
    manual_clock: ManualClock | None
    #: whether close() disposes the engine (not when the caller passed one in)
    owns_engine: bool = True
    worker: Worker | None = None
    #: the SMTP sender of settings.relay, when this process runs the worker
    smtp: smtp_sender.SmtpSender | None = None
    tracker: tracking.Tracker | None = None
    listener: inbound.InboundListener | None = None
    #: runs the Bulk API jobs (a task of the worker loop), when this process runs the worker
    bulk: bulk_runner.Runner | None = None
    #: what build's upgrade changed (a line per change)
    schema_changes: list[str] = field(default_factory=list)

    @property
    def registry(self) -> Registry:
        return self.store.registry

    @property
    def clock(self) -> Clock:
        return self.store.clock

    @property
    def database(self) -> str:
        """The database URL as it may be printed (password hidden)."""
        return self.engine.url.render_as_string(hide_password=True)

    def upgrade(self, progress: migrate.Progress | None = None) -> list[str]:
        """Bring the database to the registry's schema; a line per change made."""
        return migrate.upgrade(self.engine, self.registry, progress=progress, clock=self.clock)

    def close(self) -> None:
        self.org.api_usage.flush()  # this process's last requests count for the day
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        if self.owns_engine:
            self.engine.dispose()

    def __enter__(self) -> System:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def build(
    settings: Settings,
    *,
    engine: database.Engine | None = None,
    sender: Sender | None = None,
) -> System:
    """Engine, registry, schema upgrade, Store, Org, worker, sender, tracker and listener.

    ``engine`` reuses an existing engine (a test fixture's) in place of
    ``settings.database_url``; ``close`` then leaves it open. ``sender`` replaces the worker's
    sender (tests and benchmarks record sends). Nothing is left open if a part fails.
    """
    clock = _clock(settings.clock)
    eng = engine if engine is not None else database.create_engine(settings.database_url)
    try:
        system = _core(settings, eng, clock, owns_engine=engine is None)
        if settings.upgrade:
            system.schema_changes = system.upgrade()
        if settings.clock == "manual":
            _keep_manual_clock(system)
        _add_workers(system, sender)
        _add_mailer(system)
        _add_listener(system)
    except BaseException:
        if engine is None:
            eng.dispose()
        raise
    return system


def _clock(setting: ClockSetting) -> Clock:
    if setting == "system":
        return SystemClock()
    if setting == "manual":
        return ManualClock(SystemClock().now())
    if isinstance(setting, str):
        raise ValueError(f"clock must be 'system', 'manual' or a Clock, not {setting!r}")
    return setting


def _keep_manual_clock(system: System) -> None:
    """A manual clock (started at wall time) starts no earlier than where the last run on this
    database left it, and saves each move: a restart never goes back behind written data."""
    clock = system.manual_clock
    if clock is None:
        return
    saved = clock_state.load(system.store)
    if saved is not None and saved > clock.now():
        clock.set(saved)
    store = system.store
    clock.on_move = lambda now: clock_state.save(store, now)


def _core(settings: Settings, eng: database.Engine, clock: Clock, owns_engine: bool) -> System:
    reg = registry.default_registry()
    store = records.Store(eng, reg, clock, event_retention=settings.event_retention)
    session_clock = settings.session_clock or SystemClock()
    org = Org(
        store,
        actions=actions.Actions(store, settings.runtime),
        session_clock=session_clock,
        api_request_limit=settings.api_request_limit,
    )
    org.accounts.max_attempts = settings.login_max_attempts
    org.accounts.lockout = settings.login_lockout
    manual = clock if isinstance(clock, ManualClock) else None
    return System(settings, eng, store, org, manual, owns_engine=owns_engine)


def _add_workers(system: System, sender: Sender | None) -> None:
    settings = system.settings
    if settings.tracking:
        system.tracker = tracking.Tracker(system.store, _tracking_secret(system))
    if not settings.worker:
        return
    if sender is None and settings.relay is not None:
        sender = system.smtp = _smtp(system, settings.relay)
    elif sender is None:  # recorded as sent (checked, rendered, logged), nothing leaves
        sender = no_relay.NoRelaySender(system.store)
    system.worker = Worker(system.store, sender, settings.runtime)
    system.bulk = bulk_runner.Runner(system.org)
    system.worker.tasks.append(system.bulk.run_once)
    bulk_jobs.on_ready(system.store, system.worker.wake)


def _tracking_secret(system: System) -> bytes:
    """Signs open/click links: the tracker checks what the sender's links carry."""
    return system.org.accounts.secret("tracking")


def _smtp(system: System, relay: SmtpRelay) -> smtp_sender.SmtpSender:
    smtp = smtp_sender.SmtpSender(system.store, _smtp_config(system, relay))
    smtp.reconcile()  # sends interrupted by a crash are finished or counted before new work
    return smtp


def _add_mailer(system: System) -> None:
    """The sender of reps' own emails (the web app's Send Email on a manual step): an SmtpSender
    of its own on the same relay and outbox (the worker's is the worker thread's), or, without
    a relay, recorded as sent."""
    relay = system.settings.relay
    if relay is None:
        system.org.mailer = no_relay.NoRelaySender(system.store)
    else:
        system.org.mailer = smtp_sender.SmtpSender(system.store, _smtp_config(system, relay))


def _smtp_config(system: System, relay: SmtpRelay) -> smtp_sender.SmtpConfig:
    return smtp_sender.config_from_options(
        relay.address,
        user=relay.user,
        password=relay.password,
        tls=relay.tls,
        public_url=relay.public_url,
        tracking_secret=_tracking_secret(system) if relay.public_url else None,
    )


def _add_listener(system: System) -> None:
    port = system.settings.inbound_smtp_port
    if not port:
        return
    listener = inbound.InboundListener(
        system.store, host=system.settings.inbound_smtp_host, port=port
    )
    listener.start()
    system.listener = listener
