"""The SOSL statement parser: FIND {...} [IN group FIELDS] [RETURNING ...] [LIMIT n].

The search expression between the braces is ``terms``'s. The rest of the statement is read
with the SOQL parser's own tokens and rules (the braces are blanked out first, so positions in
messages stay those of the statement): each RETURNING object's field list, WHERE, ORDER BY,
LIMIT and OFFSET become a SOQL ``Query`` the SOQL binder binds. Syntax errors are
MALFORMED_SEARCH, with the SOQL parser's excerpt, caret and row/column. Pure: no database.
"""

from __future__ import annotations

from opencadence import errors
from opencadence.soql import nodes as soql_nodes
from opencadence.soql.cursor import format_error
from opencadence.soql.exprs import SELECT_FUNCS
from opencadence.soql.parser import Parser
from opencadence.soql.tokens import PATH_RESERVED, TokenType
from opencadence.sosl import nodes, terms

#: The most rows a search returns, and the largest LIMIT (Salesforce's).
MAX_LIMIT = 2000
MAX_OFFSET = 2000
#: What a field list may hold besides plain fields (no aggregates, no subqueries).
_FIELD_FUNCS = frozenset({"TOLABEL", "FORMAT", "CONVERTCURRENCY"}) & SELECT_FUNCS
_UNSUPPORTED = ("WITH", "UPDATE", "USING")
NO_TERM = "No search term found. The search term must be enclosed in braces."


def parse(text: str) -> nodes.Search:
    """Parse one SOSL statement."""
    start, end, find_text = _find_clause(text)
    blanked = "".join(ch if ch == "\n" else " " for ch in text[:end]) + text[end:]
    expr = terms.parse_expression(find_text)
    try:
        return _StatementParser(blanked).parse_statement(expr, find_text)
    except errors.MalformedQuery as exc:
        # the excerpt of the statement as written (the parser saw its braces blanked out)
        detail = "\n".join(exc.message.split("\n")[4:]) or None
        if exc.line is None or exc.column is None:
            raise errors.MalformedSearch(exc.message) from None
        message = format_error(text, exc.line, exc.column, exc.token or "", detail)
        raise errors.MalformedSearch(message) from None


def _find_clause(text: str) -> tuple[int, int, str]:
    """(start of FIND, end of the closing brace, the text between the braces)."""
    stripped = text.lstrip()
    lead = len(text) - len(stripped)
    if stripped[:4].upper() != "FIND" or (len(stripped) > 4 and stripped[4].isalnum()):
        raise errors.MalformedSearch(NO_TERM)
    i = lead + 4
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "{":
        raise errors.MalformedSearch(NO_TERM)
    open_at, i, quoted = i, i + 1, False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "}" and not quoted:
            return lead, i + 1, text[open_at + 1 : i]
        i += 1
    raise errors.MalformedSearch(NO_TERM)


class _StatementParser(Parser):
    def parse_statement(self, expr: nodes.Expr, find_text: str) -> nodes.Search:
        group = "ALL"
        if self._accept_kw("IN"):
            tok = self._expect_kw("ALL", "NAME", "EMAIL", "PHONE", "SIDEBAR")
            if tok.key == "SIDEBAR":
                self._error(tok, "IN SIDEBAR FIELDS is not supported")
            group = tok.key
            self._expect_kw("FIELDS")
        returning: list[nodes.Returning] = []
        if self._accept_kw("RETURNING"):
            returning.append(self._parse_returning())
            while self._accept(TokenType.COMMA):
                returning.append(self._parse_returning())
        if self._at_kw(*_UNSUPPORTED):
            tok = self._peek()
            self._error(tok, f"{tok.key} clauses are not supported in this org's searches")
        limit = None
        if self._accept_kw("LIMIT"):
            limit = self._bounded("LIMIT", MAX_LIMIT)
        self._expect(TokenType.EOF, "expecting end of search")
        return nodes.Search(expr, group, tuple(returning), limit, find_text)

    def _bounded(self, clause: str, most: int) -> int:
        tok = self._peek()
        value = self._parse_count(clause)
        if value > most:
            self._error(tok, f"the maximum {clause} of a search is {most}")
        return value

    def _parse_returning(self) -> nodes.Returning:
        tok = self._expect(TokenType.IDENT, "expecting an object name")
        if tok.key in PATH_RESERVED:
            self._error(tok, "expecting an object name")
        pos = (tok.line, tok.column)
        if not self._accept(TokenType.LPAREN):
            return nodes.Returning(tok.text, None, pos)
        select = [self._parse_field()]
        while self._accept(TokenType.COMMA):
            select.append(self._parse_field())
        clause_pos: dict[str, soql_nodes.Pos] = {"SELECT": pos, "FROM": pos}
        where = order = None
        limit = offset = None
        if self._clause(clause_pos, "WHERE"):
            where = self._parse_condition("WHERE")
        if self._clause(clause_pos, "ORDER", "BY"):
            order = self._parse_order_by()
        if self._clause(clause_pos, "LIMIT"):
            limit = self._bounded("LIMIT", MAX_LIMIT)
        if self._clause(clause_pos, "OFFSET"):
            offset = self._bounded("OFFSET", MAX_OFFSET)
        self._expect(TokenType.RPAREN, "expecting ')'")
        query = soql_nodes.Query(
            tuple(select),
            (soql_nodes.FromItem(soql_nodes.FieldPath((tok.text,), pos=pos), pos=pos),),
            where=where,
            order_by=order or (),
            limit=limit,
            offset=offset,
            clause_pos=clause_pos,
            pos=pos,
        )
        return nodes.Returning(tok.text, query, pos)

    def _parse_field(self) -> soql_nodes.SelectItem:
        tok = self._peek()
        if tok.type is TokenType.RPAREN:
            self._error(tok, "expecting a field name")
        if tok.type is TokenType.LPAREN:
            self._error(tok, "a search cannot hold child relationship subqueries")
        if self._at_function():
            func = self._parse_function(_FIELD_FUNCS, "a search's field list")
            return soql_nodes.Function(func.name, func.args, self._parse_alias(), pos=func.pos)
        return self._parse_path()
