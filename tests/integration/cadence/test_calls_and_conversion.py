"""Call results as CallDisposition records, call scripts (CallTemplate) on MakeACall steps and
their counters, and lead conversion through the Org facade, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from opencadence import errors, system
from opencadence.cadence import actions, conversion, runtime, validate
from opencadence.metadata import sales_engagement
from opencadence.org import Org
from opencadence.storage import accounts, migrate, records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import assign, step_trackers, tracker_of

V = "62.0"


def _session(org: Org, username: str, *, admin: bool = False) -> accounts.Session:
    user_id, _ = org.accounts.create_user(username, "pw", admin=admin)
    return org.accounts.session(org.accounts.open_session(user_id))


@pytest.fixture
def org(oc: system.System) -> Org:
    return oc.org


@pytest.fixture
def admin(org: Org) -> accounts.Session:
    return _session(org, "admin@calls.test", admin=True)


def _rows(org: Org, soql: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k != "attributes"}
        for r in org.queries.query(soql)["records"]
    ]


# -- call results ------------------------------------------------------------------------------


def test_upgrade_seeds_categories_and_call_results(org: Org) -> None:
    cats = _rows(
        org,
        "SELECT Category, DeveloperName, MasterLabel, Language FROM "
        "CallDispositionCategory ORDER BY Id",
    )
    assert [c["Category"] for c in cats] == list(sales_engagement.CALL_CATEGORIES)
    assert cats[0] == {
        "Category": "CallMeaningfulConnect",
        "DeveloperName": "CallMeaningfulConnect",
        "MasterLabel": "Meaningful Connect",
        "Language": "en_US",
    }
    results = _rows(
        org, "SELECT Disposition, DispositionCategory.Category FROM CallDisposition ORDER BY Id"
    )
    assert [(r["Disposition"], r["DispositionCategory"]["Category"]) for r in results] == list(
        sales_engagement.DEFAULT_CALL_DISPOSITIONS.items()
    )


def test_upgrade_again_keeps_a_deleted_call_result_deleted(oc: system.System, org: Org) -> None:
    (first,) = _rows(org, "SELECT Id FROM CallDisposition WHERE Disposition = 'Unqualified'")
    with oc.store.transaction() as tx:
        tx.delete("CallDisposition", first["Id"], system=True)
    migrate.upgrade(oc.store.engine, oc.store.registry)
    assert _rows(org, "SELECT Id FROM CallDisposition WHERE Disposition = 'Unqualified'") == []
    assert len(_rows(org, "SELECT Id FROM CallDispositionCategory")) == 5


def test_call_results_are_read_only_through_the_api(org: Org, admin: accounts.Session) -> None:
    category = migrate.category_id(org.registry, "CallUnqualified")
    with pytest.raises(errors.InvalidTypeForOperation):
        org.create(
            admin,
            "CallDisposition",
            {"Disposition": "Wrong number", "DispositionCategoryId": category},
            V,
        )
    assert org.describe("CallDisposition", V)["createable"] is False


def test_a_deleted_call_result_no_longer_routes(
    store: records.Store, org: Org, build: Build, acts: actions.Actions, rep: str, contacts: Any
) -> None:
    (meaningful,) = _rows(
        org, "SELECT Id FROM CallDisposition WHERE Disposition = 'Meaningful Connect'"
    )
    with store.transaction() as tx:
        tx.delete("CallDisposition", meaningful["Id"], system=True)
    cid = build(*_branch())
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    runtime.log_call(store, rep, a, "Meaningful Connect")
    # uncategorized now: the branch takes its default way
    assert step_trackers(store, tracker_of(store, a)["Id"])[3]["StepType"] == "CreateTask"


def _branch(template: str | None = None) -> list[dict[str, Any]]:
    call: dict[str, Any] = {"StepName": "call", "Type": "MakeACall"}
    if template is not None:
        call["TemplateId"] = template
    return [
        call,
        {
            "StepName": "branch",
            "Type": "Branch",
            "BranchDefaultStepName": "other",
            "rules": [
                {
                    "RuleName": "connected",
                    "OutcomeNextStepName": "happy",
                    "conditions": [
                        {
                            "RuleConditionName": "c1",
                            "Resource": "CallDispositionCategory",
                            "Operator": "Equal",
                            "Value": "CallMeaningfulConnect",
                        }
                    ],
                }
            ],
        },
        {"StepName": "happy", "Type": "SendAnEmail", "ParentStepName": "branch"},
        {"StepName": "other", "Type": "CreateTask", "ParentStepName": "branch"},
    ]


# -- call scripts ------------------------------------------------------------------------------


def _script(org: Org, who: accounts.Session, name: str = "Discovery") -> str:
    return org.create(
        who, "CallTemplate", {"Name": name, "HtmlBody": "<p>Hi</p>", "TemplateType": "Text"}, V
    )


def test_call_script_counters_follow_logged_calls(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Any,
) -> None:
    script = _script(org, admin)
    cid = build(*_branch(script))
    a, b, c = contacts(3)
    for target in (a, b, c):
        assign(acts, cid, target, rep)
    runtime.log_call(store, rep, a, "Meaningful Connect")
    runtime.log_call(store, rep, b, "Left Voicemail")
    runtime.log_call(store, rep, c, "Not a call result")  # uncategorized
    runtime.log_call(store, rep, a, "Meaningful Connect")  # completes no step: not counted
    (row,) = _rows(
        org,
        "SELECT TotalCalls, TotalCallsMeaningfulConnect, TotalCallsLeftVoicemail, "
        "TotalCallsUncategorized, TotalCallsNotInterested FROM CallTemplate",
    )
    assert row == {
        "TotalCalls": 3,
        "TotalCallsMeaningfulConnect": 1,
        "TotalCallsLeftVoicemail": 1,
        "TotalCallsUncategorized": 1,
        "TotalCallsNotInterested": None,
    }


def test_a_variant_call_script_is_counted(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    acts: actions.Actions,
    rep: str,
    contacts: Any,
) -> None:
    only = _script(org, admin, "Variant script")
    cid = build(
        {
            "StepName": "call",
            "Type": "MakeACall",
            "variants": [{"TemplateId": only, "SplitPercentage": 100, "Type": "MakeACall"}],
        },
        {"StepName": "t", "Type": "CreateTask"},
    )
    (a,) = contacts(1)
    assign(acts, cid, a, rep)
    runtime.log_call(store, rep, a, "Call Back Later")
    (row,) = _rows(org, "SELECT TotalCalls, TotalCallsCallBackLater FROM CallTemplate")
    assert row == {"TotalCalls": 1, "TotalCallsCallBackLater": 1}


def test_call_step_must_name_a_call_script(
    org: Org, admin: accounts.Session, build: Build, template_id: str
) -> None:
    with pytest.raises(validate.CadenceInvalid, match="names no call script"):
        build({"StepName": "call", "Type": "MakeACall", "TemplateId": template_id})
    script = _script(org, admin)
    with pytest.raises(validate.CadenceInvalid, match="is a call script"):
        build({"StepName": "mail", "Type": "SendAnEmail", "TemplateId": script})


def test_only_cadence_creators_write_call_scripts(org: Org, admin: accounts.Session) -> None:
    rep = _session(org, "plain@calls.test")
    with pytest.raises(errors.InsufficientAccessOnRecord):
        _script(org, rep)
    script = _script(org, admin)
    assert org.retrieve(rep, "CallTemplate", script, ["Name"], V)["Name"] == "Discovery"


def test_counters_are_read_only_through_the_api(org: Org, admin: accounts.Session) -> None:
    script = _script(org, admin)
    with pytest.raises(errors.InvalidFieldForInsertUpdate):
        org.update(admin, "CallTemplate", script, {"TotalCalls": 5}, V)


# -- lead conversion ---------------------------------------------------------------------------


def _lead(org: Org, who: accounts.Session, **extra: Any) -> str:
    body = {
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Company": "Engines Ltd",
        "Email": "ada@engines.test",
        "Phone": "555-0100",
        "LeadSource": "Web",
        "Country": "UK",
        **extra,
    }
    return org.create(who, "Lead", body, V)


def _convert(org: Org, who: accounts.Session, lead: str, **extra: Any) -> conversion.Converted:
    request = conversion.LeadConvert(lead_id=lead, converted_status="Closed - Converted", **extra)
    return org.convert_lead(who, request, V)


def test_conversion_creates_account_contact_opportunity(
    store: records.Store, org: Org, admin: accounts.Session
) -> None:
    lead = _lead(org, admin)
    task = org.create(admin, "Task", {"Subject": "Intro", "WhoId": lead}, V)
    before = _replay(store)
    done = _convert(org, admin, lead)
    assert done.opportunity_id is not None and done.lead_id == lead
    account = store.get("Account", done.account_id) or {}
    contact = store.get("Contact", done.contact_id) or {}
    opp = store.get("Opportunity", done.opportunity_id) or {}
    converted = store.get("Lead", lead) or {}
    assert (account["Name"], account["Phone"], account["BillingCountry"]) == (
        "Engines Ltd",
        "555-0100",
        "UK",
    )
    assert contact["AccountId"] == done.account_id and contact["Name"] == "Ada Lovelace"
    assert (contact["Email"], contact["LeadSource"], contact["MailingCountry"]) == (
        "ada@engines.test",
        "Web",
        "UK",
    )
    assert contact["OwnerId"] == account["OwnerId"] == opp["OwnerId"] == admin.user_id
    assert opp["Name"] == "Engines Ltd" and opp["StageName"] == "Prospecting"
    assert opp["AccountId"] == done.account_id
    assert opp["CloseDate"] == conversion.quarter_end(store.clock.now().date())
    assert converted["IsConverted"] is True and converted["Status"] == "Closed - Converted"
    assert converted["ConvertedContactId"] == done.contact_id
    assert converted["ConvertedAccountId"] == done.account_id
    assert converted["ConvertedOpportunityId"] == done.opportunity_id
    assert converted["ConvertedDate"] == store.clock.now().date()
    moved = store.get("Task", task) or {}
    assert moved["WhoId"] == done.contact_id and moved["WhatId"] == done.opportunity_id
    kinds = _events_after(store, before)
    assert ("Account", "CREATE") in kinds and ("Contact", "CREATE") in kinds
    assert ("Opportunity", "CREATE") in kinds and ("Lead", "UPDATE") in kinds
    assert ("Task", "UPDATE") in kinds
    assert len({k[2] for k in _events_raw(store, before)}) == 1  # one transaction


def _replay(store: records.Store) -> int:
    events = store.read_events(after=0, limit=100_000)
    return max((e["event"]["replayId"] for e in events), default=0)


def _events_raw(store: records.Store, after: int) -> list[tuple[str, str, str]]:
    out = []
    for e in store.read_events(after=after, limit=100_000):
        header = e["payload"]["ChangeEventHeader"]
        out.append((header["entityName"], header["changeType"], header["transactionKey"]))
    return out


def _events_after(store: records.Store, after: int) -> set[tuple[str, str]]:
    return {(name, kind) for name, kind, _ in _events_raw(store, after)}


def test_conversion_merges_into_existing_account_and_contact(
    store: records.Store, org: Org, admin: accounts.Session
) -> None:
    account = org.create(admin, "Account", {"Name": "Existing Co"}, V)
    contact = org.create(
        admin,
        "Contact",
        {"LastName": "Byron", "AccountId": account, "Email": "kept@x.test", "LeadSource": "Other"},
        V,
    )
    lead = _lead(org, admin)
    done = _convert(
        org,
        admin,
        lead,
        account_id=account,
        contact_id=contact,
        do_not_create_opportunity=True,
        overwrite_lead_source=True,
    )
    assert (done.account_id, done.contact_id, done.opportunity_id) == (account, contact, None)
    merged = store.get("Contact", contact) or {}
    # existing data kept, empty fields filled, LeadSource overwritten on request
    assert merged["LastName"] == "Byron" and merged["Email"] == "kept@x.test"
    assert merged["Phone"] == "555-0100" and merged["LeadSource"] == "Web"
    company = store.get("Account", account) or {}
    assert company["Name"] == "Existing Co" and company["Phone"] == "555-0100"
    assert _rows(org, "SELECT Id FROM Opportunity") == []


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"converted_status": "Open - Not Contacted"}, "INVALID_STATUS"),
        ({"converted_status": None}, "REQUIRED_FIELD_MISSING"),
        ({"contact_id": "003000000000000AAA"}, "REQUIRED_FIELD_MISSING"),
        ({"overwrite_lead_source": True}, "REQUIRED_FIELD_MISSING"),
        ({"do_not_create_opportunity": True, "opportunity_name": "X"}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"opportunity_name": "x" * 81}, "STRING_TOO_LONG"),
        ({"account_id": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"owner_id": "005000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY"),
    ],
)
def test_conversion_errors_write_nothing(
    store: records.Store, org: Org, admin: accounts.Session, extra: dict[str, Any], code: str
) -> None:
    lead = _lead(org, admin)
    before = _replay(store)
    fields = {"lead_id": lead, "converted_status": "Closed - Converted", **extra}
    with pytest.raises(errors.OpenCadenceError) as caught:
        org.convert_lead(admin, conversion.LeadConvert(**fields), V)
    assert caught.value.error_code == code
    assert (store.get("Lead", lead) or {})["IsConverted"] is False
    assert _events_raw(store, before) == []
    assert _rows(org, "SELECT Id FROM Account") == []


def test_converted_lead_is_refused_again_and_for_updates(org: Org, admin: accounts.Session) -> None:
    lead = _lead(org, admin)
    _convert(org, admin, lead, do_not_create_opportunity=True)
    with pytest.raises(errors.CannotUpdateConvertedLead):
        _convert(org, admin, lead)
    with pytest.raises(errors.CannotUpdateConvertedLead):
        org.update(admin, "Lead", lead, {"Title": "CEO"}, V)
    with pytest.raises(errors.InvalidCrossReferenceKey):
        _convert(org, admin, "00Q000000000000AAA")


def test_a_rep_converts_only_a_lead_they_may_edit(org: Org, admin: accounts.Session) -> None:
    owner = _session(org, "owner@calls.test")
    other = _session(org, "other@calls.test")
    lead = _lead(org, owner)
    with pytest.raises(errors.InvalidCrossReferenceKey):
        _convert(org, other, lead)
    done = _convert(org, owner, lead)
    assert done.account_id.startswith("001")


def test_conversion_completes_the_tracker_with_lead_converted(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    acts: actions.Actions,
    rep: str,
) -> None:
    cid = build({"StepName": "call", "Type": "MakeACall"}, {"StepName": "t", "Type": "CreateTask"})
    lead = _lead(org, admin)
    assign(acts, cid, lead, rep)
    done = _convert(org, admin, lead)
    tracker = tracker_of(store, lead)
    assert tracker["State"] == "Complete" and tracker["CompletionReason"] == "LeadConverted"
    assert tracker["IsTrackerActive"] is False
    steps = step_trackers(store, tracker["Id"])
    assert steps[-1]["StepType"] == "MakeACall" and steps[-1]["State"] == "Cancelled"
    # the contact is not enrolled in the lead's place; it may be enrolled afresh
    assert (
        _rows(org, f"SELECT Id FROM ActionCadenceTracker WHERE TargetId = '{done.contact_id}'")
        == []
    )
    assign(acts, cid, done.contact_id, rep)
    assert tracker_of(store, done.contact_id)["State"] == "Running"


def test_conversion_of_a_paused_tracker(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    acts: actions.Actions,
    rep: str,
) -> None:
    cid = build({"StepName": "call", "Type": "MakeACall"})
    lead = _lead(org, admin)
    assign(acts, cid, lead, rep)
    (res,) = acts.invoke("pauseSalesCadenceTracker", [{"targetId": lead}], rep)
    assert res["isSuccess"], res
    _convert(org, admin, lead)
    assert tracker_of(store, lead)["CompletionReason"] == "LeadConverted"


def test_converted_date_is_the_converting_users_today(
    store: records.Store, org: Org, admin: accounts.Session, clock: Any
) -> None:
    clock.set(datetime(2026, 3, 31, 20, 0, tzinfo=UTC))  # already 1 April in Tokyo (+9)
    far_id, _ = org.accounts.create_user("far@calls.test", "pw", time_zone="Asia/Tokyo")
    far = org.accounts.session(org.accounts.open_session(far_id))
    lead = _lead(org, far)
    done = _convert(org, far, lead)
    assert (store.get("Lead", lead) or {})["ConvertedDate"] == date(2026, 4, 1)
    opp = store.get("Opportunity", done.opportunity_id or "") or {}
    assert opp["CloseDate"] == date(2026, 6, 30)  # the quarter of the user's today
    other = _lead(org, admin)  # GMT: still 31 March
    _convert(org, admin, other, do_not_create_opportunity=True)
    assert (store.get("Lead", other) or {})["ConvertedDate"] == date(2026, 3, 31)


def test_quarter_end() -> None:
    assert conversion.quarter_end(date(2026, 2, 10)) == date(2026, 3, 31)
    assert conversion.quarter_end(date(2026, 6, 30)) == date(2026, 6, 30)
    assert conversion.quarter_end(date(2026, 8, 1)) == date(2026, 9, 30)
    assert conversion.quarter_end(date(2026, 12, 2)) == date(2026, 12, 31)


# -- person accounts ---------------------------------------------------------------------------


def test_person_account_has_its_person_contact(
    store: records.Store, org: Org, admin: accounts.Session
) -> None:
    account = org.create(
        admin,
        "Account",
        {"FirstName": "Pat", "LastName": "Person", "PersonEmail": "pat@x.test"},
        V,
    )
    row = store.get("Account", account) or {}
    assert row["IsPersonAccount"] is True and row["Name"] == "Pat Person"
    contact = store.get("Contact", row["PersonContactId"]) or {}
    assert contact["IsPersonAccount"] is True and contact["AccountId"] == account
    assert (contact["Name"], contact["Email"], contact["OwnerId"]) == (
        "Pat Person",
        "pat@x.test",
        admin.user_id,
    )
    org.update(admin, "Account", account, {"FirstName": "Sam", "PersonEmail": "sam@x.test"}, V)
    assert (store.get("Account", account) or {})["Name"] == "Sam Person"
    contact = store.get("Contact", row["PersonContactId"]) or {}
    assert (contact["Name"], contact["Email"]) == ("Sam Person", "sam@x.test")
    business = org.create(admin, "Account", {"Name": "Biz"}, V)
    biz = store.get("Account", business) or {}
    assert biz["IsPersonAccount"] is False and biz["PersonContactId"] is None
    org.delete(admin, "Account", account, V)  # its person contact goes and comes back with it
    assert store.get("Contact", row["PersonContactId"]) is None
    org.undelete(admin, "Account", account, V)
    assert (store.get("Contact", row["PersonContactId"]) or {})["IsDeleted"] is False


def test_a_person_account_is_a_cadence_target_by_its_001_id(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    rep: str,
) -> None:
    build({"StepName": "call", "Type": "MakeACall"}, name="Person cadence")
    account = org.create(admin, "Account", {"LastName": "Solo", "PersonEmail": "s@x.test"}, V)
    contact = (store.get("Account", account) or {})["PersonContactId"]
    (res,) = org.invoke_action(
        admin,
        "assignTargetToSalesCadence",
        [{"salesCadenceNameOrId": "Person cadence", "targetId": account, "userId": rep}],
    )
    assert res["isSuccess"], res
    tracker = tracker_of(store, contact)
    assert tracker["TargetId"] == contact and tracker["State"] == "Running"
    (paused,) = org.invoke_action(admin, "pauseSalesCadenceTracker", [{"targetId": account}])
    assert paused["isSuccess"], paused
    assert tracker_of(store, contact)["State"] == "Paused"
    business = org.create(admin, "Account", {"Name": "Biz"}, V)
    (refused,) = org.invoke_action(
        admin,
        "assignTargetToSalesCadence",
        [{"salesCadenceNameOrId": "Person cadence", "targetId": business}],
    )
    assert not refused["isSuccess"]
    assert refused["errors"][0]["statusCode"] == "INVALID_ID_FIELD"


def test_conversion_cancels_a_queued_automated_email(
    store: records.Store,
    org: Org,
    admin: accounts.Session,
    build: Build,
    acts: actions.Actions,
    rep: str,
    work: Any,
    outbox: Any,
    template_id: str,
) -> None:
    cid = build({"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id})
    lead = _lead(org, admin)
    assign(acts, cid, lead, rep)
    auto = step_trackers(store, tracker_of(store, lead)["Id"])[1]
    assert auto["State"] == "Queued"
    _convert(org, admin, lead)
    work.run_until_idle()
    assert outbox.sent == []
    assert (store.get("ActionCadenceStepTracker", auto["Id"]) or {})["State"] == "Cancelled"
    assert tracker_of(store, lead)["CompletionReason"] == "LeadConverted"
