"""SOSL against the search index on SQLite and PostgreSQL: each search group and operator,
wildcards, RETURNING clauses, visibility for a rep, the index kept in the writing
transaction, and the index created and filled when an existing database is upgraded."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import errors
from opencadence.metadata.registry import default_registry
from opencadence.soql.execute import Caller
from opencadence.sosl.execute import SearchService
from opencadence.storage import bulk, dialect, migrate, records, schema, search_index


def _user(tx: records.Tx, name: str) -> str:
    return tx.insert(
        "User",
        {
            "Username": f"{name}@search.test",
            "LastName": name,
            "Alias": name[:8],
            "Email": f"{name}@search.test",
            "TimeZoneSidKey": "GMT",
            "LocaleSidKey": "en_US",
            "LanguageLocaleKey": "en_US",
            "EmailEncodingKey": "UTF-8",
        },
        system=True,
    )


@pytest.fixture
def org(store: records.Store) -> dict[str, Any]:
    with store.transaction() as tx:
        rep = _user(tx, "rep")
        other = _user(tx, "other")
        ids = {
            "rep": rep,
            "other": other,
            "john": tx.insert(
                "Contact",
                {
                    "FirstName": "John",
                    "LastName": "Smith",
                    "Email": "jsmith@acme.com",
                    "Phone": "(415) 555-1234",
                    "Title": "VP Sales",
                    "OwnerId": rep,
                },
            ),
            "jon": tx.insert(
                "Contact",
                {
                    "FirstName": "Jon",
                    "LastName": "Smythe",
                    "Email": "jon@globex.io",
                    "Title": "Engineer",
                    "Description": "met at the Acme summit",
                    "OwnerId": other,
                },
            ),
            "rene": tx.insert(
                "Contact", {"FirstName": "René", "LastName": "Dupré", "OwnerId": other}
            ),
            "lead": tx.insert(
                "Lead",
                {
                    "FirstName": "Joe",
                    "LastName": "Smith",
                    "Company": "Acme2go",
                    "MobilePhone": "+1 212 555 9876",
                    "OwnerId": rep,
                },
            ),
            "account": tx.insert("Account", {"Name": "Acme Corporation", "Phone": "555-1234"}),
        }
    return ids


def _ids(result: dict[str, Any]) -> list[str]:
    return [r["attributes"]["url"].rsplit("/", 1)[1] for r in result["searchRecords"]]


def _find(store: records.Store, sosl: str, caller: Caller | None = None) -> list[str]:
    return _ids(SearchService(store).search(sosl, caller))


def test_words_phrases_and_groups(store: records.Store, org: dict[str, Any]) -> None:
    find = lambda q: set(_find(store, q))  # noqa: E731
    assert find("FIND {smith} RETURNING Contact, Lead") == {org["john"], org["lead"]}
    assert find("FIND {SMITH} IN NAME FIELDS RETURNING Contact") == {org["john"]}
    # two words: both must match (in any field)
    assert find("FIND {john sales} RETURNING Contact") == {org["john"]}
    assert find("FIND {john engineer} RETURNING Contact") == set()
    # a phrase: the words next to each other, in this order
    assert find('FIND {"vp sales"} RETURNING Contact') == {org["john"]}
    assert find('FIND {"sales vp"} RETURNING Contact') == set()
    # email fields only: acme is in John's email, and in Jon's description (not an email)
    assert find("FIND {acme} IN EMAIL FIELDS RETURNING Contact") == {org["john"]}
    assert find("FIND {acme} IN ALL FIELDS RETURNING Contact") == {org["john"], org["jon"]}
    assert find("FIND {acme} RETURNING Contact, Lead, Account") == {
        org["john"],
        org["jon"],
        org["lead"],
        org["account"],
    }
    # a whole address is the phrase of its tokens
    assert find("FIND {jsmith@acme.com} IN EMAIL FIELDS RETURNING Contact") == {org["john"]}
    # phone fields: the pieces, or the digits run together
    assert find("FIND {4155551234} IN PHONE FIELDS RETURNING Contact") == {org["john"]}
    assert find('FIND {"555-1234"} IN PHONE FIELDS RETURNING Contact, Account') == {
        org["john"],
        org["account"],
    }
    assert find("FIND {2125559876} IN PHONE FIELDS RETURNING Lead") == {org["lead"]}
    assert find("FIND {smith} IN PHONE FIELDS RETURNING Contact, Lead") == set()
    # letters and digits split, case and accents fold
    assert find("FIND {acme 2} IN ALL FIELDS RETURNING Lead") == {org["lead"]}
    assert find("FIND {rene dupre} RETURNING Contact") == {org["rene"]}


def test_operators(store: records.Store, org: dict[str, Any]) -> None:
    find = lambda q: set(_find(store, q))  # noqa: E731
    assert find("FIND {smith OR smythe} RETURNING Contact") == {org["john"], org["jon"]}
    assert find("FIND {smith AND john} RETURNING Contact, Lead") == {org["john"]}
    assert find("FIND {smith and not john} RETURNING Contact, Lead") == {org["lead"]}
    assert find("FIND {acme AND NOT (smith OR smythe)} RETURNING Contact, Lead, Account") == {
        org["account"]
    }
    assert find("FIND {(jon OR joe) AND sm*} RETURNING Contact, Lead") == {
        org["jon"],
        org["lead"],
    }
    # AND binds before OR: rene, or (john and engineer: nobody)
    assert find("FIND {rene OR john AND engineer} RETURNING Contact") == {org["rene"]}
    # "and" / "or" in quotes are words
    assert find('FIND {"or"} RETURNING Contact') == set()


def test_wildcards(store: records.Store, org: dict[str, Any]) -> None:
    find = lambda q: set(_find(store, q))  # noqa: E731
    assert find("FIND {smi*} RETURNING Contact, Lead") == {org["john"], org["lead"]}
    assert find("FIND {sm*} IN NAME FIELDS RETURNING Contact") == {org["john"], org["jon"]}
    assert find("FIND {sm?th} RETURNING Contact, Lead") == {org["john"], org["lead"]}
    assert find("FIND {sm?the} RETURNING Contact") == {org["jon"]}
    assert find("FIND {s*e} IN NAME FIELDS RETURNING Contact") == {org["jon"]}
    assert find("FIND {jo?} IN NAME FIELDS RETURNING Contact, Lead") == {org["jon"], org["lead"]}
    assert find("FIND {smith AND NOT j?hn} RETURNING Contact, Lead") == {org["lead"]}
    assert find('FIND {"john sm*"} RETURNING Contact') == {org["john"]}
    assert find("FIND {smith\\*} RETURNING Contact, Lead") == {org["john"], org["lead"]}


def test_returning_clauses_and_limits(store: records.Store, org: dict[str, Any]) -> None:
    svc = SearchService(store)
    got = svc.search(
        "FIND {acme OR smith OR smythe} RETURNING Contact(Name, Email WHERE Email != null "
        "ORDER BY LastName DESC), Account(Name), Lead(Company LIMIT 1)"
    )
    recs = got["searchRecords"]
    assert [r["attributes"]["type"] for r in recs] == ["Contact", "Contact", "Account", "Lead"]
    assert [r.get("Name") for r in recs[:2]] == ["Jon Smythe", "John Smith"]
    assert recs[0]["Email"] == "jon@globex.io"
    assert recs[0]["attributes"]["url"] == f"/services/data/v67.0/sobjects/Contact/{org['jon']}"
    assert recs[2] == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v67.0/sobjects/Account/{org['account']}",
        },
        "Name": "Acme Corporation",
    }
    assert recs[3]["Company"] == "Acme2go"
    # the statement's LIMIT bounds all objects together
    limited = svc.search("FIND {acme} RETURNING Contact(Id ORDER BY Name), Account LIMIT 2")
    assert _ids(limited) == [org["john"], org["jon"]]  # John Smith < Jon Smythe
    assert len(_ids(svc.search("FIND {acme} RETURNING Contact(Id LIMIT 1 OFFSET 1)"))) == 1
    # without RETURNING: every searchable object, Id only
    bare = svc.search("FIND {acme}")["searchRecords"]
    assert {r["attributes"]["type"] for r in bare} == {"Contact", "Lead", "Account"}
    assert all(set(r) == {"attributes", "Id"} for r in bare)


def test_a_rep_finds_only_what_they_may_see(store: records.Store, org: dict[str, Any]) -> None:
    rep = Caller(org["rep"], view_all=False)
    assert set(_find(store, "FIND {smith OR smythe OR rene} RETURNING Contact, Lead", rep)) == {
        org["john"],
        org["lead"],
    }
    # Accounts are public read
    assert _find(store, "FIND {acme} RETURNING Account", rep) == [org["account"]]
    admin = Caller(org["other"], view_all=True)
    assert len(_find(store, "FIND {smith OR smythe OR rene} RETURNING Contact", admin)) == 3


def test_the_index_follows_writes_in_their_transaction(
    store: records.Store, org: dict[str, Any]
) -> None:
    find = lambda q: _find(store, q)  # noqa: E731
    with store.transaction() as tx:
        tx.update("Contact", org["john"], {"LastName": "Carpenter"})
    assert find("FIND {carpenter} RETURNING Contact") == [org["john"]]
    assert find("FIND {smith} IN NAME FIELDS RETURNING Contact") == []
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.insert("Contact", {"LastName": "Rolledback"})
            raise RuntimeError("abandon")
    assert find("FIND {rolledback} RETURNING Contact") == []
    with store.transaction() as tx:
        tx.delete("Contact", org["jon"])
    assert find("FIND {smythe} RETURNING Contact") == []
    with store.transaction() as tx:
        tx.undelete("Contact", org["jon"])
    assert find("FIND {smythe} RETURNING Contact") == [org["jon"]]


@pytest.mark.parametrize(
    ("sosl", "code", "message"),
    [
        ("FIND {a}", "INVALID_SEARCH", "search term must be longer than one character: a"),
        ("FIND {a*}", "INVALID_SEARCH", "search term must be longer than one character: a*"),
        ("FIND {*mith}", "INVALID_SEARCH", "wildcards cannot start a search term: *mith"),
        ("FIND smith", "MALFORMED_SEARCH", "No search term found."),
        ("FIND {smith", "MALFORMED_SEARCH", "No search term found."),
        ("SELECT Id FROM Contact", "MALFORMED_SEARCH", "No search term found."),
        ("FIND {}", "MALFORMED_SEARCH", "No search term found."),
        ("FIND {(smith}", "MALFORMED_SEARCH", "missing ')'"),
        ("FIND {smith OR}", "MALFORMED_SEARCH", "a term is expected"),
        ('FIND {"smith}', "MALFORMED_SEARCH", "No search term found"),
        ("FIND {smith} RETURNING Contact(", "MALFORMED_SEARCH", "ERROR at Row:1:Column:32"),
        ("FIND {smith} IN BOGUS FIELDS", "MALFORMED_SEARCH", "unexpected token: 'BOGUS'"),
        ("FIND {smith} RETURNING Contact()", "MALFORMED_SEARCH", "expecting a field name"),
        ("FIND {smith} RETURNING Contact LIMIT 2001", "MALFORMED_SEARCH", "2000"),
        ("FIND {smith} RETURNING Contact((SELECT Id FROM Tasks))", "MALFORMED_SEARCH", "subquer"),
        ("FIND {smith} RETURNING Bogus", "INVALID_TYPE", "sObject type 'Bogus' is not supported"),
        ("FIND {smith} RETURNING ActionCadenceStepTracker", "INVALID_TYPE", "not supported"),
        ("FIND {smith} RETURNING Contact(Bogus)", "INVALID_FIELD", "No such column 'Bogus'"),
    ],
)
def test_malformed_and_invalid_searches(
    store: records.Store, sosl: str, code: str, message: str
) -> None:
    with pytest.raises(errors.OpenCadenceError) as caught:
        SearchService(store).search(sosl)
    assert caught.value.error_code == code
    assert message in caught.value.message


def test_upgrade_fills_the_index_of_an_existing_database(
    store: records.Store, org: dict[str, Any]
) -> None:
    """A database made before search existed: no documents table, no index, no fingerprint
    of them. The upgrade creates both and indexes the records already there."""
    engine = store.engine
    with engine.begin() as conn:
        if dialect.is_sqlite(conn):
            conn.exec_driver_sql(f"DROP TABLE {dialect.FTS_TABLE}")
        conn.exec_driver_sql(f"DROP TABLE {schema.SEARCH_DOCS}")
        conn.exec_driver_sql(f"DELETE FROM {schema.SCHEMA_STATE}")
    done = migrate.upgrade(engine, default_registry())
    assert f"created table {schema.SEARCH_DOCS}" in done
    assert any(line.startswith("created the search index (") for line in done)
    assert set(_find(store, "FIND {smith} RETURNING Contact, Lead")) == {org["john"], org["lead"]}
    with engine.connect() as conn:
        count = conn.execute(sa.text(f"SELECT count(*) FROM {schema.SEARCH_DOCS}")).scalar_one()
    assert count >= 5
    assert migrate.upgrade(engine, default_registry()) == []  # nothing left to do


def test_relevance_order_looks_past_the_best_ranked_documents(store: records.Store) -> None:
    """The index ranks every object's documents together: 3,000 leads rank above the one
    contact (their name says zed twice), and the contact is still found; so is the one live
    contact among deleted ones, and the one a rep may see among others they may not."""
    with store.transaction() as tx:
        rep = _user(tx, "zrep")
        tx.insert_many("Lead", [{"LastName": "Zed", "FirstName": "Zed", "Company": "Z"}] * 3000)
        gone = tx.insert_many("Contact", [{"LastName": "Zed", "FirstName": "Zed"}] * 100)
        for record_id in gone:
            tx.delete("Contact", record_id)
        kept = tx.insert("Contact", {"LastName": "Zed", "FirstName": "Ann", "OwnerId": rep})
    assert _find(store, "FIND {zed} RETURNING Contact") == [kept]
    assert _find(store, "FIND {zed} RETURNING Contact(Id LIMIT 5)") == [kept]
    assert _find(store, "FIND {z?d} RETURNING Contact") == [kept]
    both = _find(store, "FIND {zed} RETURNING Lead(Id LIMIT 10), Contact")
    assert len(both) == 11 and both[-1] == kept
    assert len(_find(store, "FIND {zed} RETURNING Lead, Contact")) == 2000  # at most 2,000
    rep_caller = Caller(rep, view_all=False)
    assert _find(store, "FIND {zed} RETURNING Contact, Lead", rep_caller) == [kept]


def test_a_hard_delete_forgets_the_documents(store: records.Store, org: dict[str, Any]) -> None:
    with store.transaction() as tx:
        table = store.meta.tables["Contact"]
        tx.conn.execute(table.delete().where(table.c.Id == org["jon"]))
        search_index.forget(tx.conn, store.meta, [org["jon"]])
    with store.reading() as conn:
        docs = store.meta.tables[schema.SEARCH_DOCS]
        left = conn.execute(sa.select(docs.c.record_id).where(docs.c.record_id == org["jon"]))
        assert left.first() is None
    assert _find(store, "FIND {smythe} RETURNING Contact") == []


def test_a_bulk_hard_delete_forgets_the_documents(
    store: records.Store, org: dict[str, Any]
) -> None:
    """Bulk hardDelete (a delete, then ``BulkTables.purge``) leaves no document behind."""
    with store.transaction() as tx:
        tx.delete("Contact", org["jon"])
        bulk.BulkTables(store.meta).purge(tx.conn, "Contact", [org["jon"]])
    with store.reading() as conn:
        docs = store.meta.tables[schema.SEARCH_DOCS]
        left = conn.execute(sa.select(docs.c.record_id).where(docs.c.record_id == org["jon"]))
        assert left.first() is None


def test_parameterized_search(store: records.Store, org: dict[str, Any]) -> None:
    svc = SearchService(store)
    got = svc.parameterized(
        {
            "q": "acme",
            "in": "EMAIL_FIELDS",
            "sobjects": [{"name": "Contact", "fields": ["Email"]}, {"name": "Lead"}],
        }
    )
    assert [r.get("Email") for r in got["searchRecords"]] == ["jsmith@acme.com"]
    limited = svc.parameterized(
        {
            "q": "acme OR smith",
            "defaultLimit": "1",
            "sobjects": [{"name": "Contact"}, {"name": "Lead"}, {"name": "Account", "limit": 5}],
        }
    )
    kinds = [r["attributes"]["type"] for r in limited["searchRecords"]]
    assert kinds == ["Contact", "Lead", "Account"]
    overall = svc.parameterized({"q": "acme", "overallLimit": 2, "sobjects": [{"name": "Contact"}]})
    assert len(overall["searchRecords"]) == 2
    where = svc.parameterized(
        {
            "q": "acme",
            "sobjects": [{"name": "Contact", "fields": ["Title"], "where": "Title = 'Engineer'"}],
        }
    )
    assert [r["Title"] for r in where["searchRecords"]] == ["Engineer"]
    for bad, code in (
        ({"sobjects": [{"name": "Contact"}]}, "MALFORMED_SEARCH"),
        ({"q": "acme", "in": "SOMEWHERE"}, "INVALID_SEARCH"),
        ({"q": "acme", "fields": ["Name"]}, "INVALID_SEARCH"),
        ({"q": "acme", "overallLimit": "-3"}, "INVALID_SEARCH"),
        ({"q": "acme", "sobjects": [{"fields": ["Name"]}]}, "INVALID_SEARCH"),
        ({"q": "acme", "sobjects": [{"name": "Nope"}]}, "INVALID_TYPE"),
        ({"q": "a"}, "INVALID_SEARCH"),
    ):
        with pytest.raises(errors.OpenCadenceError) as caught:
            svc.parameterized(bad)
        assert caught.value.error_code == code, bad
