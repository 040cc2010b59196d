"""The full-text search index SOSL searches: its documents, their upkeep, and the matching.

Every record of a searchable object (``search`` among its calls) has one document in
``schema.SEARCH_DOCS``: the text of its fields, tokenized here, in four columns, one per SOSL
search group: ``name`` (the object's name fields), ``email``, ``phone`` and ``other`` (every
other text field; ALL FIELDS searches all four). ``Tx`` writes the document in the record's own
transaction (``index_rows`` on insert, ``reindex`` on an update that changes indexed text), so
a search never sees a record without its text or text without its record. The index over the
documents (FTS5 on SQLite, a GIN tsvector index on PostgreSQL) is ``dialect.py``'s; the upgrade
creates it and fills it from the existing records (``ensure``).

Tokens: text is case-folded, diacritics are removed, and it splits at every character that is
neither a letter nor a digit and where letters change to digits or back ("Acme2go" is acme, 2,
go), as Salesforce's search tokenizes. A phone field's document also holds its digits as one
token (and, for three or more groups, those after the first), so 4155551234 finds
(415) 555-1234 and 2125559876 finds +1 212 555 9876. Search terms are tokenized the same way, so both
engines see the same tokens (decisions in docs/search-decisions.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from opencadence.metadata import model
from opencadence.metadata.registry import Registry
from opencadence.storage import dialect, schema

#: Field types whose text is indexed (ALL FIELDS); ids, numbers, dates and picklists are not.
TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url"})
GROUPS = ("name", "email", "phone", "other")
#: SOSL search group (IN ... FIELDS) -> its document column; ALL searches every column
GROUP_COLUMNS = dialect.SEARCH_COLUMNS
#: documents written per statement when the upgrade fills the index
BACKFILL_BATCH = 2000

_NAME_PARTS = frozenset({"FirstName", "MiddleName", "LastName", "Suffix", "Salutation"})
_WORD = re.compile(r"[^\W\d_]+|\d+")
_WILD_WORD = re.compile(r"(?:[^\W\d_]|[*?])+|(?:\d|[*?])+")


def fold(text: str) -> str:
    """Case-folded, without diacritics (é is e)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``: runs of letters or of digits, folded."""
    return _WORD.findall(fold(text))


def tokenize_pattern(text: str) -> list[str]:
    """The tokens of a search term; ``*`` and ``?`` stay inside the token they touch."""
    return _WILD_WORD.findall(fold(text))


def searchable(obj: model.ObjectDef) -> bool:
    return "search" in obj.calls


#: id(ObjectDef) -> (the ObjectDef, its field groups): hashing a frozen ObjectDef hashes every
#: field, too slow for each write
_GROUPS: dict[int, tuple[model.ObjectDef, dict[str, tuple[str, ...]]]] = {}


def field_groups(obj: model.ObjectDef) -> dict[str, tuple[str, ...]]:
    """Search group -> the stored text fields of ``obj`` whose text it holds."""
    found = _GROUPS.get(id(obj))
    if found is None or found[0] is not obj:
        found = _GROUPS[id(obj)] = (obj, _field_groups(obj))
    return found[1]


def _field_groups(obj: model.ObjectDef) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    name = obj.field("Name")
    compound = name is not None and name.name_field and obj.field("LastName") is not None
    for f in obj.fields:
        if not f.stored or f.type not in TEXT_TYPES or f.system and not f.name_field:
            continue
        if compound and f.name in _NAME_PARTS:
            continue  # the compound Name holds them already
        if f.name_field:
            out["name"].append(f.name)
        elif f.type == "email":
            out["email"].append(f.name)
        elif f.type == "phone":
            out["phone"].append(f.name)
        else:
            out["other"].append(f.name)
    return {g: tuple(names) for g, names in out.items()}


def indexed_fields(obj: model.ObjectDef) -> frozenset[str]:
    """The fields whose text the documents of ``obj`` hold (none: not searchable)."""
    found = _INDEXED.get(id(obj))
    if found is None or found[0] is not obj:
        names: frozenset[str] = frozenset()
        if searchable(obj):
            names = frozenset(n for group in field_groups(obj).values() for n in group)
        found = _INDEXED[id(obj)] = (obj, names)
    return found[1]


_INDEXED: dict[int, tuple[model.ObjectDef, frozenset[str]]] = {}


def document(obj: model.ObjectDef, row: Mapping[str, Any]) -> dict[str, str]:
    """The document columns of one record (database values)."""
    doc: dict[str, str] = {}
    for group, names in field_groups(obj).items():
        tokens: list[str] = []
        for name in names:
            value = row.get(name)
            if value is None or value == "":
                continue
            found = tokenize(str(value))
            tokens += found
            if group == "phone" and len(found) > 1 and all(t.isdigit() for t in found):
                tokens.append("".join(found))
                if len(found) > 2:  # without the country or area code: +1 212 555 9876
                    tokens.append("".join(found[1:]))
        doc[group] = " ".join(tokens)
    return doc


def index_rows(
    conn: sa.Connection, meta: sa.MetaData, obj: model.ObjectDef, rows: Sequence[Mapping[str, Any]]
) -> None:
    """The documents of newly inserted records (one statement)."""
    if not rows or not searchable(obj):
        return
    docs = meta.tables[schema.SEARCH_DOCS]
    conn.execute(
        docs.insert(),
        [{"record_id": r["Id"], "entity": obj.name, **document(obj, r)} for r in rows],
    )


def reindex(
    conn: sa.Connection,
    meta: sa.MetaData,
    obj: model.ObjectDef,
    record_id: str,
    row: Mapping[str, Any],
    changed: Iterable[str],
) -> None:
    """Rewrite a record's document after an update, when an indexed field changed."""
    if not searchable(obj) or not indexed_fields(obj).intersection(changed):
        return
    docs = meta.tables[schema.SEARCH_DOCS]
    doc = document(obj, row)
    done = conn.execute(docs.update().where(docs.c.record_id == record_id).values(**doc))
    if done.rowcount == 0:
        conn.execute(docs.insert().values(record_id=record_id, entity=obj.name, **doc))


def forget(conn: sa.Connection, meta: sa.MetaData, record_ids: Sequence[str]) -> None:
    """Drop the documents of records removed for good (a hard delete); a soft delete keeps
    them, since undelete brings the record back and searches skip deleted records."""
    docs = meta.tables[schema.SEARCH_DOCS]
    wanted = list(record_ids)
    for start in range(0, len(wanted), 500):
        conn.execute(docs.delete().where(docs.c.record_id.in_(wanted[start : start + 500])))


def reindex_ids(
    conn: sa.Connection, meta: sa.MetaData, obj: model.ObjectDef, record_ids: Sequence[str]
) -> None:
    """Rewrite the documents of these records from their stored rows (batched updates)."""
    table = meta.tables[obj.name]
    wanted = ["Id", *indexed_fields(obj)]
    stmt = sa.select(*(table.c[n] for n in wanted)).where(table.c.Id.in_(list(record_ids)))
    for row in conn.execute(stmt).mappings().all():
        reindex(conn, meta, obj, row["Id"], dict(row), indexed_fields(obj))


def ensure(conn: sa.Connection, meta: sa.MetaData, registry: Registry) -> int:
    """Create the index if it is missing and fill it from every searchable record (the
    upgrade of a database made before search existed); the number of documents written."""
    if not dialect.ensure_search_index(conn, schema.SEARCH_DOCS):
        return 0
    docs = meta.tables[schema.SEARCH_DOCS]
    conn.execute(docs.delete())  # the triggers index what is inserted from here on
    written = 0
    for obj in registry:
        if not searchable(obj) or obj.name not in meta.tables:
            continue
        table = meta.tables[obj.name]
        wanted = ["Id", *indexed_fields(obj)]
        stmt = sa.select(*(table.c[n] for n in wanted)).order_by(table.c.Id)
        batch: list[dict[str, Any]] = []
        for row in conn.execute(stmt).mappings():
            batch.append({"record_id": row["Id"], "entity": obj.name, **document(obj, dict(row))})
            if len(batch) >= BACKFILL_BATCH:
                conn.execute(docs.insert(), batch)
                written, batch = written + len(batch), []
        if batch:
            conn.execute(docs.insert(), batch)
            written += len(batch)
    return written


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive tokens; ``prefix``: the last one is a prefix (a trailing ``*``)."""

    tokens: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Combine:
    """``op`` is AND, OR or AND NOT (binary: the first term and not the second)."""

    op: str
    terms: tuple[Match, ...]


Match = Phrase | Combine


def render(bind: dialect.Bind, expr: Match, group: str) -> str:
    """``expr`` in the engine's match syntax, limited to the search group ``group``."""
    if isinstance(expr, Phrase):
        return dialect.search_phrase(bind, expr.tokens, expr.prefix, group)
    return dialect.search_combine(bind, expr.op, [render(bind, t, group) for t in expr.terms])


def matches(
    bind: dialect.Bind, meta: sa.MetaData, expr: Match | None, group: str, best: int | None = None
) -> sa.Subquery:
    """The documents matching ``expr`` in ``group`` (None: every document): ``record_id``,
    ``entity``, ``rank`` (lower is better) and the four document columns; with ``best``, only
    that many, the best ranked (of every object: the caller filters by ``entity`` after)."""
    docs = meta.tables[schema.SEARCH_DOCS]
    if expr is None:
        stmt = sa.select(
            docs.c.record_id,
            docs.c.entity,
            sa.literal(0).label("rank"),
            *(docs.c[g] for g in GROUPS),
        )
        if best is not None:
            stmt = stmt.order_by(docs.c.id).limit(best)
    else:
        stmt = dialect.search_matches(bind, docs, render(bind, expr, group), best)
    return stmt.subquery("oc_match")
