"""AutoSendAnEmail through a real SMTP relay: rendering, the outbox, and every ErrorCode
produced before the relay (target, template, user, org settings), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence.cadence import actions, worker
from opencadence.email import settings, templates
from opencadence.metadata import registry as registries
from opencadence.storage import records, schema
from tests.integration.cadence.helpers import step_trackers, tracker_of
from tests.integration.email.conftest import Enrol, Relay, Template


def auto_step(store: records.Store, target: str) -> dict[str, Any]:
    return step_trackers(store, tracker_of(store, target)["Id"])[1]


def outbox_rows(store: records.Store) -> list[dict[str, Any]]:
    ob = store.meta.tables[schema.EMAIL_OUTBOX]
    with store.reading() as conn:
        return [dict(r) for r in conn.execute(sa.select(ob)).mappings()]


def test_sends_rendered_email_once(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    target = enrol(template(HtmlValue="<p>Hi {!Contact.FirstName}</p>"), {"FirstName": "Zoë"})
    work.run_until_idle()
    step = auto_step(store, target)
    assert (
        step["State"] == "Completed" and step["CompletedById"] == rep and step["ErrorCode"] is None
    )
    (msg,) = relay.received
    assert msg["Subject"] == "Hello Zoë" and msg["To"] == store.get("Contact", target)["Email"]
    assert "rep@example.com" in msg["From"]
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    assert "Hi Zoë, this is Rita Rep." in parts["text/plain"]
    assert "<p>Hi Zoë</p>" in parts["text/html"]
    (row,) = outbox_rows(store)
    assert row["status"] == "sent" and row["message_id"] == str(msg["Message-ID"]).strip()
    assert row["key"] == step["Id"]
    work.run_until_idle()
    assert len(relay.received) == 1


def test_default_value_and_lead_fields(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    tid = template(
        Subject="For {!Lead.Company}", Body="Dear {!Lead.FirstName, there} {!Contact.LastName, x}"
    )
    enrol(tid, {"Company": "Acme", "FirstName": None, "LastName": "L"})
    work.run_until_idle()
    (msg,) = relay.received
    assert msg["Subject"] == "For Acme"
    assert "Dear there x" in msg.get_payload(decode=True).decode()


def test_validate_rejects_unknown_merge_field() -> None:
    reg = registries.default_registry()
    templates.validate({"Subject": "{!Contact.FirstName}", "Body": "{!User.Email, a}"}, reg)
    for bad in ("{!Contact.Nope}", "{!Account.Name}", "{!Contact.FirstName", "{!nofield}"):
        with pytest.raises(templates.TemplateError) as exc:
            templates.validate({"Subject": "x", "Body": bad}, reg)
        assert exc.value.code == "TEMPLATE_HAS_INVALID_MERGE_FIELD"


def _error(store: records.Store, work: worker.Worker, target: str, relay: Relay) -> str:
    work.run_until_idle()
    step = auto_step(store, target)
    assert step["State"] == "Error", step
    assert relay.received == []
    return str(step["ErrorCode"])


def test_target_codes(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    tid = template()
    cases = {
        "TARGET_EMAIL_EMPTY": {"Email": None},
        "INVALID_TARGET_EMAIL": {"Email": "john..doe@example.com"},
        "TARGET_DO_NOT_CONTACT_ON": {"HasOptedOutOfEmail": True},
        "TARGET_EMAIL_BOUNCED": {"EmailBouncedDate": "2026-01-01T00:00:00Z"},
    }
    for code, fields in cases.items():
        assert _error(store, work, enrol(tid, fields), relay) == code


def test_no_target_access_when_target_deleted(
    store: records.Store, relay: Relay, work: worker.Worker, template: Template, enrol: Enrol
) -> None:
    target = enrol(template())
    step_id = auto_step(store, target)["Id"]
    with store.transaction() as tx:
        tx.delete("Contact", target)
    work.run_until_idle()
    step = store.get("ActionCadenceStepTracker", step_id) or {}
    assert (step["State"], step["ErrorCode"]) == ("Error", "NO_TARGET_ACCESS")
    assert relay.received == []


def _then(store: records.Store, enrol: Enrol, template_id: str, **change: Any) -> str:
    """Enrol a target with a sendable template, then change the template (or, for TemplateId,
    the step) as a user could after activation; returns the target."""
    target = enrol(template_id)
    with store.transaction() as tx:
        if "TemplateId" in change:
            step = auto_step(store, target)["ActionCadenceStepId"]
            tx.update("ActionCadenceStep", step, change, system=True)
        else:
            tx.update("EmailTemplate", template_id, change)
    return target


def test_template_codes(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    # activation refuses a template that cannot be sent, so each is broken after activation
    with store.transaction() as tx:  # an Id of another object: a call script
        script = tx.insert("CallTemplate", {"Name": "Script"})
    assert (
        _error(store, work, _then(store, enrol, template(), TemplateId=script), relay)
        == "INVALID_TEMPLATE_ID"
    )
    gone = template()
    target = enrol(gone)
    with store.transaction() as tx:
        tx.delete("EmailTemplate", gone)
    assert _error(store, work, target, relay) == "TEMPLATE_DELETED"
    assert (
        _error(store, work, _then(store, enrol, template(), IsActive=False), relay)
        == "TEMPLATE_NOT_PUBLIC"
    )
    with store.transaction() as tx:
        hidden = tx.insert(
            "Folder",
            {"Name": "H", "DeveloperName": "H", "Type": "EmailTemplate", "AccessType": "Hidden"},
        )
        other = tx.insert(
            "User",
            {
                "Username": "o@example.com",
                "LastName": "O",
                "Alias": "o",
                "Email": "o@example.com",
                "TimeZoneSidKey": "GMT",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
        )
    assert (
        _error(store, work, _then(store, enrol, template(), FolderId=hidden), relay)
        == "TEMPLATE_NOT_PUBLIC"
    )
    assert _error(store, work, enrol(template(FolderId=other)), relay) == "TEMPLATE_NOT_PUBLIC"
    assert _error(store, work, enrol(template(Body=" ")), relay) == "TEMPLATE_EMPTY"
    assert _error(store, work, enrol(template(Body="x" * 200_000)), relay) == "TEMPLATE_TOO_LARGE"
    # written around the API (no save-time validation): caught again at send time
    bad = template()
    tt = store.meta.tables["EmailTemplate"]
    with store.transaction() as tx:
        tx.conn.execute(sa.update(tt).where(tt.c.Id == bad).values(Body="{!Contact.Nope}"))
    assert _error(store, work, enrol(bad), relay) == "TEMPLATE_HAS_INVALID_MERGE_FIELD"
    latin = template(Encoding="ISO-8859-1")
    assert (
        _error(store, work, enrol(latin, {"FirstName": "Łukasz"}), relay)
        == "TEMPLATE_MERGE_FIELD_RENDERING_ERROR"
    )
    # a template in the assignee's own folder is usable
    enrol(template(FolderId=rep))
    work.run_until_idle()
    assert len(relay.received) == 1


def test_user_and_org_codes(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    tid = template()
    with store.transaction() as tx:
        settings.put(tx.conn, "hvs_access", 0, scope=rep)
    assert _error(store, work, enrol(tid), relay) == "USER_HAS_LOST_HVS_ACCESS"
    with store.transaction() as tx:
        settings.put(tx.conn, "hvs_access", 1, scope=rep)
        tx.update("User", rep, {"SenderEmail": "rep.@example.com"}, system=True)
    assert _error(store, work, enrol(tid), relay) == "INVALID_USER_EMAIL"
    with store.transaction() as tx:
        tx.update("User", rep, {"SenderEmail": None}, system=True)
        settings.put(tx.conn, "auto_email_enabled", 0)
    assert _error(store, work, enrol(tid), relay) == "AUTO_EMAIL_ORG_SETTING_OFF"
    with store.transaction() as tx:
        settings.put(tx.conn, "auto_email_enabled", 1)
        settings.put(tx.conn, "email_enabled", 0)
    assert _error(store, work, enrol(tid), relay) == "EMAIL_ORG_SETTING_OFF"
    with store.transaction() as tx:
        settings.put(tx.conn, "email_enabled", 1)
    target = enrol(tid)
    with store.transaction() as tx:
        tx.update("User", rep, {"IsActive": False}, system=True)
    assert _error(store, work, target, relay) == "USER_IS_INACTIVE"


def test_variants_render_the_template_chosen_by_split(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    acts: actions.Actions,
    template: Template,
    enrol: Enrol,
    rep: str,
) -> None:
    a, b = template(Subject="Variant A"), template(Subject="Variant B")
    targets = [
        enrol(
            a,
            step={
                "variants": [
                    {"TemplateId": a, "SplitPercentage": 50},
                    {"TemplateId": b, "SplitPercentage": 50},
                ]
            },
        )
        for _ in range(12)
    ]
    chosen = {}
    for t in targets:
        (res,) = acts.selectTemplateForSalesCadenceStepTracker(
            [{"stepTrackerId": auto_step(store, t)["Id"]}], rep
        )
        chosen[store.get("Contact", t)["Email"]] = json.loads(res["outputValues"]["output"])[
            "templateId"
        ]
    work.run_until_idle()
    got = {str(m["To"]): str(m["Subject"]) for m in relay.received}
    assert got == {to: "Variant A" if tid == a else "Variant B" for to, tid in chosen.items()}
    assert set(got.values()) == {"Variant A", "Variant B"}


def test_sending_window_holds_the_email_and_later_steps_shift(
    store: records.Store,
    relay: Relay,
    work: worker.Worker,
    template: Template,
    enrol: Enrol,
    clock: Any,
) -> None:
    # the test clock starts Monday 2026-01-05 09:00 UTC = 04:00 in New York (the rep's zone)
    target = enrol(
        template(), then=[{"StepName": "call", "Type": "MakeACall", "StepTitle": "call"}]
    )
    cadence_id = tracker_of(store, target)["ActionCadenceId"]
    with store.transaction() as tx:
        settings.put(tx.conn, "window_start_minute", 9 * 60, scope=cadence_id)
        settings.put(tx.conn, "window_end_minute", 17 * 60, scope=cadence_id)
    work.run_until_idle()
    step = auto_step(store, target)
    assert (
        relay.received == []
        and step["State"] in ("Queued", "Scheduled")
        and step["ErrorCode"] is None
    )
    clock.advance(hours=5)  # 14:00 UTC = 09:00 EST: the window opens
    work.run_until_idle()
    assert len(relay.received) == 1
    steps = step_trackers(store, tracker_of(store, target)["Id"])
    assert steps[1]["State"] == "Completed" and steps[1]["CompletionDate"] == clock.now().replace(
        tzinfo=None
    )
    assert (
        steps[2]["StepType"] == "MakeACall"
        and steps[2]["CreatedDate"] >= steps[1]["CompletionDate"]
    )
