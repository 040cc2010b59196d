"""Any text between FIND's braces, on both databases: a search answers records or refuses with
MALFORMED_SEARCH / INVALID_SEARCH, never a database error (the search expression is rendered
into FTS5's query syntax or a tsquery, which must never be invalid)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencadence import errors
from opencadence.sosl.execute import SearchService
from opencadence.storage import records, search_index

WORDS = st.sampled_from(
    ["AND", "OR", "NOT", "and not", "(", ")", '"', "*", "?", "\\", "smith", "Jöhn", "ab", "x1"]
)
PIECES = st.one_of(WORDS, st.text(min_size=1, max_size=6))
EXPRESSIONS = st.lists(PIECES, min_size=1, max_size=8).map(" ".join)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=EXPRESSIONS)
def test_any_search_expression_answers_or_refuses(store: records.Store, text: str) -> None:
    with store.transaction() as tx:
        _seed(tx)
    svc = SearchService(store)
    try:
        found = svc.search(f"FIND {{{text}}} RETURNING Contact(Name), Lead(Name)")
    except (errors.MalformedSearch, errors.InvalidSearch):
        return
    for record in found["searchRecords"]:
        assert record["attributes"]["type"] in ("Contact", "Lead")


def _seed(tx: records.Tx) -> None:
    """One contact and one lead whose names hold the fuzzed words (once per database)."""
    table = tx.store.meta.tables["Contact"]
    if tx.conn.execute(table.select().limit(1)).first() is None:
        tx.insert("Lead", {"LastName": "Smith", "Company": "x1 ab"})
        tx.insert("Contact", {"FirstName": "Jöhn", "LastName": "Smith ab"})


def test_tokens_render_without_escaping() -> None:
    """Tokens are letters or digits only, whatever the text: nothing for either engine's query
    syntax to misread."""
    for text in ['a"b', "x:y", "(a|b)&!c", "é\u0301t\u00e9", "１２３", "ǅemal", "a_b-c"]:
        for token in search_index.tokenize(text):
            assert token.isalnum(), (text, token)
