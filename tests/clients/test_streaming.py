"""Change events over CometD to an unmodified aiosfstream-ng client, on a plain-HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiosfstream_ng import Client, ReplayOption
from aiosfstream_ng.auth import AuthenticatorBase

from opencadence.api import app as api_app
from opencadence.api import server as api_server
from opencadence.org import Org
from opencadence.storage import records, wakeup

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


@pytest.fixture(params=[False, True], ids=["memory", "shared"])
def http_server(
    store: records.Store, request: pytest.FixtureRequest
) -> Iterator[tuple[Org, str, str]]:
    """The server with its CometD clients in memory, and shared in the database (as each
    child of ``serve --processes N`` keeps them)."""
    if request.param and store.engine.dialect.name == "sqlite":
        # shared clients serve `serve --processes N`, which runs on PostgreSQL only (their
        # storage is tested on both databases in tests/integration/storage/test_cometd_clients.py)
        pytest.skip("shared CometD clients: PostgreSQL only, as serve --processes N")
    org = Org(store)
    user_id, _ = org.accounts.create_user("stream@oc.test", "pw", admin=True)
    token = org.accounts.open_session(user_id)
    port = free_port()
    app = api_app.build_app(org, streaming_timeout=2.0, shared_streaming=request.param)
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
    schema = got[0]["data"]["schema"]  # a schema id the event schema resource serves
    import requests

    served = requests.get(
        f"{url}/services/data/v59.0/event/eventSchema/{schema}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert served.status_code == 200 and served.json()["uuid"] == schema
    assert served.json()["name"] == "ContactChangeEvent"
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


class RenewingAuth(AuthenticatorBase):
    """Logs in afresh on every authenticate() (as a password or refresh-token flow does)."""

    def __init__(self, org: Org, user_id: str, instance_url: str) -> None:
        super().__init__()
        self._org, self._user, self._url = org, user_id, instance_url
        self.tokens: list[str] = []

    async def _authenticate(self) -> tuple[int, dict[str, Any]]:
        token = await asyncio.to_thread(self._org.accounts.open_session, self._user)
        self.tokens.append(token)
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "instance_url": self._url,
            "id": "local",
            "issued_at": "0",
            "signature": "local",
        }


def test_a_subscriber_survives_its_session_ending(http_server: tuple[Org, str, str]) -> None:
    """The 401 of an ended session comes back on the connect's own channel and id, so the
    unmodified client re-authenticates and carries on from where it was: no gap, no repeat."""
    org, token, url = http_server
    user = org.accounts.session(token).user_id
    auth = RenewingAuth(org, user, url)

    async def run() -> list[str]:
        names: list[str] = []
        async with Client(auth, replay=ReplayOption.NEW_EVENTS) as client:
            await client.subscribe("/data/ContactChangeEvent")
            await asyncio.to_thread(_contact, org.store, "First")
            async for message in client:
                names.append(message["data"]["payload"]["LastName"])
                if len(names) == 1:  # the session ends while the client waits
                    await asyncio.to_thread(org.accounts.revoke, auth.tokens[-1])
                    await asyncio.to_thread(_contact, org.store, "Second")
                    await asyncio.to_thread(_contact, org.store, "Third")
                if len(names) == 3:
                    break
        return names

    assert asyncio.run(asyncio.wait_for(run(), 60)) == ["First", "Second", "Third"]
    assert len(auth.tokens) >= 2  # it logged in again


def test_an_ended_session_is_answered_on_each_request_s_channel_and_id(
    http_server: tuple[Org, str, str],
) -> None:
    import requests

    _org, _token, url = http_server
    body = [
        {"channel": "/meta/connect", "clientId": "x", "id": "7", "connectionType": "long-polling"},
        {"channel": "/meta/subscribe", "clientId": "x", "id": 8, "subscription": "/data/X"},
    ]
    r = requests.post(
        f"{url}/cometd/59.0", json=body, headers={"Authorization": "Bearer 00D!gone"}, timeout=10
    )
    assert r.status_code == 401
    assert r.json() == [
        {
            "channel": "/meta/connect",
            "successful": False,
            "error": "401::Authentication invalid",
            "advice": {"reconnect": "handshake", "interval": 0},
            "id": "7",
        },
        {
            "channel": "/meta/subscribe",
            "successful": False,
            "error": "401::Authentication invalid",
            "advice": {"reconnect": "handshake", "interval": 0},
            "id": 8,
        },
    ]
    big = requests.post(
        f"{url}/cometd/59.0",
        data=b"[" + b" " * 100_000 + b"]",
        headers={"Authorization": "Bearer 00D!gone", "Content-Type": "application/json"},
        timeout=10,
    )
    assert big.status_code == 401 and big.json()[0]["channel"] == "/meta/handshake"


def test_the_watcher_stops_with_the_server(store: records.Store) -> None:
    """CometD waits on the process's one beacon (shared with the Pub/Sub API); when the
    server's loop ends it lets go, so the watcher (and on PostgreSQL its LISTEN connection)
    does not outlive the server."""
    org = Org(store)
    user_id, _ = org.accounts.create_user("stream-stop@oc.test", "pw", admin=True)
    token = org.accounts.open_session(user_id)
    port = free_port()
    app = api_app.build_app(org, streaming_timeout=0.5)
    config = api_server.config(app, host="127.0.0.1", port=port, tls_files=None, log_level="error")
    beacon = wakeup.Beacon.of(store)
    with serving(config), requests.Session() as http:
        http.trust_env = False
        url = f"http://127.0.0.1:{port}/cometd/59.0"
        headers = {"Authorization": f"Bearer {token}"}

        def post(**msg: Any) -> list[dict[str, Any]]:
            reply = http.post(url, json=[msg], headers=headers, timeout=10)
            assert reply.status_code == 200, reply.text
            return reply.json()  # type: ignore[no-any-return]

        cid = post(channel="/meta/handshake")[0]["clientId"]
        post(channel="/meta/subscribe", clientId=cid, subscription="/data/ContactChangeEvent")
        post(channel="/meta/connect", clientId=cid)
        assert post(channel="/meta/connect", clientId=cid)[-1]["successful"]  # held 0.5 s
        assert beacon.running  # a connect was held: CometD is a user
    assert not beacon.running
