"""The SOSL parser (pure): search expressions, clauses, RETURNING as SOQL queries, errors."""

from __future__ import annotations

import pytest

from opencadence import errors
from opencadence.soql import nodes as soql_nodes
from opencadence.sosl import nodes, parse
from opencadence.sosl.terms import parse_expression

T = nodes.Term


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("acme", T("acme")),
        ("Joe Smith", nodes.And((T("Joe"), T("Smith")))),
        ('"joe smith"', T("joe smith", quoted=True)),
        ("joe OR smith", nodes.Or((T("joe"), T("smith")))),
        ("joe or smith and mary", nodes.Or((T("joe"), nodes.And((T("smith"), T("mary")))))),
        ("joe AND NOT smith", nodes.AndNot(T("joe"), T("smith"))),
        (
            "a1 AND b2 AND NOT c3 d4",
            nodes.And((nodes.AndNot(nodes.And((T("a1"), T("b2"))), T("c3")), T("d4"))),
        ),
        ("(joe OR jo) smith", nodes.And((nodes.Or((T("joe"), T("jo"))), T("smith")))),
        ('"and" or "or"', nodes.Or((T("and", quoted=True), T("or", quoted=True)))),
        ("sm?th*", T("sm?th*")),
        ("right\\*now", T("right\x00now")),  # an escaped * is a literal, not a wildcard
        ('"say \\"hi\\""', T('say "hi"', quoted=True)),
        ("john.smith@acme.com", T("john.smith@acme.com")),
    ],
)
def test_search_expressions(text: str, tree: nodes.Expr) -> None:
    assert parse_expression(text) == tree


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("", errors.MalformedSearch, "No search term found"),
        ("   ", errors.MalformedSearch, "No search term found"),
        ("(joe", errors.MalformedSearch, "missing ')'"),
        ("joe)", errors.MalformedSearch, "unexpected ')'"),
        ("joe OR", errors.MalformedSearch, "a term is expected"),
        ("NOT joe", errors.MalformedSearch, "NOT must follow AND"),
        ('"joe', errors.MalformedSearch, "unterminated"),
        ("joe\\", errors.MalformedSearch, "escape"),
        ("a", errors.InvalidSearch, "search term must be longer than one character: a"),
        ("a b", errors.InvalidSearch, "longer than one character"),
        ("j*", errors.InvalidSearch, "longer than one character: j*"),
        ("*oe", errors.InvalidSearch, "wildcards cannot start a search term: *oe"),
        ("?oe", errors.InvalidSearch, "wildcards cannot start"),
    ],
)
def test_bad_expressions(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        parse_expression(text)
    assert message in str(caught.value)


def test_a_single_letter_beside_a_longer_term_is_allowed() -> None:
    assert parse_expression("J Smith") == nodes.And((T("J"), T("Smith")))


def test_statement_clauses() -> None:
    s = parse(
        "find {Joe Smith} in name fields returning "
        "Lead(Name, Phone WHERE CreatedDate = THIS_FISCAL_QUARTER ORDER BY Name DESC LIMIT 5 "
        "OFFSET 2), Contact, Account(Name) LIMIT 20"
    )
    assert s.group == "NAME" and s.limit == 20 and s.find_text == "Joe Smith"
    assert [r.name for r in s.returning] == ["Lead", "Contact", "Account"]
    lead = s.returning[0].query
    assert lead is not None
    assert lead.sobject.dotted == "Lead"
    assert [i.dotted for i in lead.select if isinstance(i, soql_nodes.FieldPath)] == [
        "Name",
        "Phone",
    ]
    assert isinstance(lead.where, soql_nodes.Comparison)
    assert lead.order_by[0].descending and lead.limit == 5 and lead.offset == 2
    assert s.returning[1].query is None  # no field list: the Id only


def test_braces_inside_phrases_and_escapes() -> None:
    s = parse('FIND {"curly } brace" OR right\\}} RETURNING Contact')
    assert s.expr == nodes.Or((T("curly } brace", quoted=True), T("right}")))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FIND joe", "No search term found. The search term must be enclosed in braces."),
        ("FIND {joe", "No search term found"),
        ("FINDER {joe}", "No search term found"),
        ("FIND {joe} IN BOGUS FIELDS", "ERROR at Row:1:Column:15"),
        ("FIND {joe} IN NAME", "expecting FIELDS"),
        ("FIND {joe} IN SIDEBAR FIELDS", "SIDEBAR"),
        ("FIND {joe} RETURNING", "expecting an object name"),
        ("FIND {joe} RETURNING Contact(Name", "expecting ')'"),
        ("FIND {joe} RETURNING Contact(COUNT(Id))", "not allowed"),
        ("FIND {joe} RETURNING Contact WITH DIVISION = 'x'", "WITH clauses are not supported"),
        ("FIND {joe} LIMIT 2001", "the maximum LIMIT of a search is 2000"),
        ("FIND {joe} RETURNING Contact(Id OFFSET 2001)", "the maximum OFFSET"),
        ("FIND {joe} LIMIT", "LIMIT requires a non-negative integer"),
        ("FIND {joe} extra", "expecting end of search"),
    ],
)
def test_malformed_statements(text: str, message: str) -> None:
    with pytest.raises(errors.MalformedSearch) as caught:
        parse(text)
    assert message in caught.value.message
    assert caught.value.error_code == "MALFORMED_SEARCH"


def test_error_excerpts_show_the_statement_as_written() -> None:
    with pytest.raises(errors.MalformedSearch) as caught:
        parse("FIND {joe} RETURNING Contact(Name,)")
    lines = caught.value.message.split("\n")
    assert lines[0] == "FIND {joe} RETURNING Contact(Name,)"
    assert lines[1] == " " * 34 + "^"
    assert lines[2] == "ERROR at Row:1:Column:35"
