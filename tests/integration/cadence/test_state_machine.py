"""A Hypothesis state machine: random actions, engagement events, calls and clock moves
against the runtime's invariants (the metric counters equal to their recomputation among
them, after every step), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from opencadence import errors
from opencadence.cadence import actions, definition_file, runtime, sender, worker
from opencadence.clock import ManualClock
from opencadence.storage import records
from tests.integration.cadence import invariants
from tests.integration.cadence.helpers import email_template, step_trackers

RUN = itertools.count()


def _cadences(store: records.Store, n: int) -> str:
    definition_file.import_definition(
        store,
        {
            "cadence": {"Name": f"Second {n}"},
            "state": "Active",
            "steps": [
                {"StepName": "root", "Type": "Root"},
                {"StepName": "t2", "Type": "CreateTask", "ParentStepName": "root"},
            ],
        },
    )
    cond = {"RuleConditionName": "c", "Operator": "Equal"}
    return definition_file.import_definition(
        store,
        {
            "cadence": {"Name": f"Main {n}"},
            "state": "Active",
            "steps": [
                {
                    "StepName": "root",
                    "Type": "Root",
                    "rules": [
                        {"RuleName": "g1", "RuleType": "RootStep", "GlobalEventType": "EmailReply"},
                        {
                            "RuleName": "g2",
                            "RuleType": "RootStep",
                            "GlobalEventType": "CallNotInterested",
                        },
                    ],
                },
                {"StepName": "call", "Type": "MakeACall", "ParentStepName": "root"},
                {
                    "StepName": "branch",
                    "Type": "Branch",
                    "ParentStepName": "call",
                    "BranchDefaultStepName": "wait",
                    "rules": [
                        {
                            "RuleName": "r1",
                            "OutcomeNextStepName": "auto",
                            "conditions": [
                                {
                                    **cond,
                                    "Resource": "CallDispositionCategory",
                                    "Value": "CallMeaningfulConnect",
                                }
                            ],
                        }
                    ],
                },
                {
                    "StepName": "auto",
                    "Type": "AutoSendAnEmail",
                    "ParentStepName": "branch",
                    "TemplateId": email_template(store),
                },
                {
                    "StepName": "listen",
                    "Type": "ListenerBranch",
                    "ParentStepName": "auto",
                    "WaitTimeInSeconds": 3600,
                    "IsImmediateWakeUp": True,
                    "BranchDefaultStepName": "again",
                    "rules": [
                        {
                            "RuleName": "r2",
                            "OutcomeNextStepName": "task",
                            "conditions": [
                                {**cond, "Resource": "EmailEngagement", "Value": "EmailOpen"}
                            ],
                        }
                    ],
                },
                {"StepName": "task", "Type": "CreateTask", "ParentStepName": "listen"},
                {
                    "StepName": "again",
                    "Type": "SendAnEmail",
                    "ParentStepName": "listen",
                    "GoToStepName": "call",
                    "GoToStepIterationLimit": 1,
                    "GoToStepIntervalInMinutes": 30,
                },
                {
                    "StepName": "wait",
                    "Type": "Wait",
                    "ParentStepName": "branch",
                    "WaitTimeInSeconds": 7200,
                },
                {
                    "StepName": "li",
                    "Type": "LinkedInMail",
                    "ParentStepName": "wait",
                    "ScheduledDaysUntilStart": 1,
                },
                {
                    "StepName": "chain",
                    "Type": "DaisyChain",
                    "ParentStepName": "li",
                    "ChainedCadence": f"Second {n}",
                },
                # Cadence Builder 2.0 tracks: a link click or an unqualified call moves targets
                {
                    "StepName": "pos",
                    "Type": "SubRoot",
                    "ParentStepName": "root",
                    "rules": [
                        {
                            "RuleName": "e1",
                            "RuleType": "SubRootStep",
                            "conditions": [
                                {**cond, "Resource": "EmailEngagement", "Value": "EmailLinkClick"}
                            ],
                        }
                    ],
                },
                {"StepName": "ptask", "Type": "CreateTask", "ParentStepName": "pos"},
                {
                    "StepName": "pwait",
                    "Type": "Wait",
                    "ParentStepName": "ptask",
                    "WaitTimeInSeconds": 3600,
                },
                {
                    "StepName": "neg",
                    "Type": "SubRoot",
                    "ParentStepName": "root",
                    "rules": [
                        {
                            "RuleName": "e2",
                            "RuleType": "SubRootStep",
                            "conditions": [
                                {
                                    **cond,
                                    "Resource": "CallDispositionCategory",
                                    "Value": "CallUnqualified",
                                }
                            ],
                        }
                    ],
                },
                {
                    "StepName": "ncall",
                    "Type": "MakeACall",
                    "ParentStepName": "neg",
                    "ScheduledDaysUntilStart": 1,
                },
            ],
        },
    )


def test_random_operations_keep_the_invariants(store: records.Store, clock: ManualClock) -> None:
    outbox = sender.RecordingSender()
    acts = actions.Actions(store, sender=outbox)
    work = worker.Worker(store, outbox)

    class Machine(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            n = next(RUN)
            with store.transaction() as tx:
                self.rep = tx.insert(
                    "User",
                    {
                        "Username": f"r{n}@x.com",
                        "LastName": "R",
                        "Alias": "r",
                        "Email": "r@x.com",
                        "TimeZoneSidKey": "Europe/Paris",
                        "LocaleSidKey": "en_US",
                        "LanguageLocaleKey": "en_US",
                        "EmailEncodingKey": "UTF-8",
                    },
                )
                self.targets = tx.insert_many("Contact", [{"LastName": f"T{i}"} for i in range(2)])
            self.cadence = _cadences(store, n)

        def target(self, i: int) -> str:
            return self.targets[i % len(self.targets)]

        def open_step(self, i: int) -> dict[str, Any] | None:
            tracker = runtime.trackers_of(store, [self.target(i)]).get(self.target(i))
            if tracker is None:
                return None
            rows = step_trackers(store, tracker)
            return next((r for r in rows if r["State"] not in ("Completed", "Cancelled")), None)

        @rule(i=st.integers(0, 1))
        def assign(self, i: int) -> None:
            acts.assignTargetToSalesCadence(
                [{"salesCadenceNameOrId": self.cadence, "targetId": self.target(i)}], self.rep
            )

        @rule(i=st.integers(0, 1))
        def remove(self, i: int) -> None:
            acts.removeTargetFromSalesCadence(
                [{"targetId": self.target(i), "completionReasonCode": "ManuallyRemoved"}], self.rep
            )

        @rule(i=st.integers(0, 1), resume=st.sampled_from([None, "2030-01-01T00:00:00Z"]))
        def pause(self, i: int, resume: str | None) -> None:
            acts.pauseSalesCadenceTracker(
                [{"targetId": self.target(i), "resumeTime": resume}], self.rep
            )

        @rule(i=st.integers(0, 1))
        def resume(self, i: int) -> None:
            acts.resumeSalesCadenceTracker([{"targetId": self.target(i)}], self.rep)

        @rule(
            i=st.integers(0, 1),
            event=st.sampled_from(["Skip", "ManualComplete", "ActionTaken", "Start"]),
        )
        def rep_event(self, i: int, event: str) -> None:
            step = self.open_step(i)
            if step is None:
                return
            if event in ("Skip", "ManualComplete"):
                acts.sendSalesCadenceEvent([{"recordId": step["Id"], "eventType": event}], self.rep)
                return
            try:
                runtime.step_event(store, step["Id"], event, self.rep)
            except errors.OpenCadenceError:
                pass

        @rule(
            i=st.integers(0, 1),
            disposition=st.sampled_from(
                [
                    "Meaningful Connect",
                    "Not Interested",
                    "Left Voicemail",
                    "Unqualified",
                    "Whatever",
                ]
            ),
        )
        def call(self, i: int, disposition: str) -> None:
            runtime.log_call(store, self.rep, self.target(i), disposition)

        @rule(
            i=st.integers(0, 1),
            event=st.sampled_from(["EmailOpen", "EmailLinkClick", "EmailReply", "EmailSoftBounce"]),
        )
        def engagement(self, i: int, event: str) -> None:
            runtime.engagement(store, self.target(i), event)

        @rule(minutes=st.sampled_from([1, 30, 61, 150, 60 * 26]))
        def time_passes(self, minutes: int) -> None:
            clock.advance(minutes=minutes)
            work.run_until_idle()

        def progress(self, i: int) -> None:
            """The natural next move of a target: do its open step's action, else let time pass."""
            step = self.open_step(i)
            if (
                step is not None
                and step["State"] in ("Active", "InProgress")
                and step["StepType"] in ("MakeACall", "SendAnEmail", "CreateTask", "LinkedInMail")
            ):
                if step["StepType"] == "MakeACall":
                    runtime.log_call(store, self.rep, self.target(i), "Meaningful Connect")
                else:
                    runtime.step_event(store, step["Id"], "ActionTaken", self.rep)
            else:
                clock.advance(hours=26)
                work.run_until_idle()

        # the same move under two names: stateful rules are drawn uniformly, and walking a
        # target deep into the graph needs this one more often than the others
        @rule(i=st.integers(0, 1))
        def progress_a(self, i: int) -> None:
            self.progress(i)

        @rule(i=st.integers(0, 1))
        def progress_b(self, i: int) -> None:
            self.progress(i)

        @invariant()
        def invariants_hold(self) -> None:
            # includes the metric counters: every one equals its recomputation from history
            invariants.check(store)
            assert outbox.duplicates == 0

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=int(__import__("os").environ.get("OC_SM_EXAMPLES", "12")),
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
