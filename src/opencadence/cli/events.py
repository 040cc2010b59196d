"""``events tail``: the change events of the log, printed as JSON lines as they are committed.

It reads the log directly (as the system: every event, whoever may see its record), from the
replay id ``--replay`` says, then waits on the same wake-ups as the CometD and Pub/Sub
subscribers (``storage.wakeup``: NOTIFY on PostgreSQL within milliseconds, a SQLite file's
stat within about a second) and runs no query while nothing is committed. Each line is the
``data`` of a CometD message with its channel: ``{"channel", "data": {"schema", "event":
{"replayId"}, "payload"}}``. Ctrl-C (or SIGTERM) stops it with exit status 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, TextIO

from opencadence import system
from opencadence.cli import common
from opencadence.metadata import event_schema, registry
from opencadence.storage import events, records, wakeup

ALL = "/data/ChangeEvents"
#: Events read per query while catching up.
BATCH = 500


class Problem(Exception):
    """A channel or replay id that cannot be tailed; the message names the channel."""


def entity_of(reg: registry.Registry, channel: str) -> str | None:
    """The object of ``channel`` (None: every object); Problem when it is no change event
    channel (the words of CometD's 404)."""
    if channel == ALL:
        return None
    obj = (
        event_schema.by_event_name(reg, channel[len("/data/") :])
        if channel.startswith("/data/")
        else None
    )
    if obj is None:
        raise Problem(
            f"The channel {channel} does not exist: use {ALL} or /data/<Object>ChangeEvent"
        )
    return obj.name


def parse_replay(text: str, channel: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise Problem(_bad_replay(text, channel)) from None


def start_after(store: records.Store, replay: int, channel: str) -> int:
    """The replay id to read after: -1 new events only, -2 every retained one, else an id
    of the retention window (or the one before it)."""
    with store.reading() as conn:
        lo, hi = events.replay_bounds(conn, store.meta)
    newest = int(hi or 0)
    if replay == -1:
        return newest
    if replay == -2:
        return int(lo) - 1 if lo is not None else newest
    if replay >= 0 and (lo is None or int(lo) - 1 <= replay <= newest):
        return replay
    raise Problem(_bad_replay(str(replay), channel))


def _bad_replay(replay: str, channel: str) -> str:
    return (
        f"The replayId {{{replay}}} you provided for channel {channel} was invalid. Please "
        "provide a valid ID, -2 to replay all events, or -1 to replay only new events."
    )


class _Stop:
    """Set by Ctrl-C / SIGTERM; wakes the waiting loop."""

    def __init__(self) -> None:
        self.asked = False
        self.changed = threading.Condition()

    def poke(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True  # no lock here: a signal handler may interrupt its holder


def tail(
    store: records.Store, channel: str, after: int, out: TextIO, stop: _Stop, entity: str | None
) -> None:
    """Print the events after ``after`` as they arrive, until ``stop`` is asked."""
    beacon = wakeup.Beacon.of(store).start()
    beacon.listen(stop.poke)
    try:
        cursor = after
        while not stop.asked:
            with store.reading() as conn:
                found, cursor = events.read_visible(
                    conn,
                    store.meta,
                    after=cursor,
                    entities=None if entity is None else [entity],
                    viewer=None,
                    limit=BATCH,
                )
            for ev in found:
                out.write(json.dumps(_message(store, channel, ev), default=str) + "\n")
            out.flush()
            if len(found) == BATCH or cursor < beacon.newest:  # more to read at once
                continue
            with stop.changed:  # a short timeout only so a signal is looked at: no query
                while not stop.asked and beacon.newest <= cursor:
                    stop.changed.wait(0.2)
    finally:
        beacon.unlisten(stop.poke)
        beacon.stop()


def _message(store: records.Store, channel: str, ev: dict[str, Any]) -> dict[str, Any]:
    obj = store.registry.object(ev["payload"]["ChangeEventHeader"]["entityName"])
    return {"channel": channel, "data": {"schema": event_schema.schema_id(obj), **ev}}


def cmd_tail(args: argparse.Namespace) -> int:
    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    settings = system.Settings(database_url=common.database_url(args), worker=False)
    try:
        with system.build(settings) as built:
            entity = entity_of(built.store.registry, args.channel)
            after = start_after(built.store, parse_replay(args.replay, args.channel), args.channel)
            tail(built.store, args.channel, after, sys.stdout, stop, entity)
    except Problem as exc:
        print(f"opencadence events tail: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left (| head): stop quietly, as tail does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def register(subparsers: Any) -> None:
    """Add ``events tail`` to the ``opencadence`` command."""
    group = subparsers.add_parser(
        "events", help="follow the change events", description="follow the change events"
    )
    inner = group.add_subparsers(dest="events_command", required=True)
    p = inner.add_parser(
        "tail",
        help="print change events as JSON lines as they are committed (Ctrl-C stops)",
        description="print change events as JSON lines as they are committed (Ctrl-C stops)",
    )
    p.add_argument(
        "--channel",
        default=ALL,
        help=f"{ALL} (default) or /data/<Object>ChangeEvent, e.g. /data/ContactChangeEvent",
    )
    p.add_argument(
        "--replay",
        default="-1",
        help="-1 only new events (default), -2 every retained event, or a replay id to start after",
    )
    common.add_database(p)
    p.set_defaults(handler=cmd_tail)
