"""`opencadence demo`: a demo org on SQLite, served with a movable clock.

Seeds (once per database) users (an admin, a rep, the rep's manager and a second rep), contacts
and leads, two cadences that together use every step type a cadence builder offers (the intro
call with a call script), targets in every tracker state and a converted lead; a Cadence Builder
2.0 cadence with a positive and a negative track (a reply and a call result switch targets onto
them; its intro email has two template variants) and a quick cadence whose call repeats; then
serves the API with TLS and a manual clock and prints the URL, a token and a simple-salesforce
snippet.
"""

from __future__ import annotations

import copy
import shlex
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from opencadence.cadence import conversion, definition_file, runtime, worker
from opencadence.email import no_relay, templates
from opencadence.org import Org
from opencadence.storage import migrate

ADMIN = "admin@demo.opencadence.dev"
ADMIN_PASSWORD = "demo-admin-1"
REP = "rita@demo.opencadence.dev"
REP_PASSWORD = "demo-rep-1"
#: Rita's manager: sees the team's work and the dashboard
MANAGER = "max@demo.opencadence.dev"
MANAGER_PASSWORD = "demo-manager-1"
#: The rep who works the Builder 2.0 and quick cadences (apart from Rita's My Work list).
TRACKS_REP = "tess@demo.opencadence.dev"
TRACKS_REP_PASSWORD = "demo-rep-3"

FOLLOW_UP: dict[str, Any] = {
    "cadence": {"Name": "Demo: follow-up", "Description": "Where the main demo cadence chains to."},
    "state": "Active",
    "steps": [
        {"StepName": "start", "Type": "Root"},
        {
            "StepName": "checkin",
            "StepTitle": "Check-in call",
            "Type": "MakeACall",
            "ParentStepName": "start",
            "ScheduledDaysUntilDue": 1,
        },
    ],
}

MAIN: dict[str, Any] = {
    "cadence": {"Name": "Demo: every step", "Description": "Uses every step type."},
    "state": "Active",
    "steps": [
        {
            "StepName": "start",
            "Type": "Root",
            "rules": [
                {"RuleName": "replied", "RuleType": "RootStep", "GlobalEventType": "EmailReply"}
            ],
        },
        {
            "StepName": "intro_call",
            "StepTitle": "Intro call",
            "Type": "MakeACall",
            "ParentStepName": "start",
            "ScheduledDaysUntilDue": 1,
        },
        {
            "StepName": "outcome",
            "StepTitle": "Call outcome",
            "Type": "Branch",
            "ParentStepName": "intro_call",
            "BranchDefaultStepName": "pause",
            "rules": [
                {
                    "RuleName": "connected",
                    "RuleType": "BranchStep",
                    "OutcomeNextStepName": "intro_email",
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
        {
            "StepName": "pause",
            "StepTitle": "Wait a day",
            "Type": "Wait",
            "ParentStepName": "outcome",
            "WaitTimeInSeconds": 86400,
        },
        {
            "StepName": "intro_email",
            "StepTitle": "Intro email",
            "Type": "AutoSendAnEmail",
            "ParentStepName": "pause",
        },
        {
            "StepName": "listen",
            "StepTitle": "Opened?",
            "Type": "ListenerBranch",
            "ParentStepName": "intro_email",
            "WaitTimeInSeconds": 172800,
            "IsImmediateWakeUp": True,
            "BranchDefaultStepName": "linkedin",
            "rules": [
                {
                    "RuleName": "opened",
                    "RuleType": "BranchStep",
                    "OutcomeNextStepName": "task",
                    "conditions": [
                        {
                            "RuleConditionName": "c2",
                            "Resource": "EmailEngagement",
                            "Operator": "Equal",
                            "Value": "EmailOpen",
                        }
                    ],
                }
            ],
        },
        {
            "StepName": "task",
            "StepTitle": "Research the account",
            "Type": "CreateTask",
            "ParentStepName": "listen",
        },
        {
            "StepName": "linkedin",
            "StepTitle": "Connect on LinkedIn",
            "Type": "LinkedInConnection",
            "ParentStepName": "task",
        },
        {
            "StepName": "inmail",
            "StepTitle": "LinkedIn InMail",
            "Type": "LinkedInMail",
            "ParentStepName": "linkedin",
        },
        {
            "StepName": "personal",
            "StepTitle": "Personal email",
            "Type": "SendAnEmail",
            "ParentStepName": "inmail",
            "ScheduledDaysUntilStart": 2,
            "ScheduledDaysUntilDue": 2,
        },
        {
            "StepName": "survey",
            "StepTitle": "Qualification flow",
            "Type": "PlatformScreenFlow",
            "ParentStepName": "personal",
            "ScreenFlowReference": "demo__Qualify",
        },
        {
            "StepName": "chain",
            "StepTitle": "Hand over",
            "Type": "DaisyChain",
            "ParentStepName": "survey",
            "ChainedCadence": "Demo: follow-up",
        },
    ],
}


def _entry(name: str, resource: str, value: str, parent: str | None = None) -> dict[str, Any]:
    """A track's entry rule (SubRootStep) with its one condition."""
    rule: dict[str, Any] = {
        "RuleName": name,
        "RuleType": "SubRootStep",
        "conditions": [
            {
                "RuleConditionName": f"{name}_c",
                "Resource": resource,
                "Operator": "Equal",
                "Value": value,
            }
        ],
    }
    if parent is not None:
        rule["ParentRuleName"] = parent
    return rule


#: Cadence Builder 2.0: the main track emails (two template variants), waits and calls; a reply
#: or a meaningful connect switches to the positive track, a "not interested" to the negative.
TRACKS: dict[str, Any] = {
    "cadence": {
        "Name": "Demo: tracks",
        "Description": "Builder 2.0: positive and negative tracks.",
    },
    "state": "Active",
    "steps": [
        {"StepName": "start", "Type": "Root"},
        {
            "StepName": "t_email",
            "StepTitle": "First touch",
            "Type": "AutoSendAnEmail",
            "ParentStepName": "start",
            "StepComments": "Two subject lines, split half and half.",
        },
        {
            "StepName": "t_wait",
            "StepTitle": "Give them two days",
            "Type": "Wait",
            "ParentStepName": "t_email",
            "WaitTimeInSeconds": 2 * 86400,
        },
        {
            "StepName": "t_call",
            "StepTitle": "Follow-up call",
            "Type": "MakeACall",
            "ParentStepName": "t_wait",
            "ScheduledDaysUntilDue": 1,
        },
        {
            "StepName": "positive",
            "StepTitle": "Positive",
            "Type": "SubRoot",
            "ParentStepName": "start",
            "rules": [
                _entry("on_reply", "EmailEngagement", "EmailReply"),
                _entry(
                    "on_connect", "CallDispositionCategory", "CallMeaningfulConnect", "on_reply"
                ),
            ],
        },
        {
            "StepName": "p_call",
            "StepTitle": "Call while they are warm",
            "Type": "MakeACall",
            "ParentStepName": "positive",
            "ScheduledStartDelayInMinutes": 30,
        },
        {
            "StepName": "p_task",
            "StepTitle": "Send a proposal",
            "Type": "CreateTask",
            "ParentStepName": "p_call",
            "ScheduledDaysUntilStart": 1,
            "ScheduledStartTimeInMinutes": 540,
        },
        {
            "StepName": "negative",
            "StepTitle": "Negative",
            "Type": "SubRoot",
            "ParentStepName": "start",
            "rules": [_entry("on_no", "CallDispositionCategory", "CallNotInterested")],
        },
        {
            "StepName": "n_task",
            "StepTitle": "Ask for a referral",
            "Type": "CreateTask",
            "ParentStepName": "negative",
        },
        {
            "StepName": "n_mail",
            "StepTitle": "Break-up email",  # deleted after activation by _play_more: Retired
            "Type": "SendAnEmail",
            "ParentStepName": "n_task",
        },
        {
            "StepName": "n_link",
            "StepTitle": "Stay in touch on LinkedIn",
            "Type": "LinkedInConnection",
            "ParentStepName": "n_mail",
        },
    ],
}

#: A quick cadence: one call, repeated twice an hour apart, until a meaningful connect.
QUICK: dict[str, Any] = {
    "cadence": {"Name": "Demo: quick call", "Type": "Quick", "Description": "Call three times."},
    "state": "Active",
    "steps": [
        {
            "StepName": "start",
            "Type": "Root",
            "rules": [
                {
                    "RuleName": "connected",
                    "RuleType": "RootStep",
                    "GlobalEventType": "CallMeaningfulConnect",
                }
            ],
        },
        {
            "StepName": "q_call",
            "StepTitle": "Quick call",
            "Type": "MakeACall",
            "ParentStepName": "start",
            "GoToStepIterationLimit": 2,
            "GoToStepIntervalInMinutes": 60,
            "rules": [{"RuleName": "again", "RuleType": "RepeatedStep"}],
        },
    ],
}


def seeded(org: Org) -> bool:
    return org.accounts.find_user(ADMIN) is not None


def seed(org: Org) -> dict[str, Any]:
    """Create the demo org's records and move targets into every state."""
    store = org.store
    admin_id, _ = org.accounts.create_user(
        ADMIN,
        ADMIN_PASSWORD,
        admin=True,
        time_zone="America/Los_Angeles",
        first_name="Ada",
        last_name="Admin",
    )
    rita, _ = org.accounts.create_user(
        REP,
        REP_PASSWORD,
        time_zone="America/New_York",
        first_name="Rita",
        last_name="Rep",
    )
    ensure_manager(org)
    with store.transaction(admin_id) as tx:
        acme = tx.insert("Account", {"Name": "Acme Corp", "Industry": "Technology"})
        contacts = tx.insert_many(
            "Contact",
            [
                {
                    "FirstName": f,
                    "LastName": last,
                    "Email": f"{f.lower()}@acme.example",
                    "AccountId": acme,
                    "OwnerId": rita,
                }
                for f, last in (
                    ("Ann", "Able"),
                    ("Bob", "Baker"),
                    ("Cy", "Cole"),
                    ("Di", "Dunn"),
                    ("Ed", "Eze"),
                    ("Flo", "Fay"),
                    ("Gus", "Grey"),
                    ("Hal", "Hunt"),
                )
            ],
        )
        leads = tx.insert_many(
            "Lead",
            [
                {
                    "FirstName": f,
                    "LastName": last,
                    "Company": c,
                    "Email": f"{f.lower()}@{c.lower()}.example",
                    "OwnerId": rita,
                }
                for f, last, c in (
                    ("Ivy", "Ives", "Initech"),
                    ("Jo", "Jung", "Globex"),
                    ("Kai", "Kim", "Umbrella"),
                    ("Lu", "Lin", "Hooli"),
                    ("Mo", "Marsh", "Initrode"),  # converted by _play
                )
            ],
        )
    template = _intro_template(org, admin_id)
    script = _call_script(org, admin_id)
    definition_file.import_definition(store, FOLLOW_UP, admin_id)
    definition_file.import_definition(store, _with_template(MAIN, template, script), admin_id)
    targets = contacts + leads
    org.actions.invoke(
        "assignTargetToSalesCadence",
        [
            {"salesCadenceNameOrId": "Demo: every step", "targetId": t, "userId": rita}
            for t in targets
        ],
        admin_id,
    )
    _play(org, rita, targets)
    tess, _ = org.accounts.create_user(
        TRACKS_REP,
        TRACKS_REP_PASSWORD,
        time_zone="America/Chicago",
        first_name="Tess",
        last_name="Tracks",
    )
    more = _seed_more(org, admin_id, tess, acme, template)
    return {
        "admin": admin_id,
        "rep": rita,
        "targets": targets,
        "tracks_rep": tess,
        "more_targets": more,
    }


def _seed_more(org: Org, admin_id: str, rep: str, account: str, template: str) -> list[str]:
    """The Builder 2.0 and quick cadences, their own targets (none of the first cadence's),
    and a played history: a switch to each track, a send error, a repeated call."""
    store = org.store
    with store.transaction(admin_id) as tx:
        people = tx.insert_many(
            "Contact",
            [
                {
                    "FirstName": f,
                    "LastName": last,
                    "Email": email,
                    "AccountId": account,
                    "OwnerId": rep,
                }
                for f, last, email in (
                    ("Nia", "North", "nia@acme.example"),  # replies: positive track
                    ("Oz", "Ortiz", "oz@acme.example"),  # not interested: negative track
                    ("Pia", "Park", "pia@acme.example"),  # stays in the wait
                    ("Quin", "Quade", None),  # no email address: the send fails (Error)
                    ("Ray", "Rowe", "ray@acme.example"),  # the quick cadence
                )
            ],
        )
        deal = tx.insert(
            "Opportunity",
            {
                "Name": "Acme expansion",
                "StageName": "Prospecting",
                "CloseDate": "2027-03-31",
                "AccountId": account,
            },
        )
    subject_b = _variant_template(org, admin_id)
    tracks = _with_template(TRACKS, template)
    email_step = next(s for s in tracks["steps"] if s["Type"] == "AutoSendAnEmail")
    email_step["variants"] = [
        {"TemplateId": template, "SplitPercentage": 50, "Type": "AutoSendAnEmail"},
        {"TemplateId": subject_b, "SplitPercentage": 50, "Type": "AutoSendAnEmail"},
    ]
    definition_file.import_definition(store, tracks, admin_id)
    definition_file.import_definition(store, QUICK, admin_id)
    org.actions.invoke(
        "assignTargetToSalesCadence",
        [{"salesCadenceNameOrId": "Demo: tracks", "targetId": t, "userId": rep} for t in people[:4]]
        + [{"salesCadenceNameOrId": "Demo: quick call", "targetId": people[4], "userId": rep}],
        admin_id,
    )
    _play_more(org, rep, people, deal)
    return people


def _variant_template(org: Org, admin_id: str) -> str:
    """The second subject line of the tracks cadence's first email (its other variant)."""
    record = {
        "Name": "Demo: first touch B",
        "DeveloperName": "Demo_first_touch_b",
        "TemplateType": "text",
        "FolderId": definition_file.ORG_FOLDER,
        "IsActive": True,
        "Subject": "A question for {!Contact.FirstName}",
        "Body": "Hi {!Contact.FirstName},\n\nworth a call this week? {!User.Name}",
    }
    templates.validate(record, org.registry)
    with org.store.transaction(admin_id) as tx:
        return tx.insert("EmailTemplate", record)


def _play_more(org: Org, rep: str, people: list[str], deal: str) -> None:
    """The tracks and quick cadences' history: emails out (one fails: no address), a reply
    (positive track), a "not interested" call (negative track), a step deleted from the active
    cadence (Retired), the quick call made three times, and a tracker tied to an opportunity."""
    store, clock = org.store, org.store.clock
    w = worker.Worker(store, no_relay.NoRelaySender(store))
    w.run_until_idle()
    _advance(clock, w, hours=1)
    runtime.engagement(store, people[0], "EmailReply")  # positive track
    runtime.log_call(store, rep, people[1], "Not Interested")  # negative track
    n_mail = org.queries.query(
        "SELECT Id FROM ActionCadenceStep WHERE StepName = 'n_mail' "
        "AND ActionCadence.Name = 'Demo: tracks'"
    )["records"][0]["Id"]
    runtime.delete_step(store, n_mail, rep)  # n_task's GoToStepName now leads to n_link
    for _ in range(3):  # the quick call, made and repeated until its limit
        runtime.log_call(store, rep, people[4], "Left Voicemail")
        _advance(clock, w, minutes=61)
    tracker = org.queries.query(
        f"SELECT Id FROM ActionCadenceTracker WHERE TargetId = '{people[2]}'"
    )["records"][0]["Id"]
    org.actions.invoke(
        "modifyCadenceTrackerAttributes",
        [
            {
                "actionCadenceTrackerId": tracker,
                "relatedToId": deal,
                "relatedToAttributionType": "Activation",
            }
        ],
        rep,
    )
    for stamp in ("VIEW", "REFERENCE"):  # the rep opened the cadence (LastViewedDate, ...)
        org.queries.query(f"SELECT Id FROM ActionCadence WHERE Name = 'Demo: tracks' FOR {stamp}")


def ensure_manager(org: Org) -> str:
    """The demo's manager (created when missing, also in a demo org seeded before it had
    one), with the rep reporting to them; returns the manager's user id."""
    found = org.accounts.find_user(MANAGER)
    if found is None:
        manager, _ = org.accounts.create_user(
            MANAGER,
            MANAGER_PASSWORD,
            time_zone="America/Chicago",
            first_name="Max",
            last_name="Manager",
        )
    else:
        manager = str(found["Id"])
    rep = org.accounts.find_user(REP)
    if rep is not None and rep.get("ManagerId") != manager:
        org.accounts.set_manager(str(rep["Id"]), MANAGER)
    return manager


def _intro_template(org: Org, admin_id: str) -> str:
    """The intro email's template: active, in the organization's folder (any assignee may send
    it), so the automated step is sendable under a real relay too."""
    record = {
        "Name": "Demo: intro",
        "DeveloperName": "Demo_intro",
        "TemplateType": "text",
        "FolderId": definition_file.ORG_FOLDER,
        "IsActive": True,
        "Subject": "Hello from {!User.FirstName}",
        "Body": "Hi {!Contact.FirstName}{!Lead.FirstName},\n\nglad we spoke. {!User.Name}",
    }
    templates.validate(record, org.registry)
    with org.store.transaction(admin_id) as tx:
        return tx.insert("EmailTemplate", record)


def _call_script(org: Org, admin_id: str) -> str:
    """The intro call's script (a CallTemplate: its TotalCalls* count the calls logged on it)."""
    with org.store.transaction(admin_id) as tx:
        return tx.insert(
            "CallTemplate",
            {
                "Name": "Demo: intro call",
                "TemplateType": "Text",
                "HtmlBody": "<p>Ask what made them look at us, and what would help.</p>",
            },
        )


def _with_template(
    definition: dict[str, Any], template_id: str, script_id: str | None = None
) -> dict[str, Any]:
    """``definition`` with its AutoSendAnEmail steps sending ``template_id`` and its first
    MakeACall step reading call script ``script_id``."""
    out = copy.deepcopy(definition)
    for step in out["steps"]:
        if step["Type"] == "AutoSendAnEmail":
            step["TemplateId"] = template_id
    calls = [step for step in out["steps"] if step["Type"] == "MakeACall"]
    if script_id is not None and calls:
        calls[0]["TemplateId"] = script_id
    return out


def _play(org: Org, rep: str, targets: list[str]) -> None:
    """A few days of cadence, so trackers and steps are in every state. Emails are recorded
    as ``demo`` records them when it serves (no relay): checked, rendered and logged."""
    store, clock = org.store, org.store.clock
    w = worker.Worker(store, no_relay.NoRelaySender(store))
    w.run_until_idle()
    runtime.log_call(store, rep, targets[0], "Meaningful Connect")  # branch: on to the email
    runtime.log_call(store, rep, targets[1], "Left Voicemail")  # branch: wait a day
    org.actions.invoke("pauseSalesCadenceTracker", [{"targetId": targets[2]}], rep)
    org.actions.invoke(
        "removeTargetFromSalesCadence",
        [
            {
                "targetId": targets[3],
                "completionReasonCode": "ManuallyRemoved",
                "completionDisposition": "Not Interested",
            }
        ],
        rep,
    )
    runtime.log_call(store, rep, targets[4], "Meaningful Connect")
    _advance(clock, w, days=2)
    runtime.engagement(store, targets[4], "EmailReply")  # global exit rule
    runtime.engagement(store, targets[0], "EmailOpen")  # listener: on to the task
    _advance(clock, w, hours=1)
    _skip_until(org, rep, w, targets[5], "SendAnEmail")  # a Scheduled manual step
    _skip_until(org, rep, w, targets[6], None)  # daisy-chained, then done
    _skip_until(org, rep, w, targets[6], None)
    open_step = _open_step(org, targets[7])
    if open_step:
        runtime.start_step(store, open_step, rep)  # InProgress
    with store.transaction(rep) as tx:  # the last lead converted: its tracker LeadConverted
        conversion.convert(
            tx, conversion.LeadConvert(lead_id=targets[-1], converted_status="Closed - Converted")
        )


def _open_step(org: Org, target: str) -> str | None:
    found = org.queries.query(
        "SELECT CurrentStepId FROM ActionCadenceTracker "
        f"WHERE TargetId = '{target}' AND IsTrackerActive = true"
    )["records"]
    return found[0]["CurrentStepId"] if found else None


def _skip_until(org: Org, rep: str, w: worker.Worker, target: str, stop_type: str | None) -> None:
    """Skip the target's open steps until one of ``stop_type`` is open (None: to the end)."""
    for _ in range(30):
        step = _open_step(org, target)
        if step is None:
            return
        kind = org.queries.query(
            f"SELECT StepType FROM ActionCadenceStepTracker WHERE Id = '{step}'"
        )["records"][0]
        if kind["StepType"] == stop_type:
            return
        org.actions.invoke("sendSalesCadenceEvent", [{"recordId": step, "eventType": "Skip"}], rep)
        w.run_until_idle()


def _advance(clock: Any, w: worker.Worker, **delta: float) -> None:
    if hasattr(clock, "advance"):
        clock.advance(**delta)
    w.run_until_idle()


def banner(url: str, token: str, cert: str | None, pubsub: str | None = None) -> str:
    """What the demo prints: where it is, a token, and shell lines that work as printed.

    Everything after the first three lines is a bash script that can be pasted into an
    interactive shell in the directory the demo was started from: comments, the pip command
    that installs simple-salesforce into the demo's own environment, a quoted here-document for
    its Python snippet, and a curl line. The token carries a ``!`` (Salesforce style), so it
    only ever appears inside single quotes, where bash's history expansion leaves it alone.
    """
    bindir = _shell_path(Path(sys.executable).parent)
    verify = repr(cert) if cert else "True"
    host = url.split("://", 1)[1]
    lines = [
        f"opencadence demo org at {url}",
        f"admin: {ADMIN} / {ADMIN_PASSWORD}",
        f"access token: {token}",
        "",
    ]
    # the web app (sign-in and My Work) is served by the same process under /app
    lines.append(f"# web app (My Work): {url}/app/  log in as the rep: {REP} / {REP_PASSWORD}")
    lines.append(
        f"# web app dashboard: {url}/app/dashboard  log in as the manager: "
        f"{MANAGER} / {MANAGER_PASSWORD}  (the rep's team)"
    )
    lines.append(f"# web app, everything: log in as the admin: {ADMIN} / {ADMIN_PASSWORD}")
    if pubsub is not None:  # only when its server is listening: a comment of the script
        lines.append(
            f"# Pub/Sub API (gRPC, TLS): {pubsub}  metadata: accesstoken (the token above), "
            f"instanceurl {url}, tenantid {migrate.ORG_ID}"
        )
    return "\n".join(
        [
            *lines,
            "# query it with simple-salesforce (installed into the demo's environment first):",
            f"{shlex.quote(bindir + '/pip')} install -q simple-salesforce",
            f"{shlex.quote(bindir + '/python')} - <<'EOF'",
            "import requests; from simple_salesforce import Salesforce",
            f"s = requests.Session(); s.trust_env = False; s.verify = {verify}",
            f"sf = Salesforce(instance={host!r}, session_id={token!r}, session=s)",
            'for r in sf.query_all("SELECT StepTitle, State, Target.Name FROM ActionCadenceStepTracker")["records"]:',
            '    print(r["Target"]["Name"], "|", r["StepTitle"], "|", r["State"])',
            "EOF",
            "",
            "# move time a day (the worker runs what falls due):",
            f"curl --noproxy '*' --cacert {shlex.quote(cert or '<cert>')} -X POST"
            f" -H {shlex.quote('Authorization: Bearer ' + token)}"
            f" -d '{{\"advance\": 86400}}' {url}/_opencadence/clock",
        ]
    )


def _shell_path(path: Path) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def admin_token(org: Org) -> str:
    user = org.accounts.find_user(ADMIN)
    assert user is not None
    # A demo token outlives the demo's clock moves (days at a time), unlike a 2-hour session.
    return org.accounts.open_session(user["Id"], client="demo", ttl=timedelta(days=3650))
