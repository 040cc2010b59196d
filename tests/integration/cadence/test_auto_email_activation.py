"""Activation refuses an AutoSendAnEmail step whose template the runtime could not send (no
TemplateId, no such EmailTemplate, deleted, inactive, in a hidden folder), naming the step with
the errorCode of every activation problem; a sendable one activates."""

from __future__ import annotations

import pytest

from opencadence import ids
from opencadence.cadence import runtime, validate
from opencadence.storage import records
from tests.integration.cadence.conftest import Build
from tests.integration.cadence.helpers import email_template


def _refused(store: records.Store, build: Build, template_id: str | None) -> str:
    step = {"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id}
    cid = build(step, state="Draft")
    with pytest.raises(validate.CadenceInvalid) as err:
        runtime.activate(store, cid)
    assert err.value.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    cad = store.get("ActionCadence", cid) or {}
    assert cad["State"] == "Error" and cad["ErrorMessage"] == str(err.value)
    return str(err.value)


def test_activation_refuses_a_template_that_cannot_be_sent(
    store: records.Store, build: Build, rep: str
) -> None:
    assert _refused(store, build, None) == "Step auto: an AutoSendAnEmail step needs a TemplateId"
    missing = ids.make_id("00X", 999_999)
    assert _refused(store, build, missing) == (
        f"Step auto: TemplateId {missing} names no email template"
    )
    with store.transaction() as tx:  # an Id of another object: a call script
        call_template = tx.insert("CallTemplate", {"Name": "Script"})
    assert _refused(store, build, call_template).endswith("names no email template")
    inactive = email_template(store, IsActive=False)
    assert _refused(store, build, inactive).endswith("the email template is not active")
    gone = email_template(store)
    with store.transaction() as tx:
        tx.delete("EmailTemplate", gone)
    assert _refused(store, build, gone).endswith("the email template is deleted")
    with store.transaction() as tx:
        hidden = tx.insert(
            "Folder",
            {"Name": "H", "DeveloperName": "H", "Type": "EmailTemplate", "AccessType": "Hidden"},
        )
    in_hidden = email_template(store, FolderId=hidden)
    assert _refused(store, build, in_hidden).endswith("in a folder that is not public")


def test_activation_accepts_a_sendable_template(
    store: records.Store, build: Build, rep: str
) -> None:
    with store.transaction() as tx:
        public = tx.insert(
            "Folder",
            {"Name": "P", "DeveloperName": "P", "Type": "EmailTemplate", "AccessType": "Public"},
        )
    # the org's folder, a public folder, a user's own folder (whether it is the assignee's is
    # only known at send time, which checks it: TEMPLATE_NOT_PUBLIC)
    for folder in (None, public, rep):
        fields = {} if folder is None else {"FolderId": folder}
        template_id = email_template(store, **fields)
        cid = build({"StepName": "auto", "Type": "AutoSendAnEmail", "TemplateId": template_id})
        assert (store.get("ActionCadence", cid) or {})["State"] == "Active"
