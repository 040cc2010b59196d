"""SOQL end to end (parse, bind, compile, execute, shape) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from opencadence import errors
from opencadence.soql import execute

from .conftest import NOW, Org

STR = "ActionCadenceStepTracker"


def names(result: dict, key: str = "Id") -> list:  # type: ignore[type-arg]
    return [r[key] for r in result["records"]]


def test_seed_usage_query_corrected(org: Org) -> None:
    i = org.ids
    r = org.q(
        f"select StepTitle from ActionCadenceStepTracker where TargetID = '{i['c1']}' "
        f"and ActionCadenceId='{i['cad']}' and State='Completed'"
    )
    assert r["totalSize"] == 1 and r["done"] is True
    (rec,) = r["records"]
    assert rec == {
        "attributes": {"type": STR, "url": f"/services/data/v67.0/sobjects/{STR}/{i['st1']}"},
        "StepTitle": "Call",
    }


def test_field_names_come_back_canonical(org: Org) -> None:
    r = org.q(
        f"SELECT id, state, steptype FROM actioncadencesteptracker WHERE Id = '{org.ids['st1']}'"
    )
    assert list(r["records"][0]) == ["attributes", "Id", "State", "StepType"]


def test_parent_paths_nest_with_attributes(org: Org) -> None:
    i = org.ids
    r = org.q(
        f"SELECT Id, ActionCadence.Name, ActionCadenceTracker.Owner.Name, CompletedBy.Email "
        f"FROM {STR} WHERE Id IN ('{i['st1']}', '{i['st2']}') ORDER BY Id"
    )
    first = next(x for x in r["records"] if x["Id"] == i["st1"])
    assert first["ActionCadence"] == {
        "attributes": {
            "type": "ActionCadence",
            "url": f"/services/data/v67.0/sobjects/ActionCadence/{i['cad']}",
        },
        "Name": "Outbound",
    }
    owner = first["ActionCadenceTracker"]["Owner"]
    assert owner["attributes"]["type"] == "User" and owner["Name"] == "Rita Rep"
    assert first["CompletedBy"]["Email"] == "rep@x.io"
    second = next(x for x in r["records"] if x["Id"] == i["st2"])
    assert second["CompletedBy"] is None


def test_polymorphic_target_type_and_name(org: Org) -> None:
    r = org.q(f"SELECT Id, Target.Type, Target.Name FROM {STR} WHERE Target.Type = 'Lead'")
    assert names(r) == [org.ids["st4"]]
    target = r["records"][0]["Target"]
    assert (
        target["attributes"]["type"] == "Lead"
        and target["Type"] == "Lead"
        and target["Name"] == "Lee"
    )


def test_typeof(org: Org) -> None:
    r = org.q(
        f"SELECT Id, TYPEOF Target WHEN Contact THEN FirstName, Account.Name WHEN Lead THEN Company END "
        f"FROM {STR} WHERE Id IN ('{org.ids['st1']}', '{org.ids['st4']}')"
    )
    by_id = {x["Id"]: x["Target"] for x in r["records"]}
    contact = by_id[org.ids["st1"]]
    assert contact["attributes"]["type"] == "Contact" and contact["FirstName"] == "Ann"
    assert contact["Account"]["Name"] == "Acme"
    lead = by_id[org.ids["st4"]]
    assert (
        lead["attributes"]["type"] == "Lead"
        and lead["Company"] == "Initech"
        and "FirstName" not in lead
    )


def test_child_subquery(org: Org) -> None:
    r = org.q(
        "SELECT Id, (SELECT Id, State FROM ActionCadenceStepTrackers ORDER BY DueDateTime DESC) "
        "FROM ActionCadenceTracker ORDER BY Id"
    )
    by_id = {x["Id"]: x for x in r["records"]}
    kids = by_id[org.ids["t1"]]["ActionCadenceStepTrackers"]
    assert kids["totalSize"] == 2 and kids["done"] is True
    assert [k["Id"] for k in kids["records"]] == [org.ids["st2"], org.ids["st1"]]
    assert kids["records"][0]["attributes"]["type"] == STR


def test_child_subquery_limit_is_per_parent(org: Org) -> None:
    r = org.q(
        "SELECT Id, (SELECT Id FROM ActionCadenceStepTrackers ORDER BY DueDateTime LIMIT 1) FROM ActionCadenceTracker"
    )
    for rec in r["records"]:
        kids = rec["ActionCadenceStepTrackers"]
        assert kids is None or kids["totalSize"] == 1


@pytest.mark.parametrize(
    "where, expected",
    [
        ("LastName = 'BAKER'", ["c2"]),
        ("LastName LIKE 'b%'", ["c2"]),
        ("LastName LIKE '_ol_'", ["c3"]),
        ("FirstName = 'émile'", ["c3"]),
        ("Title LIKE '100\\% %'", ["c3"]),
        ("Title LIKE '100%'", ["c3"]),
        ("Title = null", ["c2"]),
        ("Title != null", ["c1", "c3"]),
        ("Title != 'CEO'", ["c2", "c3"]),
        ("Title = ''", ["c2"]),
        ("LastName IN ('ABLE', 'zola')", ["c1", "c3"]),
        ("LastName NOT IN ('ABLE')", ["c2", "c3"]),
        ("Account.Name = 'acme' AND (Title = 'CEO' OR Title = null)", ["c1", "c2"]),
        ("NOT LastName = 'Able'", ["c2", "c3"]),
        ("Account.Industry = null", ["c3"]),
    ],
)
def test_where(org: Org, where: str, expected: list[str]) -> None:
    r = org.q(f"SELECT Id FROM Contact WHERE {where}")
    assert sorted(names(r)) == sorted(org.ids[k] for k in expected)


def test_order_by_case_insensitive_and_nulls(org: Org) -> None:
    r = org.q("SELECT LastName FROM Contact ORDER BY LastName")
    assert names(r, "LastName") == ["Able", "baker", "Zola"]
    r = org.q("SELECT Title FROM Contact ORDER BY Title DESC")
    assert names(r, "Title") == ["CEO", "100% Writer", None]
    r = org.q("SELECT Title FROM Contact ORDER BY Title ASC NULLS LAST")
    assert names(r, "Title") == ["100% Writer", "CEO", None]


def test_limit_offset(org: Org) -> None:
    r = org.q("SELECT LastName FROM Contact ORDER BY LastName LIMIT 1 OFFSET 1")
    assert names(r, "LastName") == ["baker"] and r["totalSize"] == 1


def test_calculated_fields_filter_and_sort(org: Org) -> None:
    r = org.q(
        f"SELECT Id, SecondsOverdue, IsActionTaken FROM {STR} WHERE SecondsOverdue > 0 ORDER BY SecondsOverdue DESC"
    )
    assert names(r) == [org.ids["st2"], org.ids["st1"], org.ids["st4"]]  # ties: by Id
    assert r["records"][0]["SecondsOverdue"] == 86400 and r["records"][0]["IsActionTaken"] is False
    assert r["records"][1]["SecondsOverdue"] == 3600 and r["records"][1]["IsActionTaken"] is True
    r = org.q(f"SELECT Id FROM {STR} WHERE IsActionTaken = true")
    assert sorted(names(r)) == sorted([org.ids["st1"], org.ids["st4"]])


def test_datetime_values_and_booleans_shaped(org: Org) -> None:
    r = org.q(
        f"SELECT DueDateTime, WasEverPaused, GoToStepIterationCount FROM {STR} WHERE Id = '{org.ids['st2']}'"
    )
    rec = r["records"][0]
    assert rec["DueDateTime"] == "2026-03-09T15:00:00.000+0000"
    assert rec["WasEverPaused"] is False and rec["GoToStepIterationCount"] == 1


def test_date_literals_in_the_callers_time_zone(org: Org) -> None:
    # NOW is 2026-03-10 15:00 UTC = 08:00 PDT (DST began March 8); yesterday in Los Angeles is
    # 2026-03-09 07:00 UTC .. 2026-03-10 07:00 UTC: st1 (10:00 UTC) and st2 (15:00 UTC)
    la = execute.Caller(org.ids["rep"], "America/Los_Angeles")
    r = org.service.query(f"SELECT Id FROM {STR} WHERE DueDateTime = YESTERDAY ORDER BY Id", la)
    assert names(r) == [org.ids["st1"], org.ids["st2"]]
    # in Tokyo it is already March 11 00:00: yesterday starts at March 9 15:00 UTC, st2's due time
    tokyo = execute.Caller(org.ids["rep"], "Asia/Tokyo")
    assert names(
        org.service.query(f"SELECT Id FROM {STR} WHERE DueDateTime = YESTERDAY", tokyo)
    ) == [org.ids["st2"]]
    r = org.service.query(f"SELECT Id FROM {STR} WHERE DueDateTime = NEXT_N_DAYS:3", la)
    assert names(r) == [org.ids["st3"]]
    r = org.service.query(f"SELECT Id FROM {STR} WHERE DueDateTime < LAST_N_DAYS:2 ORDER BY Id", la)
    assert names(r) == [org.ids["st4"]]
    r = org.q(f"SELECT Id FROM {STR} WHERE DueDateTime > 2026-03-11T00:00:00Z")
    assert names(r) == [org.ids["st3"]]


def test_aggregates(org: Org) -> None:
    r = org.q(
        f"SELECT State, COUNT(Id) n, MAX(DueDateTime) FROM {STR} GROUP BY State ORDER BY State"
    )
    assert r["records"] == [
        {
            "attributes": {"type": "AggregateResult"},
            "State": "Active",
            "n": 2,
            "expr0": "2026-03-12T15:00:00.000+0000",
        },
        {
            "attributes": {"type": "AggregateResult"},
            "State": "Completed",
            "n": 2,
            "expr0": "2026-03-09T10:00:00.000+0000",
        },
    ]
    r = org.q(f"SELECT COUNT() FROM {STR} WHERE State = 'Active'")
    assert r == {"totalSize": 2, "done": True, "records": []}
    r = org.q(f"SELECT StepType, COUNT(Id) FROM {STR} GROUP BY StepType HAVING COUNT(Id) > 1")
    assert [x["StepType"] for x in r["records"]] == ["MakeACall"]
    r = org.q(f"SELECT COUNT(Id), COUNT_DISTINCT(TargetId) FROM {STR}")
    assert r["records"][0]["expr0"] == 4 and r["records"][0]["expr1"] == 3


def test_group_by_rollup(org: Org) -> None:
    r = org.q(
        f"SELECT State, StepType, COUNT(Id) c, GROUPING(State) gs FROM {STR} GROUP BY ROLLUP(State, StepType)"
    )
    rows = {(x["State"], x["StepType"]): (x["c"], x["gs"]) for x in r["records"]}
    assert rows[(None, None)] == (4, 1)
    assert rows[("Active", None)] == (2, 0)
    assert rows[("Completed", "MakeACall")] == (2, 0)
    assert len(r["records"]) == 3 + 2 + 1


def test_date_function_grouping(org: Org) -> None:
    r = org.q(
        f"SELECT CALENDAR_MONTH(DueDateTime) m, COUNT(Id) FROM {STR} GROUP BY CALENDAR_MONTH(DueDateTime)"
    )
    assert r["records"][0]["m"] == 3 and r["records"][0]["expr0"] == 4


def test_semi_join(org: Org) -> None:
    r = org.q(
        "SELECT Id FROM Contact WHERE Id IN (SELECT TargetId FROM ActionCadenceTracker WHERE State = 'Running')"
    )
    assert sorted(names(r)) == sorted([org.ids["c1"], org.ids["c2"]])
    r = org.q("SELECT Id FROM Contact WHERE Id NOT IN (SELECT TargetId FROM ActionCadenceTracker)")
    assert names(r) == [org.ids["c3"]]


def test_two_semi_joins_compile_to_the_same_sql_every_time(org: Org) -> None:
    """Semi-join aliases are numbered per query, not taken from object ids, so the SQL text
    of a query is the same on every compile (stable plans, readable logs) and never collides."""
    text = (
        "SELECT Id FROM Contact WHERE Id IN (SELECT TargetId FROM ActionCadenceTracker)"
        " AND Id NOT IN (SELECT TargetId FROM ActionCadenceTracker WHERE State = 'Complete')"
    )
    caller = execute.Caller(org.ids.get("admin", "005000000000000AAA"))
    sql = {str(org.service._compile_new(text, caller, "59.0", False, NOW).select) for _ in range(3)}
    assert len(sql) == 1
    assert "ts1_0" in sql.pop()
    assert sorted(names(org.q(text))) == sorted([org.ids["c1"], org.ids["c2"]])


@pytest.mark.writes
def test_query_all_includes_deleted(org: Org) -> None:
    with org.store.transaction() as tx:
        tx.delete("Contact", org.ids["c3"])
    assert org.q("SELECT COUNT() FROM Contact")["totalSize"] == 2
    r = org.q("SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true", include_deleted=True)
    assert r["records"][0]["Id"] == org.ids["c3"] and r["records"][0]["IsDeleted"] is True


def test_fields_standard_and_version_visibility(org: Org) -> None:
    r = org.q(f"SELECT FIELDS(STANDARD) FROM {STR} WHERE Id = '{org.ids['st1']}'", version="48.0")
    rec = r["records"][0]
    assert "GoToStepIterationCount" not in rec and "CompletedById" not in rec and "State" in rec
    assert r["records"][0]["attributes"]["url"].startswith("/services/data/v48.0/")


@pytest.mark.writes
def test_paging_with_locators(org: Org) -> None:
    with org.store.transaction() as tx:
        tx.insert_many("Lead", [{"LastName": f"L{n:04d}", "Company": "Bulk"} for n in range(450)])
    first = org.service.query(
        "SELECT LastName FROM Lead WHERE Company = 'Bulk' ORDER BY LastName DESC", batch_size=200
    )
    assert first["totalSize"] == 450 and first["done"] is False and len(first["records"]) == 200
    url = first["nextRecordsUrl"]
    assert url.startswith("/services/data/v67.0/query/0r8") and url.endswith("-200")
    locator = url.rsplit("/", 1)[1]
    second = org.service.query_more(locator)
    again = org.service.query_more(locator)
    assert second == again  # a retried nextRecordsUrl gives the same page
    third = org.service.query_more(second["nextRecordsUrl"].rsplit("/", 1)[1])
    assert third["done"] is True and "nextRecordsUrl" not in third and len(third["records"]) == 50
    got = names(first, "LastName") + names(second, "LastName") + names(third, "LastName")
    assert got == [f"L{n:04d}" for n in range(449, -1, -1)]
    assert second["totalSize"] == 450
    org.clock.advance(days=2, seconds=1)
    with pytest.raises(errors.InvalidQueryLocator):
        org.service.query_more(locator)
    with pytest.raises(errors.InvalidQueryLocator):
        org.service.query_more("0r80C0000000001AAA-2000")


@pytest.mark.writes
def test_limit_across_pages(org: Org) -> None:
    with org.store.transaction() as tx:
        tx.insert_many("Lead", [{"LastName": f"L{n:04d}", "Company": "Bulk"} for n in range(300)])
    first = org.service.query(
        "SELECT Id FROM Lead WHERE Company = 'Bulk' LIMIT 250", batch_size=200
    )
    assert first["totalSize"] == 250 and len(first["records"]) == 200
    rest = org.service.query_more(first["nextRecordsUrl"].rsplit("/", 1)[1])
    assert len(rest["records"]) == 50 and rest["done"] is True


def test_order_by_is_deleted_is_allowed(org: Org) -> None:
    # the error cases of the binder are checked without a database: tests/unit/soql
    org.q(f"SELECT Id FROM {STR} ORDER BY IsDeleted")


def test_field_added_later_is_invisible_at_older_version(org: Org) -> None:
    org.q(f"SELECT GoToStepIterationCount FROM {STR}", version="58.0")
    with pytest.raises(errors.InvalidField):
        org.q(f"SELECT GoToStepIterationCount FROM {STR}", version="48.0")
    with pytest.raises(errors.InvalidType):
        org.q(f"SELECT Id FROM {STR}", version="47.0")


def test_using_scope_mine(org: Org) -> None:
    rep = execute.Caller(org.ids["rep"])
    r = org.service.query("SELECT Id FROM ActionCadenceTracker USING SCOPE mine", rep)
    assert r["totalSize"] == 3
    assert (
        org.service.query("SELECT Id FROM ActionCadenceTracker USING SCOPE mine")["totalSize"] == 0
    )


@pytest.mark.writes
def test_rep_sees_only_their_trackers_and_targets(org: Org) -> None:
    with org.store.transaction() as tx:
        other = tx.insert(
            "User",
            {
                "Username": "other@x.io",
                "LastName": "Other",
                "Email": "other@x.io",
                "Alias": "oth",
                "TimeZoneSidKey": "GMT",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "EmailEncodingKey": "UTF-8",
            },
            system=True,
        )
        tx.update("ActionCadenceTracker", org.ids["t3"], {"OwnerId": other}, system=True)
        tx.update(STR, org.ids["st4"], {"CompletedById": other}, system=True)
    rep = execute.Caller(org.ids["rep"], view_all=False)
    trackers = org.service.query("SELECT Id FROM ActionCadenceTracker", rep)
    assert sorted(names(trackers)) == sorted([org.ids["t1"], org.ids["t2"]])
    steps = org.service.query(f"SELECT Id FROM {STR}", rep)
    assert org.ids["st4"] not in names(steps) and len(names(steps)) == 3
    leads = org.service.query("SELECT Id FROM Lead", rep)
    assert leads["totalSize"] == 0  # the lead's tracker now belongs to someone else
    contacts = org.service.query("SELECT Id FROM Contact", rep)
    assert sorted(names(contacts)) == sorted([org.ids["c1"], org.ids["c2"]])
    # the admin view is unchanged; aggregates and semi-joins are limited the same way
    assert org.q("SELECT COUNT() FROM ActionCadenceTracker")["totalSize"] == 3
    assert org.service.query(f"SELECT COUNT() FROM {STR}", rep)["totalSize"] == 3
    r = org.service.query(
        "SELECT Id, (SELECT Id FROM ActionCadenceStepTrackers) FROM ActionCadenceTracker", rep
    )
    assert all(x["ActionCadenceStepTrackers"]["totalSize"] >= 1 for x in r["records"])


@pytest.mark.writes
def test_for_view_and_reference_stamp_dates_without_a_change(org: Org) -> None:
    before = org.store.get("ActionCadence", org.ids["cad"])
    assert before is not None and before["LastViewedDate"] is None
    events = len(org.store.read_events())
    org.clock.advance(minutes=5)
    org.q("SELECT Id, Name FROM ActionCadence FOR VIEW")
    after = org.store.get("ActionCadence", org.ids["cad"])
    assert after is not None and after["LastViewedDate"] == org.clock.now().replace(tzinfo=None)
    assert (
        after["LastReferencedDate"] is None and after["SystemModstamp"] == before["SystemModstamp"]
    )
    org.q("SELECT Id FROM ActionCadence FOR REFERENCE")
    assert org.store.get("ActionCadence", org.ids["cad"])["LastReferencedDate"] is not None  # type: ignore[index]
    assert len(org.store.read_events()) == events
    org.q("SELECT Id FROM Contact FOR VIEW")  # objects without the field: nothing to stamp
