"""The system fields every sObject has, with the properties Salesforce describes for them."""

from __future__ import annotations

from typing import Any

from opencadence.metadata.model import FieldDef

#: Names of the fields storage maintains itself; never writable through the API.
SYSTEM_FIELD_NAMES = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


def system_fields(since: str) -> list[FieldDef]:
    """Id, IsDeleted, CreatedDate, CreatedById, LastModifiedDate, LastModifiedById, SystemModstamp."""
    audit: dict[str, Any] = dict(
        filterable=True, sortable=True, defaulted_on_create=True, system=True, since=since
    )
    user_ref: dict[str, Any] = dict(
        audit, groupable=True, type="reference", length=18, reference_to=("User",)
    )
    return [
        FieldDef(
            name="Id",
            label="Record ID",
            type="id",
            length=18,
            filterable=True,
            groupable=True,
            sortable=True,
            defaulted_on_create=True,
            id_lookup=True,
            system=True,
            since=since,
        ),
        FieldDef(name="IsDeleted", label="Deleted", type="boolean", groupable=True, **audit),
        FieldDef(name="CreatedDate", label="Created Date", type="datetime", **audit),
        FieldDef(
            name="CreatedById", label="Created By ID", relationship_name="CreatedBy", **user_ref
        ),
        FieldDef(name="LastModifiedDate", label="Last Modified Date", type="datetime", **audit),
        FieldDef(
            name="LastModifiedById",
            label="Last Modified By ID",
            relationship_name="LastModifiedBy",
            **user_ref,
        ),
        FieldDef(name="SystemModstamp", label="System Modstamp", type="datetime", **audit),
    ]
