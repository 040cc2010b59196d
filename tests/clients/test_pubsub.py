"""The Pub/Sub API (gRPC) to a Python client built from the protocol: the generated stub over TLS
with the server's certificate, payloads decoded with fastavro and the schema from GetSchema."""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import grpc
import pytest
import sqlalchemy as sa

from opencadence.api import pubsub, tls
from opencadence.api.pubsub_proto import pubsub_api_pb2 as pb
from opencadence.api.pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from opencadence.cadence import actions, definition_file
from opencadence.org import Org
from opencadence.storage import database, events, migrate, records

from .conftest import free_port

KEEPALIVE = 0.5


@dataclass
class PubSubServer:
    org: Org
    port: int
    cert: Path
    admin_token: str
    rep_id: str
    rep_token: str

    def stub(self) -> Any:
        creds = grpc.ssl_channel_credentials(self.cert.read_bytes())
        channel = grpc.secure_channel(f"127.0.0.1:{self.port}", creds)
        return pb_grpc.PubSubStub(channel), channel


def auth(token: str, tenant: str = migrate.ORG_ID) -> list[tuple[str, str]]:
    return [("accesstoken", token), ("instanceurl", "https://127.0.0.1"), ("tenantid", tenant)]


@pytest.fixture
def ps(store: records.Store, tmp_path: Path) -> Iterator[PubSubServer]:
    org = Org(store)
    admin_id, _ = org.accounts.create_user("ps-admin@oc.test", "pw", admin=True)
    rep_id, _ = org.accounts.create_user("ps-rep@oc.test", "pw", admin=False)
    cert, key = tls.self_signed(tmp_path / "tls")
    running = pubsub.start(
        org, host="127.0.0.1", port=free_port(), tls_files=(cert, key), keepalive=KEEPALIVE
    )
    try:
        yield PubSubServer(
            org,
            running.port,
            cert,
            org.accounts.open_session(admin_id),
            rep_id,
            org.accounts.open_session(rep_id),
        )
    finally:
        running.stop()
        assert running.servicer.streams == 0


def contact(store: records.Store, name: str, owner: str | None = None) -> str:
    values: dict[str, Any] = {"LastName": name}
    if owner is not None:
        values["OwnerId"] = owner
    with store.transaction() as tx:
        return tx.insert("Contact", values)


class Subscription:
    """A Subscribe stream driven from the test: requests in, responses collected in a thread."""

    def __init__(self, stub: Any, token: str, first: Any) -> None:
        self.requests: queue.Queue[Any] = queue.Queue()
        self.requests.put(first)
        self.responses: queue.Queue[Any] = queue.Queue()
        self.call = stub.Subscribe(self._iter(), metadata=auth(token))
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _iter(self) -> Iterator[Any]:
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item

    def _collect(self) -> None:
        try:
            for resp in self.call:
                self.responses.put(resp)
        except grpc.RpcError as exc:
            self.responses.put(exc)

    def next(self, timeout: float = 10.0) -> Any:
        found = self.responses.get(timeout=timeout)
        if isinstance(found, grpc.RpcError):
            raise found
        return found

    def events(self, want: int, timeout: float = 10.0) -> list[Any]:
        """The next ``want`` events (keepalives skipped)."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(got) < want:
            got += list(self.next(max(0.1, deadline - time.monotonic())).events)
        return got

    def close(self) -> None:
        self.call.cancel()
        self.requests.put(None)
        self.thread.join(5)


def schema_of(stub: Any, token: str, schema_id: str) -> Any:
    info = stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=auth(token))
    return fastavro.parse_schema(json.loads(info.schema_json))


def decode(stub: Any, token: str, ev: Any) -> dict[str, Any]:
    schema = schema_of(stub, token, ev.event.schema_id)
    found = fastavro.schemaless_reader(io.BytesIO(ev.event.payload), schema, None)
    assert isinstance(found, dict)
    return found


def bitmap_names(schema_json: str, bitmap: list[str]) -> list[str]:
    """Field names of a Salesforce bitmap, as the published client utilities decode it: the
    first entry for top-level fields, ``"<pos>-0x.."`` entries for parts of a compound field."""
    fields = json.loads(schema_json)["fields"]
    if not bitmap:
        return []
    bits = int(bitmap[0], 16)
    names = [f["name"] for i, f in enumerate(fields) if bits >> i & 1]
    for entry in bitmap[1:]:
        pos, _, hexbits = entry.partition("-")
        parent = fields[int(pos)]
        parts = [f["name"] for f in parent["type"][1]["fields"]]
        names += [f"{parent['name']}.{p}" for i, p in enumerate(parts) if int(hexbits, 16) >> i & 1]
    return names


def rid(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def test_get_topic_and_schema(ps: PubSubServer) -> None:
    stub, channel = ps.stub()
    with channel:
        topic = stub.GetTopic(
            pb.TopicRequest(topic_name="/data/ContactChangeEvent"), metadata=auth(ps.admin_token)
        )
        assert (topic.can_subscribe, topic.can_publish) == (True, False)
        assert topic.tenant_guid == migrate.ORG_ID and topic.rpc_id and len(topic.schema_id) == 22
        info = stub.GetSchema(
            pb.SchemaRequest(schema_id=topic.schema_id), metadata=auth(ps.admin_token)
        )
        schema = json.loads(info.schema_json)
        assert (schema["name"], schema["namespace"]) == (
            "ContactChangeEvent",
            "com.sforce.eventbus",
        )
        header = schema["fields"][0]
        assert header["name"] == "ChangeEventHeader"
        assert [f["name"] for f in header["type"]["fields"]] == [
            "entityName",
            "recordIds",
            "changeType",
            "changeOrigin",
            "transactionKey",
            "sequenceNumber",
            "commitTimestamp",
            "commitNumber",
            "commitUser",
            "nulledFields",
            "diffFields",
            "changedFields",
        ]
        by_name = {f["name"]: f for f in schema["fields"]}
        assert by_name["Title"]["type"] == ["null", "string"]
        # a person name is compound, as Salesforce sends it: no top-level parts
        name = by_name["Name"]["type"][1]
        assert (name["type"], name["name"]) == ("record", "Switchable_PersonName")
        assert [f["name"] for f in name["fields"]] == ["Salutation", "FirstName", "LastName"]
        assert "LastName" not in by_name and "FirstName" not in by_name
        assert by_name["LastModifiedDate"]["type"] == ["null", "long"]
        assert "IsDeleted" not in by_name and "SystemModstamp" not in by_name
        fastavro.parse_schema(schema)
        step = stub.GetTopic(
            pb.TopicRequest(topic_name="/data/ActionCadenceStepTrackerChangeEvent"),
            metadata=auth(ps.admin_token),
        )
        assert step.schema_id not in ("", topic.schema_id)
        every = stub.GetTopic(
            pb.TopicRequest(topic_name="/data/ChangeEvents"), metadata=auth(ps.admin_token)
        )
        assert every.can_subscribe and every.schema_id == ""


def test_unknown_topic_and_schema_are_not_found(ps: PubSubServer) -> None:
    stub, channel = ps.stub()
    with channel:
        for call, request in (
            (stub.GetTopic, pb.TopicRequest(topic_name="/data/NopeChangeEvent")),
            (stub.GetTopic, pb.TopicRequest(topic_name="/data/ActionCadenceRuleChangeEvent")),
            (stub.GetSchema, pb.SchemaRequest(schema_id="nope")),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call(request, metadata=auth(ps.admin_token))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("how", ["bad token", "no token", "other org"])
def test_bad_credentials_are_unauthenticated(ps: PubSubServer, how: str) -> None:
    metadata = {
        "bad token": auth("00D000000000001!nope"),
        "no token": [("instanceurl", "https://127.0.0.1"), ("tenantid", migrate.ORG_ID)],
        "other org": auth(ps.admin_token, tenant="00D000000000099"),
    }[how]
    stub, channel = ps.stub()
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetTopic(pb.TopicRequest(topic_name="/data/ContactChangeEvent"), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details().startswith("An authentication exception occurred.")
        trailers = dict(caught.value.trailing_metadata())
        assert trailers["error-code"] == pubsub.AUTH_CODE
        # the stream is refused the same way, before any event
        sub = Subscription(
            stub, "00D000000000001!nope", pb.FetchRequest(topic_name="/data/ChangeEvents")
        )
        with pytest.raises(grpc.RpcError) as caught:
            sub.next()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        sub.close()


def test_earliest_replays_the_log_decoded_with_the_schema(ps: PubSubServer) -> None:
    store = ps.org.store
    ids = [contact(store, f"Early{i}") for i in range(3)]
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(
                topic_name="/data/ContactChangeEvent",
                replay_preset=pb.EARLIEST,
                num_requested=10,
            ),
        )
        try:
            got = sub.events(3)
            decoded = [decode(stub, ps.admin_token, ev) for ev in got]
            assert [d["ChangeEventHeader"]["recordIds"] for d in decoded] == [[i] for i in ids]
            assert [d["Name"]["LastName"] for d in decoded] == ["Early0", "Early1", "Early2"]
            assert {d["ChangeEventHeader"]["changeType"] for d in decoded} == {"CREATE"}
            assert all(isinstance(d["CreatedDate"], int) for d in decoded)  # epoch ms
            assert decoded[0]["Title"] is None
            replay = [rid(ev.replay_id) for ev in got]
            assert replay == sorted(replay) and len(set(replay)) == 3
        finally:
            sub.close()


def test_flow_control_never_sends_more_than_requested(ps: PubSubServer) -> None:
    store = ps.org.store
    for i in range(5):
        contact(store, f"Flow{i}")
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(
                topic_name="/data/ContactChangeEvent", replay_preset=pb.EARLIEST, num_requested=2
            ),
        )
        try:
            first = sub.events(2)
            # nothing more until asked: the next response is a keepalive (no events)
            keepalive = sub.next(timeout=KEEPALIVE * 6)
            assert list(keepalive.events) == []
            assert keepalive.pending_num_requested == 0
            assert rid(keepalive.latest_replay_id) == rid(first[-1].replay_id)
            sub.requests.put(
                pb.FetchRequest(topic_name="/data/ContactChangeEvent", num_requested=3)
            )
            rest = sub.events(3)
            names = [decode(stub, ps.admin_token, ev)["Name"]["LastName"] for ev in first + rest]
            assert names == [f"Flow{i}" for i in range(5)]
            again = sub.next(timeout=KEEPALIVE * 6)
            assert list(again.events) == [] and again.pending_num_requested == 0
        finally:
            sub.close()


@pytest.fixture
def statements(ps: PubSubServer) -> Iterator[list[str]]:
    """Every SQL statement the server's engine runs from now on, but the beacon's: on SQLite
    its thread looks at the log once after each change of the database file, whoever made it
    (storage/wakeup.py), and that look is shared by every stream, not one stream's read."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name != "oc-beacon":
            seen.append(statement)

    engine = ps.org.store.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", count)


def _settled(sub: Subscription) -> None:
    """Wait for the stream's first keepalive: it has made its first read and waits."""
    first = sub.next(timeout=KEEPALIVE * 6)
    assert list(first.events) == []
    time.sleep(1.5)  # the SQLite watcher's look at the fixture's own writes is done too


def test_an_idle_subscriber_runs_no_sql_and_a_commit_wakes_it(
    ps: PubSubServer, statements: list[str]
) -> None:
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(topic_name="/data/ContactChangeEvent", num_requested=10),
        )
        try:
            _settled(sub)
            before = len(statements)
            time.sleep(3.0)  # six keepalives go out meanwhile: they cost no query either
            assert statements[before:] == [], "an idle Subscribe must not query the database"
            committed = time.monotonic()
            made = contact(ps.org.store, "Woken")
            (ev,) = sub.events(1, timeout=5)
            woken = time.monotonic() - committed
            assert decode(stub, ps.admin_token, ev)["ChangeEventHeader"]["recordIds"] == [made]
            assert woken < 1.0, f"woken after {woken:.2f} s"
        finally:
            sub.close()


def test_commits_of_other_objects_are_looked_past_once(
    ps: PubSubServer, statements: list[str]
) -> None:
    """A one-object topic is woken by another object's commit, reads once, and is idle again
    (its cursor moved past the commit it has looked at, though none of its events was there)."""
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(topic_name="/data/ContactChangeEvent", num_requested=10),
        )
        try:
            _settled(sub)
            with ps.org.store.transaction() as tx:
                tx.insert("Account", {"Name": "Elsewhere"})
            time.sleep(1.0)
            before = len(statements)
            time.sleep(2.0)
            assert statements[before:] == [], "the stream kept reading for an Account event"
        finally:
            sub.close()


def test_a_commit_by_another_process_wakes_a_subscriber(ps: PubSubServer) -> None:
    stub, channel = ps.stub()
    other = database.create_engine(ps.org.store.engine.url.render_as_string(False))
    with channel:
        sub = Subscription(
            stub, ps.admin_token, pb.FetchRequest(topic_name="/data/ChangeEvents", num_requested=5)
        )
        try:
            _settled(sub)
            elsewhere = records.Store(other, ps.org.store.registry)  # no in-process wake-up
            started = time.monotonic()
            made = contact(elsewhere, "FromAfar")
            (ev,) = sub.events(1, timeout=10)
            woken = time.monotonic() - started
            assert decode(stub, ps.admin_token, ev)["ChangeEventHeader"]["recordIds"] == [made]
            assert woken < 3.0, f"woken after {woken:.2f} s"  # SQLite: one stat a second
        finally:
            sub.close()
            other.dispose()


def test_latest_receives_only_new_events(ps: PubSubServer) -> None:
    store = ps.org.store
    contact(store, "Before")
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub, ps.admin_token, pb.FetchRequest(topic_name="/data/ChangeEvents", num_requested=5)
        )
        try:
            sub.next(timeout=KEEPALIVE * 6)  # the first keepalive: the stream is set up
            new = contact(store, "After")
            (ev,) = sub.events(1)
            decoded = decode(stub, ps.admin_token, ev)
            assert decoded["ChangeEventHeader"]["recordIds"] == [new]
            assert decoded["Name"] == {"Salutation": None, "FirstName": None, "LastName": "After"}
        finally:
            sub.close()


def test_custom_resumes_after_a_replay_id(ps: PubSubServer) -> None:
    store = ps.org.store
    for i in range(3):
        contact(store, f"Custom{i}")
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(
                topic_name="/data/ContactChangeEvent", replay_preset=pb.EARLIEST, num_requested=3
            ),
        )
        everything = sub.events(3)
        sub.close()
        resume = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(
                topic_name="/data/ContactChangeEvent",
                replay_preset=pb.CUSTOM,
                replay_id=everything[0].replay_id,
                num_requested=10,
            ),
        )
        try:
            got = resume.events(2)
            assert [ev.replay_id for ev in got] == [ev.replay_id for ev in everything[1:]]
        finally:
            resume.close()
        for bad in (b"\x01\x02", pubsub.encode_replay_id(10**12)):
            sub = Subscription(
                stub,
                ps.admin_token,
                pb.FetchRequest(
                    topic_name="/data/ContactChangeEvent",
                    replay_preset=pb.CUSTOM,
                    replay_id=bad,
                    num_requested=1,
                ),
            )
            with pytest.raises(grpc.RpcError) as caught:
                sub.next()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            code = dict(caught.value.trailing_metadata())["error-code"]
            assert code.startswith("sfdc.platform.eventbus.grpc.subscription.fetch.replayid")
            sub.close()


def test_update_carries_bitmaps_and_nulls_for_unchanged_fields(ps: PubSubServer) -> None:
    store = ps.org.store
    cid = contact(store, "Bits")
    with store.transaction() as tx:
        tx.update("Contact", cid, {"Title": "CTO", "FirstName": "Ada"})
    with store.transaction() as tx:
        tx.update("Contact", cid, {"FirstName": None})
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(
                topic_name="/data/ContactChangeEvent", replay_preset=pb.EARLIEST, num_requested=3
            ),
        )
        try:
            _, update, nulling = sub.events(3)
        finally:
            sub.close()
        decoded = decode(stub, ps.admin_token, update)
        header = decoded["ChangeEventHeader"]
        assert header["changeType"] == "UPDATE"
        assert header["changedFields"][0].startswith("0x")  # then "<pos>-0x.." for parts
        info = stub.GetSchema(
            pb.SchemaRequest(schema_id=update.event.schema_id), metadata=auth(ps.admin_token)
        )
        changed = bitmap_names(info.schema_json, header["changedFields"])
        assert {"Title", "Name.FirstName", "LastModifiedDate"} <= set(changed)
        assert "Name.LastName" not in changed and "Email" not in changed
        assert decoded["Title"] == "CTO" and decoded["Email"] is None  # unchanged: null
        assert decoded["Name"] == {"Salutation": None, "FirstName": "Ada", "LastName": None}
        nulled = decode(stub, ps.admin_token, nulling)["ChangeEventHeader"]["nulledFields"]
        assert bitmap_names(info.schema_json, nulled) == ["Name.FirstName"]


def test_a_rep_receives_only_events_of_records_they_may_see(ps: PubSubServer) -> None:
    store = ps.org.store
    contact(store, "NotMine")
    mine = contact(store, "Mine", owner=ps.rep_id)
    contact(store, "NotMineEither")
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.rep_token,
            pb.FetchRequest(
                topic_name="/data/ContactChangeEvent", replay_preset=pb.EARLIEST, num_requested=5
            ),
        )
        try:
            (ev,) = sub.events(1)
            assert decode(stub, ps.rep_token, ev)["ChangeEventHeader"]["recordIds"] == [mine]
            keepalive = sub.next(timeout=KEEPALIVE * 6)
            assert list(keepalive.events) == []
            # the cursor moved past the events the rep may not see
            assert rid(keepalive.latest_replay_id) > rid(ev.replay_id)
        finally:
            sub.close()


def test_change_event_topics_are_not_publishable(ps: PubSubServer) -> None:
    stub, channel = ps.stub()
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Publish(
                pb.PublishRequest(
                    topic_name="/data/ContactChangeEvent",
                    events=[pb.ProducerEvent(id="1", schema_id="x", payload=b"")],
                ),
                metadata=auth(ps.admin_token),
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert pubsub.decode_replay_id(b"") is None


def test_a_subscription_cannot_change_topic(ps: PubSubServer) -> None:
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(topic_name="/data/ContactChangeEvent", num_requested=1),
        )
        sub.requests.put(pb.FetchRequest(topic_name="/data/LeadChangeEvent", num_requested=1))
        with pytest.raises(grpc.RpcError) as caught:
            while True:
                sub.next()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        sub.close()


def test_driving_a_cadence_streams_its_step_trackers(ps: PubSubServer) -> None:
    """Enrolling a target writes step trackers; a subscriber to their topic receives exactly
    the log's events (same replay ids, same order), decodable with their schema."""
    store = ps.org.store
    cadence = definition_file.import_definition(
        store,
        {
            "cadence": {"Name": "Pub/Sub cadence"},
            "steps": [
                {"StepName": "root", "Type": "Root"},
                {
                    "StepName": "call",
                    "StepTitle": "Intro call",
                    "Type": "MakeACall",
                    "ParentStepName": "root",
                    "ScheduledDaysUntilDue": 1,
                },
            ],
            "state": "Active",
        },
    )
    target = contact(store, "Target")
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(
                topic_name="/data/ActionCadenceStepTrackerChangeEvent", num_requested=10
            ),
        )
        try:
            sub.next(timeout=KEEPALIVE * 6)  # subscribed (LATEST)
            rep_id = ps.rep_id
            (res,) = actions.Actions(store).assignTargetToSalesCadence(
                [{"salesCadenceNameOrId": cadence, "targetId": target, "userId": rep_id}], rep_id
            )
            assert res["isSuccess"], res
            with store.reading() as conn:
                logged = events.read(conn, store.meta, entity="ActionCadenceStepTracker")
            got = sub.events(len(logged))
            assert [rid(ev.replay_id) for ev in got] == [e["event"]["replayId"] for e in logged]
            decoded = [decode(stub, ps.admin_token, ev) for ev in got]
            assert [(d["StepType"], d["State"]) for d in decoded] == [
                ("Root", "Completed"),
                ("MakeACall", "Active"),
            ]
            assert decoded[1]["StepTitle"] == "Intro call"
            assert list(sub.next(timeout=KEEPALIVE * 6).events) == []  # nothing more
        finally:
            sub.close()


def test_a_stream_whose_session_ends_is_unauthenticated_with_the_auth_error_code(
    store: records.Store, tmp_path: Path
) -> None:
    """An open stream looks at its session every ``session_check`` seconds; a session that has
    ended (here revoked, as a logout does) ends the stream with UNAUTHENTICATED and the auth
    error code in the trailers, as Salesforce answers."""
    org = Org(store)
    user, _ = org.accounts.create_user("ps-ends@oc.test", "pw", admin=True)
    token = org.accounts.open_session(user)
    cert, key = tls.self_signed(tmp_path / "tls")
    running = pubsub.start(
        org,
        host="127.0.0.1",
        port=free_port(),
        tls_files=(cert, key),
        keepalive=0.2,
        session_check=0.3,
    )
    try:
        creds = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{running.port}", creds) as channel:
            stub = pb_grpc.PubSubStub(channel)
            sub = Subscription(
                stub, token, pb.FetchRequest(topic_name="/data/ChangeEvents", num_requested=5)
            )
            try:
                sub.next()  # a keepalive: open
                time.sleep(1.0)  # several looks at the live session: the stream stays
                assert list(sub.next().events) == []
                assert org.accounts.revoke(token)
                with pytest.raises(grpc.RpcError) as ended:
                    while True:
                        sub.next(timeout=5)
            finally:
                sub.close()
    finally:
        running.stop()
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ended.value.details().startswith(pubsub.AUTH_MESSAGE)
    trailers = dict(ended.value.trailing_metadata())
    assert trailers["error-code"] == pubsub.AUTH_CODE


def test_managed_subscribe_is_unimplemented_and_says_why(ps: PubSubServer) -> None:
    stub, channel = ps.stub()
    with channel:
        call = stub.ManagedSubscribe(
            iter([pb.ManagedFetchRequest(developer_name="Managed_Sub", num_requested=1)]),
            metadata=auth(ps.admin_token),
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(call))
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert refused.value.details().startswith(pubsub.MANAGED_MESSAGE)
        bad = stub.ManagedSubscribe(
            iter([pb.ManagedFetchRequest(developer_name="Managed_Sub", num_requested=1)]),
            metadata=auth("00D000000000001!bad"),
        )
        with pytest.raises(grpc.RpcError) as unauthenticated:
            next(iter(bad))
        assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED  # auth first


def test_a_subscriber_catching_up_is_served_from_one_read_of_the_log(
    ps: PubSubServer, statements: list[str]
) -> None:
    """250 events committed at once reach a client asking 100 at a time in three responses,
    from one read of the log (pubsub.READ_AHEAD), and each response's latest_replay_id is its
    last event's while more are waiting."""
    stub, channel = ps.stub()
    with channel:
        sub = Subscription(
            stub,
            ps.admin_token,
            pb.FetchRequest(topic_name="/data/ContactChangeEvent", num_requested=100),
        )
        try:
            _settled(sub)
            with ps.org.store.transaction() as tx:
                made = tx.insert_many("Contact", [{"LastName": f"Ahead{i}"} for i in range(250)])
            before = len(statements)
            got: list[Any] = []
            latest: list[int] = []
            while len(got) < 250:
                response = sub.next()
                if response.events:
                    got += list(response.events)
                    latest.append(rid(response.latest_replay_id))
                    sub.requests.put(pb.FetchRequest(num_requested=len(response.events)))
            reads = [s for s in statements[before:] if "FROM oc_change_event" in s]
            schema = schema_of(stub, ps.admin_token, got[0].event.schema_id)
        finally:
            sub.close()
    ids = []
    for ev in got:
        found: Any = fastavro.schemaless_reader(io.BytesIO(ev.event.payload), schema, None)
        ids.append(found["ChangeEventHeader"]["recordIds"][0])
    assert ids == made
    assert latest == [rid(got[99].replay_id), rid(got[199].replay_id), rid(got[249].replay_id)]
    assert len(reads) <= 2, reads  # the newest replay id and the events: one read
