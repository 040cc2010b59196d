"""``GET /_opencadence/health``: what a supervisor polls to know the server can do its work.

JSON with the database's reachability, each cadence worker this server runs (its thread
alive, its last heartbeat, failures since) and how many emails a crash left with an unknown
outcome (see README, "Email delivery guarantee"); 200 when all is well, 503 when the database does
not answer or a worker is dead or silent. Unauthenticated on purpose (a load balancer or
systemd probe has no session), so it says nothing about the org's data.
"""

from __future__ import annotations

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
from opencadence.storage import database, mail, records, values

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
            "database": {"reachable": problem is None, "error": problem},
            "workers": workers,
        }
        if problem is None:
            doc["email"] = {"unknownOutcomeSends": self._unknown_sends()}
        return doc, healthy

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


def route(health: Health) -> Route:
    async def get(request: Request) -> Response:
        doc, healthy = await run_in_threadpool(health.report)
        return json_response(doc, 200 if healthy else 503)

    return Route("/_opencadence/health", get, methods=["GET"])
