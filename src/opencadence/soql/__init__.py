"""SOQL: tokenizer, parser and syntax tree (``parse(text) -> nodes.Query``)."""

from __future__ import annotations

from opencadence.soql import nodes
from opencadence.soql.parser import parse

__all__ = ["nodes", "parse"]
