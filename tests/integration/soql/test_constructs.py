"""SQL building blocks of the SOQL compiler: identical, correct results on SQLite and PostgreSQL.

The module creates its own small tables (not the registry's) once per database, on the
``engine`` below, which runs every test once per database; the tests only read them and compare
the database's answers with Python's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opencadence.soql import constructs, dates
from opencadence.storage import dialect, formulas

UTC = UTC
Col = sa.ColumnElement[Any]


@pytest.fixture(scope="module")
def engine(module_engine: sa.Engine) -> sa.Engine:
    """The module's database on each backend (shared: the tests here only read)."""
    return module_engine


@pytest.fixture(scope="module")
def meta(engine: sa.Engine) -> Iterator[sa.MetaData]:
    """Tables the module defines; created after definition, dropped at the module's end."""
    m = sa.MetaData()
    yield m
    m.drop_all(engine)


def _create(
    engine: sa.Engine, meta: sa.MetaData, table: sa.Table, rows: list[dict[str, Any]]
) -> None:
    meta.create_all(engine, tables=[table])
    with engine.begin() as conn:
        conn.execute(table.delete())
        if rows:
            conn.execute(table.insert(), rows)


def _ids(engine: sa.Engine, table: sa.Table, cond: Col) -> set[int]:
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(table.c.id).where(cond)))


# --- text comparison -----------------------------------------------------------------------

TEXTS = [
    "École",
    "ÉCOLE",
    "école",
    "ecole",
    "apple",
    "Apple",
    "Banana",
    "banana split",
    "",
    None,
    "100%",
    "a_b",
    "a\\b",
    "aXb",
    "Straße",
    "STRASSE",
    "ΣΑΣ",
    "σας",
    "zebra",
    "Über",
    "über",
    "İstanbul",
    "naïve",
    "Ölfass",
    "\u212aelvin",  # the Kelvin sign: not ASCII, lowercases to the ASCII "kelvin"
    "KELVIN",
]


@pytest.fixture(scope="module")
def texts(engine: sa.Engine, meta: sa.MetaData) -> sa.Table:
    t = sa.Table(
        "zz_oc_ci_text",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("s", sa.String(100)),
    )
    _create(engine, meta, t, [{"id": i, "s": s} for i, s in enumerate(TEXTS)])
    return t


def _expected_compare(s: str | None, op: str, value: str | None) -> bool:
    """The documented semantics, in Python: '' is null; text compares lowercased."""
    low = dialect.simple_lower
    empty, empty_value = s in (None, ""), value in (None, "")
    if op == "=":
        return empty if empty_value else not empty and low(s or "") == low(value or "")
    if op == "!=":
        return not empty if empty_value else empty or low(s or "") != low(value or "")
    if empty:
        return False
    if empty_value:
        return op in (">", ">=")
    a, b = low(s or ""), low(value or "")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


COMPARE_VALUES = [
    "école",
    "ÉCOLE",
    "APPLE",
    "banana",
    "",
    None,
    "ölfass",
    "straße",
    "σασ",
    "m",
    "İSTANBUL",
    "istanbul",
    "zz",
    "kelvin",
]


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_ci_compare_matches_python(engine: sa.Engine, texts: sa.Table, op: str) -> None:
    for value in COMPARE_VALUES:
        expected = {i for i, s in enumerate(TEXTS) if _expected_compare(s, op, value)}
        assert _ids(engine, texts, constructs.ci_compare(texts.c.s, op, value)) == expected, value


def test_ci_compare_unicode_examples(engine: sa.Engine, texts: sa.Table) -> None:
    def named(op: str, value: str | None) -> set[str | None]:
        return {TEXTS[i] for i in _ids(engine, texts, constructs.ci_compare(texts.c.s, op, value))}

    assert named("=", "ÉCOLE") == {"École", "ÉCOLE", "école"}
    assert named("=", "über") == {"Über", "über"}
    assert named("=", "ölfass") == {"Ölfass"}
    assert named("<>", "apple") == set(TEXTS) - {"apple", "Apple"}  # null and '' included
    assert named("=", "") == {None, ""}
    assert named("!=", None) == set(TEXTS) - {None, ""}
    assert named("<", "b") == {"apple", "Apple", "100%", "a_b", "a\\b", "aXb"}


def test_ci_compare_rejects_unknown_operator(texts: sa.Table) -> None:
    with pytest.raises(ValueError):
        constructs.ci_compare(texts.c.s, "LIKE", "a")


@pytest.mark.parametrize(
    ("values", "negated", "expected"),
    [
        (["ÉCOLE", "APPLE"], False, {"École", "ÉCOLE", "école", "apple", "Apple"}),
        (["ÉCOLE", "APPLE"], True, set(TEXTS) - {"École", "ÉCOLE", "école", "apple", "Apple"}),
        (["zebra", None], False, {"zebra", None, ""}),
        (["zebra", None], True, set(TEXTS) - {"zebra", None, ""}),
        (["zebra", ""], True, set(TEXTS) - {"zebra", None, ""}),
        ([], False, set()),
        ([], True, set(TEXTS)),
    ],
)
def test_ci_in(
    engine: sa.Engine,
    texts: sa.Table,
    values: list[str | None],
    negated: bool,
    expected: set[str | None],
) -> None:
    ids = _ids(engine, texts, constructs.ci_in(texts.c.s, values, negated))
    assert {TEXTS[i] for i in ids} == expected


def test_ci_sort_key_orders_by_code_point(engine: sa.Engine, texts: sa.Table) -> None:
    key = constructs.ci_sort_key(texts.c.s)
    with engine.connect() as conn:
        got = list(
            conn.scalars(sa.select(texts.c.id).order_by(key.asc().nulls_first(), texts.c.id))
        )

    def sort_key(i: int) -> tuple[int, str, int]:
        s = TEXTS[i]
        return (0, "", i) if s is None else (1, dialect.simple_lower(s), i)

    assert got == sorted(range(len(TEXTS)), key=sort_key)


# --- LIKE ----------------------------------------------------------------------------------


def _like_regex(pattern: str) -> re.Pattern[str]:
    out, chars = [], iter(pattern)
    for ch in chars:
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(next(chars, "\\") if ch == "\\" else ch))
    return re.compile("".join(out), re.DOTALL)


LIKE_PATTERNS = [
    "éc%",
    "ÉC%",
    "%OLE",
    "BANANA%",
    "%\\%",
    "a\\_b",
    "a_b",
    "a\\\\b",
    "%",
    "",
    "_",
    "%a%",
    "straße",
    "%ß%",
    "ü%",
    "%\\x%",
    "a%b",
    "____",
    "100\\%",
    "i%",
]


@pytest.mark.parametrize("pattern", LIKE_PATTERNS)
def test_like_matches_python(engine: sa.Engine, texts: sa.Table, pattern: str) -> None:
    regex = _like_regex(dialect.simple_lower(pattern))
    expected = {
        i
        for i, s in enumerate(TEXTS)
        if regex.fullmatch(dialect.simple_lower(s or "")) and (s is not None or regex.fullmatch(""))
    }
    assert _ids(engine, texts, constructs.like(texts.c.s, pattern)) == expected


def test_like_examples(engine: sa.Engine, texts: sa.Table) -> None:
    def named(pattern: str) -> set[str | None]:
        return {TEXTS[i] for i in _ids(engine, texts, constructs.like(texts.c.s, pattern))}

    assert named("ÉCO%") == {"École", "ÉCOLE", "école"}
    assert named("a\\_b") == {"a_b"}
    assert named("a_b") == {"a_b", "a\\b", "aXb"}
    assert named("a\\\\b") == {"a\\b"}
    assert named("%\\%") == {"100%"}
    assert named("%") == set(TEXTS)  # '' matches, and null is ''


def test_like_pattern_translation() -> None:
    assert constructs.like_pattern("a\\%b_%") == ("a\\%b_%", False)
    assert constructs.like_pattern("\\a") == ("a", False)
    assert constructs.like_pattern("x\\") == ("x\\\\", False)
    assert constructs.like_pattern("%%") == ("%%", True)
    assert constructs.like_pattern("") == ("", True)


# --- date functions ------------------------------------------------------------------------

DATETIMES = [
    datetime(2024, 3, 10, 9, 30),  # 01:30 PST, the night US DST starts
    datetime(2024, 3, 10, 10, 30),  # 03:30 PDT
    datetime(2024, 1, 1, 5, 0),  # 2023-12-31 in Los Angeles
    datetime(2023, 12, 31, 23, 59, 59, 999999),
    datetime(2024, 2, 1, 0, 0),  # DAY_IN_YEAR 32
    datetime(2024, 2, 29, 12, 0),
    datetime(2024, 12, 31, 18, 45),  # DAY_IN_YEAR 366, Kolkata already 2025
    datetime(2021, 1, 3, 0, 0),  # a Sunday
    datetime(2024, 4, 1, 0, 0),
    datetime(2024, 11, 3, 8, 59, 59),  # 01:59:59 PST after the fall-back
    datetime(2024, 7, 15, 23, 30, 0, 5),
    None,
]

FUNCTIONS = [
    "CALENDAR_MONTH",
    "CALENDAR_QUARTER",
    "CALENDAR_YEAR",
    "DAY_IN_MONTH",
    "DAY_IN_WEEK",
    "DAY_IN_YEAR",
    "DAY_ONLY",
    "FISCAL_MONTH",
    "FISCAL_QUARTER",
    "FISCAL_YEAR",
    "HOUR_IN_DAY",
    "WEEK_IN_MONTH",
    "WEEK_IN_YEAR",
]


def _python_part(name: str, local: datetime | date, fiscal: int, from_start: bool) -> Any:
    """The documented meaning of each date function (soql.md A.6), in Python."""
    month, day = local.month, local.day
    doy = local.timetuple().tm_yday
    fiscal_month = (month - fiscal) % 12 + 1
    fiscal_year = local.year
    if fiscal > 1:
        fiscal_year += (
            (-1 if month < fiscal else 0) if from_start else (1 if month >= fiscal else 0)
        )
    return {
        "CALENDAR_MONTH": month,
        "CALENDAR_QUARTER": (month - 1) // 3 + 1,
        "CALENDAR_YEAR": local.year,
        "DAY_IN_MONTH": day,
        "DAY_IN_WEEK": local.isoweekday() % 7 + 1,
        "DAY_IN_YEAR": doy,
        "DAY_ONLY": local.date() if isinstance(local, datetime) else local,
        "FISCAL_MONTH": fiscal_month,
        "FISCAL_QUARTER": (fiscal_month - 1) // 3 + 1,
        "FISCAL_YEAR": fiscal_year,
        "HOUR_IN_DAY": local.hour if isinstance(local, datetime) else None,
        "WEEK_IN_MONTH": (day - 1) // 7 + 1,
        "WEEK_IN_YEAR": (doy - 1) // 7 + 1,
    }[name]


def _local(value: datetime, tz: str | None) -> datetime:
    if tz is None:
        return value
    return value.replace(tzinfo=UTC).astimezone(dates.zone(tz)).replace(tzinfo=None)


@pytest.fixture(scope="module")
def moments(engine: sa.Engine, meta: sa.MetaData) -> sa.Table:
    t = sa.Table(
        "zz_oc_moments",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dt", sa.DateTime),
        sa.Column("d", sa.Date),
    )
    rows = [{"id": i, "dt": v, "d": v.date() if v else None} for i, v in enumerate(DATETIMES)]
    _create(engine, meta, t, rows)
    return t


@pytest.mark.parametrize("tz", [None, "America/Los_Angeles", "Asia/Kolkata", "GMT"])
@pytest.mark.parametrize(("fiscal", "from_start"), [(1, False), (4, False), (4, True), (11, False)])
def test_date_functions_on_datetimes(
    engine: sa.Engine, moments: sa.Table, tz: str | None, fiscal: int, from_start: bool
) -> None:
    cols = [
        constructs.date_function(
            name,
            moments.c.dt,
            "datetime",
            tz,
            fiscal_start_month=fiscal,
            fiscal_name_from_start=from_start,
        ).label(name)
        for name in FUNCTIONS
    ]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(moments.c.id, *cols).order_by(moments.c.id)).all()
    for row in rows:
        value = DATETIMES[row.id]
        for name in FUNCTIONS:
            expected = (
                None if value is None else _python_part(name, _local(value, tz), fiscal, from_start)
            )
            assert getattr(row, name) == expected, (name, value, tz)


@pytest.mark.parametrize("tz", [None, "America/Los_Angeles"])
def test_date_functions_on_dates(engine: sa.Engine, moments: sa.Table, tz: str | None) -> None:
    names = [n for n in FUNCTIONS if n not in ("HOUR_IN_DAY", "DAY_ONLY")]
    cols = [
        constructs.date_function(n, moments.c.d, "date", tz, fiscal_start_month=4).label(n)
        for n in names
    ]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(moments.c.id, *cols).order_by(moments.c.id)).all()
    for row in rows:
        value = DATETIMES[row.id]
        for name in names:
            expected = None if value is None else _python_part(name, value.date(), 4, False)
            assert getattr(row, name) == expected, (name, value)


def test_date_function_examples(engine: sa.Engine, moments: sa.Table) -> None:
    def value(name: str, row: int, tz: str | None = None) -> Any:
        f = constructs.date_function(name, moments.c.dt, "datetime", tz)
        with engine.connect() as conn:
            return conn.scalar(sa.select(f).where(moments.c.id == row))

    assert value("DAY_IN_YEAR", 4) == 32  # Feb 1
    assert value("DAY_IN_YEAR", 6) == 366
    assert value("DAY_IN_WEEK", 7) == 1  # Sunday
    assert value("HOUR_IN_DAY", 0, "America/Los_Angeles") == 1  # PST
    assert value("HOUR_IN_DAY", 1, "America/Los_Angeles") == 3  # PDT
    assert value("DAY_ONLY", 2, "America/Los_Angeles") == date(2023, 12, 31)
    assert value("DAY_ONLY", 2) == date(2024, 1, 1)
    assert value("CALENDAR_YEAR", 6, "Asia/Kolkata") == 2025
    assert value("WEEK_IN_MONTH", 5) == 5  # Feb 29
    assert value("WEEK_IN_YEAR", 6) == 53


def test_date_function_groups_by_itself(engine: sa.Engine, moments: sa.Table) -> None:
    """The same function built twice compiles identically, so GROUP BY accepts it."""

    def f() -> Col:
        return constructs.date_function(
            "FISCAL_YEAR", moments.c.dt, "datetime", "America/Los_Angeles", fiscal_start_month=4
        )

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(f(), sa.func.count())
            .where(moments.c.dt.is_not(None))
            .group_by(f())
            .order_by(f())
        ).all()
    assert [tuple(r) for r in rows] == [(2021, 1), (2024, 7), (2025, 3)]


@pytest.mark.parametrize(
    ("name", "field_type", "tz"),
    [
        ("HOUR_IN_DAY", "date", None),
        ("DAY_ONLY", "date", None),
        ("WEEKDAY", "datetime", None),
        ("CALENDAR_YEAR", "string", None),
        ("CALENDAR_YEAR", "datetime", "Nowhere/Land"),
        ("CALENDAR_YEAR", "datetime", "UTC'; DROP TABLE x; --"),
    ],
)
def test_date_function_errors(
    moments: sa.Table, name: str, field_type: str, tz: str | None
) -> None:
    with pytest.raises(ValueError):
        constructs.date_function(name, moments.c.dt, field_type, tz)


# --- seconds between -----------------------------------------------------------------------

SPANS = [
    (datetime(2024, 1, 1, 0, 0, 10), datetime(2024, 1, 1)),
    (datetime(2024, 1, 1, 0, 0, 10), datetime(2024, 1, 1, 0, 0, 0, 1)),
    (datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 10)),
    (datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 9, 999999)),
    (datetime(2024, 1, 1, 0, 0, 0, 500000), datetime(2024, 1, 1)),
    (datetime(2024, 3, 10, 12), datetime(2023, 3, 10, 12, 0, 0, 250000)),
    (datetime(1969, 12, 31, 23, 59, 59, 500000), datetime(1970, 1, 1, 0, 0, 1)),
    (datetime(2038, 1, 19, 3, 14, 8), datetime(1901, 12, 13, 20, 45, 52)),
]


def test_seconds_between(engine: sa.Engine, meta: sa.MetaData) -> None:
    t = sa.Table(
        "zz_oc_spans",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.DateTime),
        sa.Column("b", sa.DateTime),
    )
    _create(engine, meta, t, [{"id": i, "a": a, "b": b} for i, (a, b) in enumerate(SPANS)])
    with engine.connect() as conn:
        got = dict(conn.execute(sa.select(t.c.id, dialect.seconds_between(t.c.a, t.c.b))).all())
    assert got == {i: int((a - b).total_seconds()) for i, (a, b) in enumerate(SPANS)}


# --- formulas ------------------------------------------------------------------------------

_INT_FIELDS = sorted(
    set(formulas.CALL_OUTCOMES)
    | {f for pair in formulas.RATES.values() for f in pair}
    | {
        "AllEmailsHardBouncedCount",
        "AllEmailsSoftBouncedCount",
        "AllEmailsTrackedSentCount",
        "AllEmailsUntrackedSentCount",
        "AllEmailsSentCount",
        "RecipientsHardBounced",
        "RecipientsSoftBounced",
        "RecipientSends",
        "AllEmailsNotDeliveredCount",
    }
)
_DATETIME_FIELDS = ["DueDateTime", "ActionTakenDateTime", "CompletionDate"]
NOW = datetime(2024, 6, 1, 12, 0, 0, 500000)


def _random_row(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {
        f: rng.choice([None, 0, 1, 3, 7, rng.randint(0, 500)]) for f in _INT_FIELDS
    }
    for f in _DATETIME_FIELDS:
        offset = timedelta(
            seconds=rng.randint(-(10**6), 10**6), microseconds=rng.choice([0, 1, 999999])
        )
        row[f] = rng.choice([None, None, NOW + offset, NOW - timedelta(microseconds=1)])
    row["GraphState"] = rng.choice([None, "Orphaned", "Included", "orphaned", ""])
    return row


def _tie_rows() -> list[dict[str, Any]]:
    """Rates at exact .xx5 ties and other rounding edge cases, in every rate's columns."""
    pairs = [(q, 20000) for q in range(1, 400, 2)]  # 100 n / d = q / 200: every tie kind
    pairs += [
        (1, 32),
        (3, 32),
        (1, 160),
        (1, 800),
        (3, 800),
        (1, 4000),
        (7, 4000),
        (2, 3),
        (1, 3),
        (200, 3),
        (12345, 67890),
        (10**6, 7),
        (-1, 800),
        (1, -800),
        (-3, -32),
        (0, -5),
        (5, 0),
        (5, None),
        (None, 8),
    ]
    rows = []
    for n, d in pairs:
        row: dict[str, Any] = {f: None for f in _INT_FIELDS + _DATETIME_FIELDS}
        row["GraphState"] = None
        for num, den in formulas.RATES.values():
            row[num], row[den] = n, d
        row["RecipientSends"], row["AllEmailsTrackedSentCount"], row["AllEmailsSentCount"] = d, d, d
        row["RecipientsHardBounced"], row["AllEmailsNotDeliveredCount"] = n, n
        rows.append(row)
    return rows


def _rate_grid_rows() -> list[dict[str, Any]]:
    rows = []
    for d in range(1, 61):
        for n in range(0, d + 2):
            row: dict[str, Any] = {f: None for f in _INT_FIELDS + _DATETIME_FIELDS}
            row["GraphState"] = None
            row["AllEmailsOpenedCount"], row["OpenTrackableSends"] = n, d
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def formula_table(engine: sa.Engine, meta: sa.MetaData) -> tuple[sa.Table, list[dict[str, Any]]]:
    cols = [sa.Column(f, sa.Integer) for f in _INT_FIELDS]
    cols += [sa.Column(f, sa.DateTime) for f in _DATETIME_FIELDS]
    t = sa.Table(
        "zz_oc_formula",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        *cols,
        sa.Column("GraphState", sa.String(40)),
    )
    rng = random.Random(20240601)
    rows = [_random_row(rng) for _ in range(300)] + _tie_rows() + _rate_grid_rows()
    for i, row in enumerate(rows):
        row["id"] = i
    _create(engine, meta, t, rows)
    return t, rows


@pytest.mark.parametrize("stored_sent", [True, False], ids=["step", "monthly-metric"])
@pytest.mark.parametrize("name", sorted(formulas.FORMULAS))
def test_formula_twins_match_python(
    engine: sa.Engine,
    formula_table: tuple[sa.Table, list[dict[str, Any]]],
    name: str,
    stored_sent: bool,
) -> None:
    """AllEmailsSentCount is a column on ActionCadenceStep but derived on the monthly metric."""
    table, rows = formula_table

    def col(field: str) -> Col:
        if field == "AllEmailsSentCount" and not stored_sent:
            raise KeyError(field)
        return table.c[field]

    expr = formulas.sql_expression(name, col, NOW)
    with engine.connect() as conn:
        got = dict(conn.execute(sa.select(table.c.id, expr)).all())
    for row in rows:
        py_row = {k: v for k, v in row.items() if stored_sent or k != "AllEmailsSentCount"}
        expected = formulas.FORMULAS[name].python(py_row, NOW)
        assert got[row["id"]] == expected, (name, row)
        assert type(got[row["id"]]) is type(expected), (name, row)


FormulaTable = tuple[sa.Table, list[dict[str, Any]]]


def test_formula_twins_filter_in_where(engine: sa.Engine, formula_table: FormulaTable) -> None:
    table, rows = formula_table
    col: Callable[[str], Col] = lambda f: table.c[f]  # noqa: E731
    orphan = formulas.sql_expression("is_orphan", col, NOW)
    overdue = formulas.sql_expression("seconds_overdue", col, NOW.replace(tzinfo=UTC))
    with engine.connect() as conn:
        ids = set(conn.scalars(sa.select(table.c.id).where(orphan == sa.true(), overdue > 0)))
    expected = {
        r["id"]
        for r in rows
        if formulas.is_orphan(r, NOW) and (formulas.seconds_overdue(r, NOW) or 0) > 0
    }
    assert ids == expected and ids


def test_unknown_formula() -> None:
    with pytest.raises(ValueError):
        formulas.sql_expression("no_such_formula", lambda f: sa.column(f), NOW)
