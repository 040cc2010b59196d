"""Token cursor for the SOQL parser, and Salesforce-style MALFORMED_QUERY messages."""

from __future__ import annotations

from typing import NoReturn

from opencadence import errors
from opencadence.soql.tokens import Token, TokenType, tokenize

_EXCERPT_BEFORE = 60  # characters of context shown left of the caret on long lines
_EXCERPT_AFTER = 40


def format_error(text: str, line: int, column: int, token: str, detail: str | None) -> str:
    """Query excerpt, caret line, ``ERROR at Row:R:Column:C``, ``unexpected token: 'X'``."""
    lines = text.split("\n")
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    start = max(0, column - 1 - _EXCERPT_BEFORE)
    excerpt = src[start : column - 1 + _EXCERPT_AFTER].replace("\t", " ")
    caret = " " * (column - 1 - start) + "^"
    message = f"{excerpt}\n{caret}\nERROR at Row:{line}:Column:{column}"
    message += f"\nunexpected token: '{token}'"
    return f"{message}\n{detail}" if detail else message


class Cursor:
    """Walks the token list; every ``_expect*`` raises MalformedQuery on a mismatch."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # --- looking ------------------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> Token:
        index = self.i + ahead
        return self.tokens[index] if index < len(self.tokens) else self.tokens[-1]

    def _at(self, type: TokenType) -> bool:
        return self.tokens[self.i].type is type

    def _at_kw(self, *words: str) -> bool:
        tok = self.tokens[self.i]
        return tok.type is TokenType.IDENT and tok.key in words

    def _kw_at(self, ahead: int, *words: str) -> bool:
        tok = self._peek(ahead)
        return tok.type is TokenType.IDENT and tok.key in words

    # --- consuming ----------------------------------------------------------------------

    def _next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.type is not TokenType.EOF:
            self.i += 1
        return tok

    def _accept(self, type: TokenType) -> Token | None:
        if self.tokens[self.i].type is type:
            return self._next()
        return None

    def _accept_kw(self, *words: str) -> Token | None:
        if self._at_kw(*words):
            return self._next()
        return None

    def _expect(self, type: TokenType, detail: str | None = None) -> Token:
        if self.tokens[self.i].type is not type:
            self._error(self.tokens[self.i], detail or f"expecting {_describe(type)}")
        return self._next()

    def _expect_kw(self, *words: str) -> Token:
        if not self._at_kw(*words):
            self._error(self.tokens[self.i], f"expecting {' or '.join(words)}")
        return self._next()

    # --- failing ------------------------------------------------------------------------

    def _error(self, tok: Token, detail: str | None = None) -> NoReturn:
        # A token that is wrong everywhere (a "string", a :bind) explains itself best.
        detail = _lexical_detail(tok) or detail
        text = "<EOF>" if tok.type is TokenType.EOF else tok.text
        raise errors.MalformedQuery(
            format_error(self.text, tok.line, tok.column, text, detail),
            line=tok.line,
            column=tok.column,
            token=text,
        )


def _lexical_detail(tok: Token) -> str | None:
    """Explain tokens that are wrong wherever they appear."""
    if tok.type is TokenType.DQSTRING:
        inner = tok.text[1:-1] if len(tok.text) > 1 and tok.text.endswith('"') else tok.text[1:]
        return f"strings must use single quotes, e.g. '{inner}', not double quotes"
    if tok.type is TokenType.UNTERMINATED:
        return "unterminated string literal: missing closing single quote"
    if tok.type is TokenType.COLON:
        return "bind variables (:name) are only allowed in Apex code"
    if tok.type is TokenType.SEMI:
        return "SOQL statements have no ';' terminator"
    return None


def _describe(type: TokenType) -> str:
    if len(type.value) == 1:
        return f"'{type.value}'"
    return "end of query" if type is TokenType.EOF else f"a {type.value}"
