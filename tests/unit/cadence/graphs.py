"""Building cadence graphs in memory for the pure tests."""

from __future__ import annotations

from typing import Any

from opencadence.cadence import graph

FIELDS = (
    "StepName",
    "Type",
    "StepTitle",
    "ParentStepName",
    "GraphState",
    "BranchDefaultStepName",
    "ChainedCadenceId",
    "GoToStepName",
    "GoToStepIterationLimit",
    "GoToStepIntervalInMinutes",
    "IsImmediateWakeUp",
    "WaitTimeInSeconds",
    "ScheduledDaysUntilStart",
    "ScheduledStartDelayInMinutes",
    "ScheduledStartTimeInMinutes",
    "ScheduledDaysUntilDue",
    "TemplateId",
)


def cadence(
    *steps: dict[str, Any],
    state: str = "Active",
    exit_rules: tuple[str, ...] = (),
    cid: str = "77C0C0000000001AAA",
    **cad: Any,
) -> graph.Cadence:
    """A cadence: a Root then ``steps`` (each parented on the previous one by default).

    A step may carry ``rules=[(name, next, [values])]`` and ``variants=[(template, split)]``.
    """
    rows, rules, conds, variants = [], [], [], []
    prev = "root"
    all_steps = [{"StepName": "root", "Type": "Root", "ParentStepName": None}] + list(steps)
    for i, s in enumerate(all_steps):
        row = {f: None for f in FIELDS}
        row.update({k: v for k, v in s.items() if k in FIELDS})
        if i and "ParentStepName" not in s:
            row["ParentStepName"] = prev
        row["Id"] = f"0cS{i:03d}"
        row["GraphState"] = row["GraphState"] or "Included"
        rows.append(row)
        prev = row["StepName"]
        for j, spec in enumerate(s.get("rules", [])):
            # (name, next, [values]) or a dict adding "type" (RuleType) and "resource"
            if isinstance(spec, dict):
                name, nxt, values = spec["name"], spec.get("next"), spec.get("values", [])
                rule_type, resource = spec.get("type", "BranchStep"), spec.get("resource")
            else:
                (name, nxt, values), rule_type, resource = spec, "BranchStep", None
            rid = f"0cR{i:03d}{j}"
            rules.append(
                {
                    "Id": rid,
                    "RuleName": name,
                    "RuleType": rule_type,
                    "ActionCadenceStepId": row["Id"],
                    "GlobalEventType": None,
                    "OutcomeNextStepName": nxt,
                    "ParentRuleName": None,
                    "GraphState": None,
                }
            )
            resource = resource or (
                "EmailEngagement" if s["Type"] == "ListenerBranch" else "CallDispositionCategory"
            )
            for k, v in enumerate(values):
                conds.append(
                    {
                        "Id": f"0cC{i}{j}{k}",
                        "ActionCadenceRuleId": rid,
                        "RuleConditionName": f"c{i}{j}{k}",
                        "Resource": resource,
                        "Operator": "Equal",
                        "Value": v,
                    }
                )
        for j, (template, split) in enumerate(s.get("variants", [])):
            variants.append(
                {
                    "Id": f"0cV{i}{j}",
                    "ActionCadenceStepId": row["Id"],
                    "TemplateId": template,
                    "SplitPercentage": split,
                }
            )
    for k, ev in enumerate(exit_rules):
        rules.append(
            {
                "Id": f"0cRg{k}",
                "RuleName": f"g{k}",
                "RuleType": "RootStep",
                "ActionCadenceStepId": "0cS000",
                "GlobalEventType": ev,
                "OutcomeNextStepName": None,
                "ParentRuleName": None,
                "GraphState": None,
            }
        )
    head = {
        "Id": cid,
        "Name": "C",
        "State": state,
        "Type": "Standard",
        "OwnerId": None,
        "IsWaitAllowedBeforeDaisyChain": False,
        **cad,
    }
    return graph.from_records(head, rows, rules, conds, variants)
