"""An integration test of the kind a project that uses opencadence writes: no opencadence import,
only the ``opencadence_org`` fixture the installed plugin provides, and simple-salesforce."""


def test_contact_round_trip(opencadence_org):
    sf = opencadence_org.sf
    created = sf.Contact.create({"LastName": "Ng", "Email": "ng@example.com"})
    assert sf.Contact.get(created["id"])["Email"] == "ng@example.com"


def test_the_task_step_comes_a_day_after_enrolment(opencadence_org):
    sf = opencadence_org.sf
    folder = sf.query("SELECT Id FROM Organization")["records"][0]["Id"]
    cadence = sf.ActionCadence.create({"Name": "Follow up", "FolderId": folder})["id"]
    for step in (
        {"StepName": "root", "Type": "Root", "StepTitle": "Start"},
        {
            "StepName": "wait",
            "Type": "Wait",
            "StepTitle": "A day",
            "ParentStepName": "root",
            "WaitTimeInSeconds": 86400,
        },
        {
            "StepName": "task",
            "Type": "CreateTask",
            "StepTitle": "Follow up",
            "ParentStepName": "wait",
        },
    ):
        sf.ActionCadenceStep.create({"ActionCadenceId": cadence, **step})
    sf.ActionCadence.update(cadence, {"State": "Active"})
    contact = sf.Contact.create({"LastName": "Ng"})["id"]
    sf.restful(
        "actions/standard/assignTargetToSalesCadence",
        method="POST",
        json={"inputs": [{"salesCadenceNameOrId": cadence, "targetId": contact}]},
    )

    def steps():
        query = "SELECT ActionCadenceStep.StepTitle, State FROM ActionCadenceStepTracker"
        return {r["ActionCadenceStep"]["StepTitle"]: r["State"] for r in sf.query(query)["records"]}

    opencadence_org.advance(hours=23)
    assert steps() == {"Start": "Completed", "A day": "Active"}
    opencadence_org.advance(hours=1)
    assert steps() == {"Start": "Completed", "A day": "Completed", "Follow up": "Active"}
