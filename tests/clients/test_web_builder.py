"""The cadence builder and its email templates, in real Chromium (Debian's, driven by
Playwright) against a real TLS server on 127.0.0.1, on both databases: an admin builds a
cadence of four step types, sees the activation error at the failing step, fixes it and
activates; branches, listener rules, variants and exit rules; import and export of the
definition file; templates with the merge-field picker and a preview for a target; a rep
gets the 403 page and changes nothing; CSRF-less POSTs are refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from opencadence import demo
from opencadence.cadence import definition_file
from opencadence.storage import authorization
from tests.clients.conftest import Server
from tests.clients.test_web_app import (  # noqa: F401 (fixtures)
    OTHER,
    OTHER_PASSWORD,
    REP,
    REP_PASSWORD,
    base,
    browser,
    context,
    log_in,
    org_server,
    pytestmark,
)
from tests.clients.test_web_work import shot

ADMIN = demo.ADMIN


def _query(srv: Server, soql: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = srv.org.queries.query(soql)["records"]
    return found


def _cadence(srv: Server, name: str) -> dict[str, Any]:
    (row,) = _query(
        srv, f"SELECT Id, State, ErrorMessage, TotalSteps FROM ActionCadence WHERE Name = '{name}'"
    )
    return row


def _steps(srv: Server, cadence_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (r["Type"], r["StepTitle"], r["ParentStepName"])
        for r in _query(
            srv,
            "SELECT Type, StepTitle, ParentStepName FROM ActionCadenceStep "
            f"WHERE ActionCadenceId = '{cadence_id}' ORDER BY CreatedDate, Id",
        )
    ]


def _add_step(page: Any, kind: str, title: str, after: str | None = None, **extra: Any) -> None:
    form = page.locator("form.add-step")
    form.get_by_label("Step type").select_option(label=kind)
    form.get_by_label("Step title").fill(title)
    if after is not None:
        form.get_by_label("After").select_option(label=after)
    if "due" in extra:
        form.get_by_label("Days until due").fill(str(extra["due"]))
    if "wait" in extra:
        amount, unit = extra["wait"]
        form.get_by_label("Duration", exact=True).fill(str(amount))
        form.get_by_label("Duration unit").select_option(unit)
    form.get_by_role("button", name="Add Step").click()
    page.get_by_role("article", name=f"Step {title}").wait_for()


def _box(page: Any, title: str) -> Any:
    return page.get_by_role("article", name=f"Step {title}")


def test_an_admin_builds_a_cadence_sees_the_activation_error_at_the_step_and_activates(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    page = context.new_page()
    log_in(page, org_server, ADMIN, demo.ADMIN_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    page.get_by_role("link", name="Cadences").click()
    page.get_by_role("heading", name="Cadences").wait_for()
    row = page.locator("tr.cadence-row", has_text="Demo: every step")
    # state and the ActiveTargets / TotalTargets counters, as SOQL reads them
    (demo_row,) = _query(
        org_server,
        "SELECT State, ActiveTargets, TotalTargets FROM ActionCadence "
        "WHERE Name = 'Demo: every step'",
    )
    cells = row.locator("td").all_inner_texts()
    assert cells[2] == demo_row["State"] == "Active"
    assert (int(cells[3]), int(cells[4])) == (demo_row["ActiveTargets"], demo_row["TotalTargets"])
    assert demo_row["TotalTargets"] >= 10
    shot(page, "cadences", request)
    row.get_by_role("link", name="Demo: every step").click()
    page.get_by_role("heading", name=re.compile("^Demo: every step")).wait_for()
    demo_id = _cadence(org_server, "Demo: every step")["Id"]
    # every step of it in the diagram, each once
    assert page.locator("article.step-box").count() == len(_steps(org_server, demo_id)) > 8
    shot(page, "builder-demo", request)
    page.go_back()

    page.get_by_label("Cadence name").fill("Builder outbound")
    page.get_by_label("Description").fill("Built in the browser")
    page.get_by_role("button", name="Create Cadence").click()
    page.get_by_role("heading", name=re.compile("^Builder outbound")).wait_for()
    cadence_id = _cadence(org_server, "Builder outbound")["Id"]
    assert _steps(org_server, cadence_id) == [("Root", "Start", None)]

    _add_step(page, "Call", "Intro call", after="Start", due=1)
    _add_step(page, "Wait", "Two days", after="Intro call", wait=(2, "days"))
    _add_step(page, "Automated email", "Follow-up email", after="Two days")
    _add_step(page, "Task", "Research the account", after="Follow-up email", due=2)
    # inserted between: a step added after the call goes before the wait
    _add_step(page, "LinkedIn: connect", "Connect", after="Intro call")
    page.locator("#x-event").select_option(label="Email replied")
    page.get_by_role("button", name="Add Exit Rule").click()
    page.get_by_text("Exit on Email replied").wait_for()
    assert sorted(_steps(org_server, cadence_id), key=str) == sorted(
        [
            ("Root", "Start", None),
            ("MakeACall", "Intro call", "start"),
            ("Wait", "Two days", "connect"),
            ("AutoSendAnEmail", "Follow-up email", "two-days"),
            ("CreateTask", "Research the account", "follow-up-email"),
            ("LinkedInConnection", "Connect", "intro-call"),
        ],
        key=str,
    )
    assert "2 days" in _box(page, "Two days").inner_text()
    # delete the LinkedIn step of the draft: the wait now follows the call
    _box(page, "Connect").get_by_role("link", name="Edit Connect").click()
    page.get_by_role("button", name="Delete Step").click()
    page.get_by_role("heading", name="Add a step").wait_for()
    assert _box(page, "Connect").count() == 0
    assert ("Wait", "Two days", "intro-call") in _steps(org_server, cadence_id)
    _add_step(page, "LinkedIn: connect", "Connect", after="Intro call")

    # Activate: the automated email has no template; the error shows in that step's box
    page.get_by_role("button", name="Activate").click()
    failing = _box(page, "Follow-up email")
    failing.get_by_role("alert").wait_for()
    assert "needs a TemplateId" in failing.get_by_role("alert").inner_text()
    assert "invalid" in (failing.get_attribute("class") or "")
    assert _box(page, "Intro call").get_by_role("alert").count() == 0
    assert "Step follow-up-email:" in page.locator("#builder-error").inner_text()
    state = _cadence(org_server, "Builder outbound")
    assert state["State"] == "Error"
    assert state["ErrorMessage"].startswith("Step follow-up-email: ")
    shot(page, "builder-error", request)
    # reloaded, the page still shows it where it belongs (the cadence's ErrorMessage)
    page.reload()
    assert "needs a TemplateId" in _box(page, "Follow-up email").inner_text()

    # fix it: choose the template in the step's form, save, activate
    failing.get_by_role("link", name="Edit Follow-up email").click()
    page.get_by_role("heading", name="Edit step: Follow-up email").wait_for()
    page.locator("#edit").get_by_label("Email template").select_option(label="Demo: intro")
    page.get_by_role("button", name="Save Step").click()
    page.get_by_role("heading", name="Edit step: Follow-up email").wait_for()
    assert "template: Demo: intro" in _box(page, "Follow-up email").inner_text()
    page.get_by_role("button", name="Activate").click()
    page.get_by_role("button", name="Deactivate").wait_for()
    assert page.get_by_role("alert").count() == 0
    state = _cadence(org_server, "Builder outbound")
    assert (state["State"], state["ErrorMessage"], state["TotalSteps"]) == ("Active", None, 5)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{base(org_server)}/cadences/{cadence_id}")
    shot(page, "builder", request)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone-width screen
    shot(page, "builder-phone", request)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 800})

    # export from the page: the definition file of what was built
    with page.expect_download() as info:
        page.get_by_role("link", name="Export definition").click()
    exported = yaml.safe_load(Path(info.value.path()).read_text(encoding="utf-8"))
    assert exported["state"] == "Active"
    assert [s["Type"] for s in exported["steps"]] == [
        "Root",
        "MakeACall",
        "LinkedInConnection",
        "Wait",
        "AutoSendAnEmail",
        "CreateTask",
    ]
    assert exported["steps"][0]["rules"][0]["GlobalEventType"] == "EmailReply"
    assert exported == definition_file.export_definition(org_server.org.store, cadence_id)

    # Deactivate
    page.get_by_role("button", name="Deactivate").click()
    page.get_by_role("button", name="Activate").wait_for()
    assert _cadence(org_server, "Builder outbound")["State"] == "Inactive"
    # once activated, a deleted step is Retired and the diagram closes the gap
    _box(page, "Two days").get_by_role("link", name="Edit Two days").click()
    page.get_by_role("button", name="Delete Step").click()
    page.get_by_role("heading", name="Add a step").wait_for()
    assert _box(page, "Two days").count() == 0
    assert page.get_by_role("heading", name="Not connected").count() == 0
    connect = page.locator("li.node", has=_box(page, "Connect")).first
    assert _box(page, "Follow-up email").count() == 1
    assert connect.locator("article", has_text="Follow-up email").count() == 1
    (wait,) = _query(
        org_server,
        "SELECT GraphState FROM ActionCadenceStep "
        f"WHERE ActionCadenceId = '{cadence_id}' AND Type = 'Wait'",
    )
    assert wait["GraphState"] == "Retired"
    assert _cadence(org_server, "Builder outbound")["State"] == "Inactive"


def test_branches_listener_rules_variants_and_import(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    page = context.new_page()
    log_in(page, org_server, ADMIN, demo.ADMIN_PASSWORD)
    page.goto(f"{base(org_server)}/cadences")
    page.get_by_label("Cadence name").fill("Branching")
    page.get_by_role("button", name="Create Cadence").click()
    page.get_by_role("heading", name=re.compile("^Branching")).wait_for()
    cadence_id = _cadence(org_server, "Branching")["Id"]
    _add_step(page, "Call", "Call them", after="Start")
    _add_step(page, "Branch on call result", "Outcome", after="Call them")
    _add_step(page, "Manual email", "Write", after="Outcome")
    _add_step(page, "Task", "Try later", after="Outcome")
    _add_step(page, "Listen for email engagement", "Opened?", after="Write", wait=(36, "hours"))
    _add_step(page, "Call", "Hot call", after="Opened?")
    _add_step(page, "LinkedIn: message", "Message", after="Opened?")
    # route the branch: connected -> Write, otherwise Try later
    _box(page, "Outcome").get_by_role("link", name="Edit Outcome").click()
    page.get_by_label("Call result").select_option(label="Meaningful connect")
    page.get_by_label("Go to", exact=True).select_option(label="Write")
    page.get_by_role("button", name="Add Rule").click()
    page.get_by_text("If Meaningful connect → write").wait_for()
    page.get_by_label("Otherwise go to").select_option(label="Try later")
    page.get_by_role("button", name="Save Step").click()
    page.get_by_role("heading", name="Edit step: Outcome").wait_for()
    # the listener: opened within its window -> Hot call, otherwise Message
    _box(page, "Opened?").get_by_role("link", name="Edit Opened?").click()
    page.get_by_label("Email engagement").select_option(label="Email opened")
    page.get_by_label("Go to", exact=True).select_option(label="Hot call")
    page.get_by_role("button", name="Add Rule").click()
    page.get_by_text("If Email opened → hot-call").wait_for()
    page.get_by_label("Otherwise go to").select_option(label="Message")
    page.get_by_role("button", name="Save Step").click()
    page.get_by_role("heading", name="Edit step: Opened?").wait_for()
    # two template variants of the manual email, 70 / 30
    _box(page, "Write").get_by_role("link", name="Edit Write").click()
    variants = page.get_by_role("region", name="Variants")
    for split in ("70", "30"):
        variants.get_by_label("Email template").select_option(label="Demo: intro")
        variants.get_by_label("Split %").fill(split)
        variants.get_by_role("button", name="Add Variant").click()
        page.get_by_role("heading", name="Edit step: Write").wait_for()
    assert "variant 2: Demo: intro · 30%" in _box(page, "Write").inner_text()
    # the diagram labels each way out of the branches
    outcome_kids = page.locator("li.node", has=_box(page, "Outcome")).first
    assert "If Meaningful connect" in outcome_kids.inner_text()
    assert "Otherwise" in outcome_kids.inner_text()
    assert "within 36 hours" in _box(page, "Opened?").inner_text()
    page.get_by_role("button", name="Activate").click()
    page.get_by_role("button", name="Deactivate").wait_for()
    assert _cadence(org_server, "Branching")["State"] == "Active"
    shot(page, "builder-branches", request)
    exported = definition_file.export_definition(org_server.org.store, cadence_id)
    by_name = {s["StepName"]: s for s in exported["steps"]}
    assert by_name["outcome"]["BranchDefaultStepName"] == "try-later"
    assert by_name["outcome"]["rules"][0]["OutcomeNextStepName"] == "write"
    assert by_name["outcome"]["rules"][0]["conditions"][0]["Value"] == "CallMeaningfulConnect"
    assert by_name["opened"]["WaitTimeInSeconds"] == 36 * 3600
    assert by_name["opened"]["rules"][0]["conditions"][0]["Value"] == "EmailOpen"
    assert [v["SplitPercentage"] for v in by_name["write"]["variants"]] == [70, 30]

    # import: the exported file under a new name becomes a second, active cadence
    exported["cadence"]["Name"] = "Branching copy"
    page.goto(f"{base(org_server)}/cadences")
    page.get_by_label("File (YAML or JSON)").set_input_files(
        files=[
            {
                "name": "copy.yaml",
                "mimeType": "application/yaml",
                "buffer": definition_file.dump(exported).encode(),
            }
        ]
    )
    page.wait_for_function("document.getElementById('import-text').value.length > 0")
    assert page.get_by_label("Definition").input_value() == definition_file.dump(exported)
    page.get_by_role("button", name="Import").click()
    page.get_by_role("heading", name=re.compile("^Branching copy")).wait_for()
    copy_id = _cadence(org_server, "Branching copy")["Id"]
    assert _cadence(org_server, "Branching copy")["State"] == "Active"
    again = definition_file.export_definition(org_server.org.store, copy_id)
    assert again["steps"] == exported["steps"]
    # a file that fails changes nothing and says why, keeping the text to fix
    page.goto(f"{base(org_server)}/cadences")
    page.get_by_label("Definition").fill(definition_file.dump(exported))
    page.get_by_role("button", name="Import").click()
    assert "DUPLICATE_VALUE" in page.get_by_role("alert").inner_text()
    assert "Branching copy" in page.get_by_label("Definition").input_value()
    assert (
        len(_query(org_server, "SELECT Id FROM ActionCadence WHERE Name = 'Branching copy'")) == 1
    )


def test_email_templates_with_merge_field_picker_and_preview(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    page = context.new_page()
    log_in(page, org_server, ADMIN, demo.ADMIN_PASSWORD)
    page.get_by_role("link", name="Email Templates").click()
    page.get_by_role("heading", name="Email Templates").wait_for()
    assert page.locator("tr.template-row", has_text="Demo: intro").count() == 1
    page.get_by_label("Template name").fill("Builder welcome")
    page.get_by_role("button", name="Create Template").click()
    page.get_by_role("heading", name="Builder welcome").wait_for()
    page.get_by_label("Subject").fill("Welcome, ")
    page.locator("#t-field").select_option(label="Contact FirstName")
    page.get_by_role("button", name="Insert Merge Field").click()
    body = page.get_by_label("Text body")
    body.click()
    body.fill("Hello ")
    body.press("End")
    page.locator("#t-field").select_option(label="Contact FirstName")
    page.get_by_role("button", name="Insert Merge Field").click()
    body.press("End")
    body.type(", this is ")
    page.locator("#t-field").select_option(label="User Name")
    page.get_by_role("button", name="Insert Merge Field").click()
    assert page.get_by_label("Subject").input_value() == "Welcome, {!Contact.FirstName}"
    assert body.input_value() == "Hello {!Contact.FirstName}, this is {!User.Name}"
    page.get_by_label("Active").check()
    page.get_by_role("button", name="Save Template").click()
    page.get_by_role("status").wait_for()
    (saved,) = _query(
        org_server,
        "SELECT Subject, Body, IsActive FROM EmailTemplate WHERE Name = 'Builder welcome'",
    )
    assert saved == {
        "attributes": saved["attributes"],
        "Subject": "Welcome, {!Contact.FirstName}",
        "Body": "Hello {!Contact.FirstName}, this is {!User.Name}",
        "IsActive": True,
    }
    page.get_by_label("Preview for").select_option(label="Bob Baker (Contact)")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    preview.locator(".preview-text").wait_for()
    assert preview.locator(".preview-subject").inner_text().endswith("Welcome, Bob")
    assert preview.locator(".preview-text").inner_text() == "Hello Bob, this is Ada Admin"
    shot(page, "template", request)

    # an unknown merge field is refused on save: nothing changes, the typed text stays
    body.fill("Hi {!Contact.Nope}")
    page.get_by_role("button", name="Save Template").click()
    assert "Invalid merge field {!Contact.Nope}" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Text body").input_value() == "Hi {!Contact.Nope}"
    (after,) = _query(org_server, "SELECT Body FROM EmailTemplate WHERE Name = 'Builder welcome'")
    assert after["Body"] == "Hello {!Contact.FirstName}, this is {!User.Name}"


def _snapshot(srv: Server) -> list[Any]:
    return [
        _query(srv, "SELECT Id, Name, State FROM ActionCadence ORDER BY Id"),
        _query(srv, "SELECT Id, StepTitle FROM ActionCadenceStep ORDER BY Id"),
        _query(srv, "SELECT Id, Name, Body FROM EmailTemplate ORDER BY Id"),
    ]


def test_a_rep_cannot_open_the_builder_and_nothing_changes(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    cadence_id = _cadence(org_server, "Demo: every step")["Id"]
    (template,) = _query(org_server, "SELECT Id FROM EmailTemplate WHERE Name = 'Demo: intro'")
    (step,) = _query(
        org_server,
        f"SELECT Id FROM ActionCadenceStep WHERE ActionCadenceId = '{cadence_id}' AND Type = 'Root'",
    )
    before = _snapshot(org_server)
    page = context.new_page()
    log_in(page, org_server, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    assert page.get_by_role("link", name="Cadences").count() == 0
    assert page.get_by_role("link", name="Email Templates").count() == 0
    csrf = page.locator("input[name=csrf]").first.input_value()
    for path in (
        "/cadences",
        f"/cadences/{cadence_id}",
        f"/cadences/{cadence_id}/export",
        "/templates",
        f"/templates/{template['Id']}",
    ):
        response = page.goto(f"{base(org_server)}{path}")
        assert response.status == 403, path
        page.get_by_role("heading", name="Insufficient Privileges").wait_for()
    shot(page, "builder-403", request)
    # with a valid CSRF token, every builder POST is still refused
    for path, form in (
        ("/cadences", {"name": "Rep's cadence"}),
        ("/cadences/import", {"definition": "cadence: {Name: Sneaky}\nsteps: []"}),
        (f"/cadences/{cadence_id}/deactivate", {}),
        (f"/cadences/{cadence_id}/add-step", {"type": "CreateTask", "after": "start"}),
        (f"/cadences/{cadence_id}/delete-step", {"step": step["Id"]}),
        (f"/cadences/{cadence_id}/add-exit", {"event": "EmailReply"}),
        ("/templates", {"name": "Rep's template"}),
        (f"/templates/{template['Id']}", {"name": "Hacked", "subject": "x", "body": "x"}),
    ):
        answer = page.request.post(f"{base(org_server)}{path}", form={"csrf": csrf, **form})
        assert answer.status == 403, path
        assert "Insufficient Privileges" in answer.text()
    assert _snapshot(org_server) == before


def test_csrf_less_builder_posts_are_refused(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
) -> None:
    cadence_id = _cadence(org_server, "Demo: every step")["Id"]
    (template,) = _query(org_server, "SELECT Id FROM EmailTemplate WHERE Name = 'Demo: intro'")
    before = _snapshot(org_server)
    page = context.new_page()
    log_in(page, org_server, ADMIN, demo.ADMIN_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    for path, form in (
        ("/cadences", {"name": "No token"}),
        ("/cadences/import", {"definition": "cadence: {Name: No token}\nsteps: []"}),
        (f"/cadences/{cadence_id}/deactivate", {}),
        (f"/cadences/{cadence_id}/add-exit", {"event": "EmailReply"}),
        ("/templates", {"name": "No token"}),
        (f"/templates/{template['Id']}", {"name": "Hacked", "subject": "x", "body": "x"}),
    ):
        for token in (None, "forged"):
            sent = form if token is None else {"csrf": token, **form}
            answer = page.request.post(f"{base(org_server)}{path}", form=sent)
            assert answer.status == 403, path
            assert "Request refused" in answer.text()
    assert _snapshot(org_server) == before


def test_a_cadence_creator_who_is_not_an_admin_builds(
    org_server: Server,  # noqa: F811
    context: Any,  # noqa: F811
) -> None:
    sam = org_server.org.accounts.find_user(OTHER)
    assert sam is not None
    org_server.org.accounts.grant(str(sam["Id"]), authorization.CADENCE_CREATOR)
    page = context.new_page()
    log_in(page, org_server, OTHER, OTHER_PASSWORD)
    page.get_by_role("link", name="Cadences").click()
    page.get_by_role("heading", name="Cadences").wait_for()
    page.get_by_label("Cadence name").fill("Sam's cadence")
    page.get_by_role("button", name="Create Cadence").click()
    page.get_by_role("heading", name=re.compile("^Sam's cadence")).wait_for()
    _add_step(page, "Task", "Prepare", after="Start")
    form = page.locator("form.add-step")
    form.get_by_label("Step type").select_option(label="Screen flow")
    form.get_by_label("Step title").fill("Qualify")
    form.get_by_label("Flow API name").fill("Qualify_Lead")
    form.get_by_role("button", name="Add Step").click()
    assert "flow: Qualify_Lead" in _box(page, "Qualify").inner_text()
    page.get_by_role("button", name="Activate").click()
    page.get_by_role("button", name="Deactivate").wait_for()
    (row,) = _query(
        org_server, "SELECT OwnerId, State FROM ActionCadence WHERE Name = 'Sam\\'s cadence'"
    )
    assert (row["OwnerId"], row["State"]) == (sam["Id"], "Active")
    (flow,) = _query(
        org_server,
        "SELECT ScreenFlowReference, ParentStepName FROM ActionCadenceStep "
        "WHERE Type = 'PlatformScreenFlow' AND ActionCadence.Name = 'Sam\\'s cadence'",
    )
    assert (flow["ScreenFlowReference"], flow["ParentStepName"]) == ("Qualify_Lead", "prepare")
