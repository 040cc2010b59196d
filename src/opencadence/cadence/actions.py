"""The eight Sales Engagement invocable actions, with Salesforce's names, inputs and outputs.

Each action takes a list of input dicts and returns one result per input, in order:
``{"isSuccess": bool, "outputValues": dict | None, "errors": [{"statusCode", "message", "fields"}]}``.
A bad input fails alone: the others are applied (together, in one transaction; if that
transaction meets a concurrent change it is redone one input per transaction).

``viewer`` is the calling user whose record access limits what an action may touch (``Access``);
None is an admin, or the org itself (the CLI, the demo, the runtime's own callers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from opencadence import errors, ids
from opencadence.cadence import applying, decision, engine, graph, loading
from opencadence.cadence import sender as senders
from opencadence.cadence.settings import Config
from opencadence.clock import as_utc
from opencadence.metadata import actions as action_specs
from opencadence.metadata.sales_engagement import STEP, TARGET_OBJECTS, TRACKER
from opencadence.storage import records, values, visibility
from opencadence.storage.records import Connection
from opencadence.storage.runs import RunStore

Input = Mapping[str, Any]
Result = dict[str, Any]
Decide = Callable[
    [decision.Context, graph.Cadence, decision.Situation, datetime, Input], decision.Decision
]
#: An input -> the tracker it acts on (raising the input's error), checked with ``Access``.
Resolve = Callable[[Connection, Input, "Access"], str]


def ok(outputs: dict[str, Any] | None = None) -> Result:
    return {"isSuccess": True, "outputValues": outputs, "errors": []}


def failed(exc: errors.OpenCadenceError) -> Result:
    return {
        "isSuccess": False,
        "outputValues": None,
        "errors": [
            {"statusCode": exc.error_code, "message": exc.message, "fields": list(exc.fields)}
        ],
    }


def _required(inp: Input, name: str) -> Any:
    value = inp.get(name)
    if value is None or value == "":
        raise errors.RequiredFieldMissing(f"Missing required input parameter: {name}")
    return value


def _denied(record_id: str) -> errors.InsufficientAccess:
    return errors.InsufficientAccess(f"insufficient access rights on object id: {record_id}")


class Access:
    """What the calling user may act on, read on the action's connection.

    ``viewer`` None (an admin, or the org itself) acts on everything. Otherwise the user acts
    on a tracker they may see (``visibility``) whose owner is themselves or a user they manage
    (the User.ManagerId chain), on a step tracker through its tracker, enrols a target they
    may see, and assigns trackers to themselves or to a user they manage. Anything else,
    including an Id of no record (so the answer doesn't tell which), fails that input with
    INSUFFICIENT_ACCESS_OR_READONLY (docs/runtime-decisions.md, "Who may act").
    """

    def __init__(self, store: records.Store, conn: Connection, viewer: str | None) -> None:
        self.store = store
        self.conn = conn
        self.viewer = viewer
        self._trackers: dict[str, bool] = {}

    def tracker(self, tracker_id: str) -> None:
        if self.viewer is None:
            return
        allowed = self._trackers.get(tracker_id)
        if allowed is None:
            meta = self.store.meta
            owners = visibility.visible_owners(self.conn, meta, TRACKER, [tracker_id], self.viewer)
            allowed = tracker_id in owners and visibility.acts_for(
                self.conn, meta, self.viewer, owners[tracker_id]
            )
            self._trackers[tracker_id] = allowed
        if not allowed:
            raise _denied(tracker_id)

    def step(self, step_tracker_id: str, runs: RunStore) -> None:
        """The step tracker's tracker is one the user may act on."""
        if self.viewer is None:
            return
        tracker = runs.trackers_of_steps(self.conn, [step_tracker_id]).get(step_tracker_id)
        if tracker is None:
            raise _denied(step_tracker_id)
        self.tracker(tracker)

    def target(self, target_id: str) -> None:
        if self.viewer is None:
            return
        obj = next(
            (o for o in TARGET_OBJECTS.values() if self.store.registry.is_id_of(target_id, o)), None
        )
        if obj is None or not visibility.record_visible(
            self.conn, self.store.meta, obj, target_id, self.viewer
        ):
            raise _denied(target_id)

    def assignee(self, user_id: str) -> None:
        if self.viewer is None or visibility.acts_for(
            self.conn, self.store.meta, self.viewer, user_id
        ):
            return
        raise errors.InsufficientAccess(
            f"userId: insufficient access rights on cross-reference id: {user_id} (a user "
            "assigns targets to themselves or to the users they manage)",
            fields=["userId"],
        )


class Actions:
    """The Sales Engagement actions on one store."""

    def __init__(
        self,
        store: records.Store,
        config: Config | None = None,
        sender: senders.Sender | None = None,
    ) -> None:
        self.store = store
        self.config = config or Config()
        self.runs = RunStore(store)
        #: told to unsend the scheduled emails of removed or exited targets, after commit
        self.sender = sender

    def invoke(
        self, name: str, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """Run action ``name`` (one of ``metadata.actions.ACTIONS``) for each input, limited to
        the records ``viewer`` may act on (``Access``)."""
        if name not in action_specs.ACTIONS:
            raise errors.NotFound(f"No action {name}")
        method: Callable[..., list[Result]] = getattr(self, name)
        return method(self._person_targets(inputs), user_id, viewer=viewer)

    def _person_targets(self, inputs: Sequence[Input]) -> list[Input]:
        """A person account's Id (001) as ``targetId`` stands for its person contact, the
        record its tracker targets (docs/runtime-decisions.md "Person accounts"); a business
        account's Id stays and is refused as not a target."""
        out: list[Input] = []
        for inp in inputs:
            target = inp.get("targetId") if isinstance(inp, Mapping) else None
            if ids.is_valid(target) and self.store.registry.is_id_of(ids.parse(target), "Account"):
                account = self.store.get("Account", ids.parse(target)) or {}
                contact = account.get("PersonContactId")
                if account.get("IsPersonAccount") and contact:
                    inp = {**inp, "targetId": contact}
            out.append(inp)
        return out

    def _id(self, value: Any, name: str, *objects: str) -> str:
        """Input ``name`` as an 18-character Id of one of ``objects``, or INVALID_ID_FIELD."""
        try:
            parsed = ids.parse(value, field=name)
        except errors.MalformedId:
            raise errors.InvalidIdField(f"{name}: invalid ID {value!r}") from None
        if not any(self.store.registry.is_id_of(parsed, obj) for obj in objects):
            raise errors.InvalidIdField(f"{name}: {value} is not an ID of the expected type")
        return parsed

    def _now(self) -> datetime:
        return self.store.clock.now().replace(tzinfo=None)

    def _field(self, obj: str, name: str, value: Any) -> Any:
        """Validate an input against the field's declaration (picklist values, types)."""
        f = self.store.registry.object(obj).field(name)
        assert f is not None
        return None if value is None else values.to_db(f, value)

    # -- assignTargetToSalesCadence ----------------------------------------------------------

    def assignTargetToSalesCadence(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """Enrol targets: a tracker (Initializing -> Running), the Root and the first step."""
        try:
            return self._assign(inputs, user_id, viewer)
        except (errors.StaleTransition, errors.DuplicateValue):
            if len(inputs) == 1:
                return [failed(errors.DuplicateValue("The target is already in a cadence."))]
            return [
                r
                for inp in inputs
                for r in self.assignTargetToSalesCadence([inp], user_id, viewer=viewer)
            ]

    def _assign(self, inputs: Sequence[Input], user_id: str, viewer: str | None) -> list[Result]:
        """Each enrolled input's result carries the new tracker's Id (``actionCadenceTrackerId``,
        the output the action describes)."""
        results: list[Result] = []
        decisions: list[decision.Decision] = []
        enrolled: list[Result] = []  # the result of each decision, in order
        with self.store.transaction(user_id) as tx:
            loaded = loading.Loaded(self.runs, tx.conn, self.config)
            facts = self._assign_facts(tx.conn, inputs, user_id)
            facts["access"] = Access(self.store, tx.conn, viewer)
            count = self.runs.active_count(tx.conn)
            taken: set[str] = set()
            for inp in inputs:
                try:
                    d = self._assign_one(tx.conn, loaded, facts, inp, user_id, count, taken)
                except errors.OpenCadenceError as exc:
                    results.append(failed(exc))
                    continue
                count += 1
                decisions.append(d)
                enrolled.append(ok())
                results.append(enrolled[-1])
            new_ids = applying.apply(tx, self.runs, decisions)
            for d, refs, result in zip(decisions, new_ids, enrolled):
                tracker = next(
                    op.key.key
                    for op in d.ops
                    if isinstance(op, decision.Insert) and op.object == TRACKER
                )
                result["outputValues"] = {"actionCadenceTrackerId": refs[tracker]}
        return results

    def _assign_facts(
        self, conn: Connection, inputs: Sequence[Input], user_id: str
    ) -> dict[str, Any]:
        """Existence of targets and users, and targets already in a cadence, read at once."""
        targets = [str(i.get("targetId")) for i in inputs if ids.is_valid(i.get("targetId"))]
        targets = [ids.parse(t) for t in targets]
        users = {ids.parse(str(i["userId"])) for i in inputs if ids.is_valid(i.get("userId"))}
        users.add(user_id)
        existing = self.runs.existing(conn, "Contact", targets) | self.runs.existing(
            conn, "Lead", targets
        )
        active_users = self.runs.existing(conn, "User", sorted(users), active_users=True)
        return {
            "targets": existing,
            "users": active_users,
            "busy": self.runs.active_tracker_of(conn, targets),
            "cadences": {},
        }

    def _assign_one(
        self,
        conn: Connection,
        loaded: loading.Loaded,
        facts: dict[str, Any],
        inp: Input,
        user_id: str,
        count: int,
        taken: set[str],
    ) -> decision.Decision:
        name = str(_required(inp, "salesCadenceNameOrId"))
        target = self._id(_required(inp, "targetId"), "targetId", *TARGET_OBJECTS.values())
        owner = self._id(inp.get("userId") or user_id, "userId", "User")
        # before any answer that would tell whether an unseen target exists or is enrolled
        facts["access"].target(target)
        facts["access"].assignee(owner)
        if target not in facts["targets"]:
            raise errors.InvalidCrossReferenceKey(f"targetId: no contact or lead {target}")
        if owner not in facts["users"]:
            raise errors.InvalidCrossReferenceKey(f"userId: no active user {owner}")
        if target in facts["busy"] or target in taken:
            raise decision.Refused(
                "The target is already assigned to a cadence; a target runs "
                "in one cadence at a time.",
                "DUPLICATE_VALUE",
            )
        if count >= self.config.max_active_trackers:
            raise decision.Refused(
                f"The org has reached its limit of "
                f"{self.config.max_active_trackers} active cadence "
                "targets.",
                "LIMIT_EXCEEDED",
            )
        cadences: dict[str, str | None] = facts["cadences"]
        if name not in cadences:
            cadences[name] = self.runs.find_cadence(conn, name)
        cadence_id = cadences[name]
        if cadence_id is None:
            raise errors.InvalidCrossReferenceKey(f"salesCadenceNameOrId: no cadence {name}")
        related = inp.get("relatedToId")
        related = self._id(related, "relatedToId", "Opportunity") if related else None
        if related and not self.runs.existing(conn, "Opportunity", [related]):
            raise errors.InvalidCrossReferenceKey(f"relatedToId: no opportunity {related}")
        cadence = loaded.cadence(cadence_id)
        loaded.zones([owner])
        d = engine.enrol(
            loaded.context(),
            cadence,
            target,
            owner,
            self._now(),
            user_id,
            start_step_name=inp.get("startStepNameOrId"),
            related_to=related,
        )
        taken.add(target)
        return d

    # -- actions on a tracker ----------------------------------------------------------------

    def _by_target(self, conn: Connection, inp: Input, access: Access) -> str:
        target = self._id(_required(inp, "targetId"), "targetId", *TARGET_OBJECTS.values())
        access.target(target)  # before saying whether the target is in a cadence
        tracker = self._target_memo.get(target)
        if tracker is None:
            tracker = self.runs.active_tracker_of(conn, [target]).get(target)
        if not tracker:
            raise decision.Refused(
                f"The target {target} isn't assigned to an active cadence.", "INVALID_INPUT"
            )
        return tracker

    def _per_tracker(
        self,
        inputs: Sequence[Input],
        user_id: str,
        resolve: Resolve,
        decide: Decide,
        viewer: str | None,
    ) -> list[Result]:
        try:
            return self._tracker_batch(inputs, user_id, resolve, decide, viewer)
        except errors.StaleTransition as exc:
            if len(inputs) == 1:
                return [failed(exc)]
            return [
                r
                for inp in inputs
                for r in self._per_tracker([inp], user_id, resolve, decide, viewer)
            ]

    def _tracker_batch(
        self,
        inputs: Sequence[Input],
        user_id: str,
        resolve: Resolve,
        decide: Decide,
        viewer: str | None,
    ) -> list[Result]:
        results: list[Result | None] = [None] * len(inputs)
        later: list[int] = []  # inputs naming a tracker again: applied in a next round
        with self.store.transaction(user_id) as tx:
            self._prefetch(tx.conn, inputs)
            access = Access(self.store, tx.conn, viewer)
            resolved: dict[int, str] = {}
            for i, inp in enumerate(inputs):
                try:
                    tid = resolve(tx.conn, inp, access)
                    access.tracker(tid)
                except errors.OpenCadenceError as exc:
                    results[i] = failed(exc)
                    continue
                if tid in resolved.values():
                    later.append(i)
                else:
                    resolved[i] = tid
            decisions = self._decide_all(tx, resolved, inputs, decide, results)
            applying.apply(tx, self.runs, decisions)
        self._unsend(decisions)
        if later:
            again = self._per_tracker([inputs[i] for i in later], user_id, resolve, decide, viewer)
            for i, r in zip(later, again):
                results[i] = r
        return [r if r is not None else failed(errors.OpenCadenceError()) for r in results]

    def _prefetch(self, conn: Connection, inputs: Sequence[Input]) -> None:
        """Read the trackers of every targetId and recordId at once (one query each, not one
        per input)."""

        def valid(key: str, obj: str) -> list[str]:
            out = [ids.parse(i[key]) for i in inputs if ids.is_valid(i.get(key))]
            return [x for x in out if self.store.registry.is_id_of(x, obj)]

        targets = [t for name in TARGET_OBJECTS.values() for t in valid("targetId", name)]
        self._target_memo = self.runs.active_tracker_of(conn, targets)
        self._target_memo.update({t: "" for t in targets if t not in self._target_memo})
        self._step_memo = self.runs.trackers_of_steps(conn, valid("recordId", STEP))

    _target_memo: dict[str, str] = {}
    _step_memo: dict[str, str] = {}

    def _decide_all(
        self,
        tx: records.Tx,
        resolved: Mapping[int, str],
        inputs: Sequence[Input],
        decide: Decide,
        results: list[Result | None],
    ) -> list[decision.Decision]:
        self.runs.lock(tx.conn, list(resolved.values()))
        loaded = loading.Loaded(self.runs, tx.conn, self.config)
        sits = loading.situations(self.runs, tx.conn, loaded, list(resolved.values()))
        ctx = loaded.context()
        decisions = []
        for i, tid in resolved.items():
            try:
                sit = sits.get(tid)
                if sit is None:
                    raise errors.NotFound(f"No cadence tracker with Id {tid}")
                cadence = ctx.cadences[sit.tracker["ActionCadenceId"]]
                decisions.append(decide(ctx, cadence, sit, self._now(), inputs[i]))
                results[i] = ok()
            except errors.OpenCadenceError as exc:
                results[i] = failed(exc)
        return decisions

    def _unsend(self, decisions: Sequence[decision.Decision]) -> None:
        if self.sender is None:
            return
        for d in decisions:
            for effect in d.effects:
                if isinstance(effect, decision.CancelEmail):
                    self.sender.cancel(effect.step_tracker_id)

    def removeTargetFromSalesCadence(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """Tracker Complete (ManuallyRemoved); the open step is Cancelled, a scheduled email
        unsent."""

        def resolve(conn: Connection, inp: Input, access: Access) -> str:
            if _required(inp, "completionReasonCode") != "ManuallyRemoved":
                raise decision.Refused(
                    "completionReasonCode must be ManuallyRemoved.", "INVALID_INPUT"
                )
            if inp.get("actionCadenceTrackerId"):
                return self._id(inp["actionCadenceTrackerId"], "actionCadenceTrackerId", TRACKER)
            if not inp.get("targetId"):
                raise errors.RequiredFieldMissing(
                    "Missing required input parameter: targetId or actionCadenceTrackerId"
                )
            return self._by_target(conn, inp, access)

        def decide(
            ctx: decision.Context,
            cad: graph.Cadence,
            sit: decision.Situation,
            now: datetime,
            inp: Input,
        ) -> decision.Decision:
            if inp.get("shouldApplyUserContext") and sit.tracker["OwnerId"] != user_id:
                raise decision.Refused(
                    "The running user doesn't own this cadence tracker.",
                    "INSUFFICIENT_ACCESS_OR_READONLY",
                )
            return engine.remove(ctx, cad, sit, now, user_id, **self._attributes(inp))

        return self._per_tracker(inputs, user_id, resolve, decide, viewer)

    def _attributes(self, inp: Input) -> dict[str, Any]:
        out = {}
        for key, name in (
            ("completionDisposition", "CompletionDisposition"),
            ("relatedToAttributionType", "RelatedToAttributionType"),
        ):
            if inp.get(key) is not None:
                self._in_picklist(key, name, inp[key])
                out[name] = self._field(TRACKER, name, inp[key])
        if inp.get("relatedToId"):
            out["RelatedToId"] = self._id(inp["relatedToId"], "relatedToId", "Opportunity")
        return out

    def _in_picklist(self, key: str, name: str, value: Any) -> None:
        """An action input is one of its field's picklist values, as the action's describe
        lists them, even where the field itself takes any value (CompletionDisposition)."""
        f = self.store.registry.object(TRACKER).field(name)
        assert f is not None
        if value not in {p.value for p in f.picklist_values()}:
            raise errors.InvalidPicklistValue(
                f"{key}: bad value for restricted picklist field: {value}", fields=[key]
            )

    def pauseSalesCadenceTracker(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """Tracker and open step Paused (WasEverPaused); optional resumeTime resumes it."""

        def decide(
            ctx: decision.Context,
            cad: graph.Cadence,
            sit: decision.Situation,
            now: datetime,
            inp: Input,
        ) -> decision.Decision:
            resume = inp.get("resumeTime")
            at = None
            if resume is not None:
                at = values.parse_datetime(resume) if isinstance(resume, str) else resume
                at = as_utc(at).replace(tzinfo=None)
            return engine.pause(ctx, cad, sit, now, user_id, at)

        return self._per_tracker(inputs, user_id, self._by_target, decide, viewer)

    def resumeSalesCadenceTracker(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """Back to Running; due dates and pending wake-ups shift by the paused time."""
        return self._per_tracker(
            inputs,
            user_id,
            self._by_target,
            lambda c, cad, s, now, inp: engine.resume(c, cad, s, now, user_id),
            viewer,
        )

    def changeSalesCadenceTargetAssignee(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """A new assignee (tracker OwnerId) works the target's steps; userId is optional (as
        Salesforce documents it) and defaults to the running user, as in assignTargetToSalesCadence.
        Who may reassign: see ``Access`` (the tracker's owner or a manager above them, to
        themselves or a user they manage; an admin, to anyone)."""

        def resolve(conn: Connection, inp: Input, access: Access) -> str:
            tracker = self._by_target(conn, inp, access)
            access.assignee(self._id(inp.get("userId") or user_id, "userId", "User"))
            return tracker

        def decide(
            ctx: decision.Context,
            cad: graph.Cadence,
            sit: decision.Situation,
            now: datetime,
            inp: Input,
        ) -> decision.Decision:
            owner = self._id(inp.get("userId") or user_id, "userId", "User")
            row = self.store.get("User", owner)
            if row is None or not row["IsActive"]:
                raise errors.InvalidCrossReferenceKey(f"userId: no active user {owner}")
            return engine.change_owner(ctx, cad, sit, now, user_id, owner)

        return self._per_tracker(inputs, user_id, resolve, decide, viewer)

    def modifyCadenceTrackerAttributes(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """CompletionDisposition, RelatedToId, RelatedToAttributionType of a tracker."""

        def resolve(conn: Connection, inp: Input, access: Access) -> str:
            return self._id(
                _required(inp, "actionCadenceTrackerId"), "actionCadenceTrackerId", TRACKER
            )

        return self._per_tracker(
            inputs,
            user_id,
            resolve,
            lambda c, cad, s, now, inp: engine.modify(
                c, cad, s, now, user_id, **self._attributes(inp)
            ),
            viewer,
        )

    def sendSalesCadenceEvent(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """Skip (ManuallySkipped) or ManualComplete (ManuallyCompleted) the open step."""

        def resolve(conn: Connection, inp: Input, access: Access) -> str:
            sid = self._id(_required(inp, "recordId"), "recordId", STEP)
            access.step(sid, self.runs)  # before saying whether the step tracker exists
            if _required(inp, "eventType") not in ("Skip", "ManualComplete"):
                raise decision.Refused("eventType must be Skip or ManualComplete.", "INVALID_INPUT")
            tid = self._step_memo.get(sid) or self.runs.trackers_of_steps(conn, [sid]).get(sid)
            if tid is None:
                raise errors.InvalidCrossReferenceKey(f"recordId: no step tracker {sid}")
            return str(tid)

        return self._per_tracker(
            inputs,
            user_id,
            resolve,
            lambda c, cad, s, now, inp: engine.on_step_event(
                c, cad, s, now, user_id, ids.parse(inp["recordId"]), inp["eventType"]
            ),
            viewer,
        )

    def selectTemplateForSalesCadenceStepTracker(
        self, inputs: Sequence[Input], user_id: str, *, viewer: str | None = None
    ) -> list[Result]:
        """The template / call-script variant a step tracker uses (splits honoured)."""
        results = []
        with self.store.reading() as conn:
            loaded = loading.Loaded(self.runs, conn, self.config)
            access = Access(self.store, conn, viewer)
            for inp in inputs:
                try:
                    results.append(ok(self._select(conn, loaded, inp, access)))
                except errors.OpenCadenceError as exc:
                    results.append(failed(exc))
        return results

    def _select(
        self, conn: Connection, loaded: loading.Loaded, inp: Input, access: Access
    ) -> dict[str, Any]:
        """Salesforce's outputs: ``output``, a JSON string with the template (or call script)
        Id and its split percentage, and ``error`` (null when a template was selected)."""
        sid = self._id(_required(inp, "stepTrackerId"), "stepTrackerId", STEP)
        access.step(sid, self.runs)
        found = self.runs.step_of(conn, sid)
        if found is None:
            raise errors.InvalidCrossReferenceKey(f"stepTrackerId: no step tracker {sid}")
        step = loaded.cadence(found[0]).by_id.get(found[1])
        if step is None:
            raise decision.Refused("The step of this step tracker no longer exists.")
        variant = engine.pick_variant(step, sid)
        if variant is None:
            chosen = {"templateId": step.template_id, "splitPercentage": 100.0}
        else:
            chosen = {
                "templateId": variant.template_id,
                "variantId": variant.id,
                "splitPercentage": variant.split_percentage,
            }
        return {"output": json.dumps(chosen), "error": None}
