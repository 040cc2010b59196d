"""Change-event streaming over CometD (Bayeux long-polling), as Salesforce's Streaming API.

``POST /cometd/{version}`` takes a JSON array of Bayeux messages: ``/meta/handshake``
(``supportedConnectionTypes: ["long-polling"]``, ``ext: {replay: true, payload.format: true}``),
``/meta/subscribe`` to ``/data/ChangeEvents`` or ``/data/<Object>ChangeEvent`` with
``ext.replay {channel: -1 | -2 | replayId}``, ``/meta/connect`` (held until events arrive or the
advice timeout passes), ``/meta/unsubscribe``, ``/meta/disconnect``. Every request needs the
bearer token. Events come from the change-event log, whose replay ids follow commit order, so
resuming after a replay id never skips an event. Clients live in this process's memory; an
unknown client id gets ``403::Unknown client`` and re-handshakes, as with Salesforce.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencadence import errors
from opencadence.api import bodies
from opencadence.api.rest import json_response, session_of
from opencadence.org import Org
from opencadence.storage import events

#: How long /meta/connect is held when nothing arrives (Salesforce: 110 s).
CONNECT_TIMEOUT = 110.0
POLL_SECONDS = 0.2
ALL = "/data/ChangeEvents"
_ADVICE = {"interval": 0, "timeout": int(CONNECT_TIMEOUT * 1000), "reconnect": "retry"}


@dataclass
class Client:
    user_id: str
    subscriptions: dict[str, int] = field(default_factory=dict)  # channel -> last replay id sent
    connected: bool = False  # Bayeux: the first /meta/connect is answered at once


class Streaming:
    """The Bayeux endpoint's state: clients and their cursors."""

    def __init__(self, org: Org, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.org = org
        self.timeout = connect_timeout
        self.clients: dict[str, Client] = {}

    # --- meta channels ------------------------------------------------------------------------

    def handshake(self, msg: dict[str, Any], user_id: str) -> dict[str, Any]:
        client_id = secrets.token_urlsafe(18)
        self.clients[client_id] = Client(user_id)
        return {
            "channel": "/meta/handshake",
            "version": "1.0",
            "minimumVersion": "1.0",
            "clientId": client_id,
            "supportedConnectionTypes": ["long-polling"],
            "successful": True,
            "ext": {"replay": True, "payload.format": True},
            "advice": _ADVICE,
            **_id(msg),
        }

    def subscribe(self, msg: dict[str, Any], client: Client) -> dict[str, Any]:
        channel = str(msg.get("subscription", ""))
        base = {
            "channel": "/meta/subscribe",
            "clientId": msg.get("clientId"),
            "subscription": channel,
            **_id(msg),
        }
        entity = self._entity(channel)
        if entity is False:
            return {
                **base,
                "successful": False,
                "error": f"404::The channel {channel} does not exist",
            }
        replay = _object(_object(msg.get("ext")).get("replay")).get(channel, -1)
        cursor = self._cursor(replay)
        if cursor is None:
            return {
                **base,
                "successful": False,
                "error": (
                    f"400::The replayId {{{replay}}} you provided was invalid.  Please provide a valid ID, "
                    "-2 to replay all events, or -1 to replay only new events."
                ),
            }
        client.subscriptions[channel] = cursor
        return {**base, "successful": True}

    def _entity(self, channel: str) -> str | None | bool:
        """None for all change events, the object name for one, False for no such channel."""
        if channel == ALL:
            return None
        if channel.startswith("/data/") and channel.endswith("ChangeEvent"):
            obj = self.org.registry.get(channel[len("/data/") : -len("ChangeEvent")])
            if obj is not None and obj.change_events:
                return obj.name
        return False

    def _cursor(self, replay: Any) -> int | None:
        with self.org.store.reading() as conn:
            lo, hi = events.replay_bounds(conn, self.org.store.meta)
        if replay == -1:
            return int(hi or 0)
        if replay == -2:
            return int(lo or 1) - 1
        if (
            isinstance(replay, int)
            and not isinstance(replay, bool)
            and (lo is None or lo - 1 <= replay <= (hi or 0))
        ):
            return replay
        return None

    def events_for(self, client: Client) -> list[dict[str, Any]]:
        """Events past each subscription's cursor (cursors advance)."""
        out: list[dict[str, Any]] = []
        with self.org.store.reading() as conn:
            for channel, cursor in list(client.subscriptions.items()):
                entity = self._entity(channel)
                found = events.read(
                    conn,
                    self.org.store.meta,
                    after=cursor,
                    entity=entity if isinstance(entity, str) else None,
                    limit=500,
                )
                for ev in found:
                    name = ev["payload"]["ChangeEventHeader"]["entityName"]
                    out.append({"channel": channel, "data": {"schema": f"{name}ChangeEvent", **ev}})
                if found:
                    client.subscriptions[channel] = found[-1]["event"]["replayId"]
        return out


def _object(value: Any) -> dict[str, Any]:
    """A Bayeux field that should be an object (``ext``, ``ext.replay``); anything else
    (a number, a list, a string) counts as absent, as CometD servers ignore it."""
    return value if isinstance(value, dict) else {}


def _id(msg: dict[str, Any]) -> dict[str, Any]:
    return {"id": msg["id"]} if "id" in msg else {}


def _unknown(msg: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": msg.get("channel"),
        "successful": False,
        "error": "403::Unknown client",
        "advice": {"reconnect": "handshake", "interval": 0},
        **_id(msg),
    }


async def endpoint(request: Request) -> Response:
    streaming: Streaming = request.app.state.streaming
    org: Org = request.app.state.org
    try:
        session = await run_in_threadpool(session_of, request, org)
    except errors.InvalidSession:
        return json_response(
            [
                {
                    "channel": "/meta/handshake",
                    "successful": False,
                    "error": "401::Authentication invalid",
                    "advice": {"reconnect": "none"},
                }
            ],
            401,
        )
    try:
        messages = bodies.parse_json(await bodies.read(request, bodies.COMETD_MAX))
    except errors.RequestTooLarge as exc:
        return json_response([{"successful": False, "error": f"413::{exc.message}"}], 413)
    except errors.JsonParserError:
        return json_response([{"successful": False, "error": "400::invalid JSON"}], 400)
    if isinstance(messages, dict):
        messages = [messages]
    replies: list[dict[str, Any]] = []
    for msg in messages if isinstance(messages, list) else []:
        replies += await _handle(streaming, msg if isinstance(msg, dict) else {}, session.user_id)
    return json_response(replies)


async def _handle(streaming: Streaming, msg: dict[str, Any], user_id: str) -> list[dict[str, Any]]:
    channel = msg.get("channel")
    if channel == "/meta/handshake":
        return [streaming.handshake(msg, user_id)]
    client = streaming.clients.get(str(msg.get("clientId")))
    if client is None or client.user_id != user_id:
        return [_unknown(msg)]
    if channel == "/meta/subscribe":
        return [await run_in_threadpool(streaming.subscribe, msg, client)]
    if channel == "/meta/unsubscribe":
        client.subscriptions.pop(str(msg.get("subscription")), None)
        return [
            {
                "channel": channel,
                "clientId": msg.get("clientId"),
                "subscription": msg.get("subscription"),
                "successful": True,
                **_id(msg),
            }
        ]
    if channel == "/meta/disconnect":
        streaming.clients.pop(str(msg.get("clientId")), None)
        return [
            {"channel": channel, "clientId": msg.get("clientId"), "successful": True, **_id(msg)}
        ]
    if channel == "/meta/connect":
        found = await _wait_for_events(streaming, client) if client.connected else []
        client.connected = True
        return found + [
            {
                "channel": channel,
                "clientId": msg.get("clientId"),
                "successful": True,
                "advice": _ADVICE,
                **_id(msg),
            }
        ]
    return [
        {
            "channel": channel,
            "successful": False,
            "error": f"400::Unsupported channel {channel}",
            **_id(msg),
        }
    ]


async def _wait_for_events(streaming: Streaming, client: Client) -> list[dict[str, Any]]:
    deadline = time.monotonic() + streaming.timeout
    while True:
        found = await run_in_threadpool(streaming.events_for, client)
        gone = client not in streaming.clients.values()  # disconnected meanwhile
        if found or gone or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(POLL_SECONDS)


def routes() -> list[Route]:
    return [
        Route("/cometd/{version}", endpoint, methods=["POST"]),
        Route("/cometd/{version}/", endpoint, methods=["POST"]),
    ]
