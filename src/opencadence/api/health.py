"""``GET /_opencadence/health``: what a supervisor polls to know the server can do its work.

JSON with the database's reachability, each cadence worker this server runs (its thread
alive, its last heartbeat, failures since), every worker process on the database
(``workerProcesses``: the heartbeat rows of ``storage.heartbeats``, this server's own thread and
each ``opencadence worker`` process, wherever it runs) and how many emails a crash left with an unknown
outcome (see README, "Email delivery guarantee"); 200 when all is well, 503 when the database does
not answer or a worker is dead or silent. Unauthenticated on purpose (a load balancer or
systemd probe has no session), so it says nothing about the org's data.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence.api.rest import json_response
from opencadence.cadence.worker import Heartbeat
from opencadence.clock import SystemClock
from opencadence.storage import database, heartbeats, mail, records, values

#: A live worker beats after every batch and every idle poll; silence this long means stuck.
SILENT_SECONDS = 120.0


@dataclass
class Monitored:
    """One worker loop the server runs in a thread."""

    name: str
    heartbeat: Heartbeat
    thread: threading.Thread


@dataclass
class Health:
    store: records.Store
    workers: list[Monitored] = field(default_factory=list)

    def watch(self, name: str, heartbeat: Heartbeat, thread: threading.Thread) -> None:
        self.workers.append(Monitored(name, heartbeat, thread))

    def report(self) -> tuple[dict[str, Any], bool]:
        """The health document and whether everything is healthy."""
        problem = database.ping(self.store.engine)
        now = SystemClock().now()
        workers = [_worker(w, now) for w in self.workers]
        healthy = problem is None and all(w["healthy"] for w in workers)
        doc: dict[str, Any] = {
            "status": "ok" if healthy else "unhealthy",
            "pid": os.getpid(),  # which process answered (serve --processes N runs several)
            "database": {"reachable": problem is None, "error": problem},
            "workers": workers,
        }
        if problem is None:
            doc["workerProcesses"] = self._processes(now)
            doc["email"] = {"unknownOutcomeSends": self._unknown_sends()}
        return doc, healthy

    def _processes(self, now: datetime) -> list[dict[str, Any]] | None:
        """The worker loops of every process on the database, by their heartbeat rows. Their
        silence does not make this server unhealthy (each has its own supervisor); ``alive``
        says whether the row beat within SILENT_SECONDS."""
        try:
            rows = heartbeats.Heartbeats(self.store).all()
        except Exception:  # the database went away between the ping and this read
            return None
        return [_process(b, now) for b in rows]

    def _unknown_sends(self) -> int | None:
        """Emails a crash left in doubt (resent with their Message-ID, or only reported)."""
        try:
            with self.store.reading() as conn:
                return len(mail.event_log(self.store.meta).keys_of_kind(conn, mail.UNKNOWN_EVENT))
        except Exception:  # the database went away between the ping and this read
            return None


def _worker(w: Monitored, now: datetime) -> dict[str, Any]:
    beat = w.heartbeat.last_beat
    silent = None if beat is None else (now - beat).total_seconds()
    alive = w.thread.is_alive()
    # a worker that never finished a batch yet is healthy only while young enough
    healthy = alive and (silent is None or silent < SILENT_SECONDS) and w.heartbeat.failures == 0
    return {
        "name": w.name,
        "alive": alive,
        "healthy": healthy,
        "lastHeartbeat": None if beat is None else values.format_datetime(beat),
        "secondsSinceHeartbeat": None if silent is None else round(silent, 3),
        "failuresSinceHeartbeat": w.heartbeat.failures,
        "lastError": w.heartbeat.last_error,
    }


def _process(b: heartbeats.Beat, now: datetime) -> dict[str, Any]:
    silent = (now.replace(tzinfo=None) - b.beat_at).total_seconds()
    return {
        "id": b.id,
        "role": b.role,
        "host": b.host,
        "pid": b.pid,
        "alive": silent < SILENT_SECONDS,
        "startedAt": values.format_datetime(b.started_at),
        "lastHeartbeat": values.format_datetime(b.beat_at),
        "secondsSinceHeartbeat": round(silent, 3),
        "failuresSinceHeartbeat": b.failures,
        "lastError": b.last_error,
        "transitions": b.transitions,
    }


def route(health: Health) -> Route:
    async def get(request: Request) -> Response:
        doc, healthy = await run_in_threadpool(health.report)
        return json_response(doc, 200 if healthy else 503)

    return Route("/_opencadence/health", get, methods=["GET"])
