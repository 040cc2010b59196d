"""The shipped object registry: every declaration loads and the objects agree with each other."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from opencadence.metadata import model, registry

REG = registry.default_registry()
OBJECTS = list(REG)
#: reference targets opencadence does not declare (Salesforce objects the runtime never stores)
EXTERNAL = {"Invoice"}
CADENCE = {
    "ActionCadence",
    "ActionCadenceStep",
    "ActionCadenceRule",
    "ActionCadenceRuleCondition",
    "ActionCadenceStepVariant",
    "ActionCadenceTracker",
    "ActionCadenceStepTracker",
    "ActionCdncStpMonthlyMetric",
}
CRM = {
    "User",
    "Group",
    "Organization",
    "Contact",
    "Lead",
    "Account",
    "Opportunity",
    "EmailTemplate",
    "Folder",
    "Task",
    "EmailMessage",
}
#: who may do what (docs/security-model.md); PermissionSetAssignment has no name field
SECURITY = {"PermissionSet", "PermissionSetAssignment", "Profile"}
#: call results, their categories and call scripts; the values of the Lead Status picklist
CALLS = {"CallDisposition", "CallDispositionCategory", "CallTemplate"}
SETUP = {"LeadStatus"}
CHANGE_EVENTS = {
    "ActionCadence",
    "ActionCadenceStep",
    "ActionCadenceTracker",
    "ActionCadenceStepTracker",
    "Contact",
    "Lead",
    "Account",
    "Opportunity",
    "User",
    "Task",
    "EmailMessage",
}
#: createable, not nillable, not defaulted on create: what a create() must supply
REQUIRED = {
    "ActionCadence": {"FolderId", "Name"},
    "ActionCadenceStep": {"ActionCadenceId", "Type"},
    "ActionCadenceRule": {"ActionCadenceStepId", "ConditionLogic", "RuleName"},
    "ActionCadenceRuleCondition": {"ActionCadenceRuleId", "RuleConditionName"},
    "ActionCadenceStepVariant": {"ActionCadenceStepId"},
    "User": {
        "Username",
        "LastName",
        "Alias",
        "Email",
        "TimeZoneSidKey",
        "LocaleSidKey",
        "LanguageLocaleKey",
        "EmailEncodingKey",
    },
    "Group": {"Name"},
    "Folder": {"Name", "Type", "AccessType"},
    "Contact": {"LastName"},
    "Lead": {"LastName", "Company"},
    "Account": {"Name"},
    "Opportunity": {"Name", "StageName", "CloseDate"},
    "EmailTemplate": {"Name", "DeveloperName", "FolderId", "TemplateType"},
    "EmailMessage": {"Status"},
    "PermissionSetAssignment": {"AssigneeId", "PermissionSetId"},
    "CallTemplate": {"Name"},
}
UNGROUPABLE = {"datetime", "double", "percent", "currency", "textarea"}
FIELDS = [(o, f) for o in OBJECTS for f in o.fields]


def _ids(value: object) -> str:
    return value.name if isinstance(value, model.ObjectDef) else ""


def test_every_object_loads() -> None:
    assert {o.name for o in OBJECTS} == CADENCE | CRM | SECURITY | CALLS | SETUP


def test_prefixes() -> None:
    prefixes = [o.key_prefix for o in OBJECTS]
    assert len(set(prefixes)) == len(prefixes)
    assert all(REG.by_prefix(o.key_prefix) is o for o in OBJECTS)
    assert {o.name for o in OBJECTS if o.prefix_is_ours} == CADENCE - {"ActionCadence"} | CALLS
    assert REG.object("ActionCadence").key_prefix == "77C"


def test_change_events() -> None:
    assert {o.name for o in OBJECTS if o.change_events} == CHANGE_EVENTS


def test_cadence_calls() -> None:
    read = {"describeSObjects", "getDeleted", "getUpdated", "query", "retrieve"}
    write = read | {"create", "delete", "update", "upsert"}
    expected = {
        "ActionCadence": write | {"describeLayout", "search"},
        "ActionCadenceStep": write,
        "ActionCadenceRule": write,
        "ActionCadenceStepVariant": write,
        "ActionCadenceRuleCondition": read,
        "ActionCdncStpMonthlyMetric": read,
        "ActionCadenceStepTracker": read,
        "ActionCadenceTracker": read | {"delete"},
        "CallDisposition": {"describeSObjects", "query", "retrieve"},
        "CallDispositionCategory": {"describeSObjects", "query", "retrieve"},
        "CallTemplate": read | {"create", "delete", "describeLayout", "update"},
        "LeadStatus": {"describeSObjects", "query", "retrieve"},
    }
    assert {name: REG.object(name).calls for name in expected} == expected


@pytest.mark.parametrize("obj", OBJECTS, ids=_ids)
def test_relationship_names_resolve(obj: model.ObjectDef) -> None:
    field_names = {f.name.lower() for f in obj.fields}
    relationships = [f.relationship_name for f in obj.fields if f.relationship_name]
    assert len({r.lower() for r in relationships}) == len(relationships)
    for f in obj.fields:
        assert (f.type == "reference") == bool(f.reference_to) == bool(f.relationship_name), f.name
        if f.relationship_name:
            assert f.relationship_name == f.name.removesuffix("Id")
            assert f.relationship_name.lower() not in field_names
            assert REG.relationship_field(obj, f.relationship_name) is f
        for target in f.reference_to:
            assert target in REG or target in EXTERNAL, (f.name, target)


@pytest.mark.parametrize("obj", OBJECTS, ids=_ids)
def test_child_relationships_unique_per_parent(obj: model.ObjectDef) -> None:
    children = REG.child_relationships(obj.name)
    names = [c.relationship_name.lower() for c in children]
    assert len(set(names)) == len(names), names
    own = {f.name.lower() for f in obj.fields} | {
        f.relationship_name.lower() for f in obj.fields if f.relationship_name
    }
    assert not own & set(names)
    for c in children:
        assert REG.child_relationship(obj.name, c.relationship_name) == c
        child_field = REG.object(c.child_object).field(c.field)
        assert child_field is not None and obj.name in child_field.reference_to


def test_expected_child_relationships() -> None:
    def names(parent: str) -> set[str]:
        return {c.relationship_name for c in REG.child_relationships(parent)}

    assert names("ActionCadence") == {
        "ActionCadenceSteps",
        "ActionCadenceTrackers",
        "ActionCadenceStepTrackers",
    }
    assert {"ActionCadenceRules", "ActionCadenceStepVariants"} <= names("ActionCadenceStep")
    assert names("ActionCadenceRule") == {"ActionCadenceRuleConditions"}
    for target in ("Contact", "Lead"):
        assert {"ActionCadenceTrackers", "ActionCadenceStepTrackers", "Tasks"} <= names(target)
    assert {"Contacts", "Opportunities"} <= names("Account")


@pytest.mark.parametrize("obj", OBJECTS, ids=_ids)
def test_required_fields(obj: model.ObjectDef) -> None:
    required = {
        f.name for f in obj.fields if f.createable and not f.nillable and not f.defaulted_on_create
    }
    assert required == REQUIRED.get(obj.name, set())


@pytest.mark.parametrize("obj", OBJECTS, ids=_ids)
def test_object_shape(obj: model.ObjectDef) -> None:
    ids = [f for f in obj.fields if f.type == "id"]
    assert [f.name for f in ids] == ["Id"] and ids[0].id_lookup
    assert len([f for f in obj.fields if f.name_field]) <= 1
    if obj.name in CRM:
        assert obj.name_field is not None
    assert obj.label and obj.label_plural


@pytest.mark.parametrize(("obj", "f"), FIELDS, ids=lambda v: getattr(v, "name", ""))
def test_field_properties_consistent(obj: model.ObjectDef, f: model.FieldDef) -> None:
    is_picklist = f.type in ("picklist", "multipicklist")
    assert f.label
    assert bool(f.picklist) == is_picklist
    assert not f.restricted_picklist or is_picklist
    assert len({p.value for p in f.picklist}) == len(f.picklist)
    assert f.calculated == bool(f.formula)
    assert not (f.calculated and (f.createable or f.updateable))
    assert not (f.type == "boolean" and f.nillable)
    assert not (f.type in UNGROUPABLE and f.groupable)
    assert not (f.type == "textarea" and f.length > 255 and (f.filterable or f.sortable))
    assert f.length > 0 or not f.is_text
    assert model.version_key(f.since) >= model.version_key(obj.since)
    for p in f.picklist:
        assert p.since is None or model.version_key(p.since) > model.version_key(f.since)
    if f.defaulted_on_create and f.type not in ("id", "reference") and not f.system:
        assert f.default_value is not None
    if f.type == "boolean" and f.default_value is not None:
        assert isinstance(f.default_value, bool)
    if is_picklist and f.default_value is not None:
        assert f.default_value in {p.value for p in f.picklist}
    assert all(p.value == f.default_value for p in f.picklist if p.default)


def test_time_zones_are_real() -> None:
    for name in ("User", "Organization"):
        f = REG.object(name).field("TimeZoneSidKey")
        assert f is not None
        for p in f.picklist:
            ZoneInfo(p.value)
        assert {
            "America/Los_Angeles",
            "America/New_York",
            "Europe/London",
            "Europe/Paris",
            "Asia/Tokyo",
            "Australia/Sydney",
            "GMT",
        } <= {p.value for p in f.picklist}
