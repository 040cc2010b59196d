"""The Org methods behind the web app's cadence builder, on SQLite and PostgreSQL: importing
and exporting a definition for a session, and adding a branch rule with its conditions
(ActionCadenceRuleCondition has no create call). Only cadence creators may; a refused or
failing call changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from opencadence import errors, system
from opencadence.cadence import definition_file, validate
from opencadence.org import Org
from opencadence.storage import accounts, authorization

V = "62.0"

DEFINITION: dict[str, Any] = {
    "cadence": {"Name": "Org builder"},
    "steps": [
        {"StepName": "start", "Type": "Root"},
        {"StepName": "call", "Type": "MakeACall", "ParentStepName": "start"},
        {
            "StepName": "outcome",
            "Type": "Branch",
            "ParentStepName": "call",
            "BranchDefaultStepName": "task",
        },
        {"StepName": "task", "Type": "CreateTask", "ParentStepName": "outcome"},
        {"StepName": "email", "Type": "SendAnEmail", "ParentStepName": "outcome"},
    ],
}


@pytest.fixture
def org(oc: system.System) -> Org:
    return oc.org


def _session(org: Org, name: str, creator: bool = False, **kw: Any) -> accounts.Session:
    user_id, _ = org.accounts.create_user(f"{name}@oc.test", "pw", **kw)
    if creator:
        org.accounts.grant(user_id, authorization.CADENCE_CREATOR)
    return org.accounts.session(org.accounts.open_session(user_id))


def _names(org: Org) -> list[str]:
    return [r["Name"] for r in org.queries.query("SELECT Name FROM ActionCadence")["records"]]


def _step(org: Org, cadence_id: str, name: str) -> str:
    found = org.queries.query(
        "SELECT Id FROM ActionCadenceStep "
        f"WHERE ActionCadenceId = '{cadence_id}' AND StepName = '{name}'"
    )["records"]
    return str(found[0]["Id"])


def _rule(value: str, to: str) -> dict[str, Any]:
    return {
        "RuleName": value,
        "RuleType": "BranchStep",
        "OutcomeNextStepName": to,
        "conditions": [
            {
                "RuleConditionName": "c1",
                "Resource": "CallDispositionCategory",
                "Operator": "Equal",
                "Value": value,
            }
        ],
    }


def test_a_cadence_creator_imports_adds_a_rule_activates_and_exports(org: Org) -> None:
    creator = _session(org, "creator", creator=True)
    cadence_id = org.import_cadence(creator, DEFINITION)
    head = org.retrieve(creator, "ActionCadence", cadence_id, ["OwnerId", "State"], V)
    assert (head["OwnerId"], head["State"]) == (creator.user_id, "Draft")
    org.add_cadence_rule(
        creator, _step(org, cadence_id, "outcome"), _rule("CallMeaningfulConnect", "email")
    )
    org.update(creator, "ActionCadence", cadence_id, {"State": "Active"}, V)
    exported = org.export_cadence(creator, cadence_id)
    (outcome,) = [s for s in exported["steps"] if s["StepName"] == "outcome"]
    assert outcome["rules"] == [
        {
            "ConditionLogic": "AND",
            "OutcomeNextStepName": "email",
            "RuleName": "CallMeaningfulConnect",
            "RuleType": "BranchStep",
            "conditions": [
                {
                    "Operator": "Equal",
                    "Resource": "CallDispositionCategory",
                    "RuleConditionName": "c1",
                    "Value": "CallMeaningfulConnect",
                }
            ],
        }
    ]
    assert exported == definition_file.export_definition(org.store, cadence_id)
    # on the active cadence, a rule the activation checks refuse changes nothing
    before = definition_file.dump(org.export_cadence(creator, cadence_id))
    with pytest.raises(validate.CadenceInvalid, match=r"^Step outcome: "):
        org.add_cadence_rule(creator, _step(org, cadence_id, "outcome"), _rule("Nope", "email"))
    assert definition_file.dump(org.export_cadence(creator, cadence_id)) == before


def test_a_rep_can_neither_import_nor_add_rules(org: Org) -> None:
    creator = _session(org, "creator", creator=True)
    cadence_id = org.import_cadence(creator, DEFINITION)
    rep = _session(org, "rep")
    other = {**DEFINITION, "cadence": {"Name": "Rep's"}}
    with pytest.raises(errors.InsufficientAccessOnRecord):
        org.import_cadence(rep, other)
    outcome = _step(org, cadence_id, "outcome")
    with pytest.raises(errors.InsufficientAccessOnRecord):
        org.add_cadence_rule(rep, outcome, _rule("CallMeaningfulConnect", "email"))
    assert _names(org) == ["Org builder"]
    assert org.queries.query("SELECT Id FROM ActionCadenceRule")["records"] == []
    # reading is public: the rep may export it
    assert org.export_cadence(rep, cadence_id)["cadence"]["Name"] == "Org builder"


def test_a_malformed_definition_is_refused(org: Org) -> None:
    admin = _session(org, "admin", admin=True)
    for bad in ({"cadence": {"Name": "x"}}, {"cadence": "x", "steps": []}, {"steps": []}):
        with pytest.raises(errors.InvalidDefinition):
            org.import_cadence(admin, bad)
    assert _names(org) == []
