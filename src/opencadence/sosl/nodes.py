"""The SOSL syntax tree: the search expression of FIND {...} and the statement around it."""

from __future__ import annotations

from dataclasses import dataclass

from opencadence.soql import nodes as soql_nodes

#: The search groups of ``IN ... FIELDS`` (ALL when the clause is left out).
GROUPS = ("ALL", "NAME", "EMAIL", "PHONE")


@dataclass(frozen=True, slots=True)
class Term:
    """A word or a quoted phrase as written (wildcards ``*`` and ``?`` included, escapes
    resolved); ``quoted``: it was a "phrase"."""

    text: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class AndNot:
    """``left AND NOT right``."""

    left: Expr
    right: Expr


Expr = Term | And | Or | AndNot


@dataclass(frozen=True, slots=True)
class Returning:
    """One object of RETURNING: its name and, when it had a field list, the SOQL query its
    fields, WHERE, ORDER BY, LIMIT and OFFSET make (None: the Id only)."""

    name: str
    query: soql_nodes.Query | None
    pos: soql_nodes.Pos = (0, 0)


@dataclass(frozen=True, slots=True)
class Search:
    """A whole SOSL statement."""

    expr: Expr
    group: str = "ALL"
    returning: tuple[Returning, ...] = ()
    limit: int | None = None
    #: the search expression's own text (between the braces), for messages
    find_text: str = ""
