"""Fuzz: SOQL text, REST JSON bodies, SOAP login envelopes and CometD messages never cause a
5xx (a SOAP fault excepted, which SOAP 1.1 sends as HTTP 500 XML), and a refused request
changes nothing (the change-event log, which every record write appends to, stays put).

Driven with Hypothesis against the ASGI app (Starlette's TestClient), on both databases.
Bounded: a few dozen examples per protocol, derandomized under CI, so it runs in seconds.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencadence.api import app as api_app
from opencadence.org import Org
from opencadence.storage import events, records

with warnings.catch_warnings():  # starlette's notice about its httpx transport
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

V = "/services/data/v59.0"
CI = os.environ.get("CI") == "true"
FUZZ = settings(
    max_examples=30 if CI else 60,
    deadline=None,
    database=None,
    derandomize=CI,
    suppress_health_check=list(HealthCheck),
)


class Harness:
    def __init__(self, store: records.Store) -> None:
        self.org = Org(store)
        user_id, self.security_token = self.org.accounts.create_user(
            "fuzz@oc.test", "pw", admin=True
        )
        self.headers = {"Authorization": f"Bearer {self.org.accounts.open_session(user_id)}"}
        self.contact = self.org.create(
            self.org.accounts.session(self.headers["Authorization"][7:]),
            "Contact",
            {"LastName": "Fuzz"},
            "59.0",
        )
        app = api_app.build_app(self.org, streaming_timeout=0.01)
        self.client = TestClient(app, raise_server_exceptions=False)
        self.failures: list[str] = []

    def last_event(self) -> int | None:
        with self.org.store.reading() as conn:
            return events.replay_bounds(conn, self.org.store.meta)[1]

    def check(self, what: str, send: Callable[[], Any], soap: bool = False) -> None:
        before = self.last_event()
        r = send()
        if r.status_code >= 500:
            fault = soap and r.headers.get("content-type", "").startswith("text/xml")
            if not (fault and "<soapenv:Fault>" in r.text):
                self.failures.append(f"{what}: {r.status_code} {r.text[:200]}")
        if r.status_code >= 400 and self.last_event() != before:
            self.failures.append(f"{what}: refused ({r.status_code}) but changed the org")


@pytest.fixture
def harness(store: records.Store) -> Iterator[Harness]:
    h = Harness(store)
    with h.client:
        yield h
    assert h.failures == []


# --- strategies ---------------------------------------------------------------------------

_OBJECTS = ["Contact", "Lead", "Task", "Opportunity", "User", "EmailTemplate", "Nope"]
_FIELDS = [
    "Id",
    "LastName",
    "Name",
    "CreatedDate",
    "ActivityDate",
    "Amount",
    "Probability",
    "CallDurationInSeconds",
    "IsActive",
    "Email",
    "Subject",
    "EmailBouncedDate",
    "OwnerId",
]
_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**80).map(str),
    st.just("9" * 5000),
    st.floats().map(repr),
    st.sampled_from(["1e400", "-0", ".5", "1."]),
)
_LITERALS = st.one_of(
    _NUMBERS.map(str),
    st.text(max_size=12).map(lambda t: "'" + t.replace("\\", "\\\\").replace("'", "\\'") + "'"),
    st.sampled_from(
        [
            "TODAY",
            "LAST_N_DAYS:99999999999999999999",
            "NEXT_N_DAYS:3",
            "NULL",
            "2020-01-01",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-14:00",
            "2020-02-30T00:00:00Z",
            "2020-01-01T00:00:00+25:00",
            "TRUE",
            "'\\u0000'",
            "'\\uD800'",
            "USD5",
        ]
    ),
)
_OPS = st.sampled_from(["=", "!=", "<", ">", "<=", ">=", "LIKE", "IN", "NOT IN", "INCLUDES"])


@st.composite
def soql(draw: st.DrawFn) -> str:
    fields = ", ".join(draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3)))
    text = f"SELECT {fields} FROM {draw(st.sampled_from(_OBJECTS))}"
    if draw(st.integers(0, 3)):  # mostly with a WHERE clause
        depth = draw(st.sampled_from([0, 1, 3, 150, 1000]))
        field, op, value = draw(st.sampled_from(_FIELDS)), draw(_OPS), draw(_LITERALS)
        if op.endswith("IN"):
            value = f"({value})"
        text += f" WHERE {'(' * depth}{field} {op} {value}{')' * depth}"
    if draw(st.booleans()):
        text += f" LIMIT {draw(_NUMBERS)}"
    return text


_RAW_SOQL = st.one_of(
    soql(),
    soql(),
    soql(),
    st.text(
        alphabet=st.sampled_from(list("SELECT FROMWHERId(),'\\:=<>.0129_ \x00\ud800")), max_size=60
    ),
)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(
            ["2020-01-01", "0001-01-01T00:00:00+01:00", "Infinity", "NaN", "1e400", "a\x00b"]
        ),
    )
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@st.composite
def rest_body(draw: st.DrawFn) -> bytes:
    keys = st.one_of(
        st.sampled_from(_FIELDS + ["StageName", "CloseDate", "FirstName"]), st.text(max_size=8)
    )
    record = draw(st.dictionaries(keys, _json_values(), max_size=4))
    text = json.dumps(record)
    # what json.dumps never writes, spliced in: non-JSON constants, huge numbers, nesting,
    # lone surrogate escapes, truncation
    splice = draw(
        st.sampled_from(
            [
                "",
                "Infinity",
                "-Infinity",
                "NaN",
                "1" + "0" * 5000,
                "[" * 1000 + "]" * 1000,
                '"\\ud800"',
                '"\\u0000"',
            ]
        )
    )
    if splice and text != "{}":
        text = text[:-1] + f', "Amount": {splice}}}'
    if draw(st.booleans()) and len(text) > 2:
        text = text[: draw(st.integers(1, len(text) - 1))]
    return text.encode("utf-8", "surrogatepass")


@st.composite
def soap_envelope(draw: st.DrawFn) -> bytes:
    username, password = draw(st.text(max_size=20)), draw(st.text(max_size=20))
    head = draw(
        st.sampled_from(
            [
                "",
                '<?xml version="1.0"?>',
                '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>',
                "<!DOCTYPE x SYSTEM 'http://127.0.0.1:9/x'>",
            ]
        )
    )
    body = (
        f'{head}<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>'
        f'<n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{escape(username)}'
        f"</n1:username><n1:password>{escape(password)}</n1:password></n1:login></env:Body>"
        "</env:Envelope>"
    ).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    return body + draw(st.binary(max_size=8))


_CHANNELS = st.sampled_from(
    [
        "/meta/handshake",
        "/meta/subscribe",
        "/meta/subscribe",
        "/meta/subscribe",
        "/meta/connect",
        "/meta/unsubscribe",
        "/meta/disconnect",
        "/data/ChangeEvents",
        "/nope",
        "",
    ]
)


@st.composite
def cometd_messages(draw: st.DrawFn, client_id: str) -> Any:
    message = {
        "channel": draw(st.one_of(_CHANNELS, _CHANNELS, _CHANNELS, _json_values())),
        "clientId": draw(st.one_of(st.just(client_id), st.just(client_id), _json_values())),
        "subscription": draw(
            st.one_of(
                st.sampled_from(["/data/ChangeEvents", "/data/ContactChangeEvent", "/x"]),
                _json_values(),
            )
        ),
        "ext": draw(
            st.one_of(
                _json_values(),
                st.fixed_dictionaries(
                    {
                        "replay": st.one_of(
                            _json_values(),
                            st.dictionaries(st.just("/data/ChangeEvents"), _json_values()),
                        )
                    }
                ),
            )
        ),
        "id": draw(_json_values()),
    }
    drop = draw(st.lists(st.sampled_from(sorted(message)), unique=True, max_size=2))
    one = {k: v for k, v in message.items() if k not in drop}
    return draw(st.sampled_from([[one], [one], one, [one, one], 5, "x", [1, None]]))


# --- properties ---------------------------------------------------------------------------


def test_fuzz_soql(harness: Harness) -> None:
    @FUZZ
    @given(text=_RAW_SOQL, all_rows=st.booleans())
    def run(text: str, all_rows: bool) -> None:
        path = f"{V}/queryAll" if all_rows else f"{V}/query"
        harness.check(
            f"SOQL {text[:120]!r}",
            lambda: harness.client.get(
                path,
                params={"q": text.encode("utf-8", "replace").decode()},
                headers=harness.headers,
            ),
        )

    run()


def test_fuzz_rest_bodies(harness: Harness) -> None:
    @FUZZ
    @given(body=rest_body(), name=st.sampled_from(_OBJECTS), patch=st.booleans())
    def run(body: bytes, name: str, patch: bool) -> None:
        headers = harness.headers | {"Content-Type": "application/json"}
        if patch:
            harness.check(
                f"PATCH Contact {body[:120]!r}",
                lambda: harness.client.patch(
                    f"{V}/sobjects/Contact/{harness.contact}", content=body, headers=headers
                ),
            )
        else:
            harness.check(
                f"POST {name} {body[:120]!r}",
                lambda: harness.client.post(f"{V}/sobjects/{name}/", content=body, headers=headers),
            )

    run()


def test_fuzz_soap_login(harness: Harness) -> None:
    @FUZZ
    @given(body=soap_envelope())
    def run(body: bytes) -> None:
        harness.check(
            f"SOAP {body[:120]!r}",
            lambda: harness.client.post(
                "/services/Soap/u/59.0",
                content=body,
                headers={"Content-Type": "text/xml", "SOAPAction": "login"},
            ),
            soap=True,
        )

    run()


def test_fuzz_cometd(harness: Harness) -> None:
    hs = harness.client.post(
        "/cometd/59.0", json=[{"channel": "/meta/handshake"}], headers=harness.headers
    )
    client_id = hs.json()[0]["clientId"]

    @FUZZ
    @given(messages=cometd_messages(client_id))
    def run(messages: Any) -> None:
        harness.check(
            f"CometD {json.dumps(messages)[:160]}",
            lambda: harness.client.post("/cometd/59.0", json=messages, headers=harness.headers),
        )

    run()
