"""Focused SOQL parser tests: tree shapes, literals, error positions, render round-trip."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from opencadence import errors
from opencadence.soql import nodes as n
from opencadence.soql import parse
from opencadence.soql.render import render
from opencadence.soql.tokens import TokenType, tokenize

from .test_conformance import KNOWN_REJECTED, _lines

UTC = dt.UTC


def where(query: str) -> n.Condition:
    cond = parse(query).where
    assert cond is not None
    return cond


def value(literal: str) -> n.Value:
    cond = where(f"SELECT Id FROM Account WHERE f = {literal}")
    assert isinstance(cond, n.Comparison)
    return cond.value


def malformed(query: str) -> errors.MalformedQuery:
    with pytest.raises(errors.MalformedQuery) as info:
        parse(query)
    return info.value


# --- tree shapes ------------------------------------------------------------------------------


def test_simple_query_shape() -> None:
    text = (
        "SELECT Id, Account.Name FROM Contact WHERE Name LIKE 'A%' "
        "ORDER BY Name DESC NULLS LAST LIMIT 10 OFFSET 5"
    )
    q = parse(text)
    assert q.select == (n.FieldPath(("Id",)), n.FieldPath(("Account", "Name")))
    assert q.sobject == n.FieldPath(("Contact",)) and q.alias is None
    assert q.where == n.Like(n.FieldPath(("Name",)), n.String("A%"))
    assert q.order_by == (n.OrderItem(n.FieldPath(("Name",)), descending=True, nulls="LAST"),)
    assert (q.limit, q.offset) == (10, 5)
    assert q.clause_pos["LIMIT"] == (1, text.index("LIMIT") + 1) == (1, 89)


def test_positions_are_one_based_and_ignored_by_equality() -> None:
    q = parse("SELECT Id,\n  Name FROM Account")
    assert q.pos == (1, 1)
    assert q.select[1].pos == (2, 3)
    assert q == parse("select Id, Name from Account")


def test_identifiers_keep_spelling_keywords_any_case() -> None:
    q = parse("sElEcT nAmE fRoM aCcOuNt wHeRe x = TrUe")
    assert q.select == (n.FieldPath(("nAmE",)),)
    assert q.sobject.parts == ("aCcOuNt",)
    expected = n.Comparison(n.FieldPath(("x",)), "=", n.Boolean(True))
    assert where("select Id from A where x = true") == expected


def test_select_item_kinds() -> None:
    q = parse(
        "SELECT Id, (SELECT LastName FROM Contacts c WHERE x = 1 ORDER BY LastName LIMIT 3), "
        "TYPEOF What WHEN Account THEN Phone, Name WHEN Group THEN Type ELSE Email END, "
        "FIELDS(all), toLabel(Status) st, FORMAT(convertCurrency(Amount)) amt FROM Event"
    )
    sub, typeof, fields, tolabel, fmt = q.select[1:]
    assert isinstance(sub, n.Subquery)
    assert sub.query.sobject.parts == ("Contacts",) and sub.query.alias == "c"
    assert sub.query.limit == 3
    assert typeof == n.TypeOf(
        n.FieldPath(("What",)),
        (
            n.TypeOfWhen("Account", (n.FieldPath(("Phone",)), n.FieldPath(("Name",)))),
            n.TypeOfWhen("Group", (n.FieldPath(("Type",)),)),
        ),
        (n.FieldPath(("Email",)),),
    )
    assert fields == n.Fields("ALL")
    assert tolabel == n.Function("toLabel", (n.FieldPath(("Status",)),), alias="st")
    inner = n.Function("convertCurrency", (n.FieldPath(("Amount",)),))
    assert fmt == n.Function("FORMAT", (inner,), alias="amt")


def test_count_star_and_aggregates() -> None:
    assert parse("SELECT COUNT() FROM Contact").select == (n.CountStar(),)
    assert parse("SELECT Count() c FROM Contact").select == (n.CountStar("c"),)
    q = parse("SELECT COUNT(Id) cnt, COUNT_DISTINCT(Company), MAX(Amount) max FROM Lead")
    assert [(f.name, f.alias) for f in q.select if isinstance(f, n.Function)] == [
        ("COUNT", "cnt"),
        ("COUNT_DISTINCT", None),
        ("MAX", "max"),
    ]


def test_date_functions_and_distance() -> None:
    q = parse(
        "SELECT CALENDAR_YEAR(convertTimezone(CreatedDate)) y FROM Opportunity "
        "WHERE DISTANCE(Loc__c, GEOLOCATION(37.775, -122.418), 'mi') < 20 "
        "GROUP BY CALENDAR_YEAR(convertTimezone(CreatedDate))"
    )
    tz = n.Function("convertTimezone", (n.FieldPath(("CreatedDate",)),))
    assert q.select == (n.Function("CALENDAR_YEAR", (tz,), alias="y"),)
    lat = n.Number("37.775", Decimal("37.775"))
    geo = n.Function("GEOLOCATION", (lat, n.Number("-122.418", Decimal("-122.418"))))
    distance = n.Function("DISTANCE", (n.FieldPath(("Loc__c",)), geo, n.String("mi")))
    assert q.where == n.Comparison(distance, "<", n.Number("20", 20))
    assert q.group_by == n.GroupBy("PLAIN", (n.Function("CALENDAR_YEAR", (tz,)),))


def test_group_by_rollup_cube_having() -> None:
    q = parse(
        "SELECT a, b, COUNT(Id) FROM X GROUP BY ROLLUP(a, b) HAVING COUNT(Id) > 1 AND GROUPING(a) = 0"
    )
    assert q.group_by == n.GroupBy("ROLLUP", (n.FieldPath(("a",)), n.FieldPath(("b",))))
    assert isinstance(q.having, n.And) and len(q.having.terms) == 2
    cube = parse("SELECT a FROM X GROUP BY CUBE(a)").group_by
    assert cube == n.GroupBy("CUBE", (n.FieldPath(("a",)),))


def test_conditions() -> None:
    cond = where("SELECT Id FROM A WHERE a = 1 AND (b = 2 OR c = 3) AND (NOT d = 4)")
    assert isinstance(cond, n.And) and len(cond.terms) == 3
    assert isinstance(cond.terms[1], n.Or)
    assert cond.terms[2] == n.Not(n.Comparison(n.FieldPath(("d",)), "=", n.Number("4", 4)))
    assert isinstance(where("SELECT Id FROM A WHERE NOT (a = 1 OR b = 2)"), n.Not)
    inc = where("SELECT Id FROM A WHERE m EXCLUDES ('a;b', 'c')")
    assert inc == n.Includes(n.FieldPath(("m",)), (n.String("a;b"), n.String("c")), negated=True)


def test_in_lists_and_semi_joins() -> None:
    cond = where("SELECT Id FROM A WHERE x NOT IN ('a', null, TODAY, LAST_N_DAYS:4)")
    assert cond == n.In(
        n.FieldPath(("x",)),
        (n.String("a"), n.Null(), n.DateLiteral("TODAY"), n.DateLiteral("LAST_N_DAYS", 4)),
        negated=True,
    )
    semi = where("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE x = 1)")
    assert isinstance(semi, n.In) and semi.query is not None and not semi.values
    assert semi.query.sobject.parts == ("Contact",)


def test_from_using_with_for_update() -> None:
    q = parse("SELECT Id FROM Contact c, c.Account a USING SCOPE mine WHERE a.Name = 'x'")
    items = [(i.path.parts, i.alias) for i in q.from_items]
    assert items == [(("Contact",), "c"), (("c", "Account"), "a")]
    assert q.using_scope == "mine"
    q = parse(
        "SELECT Title FROM K WITH DATA CATEGORY Geo__c AT (usa__c, uk__c) AND Prod__c BELOW all__c "
        "WITH SECURITY_ENFORCED FOR VIEW UPDATE TRACKING, VIEWSTAT"
    )
    assert q.with_ == (
        n.WithDataCategory(
            (
                n.CategoryFilter("Geo__c", "AT", ("usa__c", "uk__c")),
                n.CategoryFilter("Prod__c", "BELOW", ("all__c",)),
            )
        ),
        n.WithMode("SECURITY_ENFORCED"),
    )
    assert (q.for_, q.update) == (("VIEW",), ("TRACKING", "VIEWSTAT"))
    q = parse("SELECT Id FROM F WITH UserId = '005' LIMIT 2 FOR UPDATE, REFERENCE")
    assert q.with_ == (n.WithFilter("UserId", n.String("005")),)
    assert q.for_ == ("UPDATE", "REFERENCE")
    q = parse("SELECT Id FROM K WITH RecordVisibilityContext (maxDescriptors=100, domains=true)")
    ctx = q.with_[0]
    assert isinstance(ctx, n.WithContext)
    assert ctx.options == (
        n.KeyValue("maxDescriptors", n.Number("100", 100)),
        n.KeyValue("domains", n.Boolean(True)),
    )


def test_keywords_as_names() -> None:
    assert parse("SELECT Id FROM Group").sobject.parts == ("Group",)
    assert parse("SELECT Id FROM Order ORDER BY Id").sobject.parts == ("Order",)
    assert parse("SELECT format, Type FROM Report").select[0] == n.FieldPath(("format",))
    assert parse("SELECT Name FROM Account OFFSET").alias == "OFFSET"
    assert parse("SELECT Name FROM Account OFFSET 5").offset == 5


# --- literals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("'plain'", "plain"),
        ("''", ""),
        (r"'it\'s'", "it's"),
        (r"'a\"b'", 'a"b'),
        (r"'back\\slash'", "back\\slash"),
        (r"'\n\r\t\b\f'", "\n\r\t\b\f"),
        (r"'\N\R\T\B\F'", "\n\r\t\b\f"),
        (r"'caf\u00e9\U2019'", "caf\u00e9\u2019"),
        (r"'\\uZZZZ'", "\\uZZZZ"),
        ("'a \"quoted\" word'", 'a "quoted" word'),
    ],
)
def test_string_literals(literal: str, expected: str) -> None:
    assert value(literal) == n.String(expected)


def test_like_pattern_form_keeps_escapes_distinct() -> None:
    like = where(r"SELECT Id FROM A WHERE x LIKE 'a\%b\_c\\d%'")
    assert isinstance(like, n.Like)
    assert like.pattern.value == "a\\%b\\_c\\\\d%"


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("42", n.Number("42", 42)),
        ("-100.123", n.Number("-100.123", Decimal("-100.123"))),
        ("+5", n.Number("+5", 5)),
        ("101.00", n.Number("101.00", Decimal("101.00"))),
        ("TRUE", n.Boolean(True)),
        ("false", n.Boolean(False)),
        ("null", n.Null()),
        ("2020-11-11", n.Date(dt.date(2020, 11, 11))),
        ("2010-09-20T22:16:30.000Z", n.DateTime(dt.datetime(2010, 9, 20, 22, 16, 30, tzinfo=UTC))),
        ("1999-01-01T23:01:01-08:00", n.DateTime(dt.datetime(1999, 1, 2, 7, 1, 1, tzinfo=UTC))),
        (
            "2017-04-05T10:41:42.123+0000",
            n.DateTime(dt.datetime(2017, 4, 5, 10, 41, 42, 123000, UTC)),
        ),
        (
            "2020-04-23T09:00:00.1234567890+00:00",
            n.DateTime(dt.datetime(2020, 4, 23, 9, 0, 0, 123456, UTC)),
        ),
        ("01:02:03.500Z", n.Time(dt.time(1, 2, 3, 500000))),
        ("TODAY", n.DateLiteral("TODAY")),
        ("last_90_days", n.DateLiteral("LAST_90_DAYS")),
        ("LAST_N_DAYS:30", n.DateLiteral("LAST_N_DAYS", 30)),
        ("n_fiscal_years_ago:2", n.DateLiteral("N_FISCAL_YEARS_AGO", 2)),
        ("USD5000", n.Currency("USD", n.Number("5000", 5000))),
        ("eur100.50", n.Currency("eur", n.Number("100.50", Decimal("100.50")))),
        ("USD-500", n.Currency("USD", n.Number("-500", -500))),
    ],
)
def test_value_literals(literal: str, expected: n.Value) -> None:
    assert value(literal) == expected


def test_datetime_keeps_offset() -> None:
    v = value("1999-01-01T23:01:01+01:00")
    assert isinstance(v, n.DateTime) and v.value.utcoffset() == dt.timedelta(hours=1)


def test_tokens_carry_positions() -> None:
    toks = tokenize("SELECT Id\n  FROM A")
    assert [(t.type, t.text, t.line, t.column, t.offset) for t in toks] == [
        (TokenType.IDENT, "SELECT", 1, 1, 0),
        (TokenType.IDENT, "Id", 1, 8, 7),
        (TokenType.IDENT, "FROM", 2, 3, 12),
        (TokenType.IDENT, "A", 2, 8, 17),
        (TokenType.EOF, "", 2, 9, 18),
    ]


# --- errors -------------------------------------------------------------------------------------


def test_double_quoted_string_error() -> None:
    q = (
        "select StepTitle from ActionCadenceStepTracker where TargetID = '00Q000000000001' "
        "and ActionCadenceId='77C000000000001' and StepType=\"Completed\""
    )
    err = malformed(q)
    assert (err.line, err.column, err.token) == (1, q.index('"') + 1, '"Completed"')
    assert err.error_code == "MALFORMED_QUERY"
    lines = err.message.split("\n")
    assert lines[1].index("^") == lines[0].index('"Completed"')
    assert lines[2] == "ERROR at Row:1:Column:134"
    assert lines[3] == "unexpected token: '\"Completed\"'"
    assert "single quotes" in lines[4]


@pytest.mark.parametrize(
    ("query", "line", "column", "token"),
    [
        ("SELECT Id FROM A WHERE a = 1 AND b = 2 OR c = 3", 1, 40, "OR"),
        ("SELECT Id FROM A WHERE a = 1 OR b = 2 AND c = 3", 1, 39, "AND"),
        ("SELECT Id\nFROM A\nWHERE a = 1\n  AND b = 2 OR c = 3", 4, 13, "OR"),
        ("SELECT Id FROM A WHERE a = 1 AND NOT b = 2", 1, 34, "NOT"),
        ("SELECT Id FROM A WHERE NOT a = 1 AND b = 2", 1, 34, "AND"),
        ("SELECT Id FROM A WHERE OR a = 1", 1, 24, "OR"),
        ("SELECT Id FROM A;", 1, 17, ";"),
        ("SELECT Id FROM A WHERE Id = :x", 1, 29, ":"),
        ("SELECT Id FROM A WHERE Id IN :ids", 1, 30, ":"),
        ("SELECT Id FROM A ALL ROWS", 1, 18, "ALL"),
        ("SELECT Id FROM A ORDER BY Id WHERE a = 1", 1, 30, "WHERE"),
        ("SELECT Id FROM A LIMIT 5 ORDER BY Id", 1, 26, "ORDER"),
        ("SELECT Id FROM A LIMIT -1", 1, 24, "-1"),
        ("SELECT Id FROM A OFFSET 1.5", 1, 25, "1.5"),
        ("SELECT Id FROM A WHERE x = 'a\\qb'", 1, 28, "'a\\qb'"),
        ("SELECT Id FROM A WHERE x = 'a\\%'", 1, 28, "'a\\%'"),
        ("SELECT Id FROM A WHERE x = 'open", 1, 28, "'"),
        ("SELECT Id FROM A WHERE x = ''a''", 1, 30, "a"),
        ("SELECT Name Like FROM A", 1, 13, "Like"),
        ("SELECT Id, COUNT() FROM A", 1, 12, "COUNT"),
        ("SELECT Id FROM A WHERE x = TODAY:3", 1, 28, "TODAY:3"),
        ("SELECT Id FROM A WHERE x = LAST_N_DAYS", 1, 28, "LAST_N_DAYS"),
        ("SELECT Id FROM A WHERE x = 2020-01-01T10:00:00", 1, 28, "2020-01-01T10:00:00"),
        ("SELECT Id FROM A WHERE x = 2020-02-30", 1, 28, "2020-02-30"),
        ("SELECT Id FROM A WHERE x = y", 1, 28, "y"),
        ("SELECT Id FROM A HAVING COUNT(Id) > 1", 1, 18, "HAVING"),
        ("SELECT Id FROM A WHERE x = 1 // c", 1, 30, "/"),
        ("SELECT Id FROM A WHERE", 1, 23, "<EOF>"),
    ],
)
def test_error_positions(query: str, line: int, column: int, token: str) -> None:
    err = malformed(query)
    assert (err.line, err.column, err.token) == (line, column, token)
    assert f"ERROR at Row:{line}:Column:{column}" in err.message
    assert f"unexpected token: '{token}'" in err.message


def test_and_or_mix_message() -> None:
    assert "cannot be mixed" in malformed("SELECT Id FROM A WHERE a = 1 AND b = 2 OR c = 3").message


# --- render round-trip --------------------------------------------------------------------------

_ROUND_TRIP = [
    pytest.param(line, id=f"valid-{no}")
    for no, line in _lines("valid.txt")
    if no not in KNOWN_REJECTED
]


@pytest.mark.parametrize("query", _ROUND_TRIP)
def test_render_round_trip(query: str) -> None:
    tree = parse(query)
    text = render(tree)
    assert parse(text) == tree
    assert render(parse(text)) == text


def test_render_is_canonical() -> None:
    q = "select id, COUNT(x) c from a where not (b = 'it\\'s' or c like 'x\\%') limit 5"
    assert render(parse(q)) == (
        "SELECT id, COUNT(x) c FROM a WHERE NOT (b = 'it\\'s' OR c LIKE 'x\\%') LIMIT 5"
    )
    q = "select a, b from x group by rollup(a,b) order by a asc nulls first, b desc"
    assert render(parse(q)) == (
        "SELECT a, b FROM x GROUP BY ROLLUP(a, b) ORDER BY a NULLS FIRST, b DESC"
    )
