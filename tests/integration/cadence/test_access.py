"""Who may act on what: the eight actions and a tracker's delete, for two reps, a manager and
an admin, through the Org facade (what REST calls), on both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import errors, ids, system
from opencadence.cadence import engine, runtime
from opencadence.clock import ManualClock
from opencadence.org import Org
from opencadence.storage import accounts, records, schema
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import step_trackers

V = "62.0"
DENIED = "INSUFFICIENT_ACCESS_OR_READONLY"


@dataclass
class People:
    admin: accounts.Session
    a: accounts.Session
    b: accounts.Session
    boss: accounts.Session  # manages A only


def _session(org: Org, username: str, *, admin: bool = False) -> accounts.Session:
    user_id, _ = org.accounts.create_user(username, "pw", admin=admin)
    return org.accounts.session(org.accounts.open_session(user_id))


@pytest.fixture
def org(oc: system.System) -> Org:
    return oc.org


@pytest.fixture
def people(org: Org, store: records.Store) -> People:
    p = People(
        _session(org, "admin@acc.test", admin=True),
        _session(org, "a@acc.test"),
        _session(org, "b@acc.test"),
        _session(org, "boss@acc.test"),
    )
    with store.transaction() as tx:
        tx.update("User", p.a.user_id, {"ManagerId": p.boss.user_id})
    return p


@pytest.fixture
def cadence(build: Build) -> str:
    return build(
        {"StepName": "call", "Type": "MakeACall"},
        {"StepName": "task", "Type": "CreateTask"},
        name="Access",
    )


def contact(org: Org, who: accounts.Session, name: str) -> str:
    return org.create(who, "Contact", {"LastName": name, "Email": f"{name}@x.test"}, V)


def act(org: Org, who: accounts.Session, name: str, *inputs: dict[str, Any]) -> list[Any]:
    return org.invoke_action(who, name, list(inputs))


def enrol(org: Org, who: accounts.Session, target: str, **extra: Any) -> str:
    (res,) = act(
        org,
        who,
        "assignTargetToSalesCadence",
        {"salesCadenceNameOrId": "Access", "targetId": target, **extra},
    )
    assert res["isSuccess"], res
    tracker: str = res["outputValues"]["actionCadenceTrackerId"]
    return tracker


def code(result: dict[str, Any]) -> str | None:
    return None if result["isSuccess"] else result["errors"][0]["statusCode"]


def tracker_row(store: records.Store, tracker_id: str) -> dict[str, Any]:
    row = store.get("ActionCadenceTracker", tracker_id, include_deleted=True)
    assert row is not None
    return row


#: Every action that names a tracker, its target or one of its step trackers, as the inputs
#: one call gives it: (action, inputs of (tracker, target, open step tracker, user)).
TRACKER_ACTIONS: list[tuple[str, Callable[[str, str, str, str], dict[str, Any]]]] = [
    ("pauseSalesCadenceTracker", lambda t, g, s, u: {"targetId": g}),
    ("resumeSalesCadenceTracker", lambda t, g, s, u: {"targetId": g}),
    ("changeSalesCadenceTargetAssignee", lambda t, g, s, u: {"targetId": g, "userId": u}),
    (
        "modifyCadenceTrackerAttributes",
        lambda t, g, s, u: {"actionCadenceTrackerId": t, "completionDisposition": "Success"},
    ),
    ("sendSalesCadenceEvent", lambda t, g, s, u: {"recordId": s, "eventType": "Skip"}),
    ("selectTemplateForSalesCadenceStepTracker", lambda t, g, s, u: {"stepTrackerId": s}),
    (
        "removeTargetFromSalesCadence",
        lambda t, g, s, u: {"actionCadenceTrackerId": t, "completionReasonCode": "ManuallyRemoved"},
    ),
    (
        "removeTargetFromSalesCadence",
        lambda t, g, s, u: {"targetId": g, "completionReasonCode": "ManuallyRemoved"},
    ),
]


def test_a_rep_cannot_act_on_another_reps_tracker_steps_or_target(
    org: Org, store: records.Store, people: People, cadence: str
) -> None:
    target = contact(org, people.b, "bee")
    tracker = enrol(org, people.b, target)
    step = tracker_row(store, tracker)["CurrentStepId"]
    before = tracker_row(store, tracker)
    events = len(store.read_events())
    for name, make in TRACKER_ACTIONS:
        (res,) = act(org, people.a, name, make(tracker, target, step, people.a.user_id))
        assert code(res) == DENIED, (name, res)
        assert res["errors"][0]["fields"] == [] and res["outputValues"] is None
    # the same answer for ids of no record: it tells A nothing about what exists
    ghost_tracker = ids.make_id("0cT", 987_654)
    ghost_step = ids.make_id("0cK", 987_654)
    ghost_target = ids.make_id("003", 987_654)
    for name, make in TRACKER_ACTIONS:
        (res,) = act(org, people.a, name, make(ghost_tracker, ghost_target, ghost_step, "x"))
        assert code(res) == DENIED, (name, res)
    assert tracker_row(store, tracker) == before  # nothing changed
    assert len(store.read_events()) == events


def _may_act(org: Org, store: records.Store, who: accounts.Session, target: str) -> None:
    tracker = store.get("ActionCadenceTracker", _tracker_of(store, target))
    assert tracker is not None
    assert code(act(org, who, "pauseSalesCadenceTracker", {"targetId": target})[0]) is None
    assert tracker_row(store, tracker["Id"])["State"] == "Paused"
    assert code(act(org, who, "resumeSalesCadenceTracker", {"targetId": target})[0]) is None
    step = tracker_row(store, tracker["Id"])["CurrentStepId"]
    (res,) = act(org, who, "selectTemplateForSalesCadenceStepTracker", {"stepTrackerId": step})
    assert code(res) is None
    (res,) = act(org, who, "sendSalesCadenceEvent", {"recordId": step, "eventType": "Skip"})
    assert code(res) is None


def _tracker_of(store: records.Store, target: str) -> str:
    with store.reading() as conn:
        t = store.meta.tables[schema.CADENCE_RUN]
        found: str = conn.execute(
            t.select().with_only_columns(t.c.tracker_id).where(t.c.target_id == target)
        ).scalar_one()
    return found


def test_a_manager_acts_on_the_teams_trackers(
    org: Org, store: records.Store, people: People, build: Build
) -> None:
    build(*[{"StepName": f"s{i}", "Type": "CreateTask"} for i in range(3)], name="Long")
    target = contact(org, people.a, "ay")
    enrol(org, people.a, target, salesCadenceNameOrId="Long")
    _may_act(org, store, people.boss, target)
    mine = contact(org, people.a, "bee")
    (res,) = act(
        org,
        people.boss,
        "assignTargetToSalesCadence",
        {"salesCadenceNameOrId": "Long", "targetId": mine, "userId": people.a.user_id},
    )
    assert code(res) is None  # the manager enrols A's contact for A
    (res,) = act(
        org,
        people.boss,
        "changeSalesCadenceTargetAssignee",
        {"targetId": target, "userId": people.boss.user_id},
    )
    assert code(res) is None  # ... and takes A's tracker over
    org.delete(people.boss, "ActionCadenceTracker", _tracker_of(store, mine), V)


def test_the_owner_and_an_admin_may_act(
    org: Org, store: records.Store, people: People, build: Build
) -> None:
    build(*[{"StepName": f"s{i}", "Type": "CreateTask"} for i in range(4)], name="Long")
    target = contact(org, people.a, "ay")
    enrol(org, people.a, target, salesCadenceNameOrId="Long")
    for who in (people.a, people.admin):
        _may_act(org, store, who, target)


def test_owner_and_admin_act_and_others_are_refused(
    org: Org, store: records.Store, people: People, cadence: str
) -> None:
    target = contact(org, people.a, "ay")
    tracker = enrol(org, people.a, target)
    for who in (people.a, people.admin):
        assert code(act(org, who, "pauseSalesCadenceTracker", {"targetId": target})[0]) is None
        assert tracker_row(store, tracker)["State"] == "Paused"
        assert code(act(org, who, "resumeSalesCadenceTracker", {"targetId": target})[0]) is None
        step = tracker_row(store, tracker)["CurrentStepId"]
        (res,) = act(org, who, "selectTemplateForSalesCadenceStepTracker", {"stepTrackerId": step})
        assert code(res) is None
    # B is not A's manager: refused, even though B was just allowed nothing
    (res,) = act(org, people.b, "pauseSalesCadenceTracker", {"targetId": target})
    assert code(res) == DENIED
    # the manager of someone else is refused too; the owner modifies; the admin removes
    c = contact(org, people.b, "bee")
    enrol(org, people.b, c)
    (res,) = act(org, people.boss, "pauseSalesCadenceTracker", {"targetId": c})
    assert code(res) == DENIED
    (res,) = act(
        org,
        people.a,
        "modifyCadenceTrackerAttributes",
        {"actionCadenceTrackerId": tracker, "completionDisposition": "Success"},
    )
    assert code(res) is None
    (res,) = act(
        org,
        people.admin,
        "removeTargetFromSalesCadence",
        {"actionCadenceTrackerId": tracker, "completionReasonCode": "ManuallyRemoved"},
    )
    assert code(res) is None
    row = tracker_row(store, tracker)
    assert row["State"] == "Complete" and row["CompletionDisposition"] == "Success"


def test_enrolling_needs_a_visible_target_and_an_assignee_one_acts_for(
    org: Org, store: records.Store, people: People, cadence: str
) -> None:
    bs = contact(org, people.b, "bee")
    mine = contact(org, people.a, "ay")
    ghost = ids.make_id("003", 987_654)

    def assign(who: accounts.Session, target: str, user: str | None = None) -> dict[str, Any]:
        inp = {"salesCadenceNameOrId": "Access", "targetId": target}
        if user is not None:
            inp["userId"] = user
        (res,) = act(org, who, "assignTargetToSalesCadence", inp)
        return res

    assert code(assign(people.a, bs)) == DENIED  # B's contact, enrolled under A
    assert code(assign(people.a, bs, people.b.user_id)) == DENIED  # ... or under B
    assert code(assign(people.a, ghost)) == DENIED  # no such contact: the same answer
    res = assign(people.a, mine, people.b.user_id)  # A's contact handed to a peer
    assert code(res) == DENIED and res["errors"][0]["fields"] == ["userId"]
    own = contact(org, people.boss, "boss")
    assert code(assign(people.boss, own, people.b.user_id)) == DENIED  # B is not in the team
    assert code(assign(people.admin, ghost)) == "INVALID_CROSS_REFERENCE_KEY"  # an admin sees
    with store.reading() as conn:
        assert conn.execute(store.meta.tables[schema.CADENCE_RUN].select()).first() is None
    # the manager enrols their own contact for A; B enrols B's own; an admin anyone's for anyone
    assert code(assign(people.boss, own, people.a.user_id)) is None
    assert code(assign(people.b, bs)) is None
    other = contact(org, people.b, "cee")
    assert code(assign(people.admin, other, people.a.user_id)) is None


def test_reassigning_a_tracker(
    org: Org, store: records.Store, people: People, cadence: str
) -> None:
    target = contact(org, people.a, "ay")
    tracker = enrol(org, people.a, target)

    def change(who: accounts.Session, user: str) -> str | None:
        inp = {"targetId": target, "userId": user}
        return code(act(org, who, "changeSalesCadenceTargetAssignee", inp)[0])

    assert change(people.b, people.b.user_id) == DENIED  # B takes A's tracker over
    assert change(people.a, people.b.user_id) == DENIED  # A hands it to a peer
    assert change(people.a, people.a.user_id) is None  # to themselves: nothing to refuse
    assert tracker_row(store, tracker)["OwnerId"] == people.a.user_id
    assert change(people.admin, people.b.user_id) is None  # an admin gives it to anyone
    assert tracker_row(store, tracker)["OwnerId"] == people.b.user_id
    assert change(people.a, people.a.user_id) == DENIED  # no longer A's to take back
    assert change(people.b, people.a.user_id) == DENIED  # nor B's to give to A


# -- deleting a tracker ---------------------------------------------------------------------------


def test_deleting_a_running_tracker_takes_its_target_out_of_the_cadence(
    org: Org, store: records.Store, people: People, cadence: str, clock: ManualClock
) -> None:
    target = contact(org, people.b, "bee")
    tracker = enrol(org, people.b, target)
    steps = [s["Id"] for s in step_trackers(store, tracker)]
    assert len(steps) == 2  # Root (completed) and the Active call
    start = clock.now() - timedelta(minutes=1)
    after = store.read_events()[-1]["event"]["replayId"]

    org.delete(people.b, "ActionCadenceTracker", tracker, V)

    assert tracker_row(store, tracker)["IsDeleted"]
    assert all(
        (store.get("ActionCadenceStepTracker", s, include_deleted=True) or {})["IsDeleted"]
        for s in steps
    )
    with store.reading() as conn:
        assert conn.execute(store.meta.tables[schema.CADENCE_RUN].select()).first() is None
    deletes = {
        (
            e["payload"]["ChangeEventHeader"]["entityName"],
            e["payload"]["ChangeEventHeader"]["recordIds"][0],
        )
        for e in store.read_events(after=after)
        if e["payload"]["ChangeEventHeader"]["changeType"] == "DELETE"
    }
    assert deletes == {("ActionCadenceTracker", tracker)} | {
        ("ActionCadenceStepTracker", s) for s in steps
    }
    end = clock.now() + timedelta(minutes=2)
    when = (start.isoformat(), end.isoformat())
    listed = org.deleted(people.admin, "ActionCadenceTracker", *when, V)["deletedRecords"]
    assert [r["id"] for r in listed] == [tracker]
    listed = org.deleted(people.admin, "ActionCadenceStepTracker", *when, V)["deletedRecords"]
    assert sorted(r["id"] for r in listed) == sorted(steps)
    # the owner still sees the deleted step trackers with queryAll (and getDeleted), A doesn't
    soql = f"SELECT Id FROM ActionCadenceStepTracker WHERE ActionCadenceTrackerId = '{tracker}'"
    for who, seen in ((people.b, sorted(steps)), (people.a, [])):
        found = org.query(who, soql, V, include_deleted=True)["records"]
        assert sorted(r["Id"] for r in found) == seen
    # a logged call is a plain Task now (no 404), and the target can be enrolled again
    task = org.create(
        people.b,
        "Task",
        {"Subject": "Call", "WhoId": target, "TaskSubtype": "Call", "Status": "Completed"},
        V,
    )
    assert store.get("Task", task) is not None
    again = enrol(org, people.b, target)
    assert again != tracker and tracker_row(store, again)["State"] == "Running"


def test_only_the_owner_or_an_admin_deletes_a_tracker(
    org: Org, store: records.Store, people: People, cadence: str
) -> None:
    mine = [enrol(org, people.a, contact(org, people.a, f"a{i}")) for i in range(2)]
    for who in (people.b,):
        with pytest.raises(errors.NotFound) as unseen:
            org.delete(who, "ActionCadenceTracker", mine[0], V)
        with pytest.raises(errors.NotFound) as unknown:
            org.delete(who, "ActionCadenceTracker", ids.make_id("0cT", 987_654), V)
        assert unseen.value.message.split(":")[0] == unknown.value.message.split(":")[0]
    assert not tracker_row(store, mine[0])["IsDeleted"]
    for who, tracker in zip((people.a, people.admin), mine):
        org.delete(who, "ActionCadenceTracker", tracker, V)
        assert tracker_row(store, tracker)["IsDeleted"]


def test_deleting_a_tracker_is_all_or_nothing(
    org: Org,
    store: records.Store,
    people: People,
    cadence: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = contact(org, people.b, "bee")
    tracker = enrol(org, people.b, target)
    events = len(store.read_events())

    def broken(self: Any, conn: Any, tracker_id: str) -> int:
        raise errors.OpenCadenceError("the outbox is down")

    monkeypatch.setattr("opencadence.storage.mail.Outbox.cancel_tracker", broken)
    with pytest.raises(errors.OpenCadenceError):
        org.delete(people.b, "ActionCadenceTracker", tracker, V)
    row = tracker_row(store, tracker)
    assert not row["IsDeleted"] and row["State"] == "Running"
    assert not any(s["IsDeleted"] for s in step_trackers(store, tracker))
    assert len(store.read_events()) == events
    monkeypatch.undo()
    org.delete(people.b, "ActionCadenceTracker", tracker, V)
    assert tracker_row(store, tracker)["IsDeleted"]


def test_a_delete_waits_for_a_transition_in_flight_and_deletes_the_step_it_made(
    org: Org, store: records.Store, people: People, cadence: str
) -> None:
    target = contact(org, people.b, "bee")
    tracker = enrol(org, people.b, target)
    step = tracker_row(store, tracker)["CurrentStepId"]
    done = threading.Event()
    failures: list[BaseException] = []

    def delete() -> None:
        try:
            org.delete(people.b, "ActionCadenceTracker", tracker, V)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)
        finally:
            done.set()

    with store.transaction(people.b.user_id) as tx:  # a rep's Skip, not yet committed
        runtime.transition(
            store,
            tracker,
            tx.user_id,
            lambda c, cad, s: engine.on_step_event(
                c, cad, s, runtime.now_of(store), tx.user_id, step, "Skip"
            ),
            tx=tx,
        )
        thread = threading.Thread(target=delete)
        thread.start()
        assert not done.wait(0.5)  # the delete waits for this transaction
    thread.join(timeout=30)
    assert done.is_set() and failures == []
    t = store.meta.tables["ActionCadenceStepTracker"]
    with store.reading() as conn:
        rows = conn.execute(
            sa.select(t.c.StepType, t.c.IsDeleted).where(t.c.ActionCadenceTrackerId == tracker)
        ).all()
    assert sorted(rows) == [("CreateTask", True), ("MakeACall", True), ("Root", True)]


def test_a_call_logged_by_someone_who_only_sees_the_target_does_not_complete_the_step(
    org: Org, store: records.Store, people: People, cadence: str
) -> None:
    """B's tracker targets A's contact: A sees the contact (A owns it) but not B's tracker, so
    A's logged call is A's Task and nothing more; B's own call completes B's step."""
    target = contact(org, people.a, "Shared")
    tracker = enrol(org, people.admin, target, userId=people.b.user_id)
    call = {"Subject": "Call", "TaskSubtype": "Call", "WhoId": target}

    def open_steps() -> list[str]:
        return [s["State"] for s in step_trackers(store, tracker) if s["State"] == "Active"]

    assert open_steps() == ["Active"]
    org.create(people.a, "Task", call, V)
    assert open_steps() == ["Active"]  # not A's step to complete
    org.create(people.b, "Task", call, V)
    assert open_steps() == ["Active"]  # the call step done, the task step now open
    calls = [s for s in step_trackers(store, tracker) if s["State"] == "Completed"]
    completed_by = {s["CompletedById"] for s in calls}
    assert people.b.user_id in completed_by and people.a.user_id not in completed_by
