"""SOSL: the search statement's parser (``parse(text) -> nodes.Search``), its compiler onto the
full-text index and the SOQL machinery of its RETURNING clauses, and its execution."""

from __future__ import annotations

from opencadence.sosl import nodes
from opencadence.sosl.parser import parse

__all__ = ["nodes", "parse"]
