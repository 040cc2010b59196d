"""Compile a SOSL search: the search expression onto the full-text index, each RETURNING
object onto one SOQL statement joined with the index's matches.

The index matches whole tokens and token prefixes (``storage.search_index``). A wildcard it
cannot express (``?``, or ``*`` before a term's end) is matched by the index through the
prefix before the wildcard, a superset, and decided exactly here (``Exact``) on the matched
documents' text; an AND NOT of such a term is left to that exact check too, so what the index
returns is never fewer records than match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opencadence import errors
from opencadence.metadata import model
from opencadence.metadata.registry import Registry
from opencadence.soql import binder, bound, compiler
from opencadence.soql import nodes as soql_nodes
from opencadence.sosl import nodes
from opencadence.storage import search_index

# --- the search expression ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pattern:
    """One term as token patterns (``*``/``?`` kept) and whether the index alone decides it."""

    tokens: tuple[str, ...]

    @property
    def exact(self) -> bool:
        *head, last = self.tokens
        return not any(_wild(t) for t in head) and "?" not in last and "*" not in last.rstrip("*")


def _wild(token: str) -> bool:
    return "*" in token or "?" in token


def patterns(expr: nodes.Expr) -> Any:
    """``expr`` with each term tokenized (a term without tokens is dropped: None)."""
    if isinstance(expr, nodes.Term):
        tokens = search_index.tokenize_pattern(expr.text)
        return Pattern(tuple(tokens)) if tokens else None
    if isinstance(expr, nodes.AndNot):
        left, right = patterns(expr.left), patterns(expr.right)
        if left is None:
            return None
        return left if right is None else nodes.AndNot(left, right)
    kept = tuple(p for p in (patterns(e) for e in expr.terms) if p is not None)
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    return nodes.And(kept) if isinstance(expr, nodes.And) else nodes.Or(kept)


def is_exact(tree: Any) -> bool:
    if isinstance(tree, Pattern):
        return tree.exact
    if isinstance(tree, nodes.AndNot):
        return is_exact(tree.left) and is_exact(tree.right)
    return all(is_exact(t) for t in tree.terms)


def index_match(tree: Any) -> search_index.Match | None:
    """What the index is asked: ``tree`` itself where it can say it, a superset where not
    (None: every document)."""
    if isinstance(tree, Pattern):
        if tree.exact:
            last = tree.tokens[-1]
            prefix = last.endswith("*")
            tokens = (*tree.tokens[:-1], last.rstrip("*"))
            return search_index.Phrase(tokens, prefix)
        parts: list[search_index.Match] = []
        for token in tree.tokens:
            head = re.split(r"[*?]", token, maxsplit=1)[0]
            if head:
                parts.append(search_index.Phrase((head,), prefix=_wild(token)))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else search_index.Combine("AND", tuple(parts))
    if isinstance(tree, nodes.AndNot):
        left = index_match(tree.left)
        if left is None or not is_exact(tree.right):
            return left
        right = index_match(tree.right)
        return left if right is None else search_index.Combine("AND NOT", (left, right))
    found = [index_match(t) for t in tree.terms]
    if isinstance(tree, nodes.Or):
        if any(f is None for f in found):
            return None
        return search_index.Combine("OR", tuple(f for f in found if f is not None))
    kept = tuple(f for f in found if f is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else search_index.Combine("AND", kept)


class Exact:
    """Decides ``tree`` on a document's text, as the index would if it had every wildcard."""

    def __init__(self, tree: Any, group: str) -> None:
        self.tree = tree
        self.columns = (
            search_index.GROUPS if group == "ALL" else (search_index.GROUP_COLUMNS[group],)
        )
        self._rx: dict[str, re.Pattern[str]] = {}

    def __call__(self, doc: dict[str, str]) -> bool:
        fields = [doc[c].split() for c in self.columns]
        return self._eval(self.tree, fields)

    def _eval(self, tree: Any, fields: list[list[str]]) -> bool:
        if isinstance(tree, Pattern):
            return any(self._phrase(tree.tokens, words) for words in fields)
        if isinstance(tree, nodes.AndNot):
            return self._eval(tree.left, fields) and not self._eval(tree.right, fields)
        if isinstance(tree, nodes.And):
            return all(self._eval(t, fields) for t in tree.terms)
        return any(self._eval(t, fields) for t in tree.terms)

    def _phrase(self, tokens: Sequence[str], words: list[str]) -> bool:
        rxs = [self._regex(t) for t in tokens]
        n = len(rxs)
        return any(
            all(rxs[k].fullmatch(words[i + k]) for k in range(n)) for i in range(len(words) - n + 1)
        )

    def _regex(self, token: str) -> re.Pattern[str]:
        found = self._rx.get(token)
        if found is None:
            body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in token)
            found = self._rx[token] = re.compile(body)
        return found


# --- the RETURNING objects ------------------------------------------------------------------


@dataclass(slots=True)
class Target:
    """One RETURNING object compiled: its statement (not yet limited) and how to shape it."""

    obj: model.ObjectDef
    bq: bound.BoundQuery
    compiled: compiler.Compiled
    root: sa.FromClause
    #: its meaning depends on "now" (date literals): never reused
    time_dependent: bool = False


def bind_target(
    registry: Registry,
    meta: sa.MetaData,
    item: nodes.Returning,
    *,
    version: str,
    user_id: str,
    time_zone: str,
    viewer: str | None,
    now: datetime,
    text: str,
) -> Target:
    """The SOQL statement of one RETURNING object, for the caller (their visibility)."""
    obj = registry.get(item.name)
    if (
        obj is None
        or not search_index.searchable(obj)
        or not obj.visible_in(version)
        or not obj.supports("query")
    ):
        raise errors.InvalidType(f"sObject type '{item.name}' is not supported.")
    query = item.query or soql_nodes.Query(
        (soql_nodes.FieldPath(("Id",), pos=item.pos),),
        (soql_nodes.FromItem(soql_nodes.FieldPath((obj.name,), pos=item.pos), pos=item.pos),),
        pos=item.pos,
    )
    ctx = binder.Context(
        registry=registry, version=version, user_id=user_id, time_zone=time_zone, now=now, text=text
    )
    bnd = binder.Binder(ctx, query, obj)
    bq = bnd.bind()
    comp = compiler.Compiler(registry, meta, now, viewer)
    compiled = comp.compile(bq)
    return Target(obj, bq, compiled, comp.root, bnd.time_dependent)


def statement(
    target: Target, matched: sa.Subquery, *, with_text: bool
) -> tuple[sa.Select[Any], int]:
    """The target's records joined with the matches, ordered (the RETURNING clause's ORDER BY,
    else best match first), not yet limited; and the index of the first text column."""
    c = target.compiled
    stmt = c.select.join(matched, target.root.c.Id == matched.c.record_id).where(
        matched.c.entity == target.obj.name
    )
    first_text = len(stmt.selected_columns)
    if with_text:
        stmt = stmt.add_columns(*(matched.c[g] for g in search_index.GROUPS))
    if target.bq.order:
        clauses = []
        for expr, desc, nulls_first in c.order_exprs:
            clause = expr.desc() if desc else expr.asc()
            clauses.append(clause.nulls_first() if nulls_first else clause.nulls_last())
        stmt = stmt.order_by(*clauses)
    else:
        stmt = stmt.order_by(matched.c.rank.asc(), target.root.c.Id.asc())
    return stmt, first_text
