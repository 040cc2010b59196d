"""Cadence definition files (YAML or JSON), so cadences can live in version control.

The file uses Salesforce's own field names, so it needs no second vocabulary::

    cadence: {Name: Outbound, Type: Standard, Description: ...}
    state: Active                     # optional: activate after import
    steps:
      - {StepName: start, Type: Root}
      - StepName: call
        Type: MakeACall
        ParentStepName: start
        ScheduledDaysUntilDue: 1
        variants: [{TemplateId: 00X..., SplitPercentage: 50}, ...]
      - StepName: outcome
        Type: Branch
        ParentStepName: call
        BranchDefaultStepName: task
        rules:
          - RuleName: connected
            OutcomeNextStepName: email
            conditions: [{RuleConditionName: c1, Resource: CallDispositionCategory,
                          Operator: Equal, Value: CallMeaningfulConnect}]

Global exit rules are rules of the Root step with ``RuleType: RootStep`` and a
GlobalEventType. A Cadence Builder 2.0 track is a ``Type: SubRoot`` step under the Root with
``RuleType: SubRootStep`` entry rules; a quick cadence (``cadence: {Type: Quick}``) repeats its
one step on a ``RuleType: RepeatedStep`` rule (docs/reference/definition-file.md). A
DaisyChain step names its chained cadence by ``ChainedCadence: <Name>``.
Export writes exactly the createable, non-empty fields, sorted, so export → import → export
gives the same text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from opencadence import errors
from opencadence.cadence import runtime
from opencadence.storage import migrate, records
from opencadence.storage.records import Connection
from opencadence.storage.runs import RunStore

#: Cadences created from files live in the org-wide folder, which carries the org's Id.
ORG_FOLDER = migrate.ORG_ID
CADENCE_FIELDS = ("Name", "Description", "Type", "IsWaitAllowedBeforeDaisyChain")
#: Fields never exported (references to this org's rows, or derived from the graph).
SKIP = {
    "ActionCadenceId",
    "RootStepId",
    "ActionCadenceStepId",
    "ActionCadenceRuleId",
    "ChainedCadenceId",
    "FolderId",
    "OwnerId",
    "GraphState",
}


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON definition file."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict) or "cadence" not in data or "steps" not in data:
        raise errors.InvalidDefinition(f"{path}: a definition needs 'cadence' and 'steps'")
    return data


def load_text(text: str) -> dict[str, Any]:
    """Parse definition text (YAML, which includes JSON)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise errors.InvalidDefinition("a definition is a mapping")
    return data


def dump(data: Mapping[str, Any], as_json: bool = False) -> str:
    if as_json:
        return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return yaml.safe_dump(dict(data), sort_keys=True, allow_unicode=True)


def import_definition(
    store: records.Store, data: Mapping[str, Any], user_id: str = records.AUTOMATED_USER
) -> str:
    """Create the cadence and its builder records; activate when ``state: Active``.
    Returns the ActionCadence Id.

    All or nothing: the records, the activation and their change events share one
    transaction, so a file that fails (a bad value, a graph activation refuses) leaves no
    cadence behind and the corrected file imports under the same Name."""
    runs = RunStore(store)
    with store.transaction(user_id) as tx:
        head = {k: v for k, v in dict(data["cadence"]).items() if k in CADENCE_FIELDS}
        if runs.find_cadence(tx.conn, str(head.get("Name"))) is not None:
            raise errors.DuplicateValue(f"A cadence named {head.get('Name')} already exists.")
        cadence_id = tx.insert(
            "ActionCadence", {"FolderId": ORG_FOLDER, "OwnerId": user_id, **head}, system=True
        )
        steps = list(data["steps"])
        for step in steps:
            _insert_step(tx, runs, cadence_id, step)
        if data.get("state") == "Active":
            runtime.activate(store, cadence_id, user_id, tx=tx)
    return cadence_id


def _insert_step(tx: records.Tx, runs: RunStore, cadence_id: str, step: Mapping[str, Any]) -> None:
    fields = {k: v for k, v in step.items() if k not in ("rules", "variants", "ChainedCadence")}
    if step.get("ChainedCadence"):
        chained = runs.find_cadence(tx.conn, str(step["ChainedCadence"]))
        if chained is None:
            raise errors.InvalidDefinition(
                f"Step {step.get('StepName')}: no cadence named {step['ChainedCadence']}"
            )
        fields["ChainedCadenceId"] = chained
    step_id = tx.insert("ActionCadenceStep", {"ActionCadenceId": cadence_id, **fields}, system=True)
    for rule in step.get("rules") or ():
        insert_rule(tx, step_id, rule)
    tx.insert_many(
        "ActionCadenceStepVariant",
        [{"ActionCadenceStepId": step_id, **v} for v in step.get("variants") or ()],
        system=True,
    )


def insert_rule(tx: records.Tx, step_id: str, rule: Mapping[str, Any]) -> str:
    """One rule of a step in the file's form (its ``conditions`` with it), as the import
    writes it: ActionCadenceRuleCondition has no create call, so a rule's conditions are
    written with it or not at all (``Org.add_cadence_rule``). Returns the rule's Id."""
    rule_fields = {k: v for k, v in rule.items() if k != "conditions"}
    rule_fields.setdefault("ConditionLogic", "AND")
    rule_id = tx.insert(
        "ActionCadenceRule", {"ActionCadenceStepId": step_id, **rule_fields}, system=True
    )
    tx.insert_many(
        "ActionCadenceRuleCondition",
        [{"ActionCadenceRuleId": rule_id, **c} for c in rule.get("conditions") or ()],
        system=True,
    )
    return rule_id


def export_definition(store: records.Store, name_or_id: str) -> dict[str, Any]:
    """The definition of a cadence, in the file format."""
    runs = RunStore(store)
    with store.reading() as conn:
        cadence_id = runs.find_cadence(conn, name_or_id)
        if cadence_id is None:
            raise errors.NotFound(f"No cadence {name_or_id}")
        return _export(store, runs, conn, cadence_id)


def _clean(store: records.Store, obj: str, row: Mapping[Any, Any]) -> dict[str, Any]:
    """Createable, non-null, non-default fields of a row, in the file's value forms."""
    od = store.registry.object(obj)
    out: dict[str, Any] = {}
    for f in od.fields:
        value = row.get(f.name)
        if not f.createable or f.name in SKIP or value is None:
            continue
        if f.type == "boolean" and value is False:
            continue
        out[f.name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def _export(
    store: records.Store, runs: RunStore, conn: Connection, cadence_id: str
) -> dict[str, Any]:
    rows = runs.builder_rows(conn, cadence_id)
    conds_of: dict[str, list[dict[str, Any]]] = {}
    for c in rows["conditions"]:
        conds_of.setdefault(c["ActionCadenceRuleId"], []).append(
            _clean(store, "ActionCadenceRuleCondition", c)
        )
    rules_of: dict[str, list[dict[str, Any]]] = {}
    for r in rows["rules"]:
        rule = _clean(store, "ActionCadenceRule", r)
        if conds_of.get(r["Id"]):
            rule["conditions"] = conds_of[r["Id"]]
        rules_of.setdefault(r["ActionCadenceStepId"], []).append(rule)
    variants_of: dict[str, list[dict[str, Any]]] = {}
    for v in rows["variants"]:
        variants_of.setdefault(v["ActionCadenceStepId"], []).append(
            _clean(store, "ActionCadenceStepVariant", v)
        )
    steps = []
    for row in rows["steps"]:
        step = _clean(store, "ActionCadenceStep", row)
        if row["ChainedCadenceId"]:
            step["ChainedCadence"] = rows["chained_names"].get(row["ChainedCadenceId"])
        if rules_of.get(row["Id"]):
            step["rules"] = rules_of[row["Id"]]
        if variants_of.get(row["Id"]):
            step["variants"] = variants_of[row["Id"]]
        steps.append(step)
    head = rows["head"]
    out: dict[str, Any] = {
        "cadence": {
            k: head[k] for k in CADENCE_FIELDS if head[k] is not None and head[k] is not False
        },
        "steps": _graph_order(steps),
    }
    if head["State"] == "Active":
        out["state"] = "Active"
    return out


def _graph_order(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps from the root down, breadth first (siblings by name): the order people read."""
    names = {s["StepName"] for s in steps if s.get("StepName")}
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for s in steps:
        parent = s.get("ParentStepName")
        kids.setdefault(parent if parent in names else None, []).append(s)
    out: list[dict[str, Any]] = []
    queue = list(kids.get(None, []))
    while queue:
        s = queue.pop(0)
        out.append(s)
        queue += kids.get(s.get("StepName"), [])
    return out + [s for s in steps if not any(s is o for o in out)]
