"""The demo org leaves no field of the eight cadence objects null on every record, except the
few below that only a situation the demo cannot show would fill; and its played history has a
track switch each way and a quick cadence repeating (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from opencadence import demo, system

#: The cadence objects: the Sales Engagement objects of the registry whose names start so.
CADENCE_OBJECTS = (
    "ActionCadence",
    "ActionCadenceStep",
    "ActionCadenceRule",
    "ActionCadenceRuleCondition",
    "ActionCadenceStepVariant",
    "ActionCadenceTracker",
    "ActionCadenceStepTracker",
    "ActionCdncStpMonthlyMetric",
)

#: Fields the demo legitimately leaves null on every record, and why.
NULL_IN_THE_DEMO = {
    # written only when an activation fails (State Error, docs/runtime-decisions.md "Activation
    # and editing"); every demo cadence is valid and Active, and a broken one would be noise
    ("ActionCadence", "ErrorMessage"),
    # a builder field for steps backed by an automation; Salesforce documents no value for it
    # and no step type opencadence runs reads or fills it
    ("ActionCadenceStep", "StepAutomationReference"),
    # written only when a daisy chain cannot go on (the chained cadence inactive, the tenth
    # iteration) or a run of instant steps is cut short; the demo's chain is valid
    ("ActionCadenceTracker", "ErrorMessage"),
}


def test_the_registry_has_eight_cadence_objects(oc: system.System) -> None:
    names = {
        o.name for o in oc.store.registry if o.name.startswith(("ActionCadence", "ActionCdnc"))
    }
    assert names == set(CADENCE_OBJECTS)


def test_every_field_of_the_cadence_objects_is_filled_somewhere(oc: system.System) -> None:
    demo.seed(oc.org)
    store = oc.store
    null: set[tuple[str, str]] = set()
    with store.reading() as conn:
        for name in CADENCE_OBJECTS:
            table = store.meta.tables[name]
            for field in store.registry.object(name).stored_fields:
                filled = conn.execute(
                    sa.select(sa.func.count()).where(table.c[field.name].is_not(None))
                ).scalar_one()
                if not filled:
                    null.add((name, field.name))
    assert null == NULL_IN_THE_DEMO


def test_the_demo_switches_tracks_and_repeats_a_quick_call(oc: system.System) -> None:
    seeded = demo.seed(oc.org)
    q = oc.org.queries.query
    heads = q(
        "SELECT StepTitle, State, CompletionReason FROM ActionCadenceStepTracker "
        "WHERE StepType = 'SubRoot' ORDER BY StepTitle"
    )["records"]
    assert [(r["StepTitle"], r["State"]) for r in heads] == [
        ("Negative", "Completed"),
        ("Positive", "Completed"),
    ]
    cancelled = q(
        "SELECT Id FROM ActionCadenceStepTracker WHERE StepTitle = 'Give them two days' "
        "AND State = 'Cancelled'"
    )["records"]
    assert len(cancelled) == 2  # each switch cancelled the open wait
    failed = q("SELECT ErrorCode FROM ActionCadenceStepTracker WHERE State = 'Error'")["records"]
    assert [r["ErrorCode"] for r in failed] == ["TARGET_EMAIL_EMPTY"]
    quick = seeded["more_targets"][4]
    calls = q(
        "SELECT GoToStepIterationCount, State FROM ActionCadenceStepTracker "
        f"WHERE ActionCadenceTracker.TargetId = '{quick}' AND StepType = 'MakeACall' "
        "ORDER BY GoToStepIterationCount"
    )["records"]
    assert [(r["GoToStepIterationCount"], r["State"]) for r in calls] == [
        (1, "Completed"),
        (2, "Completed"),
        (3, "Completed"),
    ]
    (tracker,) = q(
        f"SELECT State, CompletionReason FROM ActionCadenceTracker WHERE TargetId = '{quick}'"
    )["records"]
    assert (tracker["State"], tracker["CompletionReason"]) == ("Complete", "NoMoreSteps")
    (retired,) = q("SELECT GraphState FROM ActionCadenceStep WHERE StepName = 'n_mail'")["records"]
    assert retired["GraphState"] == "Retired"
    (folder,) = q("SELECT FolderName FROM ActionCadence WHERE Name = 'Demo: tracks'")["records"]
    assert folder["FolderName"]  # the organization's name: the cadence is in its folder
