"""Change events over CometD to an unmodified aiosfstream-ng client, on a plain-HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiosfstream_ng import Client, ReplayOption
from aiosfstream_ng.auth import AuthenticatorBase

from opencadence.api import app as api_app
from opencadence.api import server as api_server
from opencadence.org import Org
from opencadence.storage import records

from .conftest import free_port, serving


class LocalAuth(AuthenticatorBase):
    """Hands the client a token and a plain-http instance URL (the client code is untouched)."""

    def __init__(self, token: str, instance_url: str) -> None:
        super().__init__()
        self._token, self._url = token, instance_url

    async def _authenticate(self) -> tuple[int, dict[str, Any]]:
        return 200, {
            "access_token": self._token,
            "token_type": "Bearer",
            "instance_url": self._url,
            "id": "local",
            "issued_at": "0",
            "signature": "local",
        }


@pytest.fixture
def http_server(store: records.Store) -> Iterator[tuple[Org, str, str]]:
    org = Org(store)
    user_id, _ = org.accounts.create_user("stream@oc.test", "pw", admin=True)
    token = org.accounts.open_session(user_id)
    port = free_port()
    app = api_app.build_app(org, streaming_timeout=2.0)
    config = api_server.config(app, host="127.0.0.1", port=port, tls_files=None, log_level="error")
    with serving(config):
        yield org, token, f"http://127.0.0.1:{port}"


def _contact(store: records.Store, name: str) -> str:
    with store.transaction() as tx:
        return tx.insert("Contact", {"LastName": name})


async def _collect(
    token: str, url: str, channel: str, want: int, replay: Any
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with Client(LocalAuth(token, url), replay=replay) as client:
        await client.subscribe(channel)
        async for message in client:
            got.append(message)
            if len(got) >= want:
                break
    return got


def test_replay_all_then_new_events(http_server: tuple[Org, str, str]) -> None:
    org, token, url = http_server
    first = _contact(org.store, "Before")
    got = asyncio.run(
        asyncio.wait_for(
            _collect(token, url, "/data/ContactChangeEvent", 1, ReplayOption.ALL_EVENTS), 30
        )
    )
    header = got[0]["data"]["payload"]["ChangeEventHeader"]
    assert got[0]["channel"] == "/data/ContactChangeEvent"
    assert (
        header["entityName"] == "Contact"
        and header["changeType"] == "CREATE"
        and header["recordIds"] == [first]
    )
    assert (
        got[0]["data"]["payload"]["LastName"] == "Before"
        and got[0]["data"]["event"]["replayId"] >= 1
    )

    async def new_events() -> list[dict[str, Any]]:
        task = asyncio.create_task(
            _collect(token, url, "/data/ChangeEvents", 2, ReplayOption.NEW_EVENTS)
        )
        await asyncio.sleep(1.0)  # subscribed before the changes happen
        second = await asyncio.to_thread(_contact, org.store, "After")
        with org.store.transaction() as tx:
            tx.update("Contact", second, {"Title": "CEO"})
        return await task

    later = asyncio.run(asyncio.wait_for(new_events(), 30))
    kinds = [
        (
            m["data"]["payload"]["ChangeEventHeader"]["changeType"],
            m["data"]["payload"].get("LastName"),
        )
        for m in later
    ]
    assert kinds == [("CREATE", "After"), ("UPDATE", None)]
    replays = [m["data"]["event"]["replayId"] for m in later]
    assert replays == sorted(replays) and replays[0] > got[0]["data"]["event"]["replayId"]


def test_bayeux_errors(http_server: tuple[Org, str, str]) -> None:
    import requests

    org, token, url = http_server

    def post(body, tok=token):
        return requests.post(
            f"{url}/cometd/59.0",
            json=body,  # noqa: E731
            headers={"Authorization": f"Bearer {tok}"},
            timeout=10,
        )

    assert post([{"channel": "/meta/handshake"}], "00D!bad").status_code == 401
    shake = post([{"channel": "/meta/handshake", "id": "1"}]).json()[0]
    assert shake["successful"] and shake["supportedConnectionTypes"] == ["long-polling"]
    cid = shake["clientId"]
    bad_replay = post(
        [
            {
                "channel": "/meta/subscribe",
                "clientId": cid,
                "subscription": "/data/ContactChangeEvent",
                "ext": {"replay": {"/data/ContactChangeEvent": 999_999}},
            }
        ]
    ).json()[0]
    assert not bad_replay["successful"] and bad_replay["error"].startswith(
        "400::The replayId {999999} you provided was invalid"
    )
    no_channel = post(
        [{"channel": "/meta/subscribe", "clientId": cid, "subscription": "/data/RuleChangeEvent"}]
    ).json()[0]
    assert not no_channel["successful"] and no_channel["error"].startswith("404::")
    unknown = post([{"channel": "/meta/connect", "clientId": "nope"}]).json()[0]
    assert (
        unknown["error"] == "403::Unknown client" and unknown["advice"]["reconnect"] == "handshake"
    )
