"""Lead conversion (SOAP ``convertLead``, REST ``POST .../sobjects/Lead/{id}/convert``): the
Account, Contact and (optionally) Opportunity a qualified lead becomes, and what the cadence
runtime does with the lead's tracker.

Everything of one lead is written in the caller's transaction (``records.Tx``): the new or
merged records, the converted lead, its activities moved to the contact, and the tracker
completed with CompletionReason ``LeadConverted``; each write has its change event, and a
failure rolls all of it back. The rules Salesforce documents are followed; where it is silent
the choice is in docs/runtime-decisions.md ("Lead conversion").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from opencadence import errors, ids
from opencadence.cadence import engine, runtime
from opencadence.metadata.sales_engagement import TRACKER
from opencadence.storage import records
from opencadence.storage.runs import RunStore

#: LeadConvert objects per call (Salesforce's).
MAX_CONVERTS = 100
#: The longest opportunityName Salesforce accepts.
MAX_OPPORTUNITY_NAME = 80
#: The tracker's CompletionReason when its lead is converted.
LEAD_CONVERTED = "LeadConverted"

#: Lead field -> Contact field (the standard mapping, for the fields both objects have here).
CONTACT_FIELDS: Mapping[str, str] = {
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Salutation": "Salutation",
    "Title": "Title",
    "Email": "Email",
    "Phone": "Phone",
    "MobilePhone": "MobilePhone",
    "HasOptedOutOfEmail": "HasOptedOutOfEmail",
    "DoNotCall": "DoNotCall",
    "LeadSource": "LeadSource",
    "Description": "Description",
    "Country": "MailingCountry",
    "State": "MailingState",
    "City": "MailingCity",
}
#: Lead field -> Account field.
ACCOUNT_FIELDS: Mapping[str, str] = {
    "Company": "Name",
    "Phone": "Phone",
    "Country": "BillingCountry",
}


@dataclass(frozen=True)
class LeadConvert:
    """One LeadConvert of the SOAP API (the same names, in Python's spelling)."""

    lead_id: str | None
    converted_status: str | None
    account_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    opportunity_name: str | None = None
    do_not_create_opportunity: bool = False
    overwrite_lead_source: bool = False
    owner_id: str | None = None
    send_notification_email: bool = False


@dataclass(frozen=True)
class Converted:
    """A LeadConvertResult that succeeded."""

    lead_id: str
    account_id: str
    contact_id: str
    opportunity_id: str | None


def from_mapping(data: Mapping[str, Any], lead_id: str | None = None) -> LeadConvert:
    """A LeadConvert from its API names (a SOAP element's children or a REST body): strings,
    booleans as true/false or "true"/"false"; unknown names are refused."""
    known = {
        "leadId",
        "convertedStatus",
        "accountId",
        "contactId",
        "opportunityId",
        "opportunityName",
        "doNotCreateOpportunity",
        "overwriteLeadSource",
        "ownerId",
        "sendNotificationEmail",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise errors.InvalidField(
            f"No such column '{unknown[0]}' on LeadConvert", fields=[unknown[0]]
        )

    def text(name: str) -> str | None:
        value = data.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise errors.InvalidTypeOnField(f"{name}: a string is expected", fields=[name])
        return value

    def flag(name: str) -> bool:
        value = data.get(name)
        if value is None or value == "":
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise errors.InvalidTypeOnField(f"{name}: a boolean is expected", fields=[name])

    return LeadConvert(
        lead_id=lead_id if lead_id is not None else text("leadId"),
        converted_status=text("convertedStatus"),
        account_id=text("accountId"),
        contact_id=text("contactId"),
        opportunity_id=text("opportunityId"),
        opportunity_name=text("opportunityName"),
        do_not_create_opportunity=flag("doNotCreateOpportunity"),
        overwrite_lead_source=flag("overwriteLeadSource"),
        owner_id=text("ownerId"),
        send_notification_email=flag("sendNotificationEmail"),
    )


def convert(tx: records.Tx, request: LeadConvert) -> Converted:
    """Convert one lead in ``tx`` (opened for the calling user: its record writes are checked
    against their permissions and record access). Raises the Salesforce error of the first
    problem found; nothing is written before the request has been checked."""
    runs = RunStore(tx.store)
    lead = _lead(tx, request.lead_id)
    status = _converted_status(tx, runs, request.converted_status)
    _check_arguments(request)
    owner = _owner(tx, request, lead)
    account_id = _existing(tx, "Account", request.account_id, "accountId")
    contact_id = _existing(tx, "Contact", request.contact_id, "contactId")
    opportunity_id = _existing(tx, "Opportunity", request.opportunity_id, "opportunityId")
    if contact_id is not None:
        contact = tx.get("Contact", contact_id) or {}
        if contact.get("AccountId") not in (None, account_id):
            raise errors.InvalidCrossReferenceKey(
                f"invalid cross reference id: contactId {contact_id} is not a contact of "
                f"account {account_id}",
                fields=["contactId"],
            )
    today = _today(tx)
    if account_id is None:
        account_id = tx.insert("Account", {**_mapped(lead, ACCOUNT_FIELDS), "OwnerId": owner})
    else:
        _merge(tx, "Account", account_id, _mapped(lead, ACCOUNT_FIELDS), overwrite=())
    contact_fields = {**_mapped(lead, CONTACT_FIELDS), "AccountId": account_id}
    if contact_id is None:
        contact_id = tx.insert("Contact", {**contact_fields, "OwnerId": owner})
    else:
        overwrite = ("LeadSource",) if request.overwrite_lead_source else ()
        _merge(tx, "Contact", contact_id, contact_fields, overwrite=overwrite)
    if opportunity_id is None and not request.do_not_create_opportunity:
        opportunity_id = tx.insert(
            "Opportunity", _opportunity(tx, lead, request, account_id, owner, today)
        )
    elif opportunity_id is not None:
        _merge(tx, "Opportunity", opportunity_id, {"AccountId": account_id}, overwrite=())
    tx.update(
        "Lead",
        lead["Id"],
        {
            "IsConverted": True,
            "ConvertedDate": today,
            "ConvertedAccountId": account_id,
            "ConvertedContactId": contact_id,
            "ConvertedOpportunityId": opportunity_id,
            "Status": status,
        },
        system=True,
    )
    _move_activities(tx, runs, lead["Id"], contact_id, opportunity_id)
    _complete_tracker(tx, runs, lead["Id"])
    return Converted(lead["Id"], account_id, contact_id, opportunity_id)


def _today(tx: records.Tx) -> date:
    """Today in the converting user's time zone (ConvertedDate, the opportunity's CloseDate)."""
    user = tx.get("User", tx.user_id) or {}
    zone = ZoneInfo(str(user.get("TimeZoneSidKey") or "GMT"))
    return tx.store.clock.now().astimezone(zone).date()


def _lead(tx: records.Tx, lead_id: str | None) -> dict[str, Any]:
    """The lead, visible to and editable by the caller, not yet converted."""
    if not lead_id:
        raise errors.RequiredFieldMissing("Required field missing: leadId", fields=["leadId"])
    try:
        canonical = ids.parse(lead_id, field="leadId")
    except errors.OpenCadenceError:
        raise _bad_reference("leadId", lead_id) from None
    if not tx.store.registry.is_id_of(canonical, "Lead"):
        raise _bad_reference("leadId", lead_id)
    lead = tx.get("Lead", canonical)
    if lead is None:
        raise _bad_reference("leadId", lead_id)
    try:
        tx.require_access("Lead", canonical, "update")
    except errors.NotFound:
        raise _bad_reference("leadId", lead_id) from None
    if lead.get("IsConverted"):
        raise errors.CannotUpdateConvertedLead(fields=["leadId"])
    return lead


def _converted_status(tx: records.Tx, runs: RunStore, status: str | None) -> str:
    if not status:
        raise errors.RequiredFieldMissing(
            "Required field missing: convertedStatus", fields=["convertedStatus"]
        )
    found = runs.converted_status(tx.conn, status)
    if found is None:
        raise errors.InvalidStatus(f"invalid convertedStatus: {status}", fields=["convertedStatus"])
    return found


def _check_arguments(request: LeadConvert) -> None:
    """The combinations Salesforce's LeadConvert reference forbids."""
    if request.contact_id and not request.account_id:
        raise errors.RequiredFieldMissing(
            "accountId is required when contactId is specified", fields=["accountId"]
        )
    if request.overwrite_lead_source and not request.contact_id:
        raise errors.RequiredFieldMissing(
            "contactId is required when overwriteLeadSource is true", fields=["contactId"]
        )
    if request.opportunity_id and request.opportunity_name:
        raise errors.FieldIntegrity(
            "opportunityId and opportunityName are mutually exclusive",
            fields=["opportunityId", "opportunityName"],
        )
    if request.do_not_create_opportunity and (request.opportunity_id or request.opportunity_name):
        field = "opportunityId" if request.opportunity_id else "opportunityName"
        raise errors.FieldIntegrity(
            f"{field} must be blank when doNotCreateOpportunity is true", fields=[field]
        )
    name = request.opportunity_name
    if name is not None and len(name) > MAX_OPPORTUNITY_NAME:
        raise errors.StringTooLong(
            f"opportunityName: data value too large (max length={MAX_OPPORTUNITY_NAME})",
            fields=["opportunityName"],
        )


def _owner(tx: records.Tx, request: LeadConvert, lead: Mapping[str, Any]) -> str:
    """The owner of the records created: ``ownerId`` (an active user), else the lead's owner;
    a lead owned by a queue needs ``ownerId`` (accounts and contacts can't be owned by one)."""
    if request.owner_id is None:
        owner = str(lead.get("OwnerId") or "")
        if not tx.store.registry.is_id_of(owner, "User"):
            raise errors.RequiredFieldMissing(
                "ownerId is required: the lead is owned by a queue", fields=["ownerId"]
            )
        return owner
    try:
        owner = ids.parse(request.owner_id, field="ownerId")
    except errors.OpenCadenceError:
        raise _bad_reference("ownerId", request.owner_id) from None
    user = tx.get("User", owner) if tx.store.registry.is_id_of(owner, "User") else None
    if user is None or not user.get("IsActive"):
        raise _bad_reference("ownerId", request.owner_id)
    return owner


def _existing(tx: records.Tx, name: str, record_id: str | None, arg: str) -> str | None:
    """A record to merge into: of ``name``, live, visible to and editable by the caller."""
    if record_id is None:
        return None
    try:
        canonical = ids.parse(record_id, field=arg)
    except errors.OpenCadenceError:
        raise _bad_reference(arg, record_id) from None
    if not tx.store.registry.is_id_of(canonical, name) or tx.get(name, canonical) is None:
        raise _bad_reference(arg, record_id)
    try:
        tx.require_access(name, canonical, "update")
    except errors.NotFound:
        raise _bad_reference(arg, record_id) from None
    return canonical


def _bad_reference(arg: str, value: str) -> errors.InvalidCrossReferenceKey:
    return errors.InvalidCrossReferenceKey(
        f"invalid cross reference id: {arg} {value}", fields=[arg]
    )


def _mapped(lead: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    return {target: lead[source] for source, target in mapping.items() if lead.get(source)}


def _merge(
    tx: records.Tx, name: str, record_id: str, values: Mapping[str, Any], overwrite: tuple[str, ...]
) -> None:
    """Fill the target's empty fields from the lead; existing data is kept (``overwrite``
    names the fields the lead's value replaces anyway)."""
    current = tx.get(name, record_id) or {}
    changes = {
        k: v
        for k, v in values.items()
        if v not in (None, "", False) and (current.get(k) in (None, "") or k in overwrite)
    }
    if changes:
        tx.update(name, record_id, changes)


def _opportunity(
    tx: records.Tx,
    lead: Mapping[str, Any],
    request: LeadConvert,
    account_id: str,
    owner: str,
    today: date,
) -> dict[str, Any]:
    """The new opportunity: named ``opportunityName`` or the lead's company, at the stage
    picklist's default (else its first value), closing at the end of the current quarter."""
    stage = tx.store.registry.object("Opportunity").field("StageName")
    default = None
    if stage is not None:
        default = stage.default_value or (stage.picklist[0].value if stage.picklist else None)
    return {
        "Name": request.opportunity_name or lead.get("Company") or lead.get("Name"),
        "AccountId": account_id,
        "OwnerId": owner,
        "StageName": default,
        "CloseDate": quarter_end(today),
    }


def quarter_end(day: date) -> date:
    """The last day of ``day``'s calendar quarter."""
    last_month = (day.month - 1) // 3 * 3 + 3
    if last_month == 12:
        return date(day.year, 12, 31)
    return date(day.year, last_month + 1, 1) - timedelta(days=1)


def _move_activities(
    tx: records.Tx, runs: RunStore, lead_id: str, contact_id: str, opportunity_id: str | None
) -> None:
    """The lead's tasks go to the contact (WhoId), and to the new opportunity (WhatId) when
    they are related to nothing, as Salesforce attaches a converted lead's activities."""
    for task_id in runs.activities_of(tx.conn, lead_id):
        task = tx.get("Task", task_id) or {}
        changes: dict[str, Any] = {"WhoId": contact_id}
        if opportunity_id is not None and not task.get("WhatId"):
            changes["WhatId"] = opportunity_id
        tx.update("Task", task_id, changes, system=True)


def _complete_tracker(tx: records.Tx, runs: RunStore, lead_id: str) -> None:
    """The lead's active tracker completes with LeadConverted: its open step is cancelled (an
    automated email not yet at the relay is not sent), its run-state row goes; the contact is
    not enrolled in its place (docs/runtime-decisions.md "Lead conversion")."""
    tracker_id = runs.active_tracker_of(tx.conn, [lead_id]).get(lead_id)
    if tracker_id is None:
        return
    tracker = tx.get(TRACKER, tracker_id)
    if tracker is None or tracker["State"] not in ("Running", "Paused"):
        return
    now: datetime = runtime.now_of(tx.store)
    runtime.transition(
        tx.store,
        tracker_id,
        tx.user_id,
        lambda c, cad, s: engine.remove(
            c, cad, s, now, tx.user_id, LEAD_CONVERTED, processing=True
        ),
        tx=tx,
    )
