"""Describe output (describeSObjects / describeGlobal) in Salesforce's JSON shape.

Keys follow the REST DescribeSObjectResult, so clients that read describe (simple-salesforce,
jsforce, code generators) work. Fields and picklist values that arrived after the requested
API version are left out, as Salesforce does.
"""

from __future__ import annotations

from typing import Any

from opencadence.metadata import model
from opencadence.metadata.registry import Registry

#: The newest API version opencadence serves; describe defaults to it.
LATEST_VERSION = "67.0"


def _urls(obj: model.ObjectDef, version: str) -> dict[str, str]:
    """The resources of the object that are served. Salesforce also lists layouts,
    compactLayouts, listviews, quickActions and defaultValues; opencadence has no page layouts,
    list views or quick actions, and a client that follows an advertised URL must not get 404."""
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "sobject": base,
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
    }


def object_summary(obj: model.ObjectDef, version: str = LATEST_VERSION) -> dict[str, Any]:
    """The per-object entry of describeGlobal (also the head of describeSObject)."""
    calls = obj.calls
    return {
        "activateable": False,
        "associateEntityType": None,
        "associateParentEntity": None,
        "createable": "create" in calls,
        "custom": False,
        "customSetting": False,
        "deepCloneable": False,
        "deletable": "delete" in calls,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "hasSubtypes": False,
        "isInterface": False,
        "isSubtype": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": "describeLayout" in calls,
        "mergeable": False,
        "mruEnabled": False,
        "name": obj.name,
        "queryable": "query" in calls,
        "replicateable": "getUpdated" in calls,
        "retrieveable": "retrieve" in calls,
        "searchable": "search" in calls,
        "triggerable": obj.change_events,
        "undeletable": "undelete" in calls,
        "updateable": "update" in calls,
        "urls": _urls(obj, version),
    }


def field_describe(f: model.FieldDef, version: str | None = None) -> dict[str, Any]:
    """One entry of describe's ``fields`` list."""
    text = f.is_text and f.type not in ("id", "reference")
    return {
        "aggregatable": f.groupable
        or f.type in ("int", "double", "percent", "currency", "date", "datetime"),
        "aiPredictionField": False,
        "autoNumber": False,
        "byteLength": f.length * 3 if f.is_text else 0,
        "calculated": f.calculated,
        "calculatedFormula": None,
        "cascadeDelete": f.cascade_delete,
        "caseSensitive": False,
        "compoundFieldName": None,
        "controllerName": None,
        "createable": f.createable,
        "custom": False,
        "dataTranslationEnabled": None,
        "defaultValue": f.default_value,
        "defaultValueFormula": None,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": f.digits,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": False,
        "extraTypeInfo": None,
        "filterable": f.filterable,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": f.groupable,
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": f.id_lookup,
        "inlineHelpText": None,
        "label": f.label,
        "length": f.length if text or f.type in ("id", "reference") else 0,
        "mask": None,
        "maskType": None,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": f.polymorphic,
        "nillable": f.nillable,
        "permissionable": f.nillable and not f.calculated,
        "picklistValues": [_picklist_entry(p) for p in f.picklist_values(version)],
        "polymorphicForeignKey": f.polymorphic,
        "precision": f.precision,
        "queryByDistance": False,
        "referenceTargetField": None,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": f.restricted_picklist,
        "scale": f.scale,
        "searchPrefilterable": False,
        "soapType": model.SOAP_TYPES[f.type],
        "sortable": f.sortable,
        "type": f.type,
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": False,
    }


def _picklist_entry(p: model.PicklistValue) -> dict[str, Any]:
    return {
        "active": p.active,
        "defaultValue": p.default,
        "label": p.label,
        "validFor": None,
        "value": p.value,
    }


def describe_object(registry: Registry, name: str, version: str = LATEST_VERSION) -> dict[str, Any]:
    """describeSObject for ``name`` at an API version (INVALID_TYPE if unknown)."""
    obj = registry.object(name)
    if not obj.visible_in(version):
        registry.object(f"{name} (v{version})")  # not there yet at this version: INVALID_TYPE
    result = object_summary(obj, version)
    result.update(
        {
            "actionOverrides": [],
            "childRelationships": [
                {
                    "cascadeDelete": c.cascade_delete,
                    "childSObject": c.child_object,
                    "deprecatedAndHidden": False,
                    "field": c.field,
                    "junctionIdListNames": [],
                    "junctionReferenceTo": [],
                    "relationshipName": c.relationship_name,
                    "restrictedDelete": False,
                }
                for c in registry.child_relationships(obj.name)
                if c.visible_in(version)
            ],
            "compactLayoutable": False,
            "fields": [field_describe(f, version) for f in obj.fields_at(version)],
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [],
            "searchLayoutable": "search" in obj.calls,
            "supportedScopes": [{"label": "All records", "name": "everything"}],
            "sobjectDescribeOption": "FULL",
        }
    )
    return result


def describe_global(registry: Registry, version: str = LATEST_VERSION) -> dict[str, Any]:
    """describeGlobal: every object available at ``version``."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [object_summary(o, version) for o in registry if o.visible_in(version)],
    }
