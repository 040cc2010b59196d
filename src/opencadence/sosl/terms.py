"""The search expression of ``FIND {...}``: words, "phrases", wildcards, AND / OR / AND NOT.

Salesforce's rules, as its SOSL reference gives them: words next to each other must all match
(an implicit AND); AND NOT binds as AND does, both before OR, and each evaluates left to
right; parentheses group; operators are case-insensitive; a backslash escapes the next
character (``\\*`` is a literal asterisk, ``\\"`` a quote); ``*`` matches any characters and
``?`` one character, in the middle or at the end of a term, never at its start; a search needs
a term of two or more characters, and a wildcard term two or more characters besides its
wildcards (INVALID_SEARCH otherwise). Pure: no database, no clock.
"""

from __future__ import annotations

from typing import NoReturn

from opencadence import errors
from opencadence.sosl import nodes

#: Characters a backslash may escape (Salesforce's list of reserved characters).
RESERVED = frozenset("&|!(){}[]^\"~*?:\\'+-")
TOO_SHORT = "search term must be longer than one character"
_OPS = ("AND", "OR")
_WILD = "*?"
#: escaped wildcards are kept out of the term's wildcards with these stand-ins (punctuation to
#: the tokenizer, so they split words the way a literal * or ? would)
_LITERAL = {"*": "\x00", "?": "\x01"}


class _Lexer:
    """Words, quoted phrases, parentheses and the AND / OR / NOT keywords."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[tuple[str, str]] = []  # (kind, value): word, phrase, (, ), op
        self._lex()
        self.i = 0

    def _lex(self) -> None:
        text, i, n = self.text, 0, len(self.text)
        while i < n:
            ch = text[i]
            if ch.isspace():
                i += 1
            elif ch in "()":
                self.items.append((ch, ch))
                i += 1
            elif ch == '"':
                value, i = self._quoted(i + 1)
                self.items.append(("phrase", value))
            else:
                value, i = self._word(i)
                key = value.upper()
                if key in ("AND", "OR", "NOT") and value.isalpha():
                    self.items.append(("op", key))
                else:
                    self.items.append(("word", value))

    def _escape(self, i: int) -> tuple[str, int]:
        if i + 1 >= len(self.text):
            fail(f"the search ends in an escape character: {self.text}")
        ch = self.text[i + 1]
        return _LITERAL.get(ch, ch), i + 2

    def _quoted(self, i: int) -> tuple[str, int]:
        out: list[str] = []
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\":
                lit, i = self._escape(i)
                out.append(lit)
            elif ch == '"':
                return "".join(out), i + 1
            else:
                out.append(ch)
                i += 1
        fail(f"unterminated quoted phrase in the search: {self.text}")

    def _word(self, i: int) -> tuple[str, int]:
        out: list[str] = []
        while i < len(self.text):
            ch = self.text[i]
            if ch.isspace() or ch in '()"':
                break
            if ch == "\\":
                lit, i = self._escape(i)
                out.append(lit)
                continue
            out.append(ch)
            i += 1
        return "".join(out), i

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.i] if self.i < len(self.items) else None

    def next(self) -> tuple[str, str]:
        item = self.items[self.i]
        self.i += 1
        return item


def fail(message: str) -> NoReturn:
    raise errors.MalformedSearch(message)


def parse_expression(text: str) -> nodes.Expr:
    """The search expression of the text between FIND's braces."""
    lexer = _Lexer(text)
    if not lexer.items:
        fail("No search term found. The search term must be enclosed in braces.")
    expr = _or(lexer, text)
    if lexer.peek() is not None:
        kind, value = lexer.next()
        fail(f"unexpected {value!r} in the search: {text}")
    _check_terms(expr, text)
    return expr


def _or(lexer: _Lexer, text: str) -> nodes.Expr:
    terms = [_and(lexer, text)]
    while lexer.peek() == ("op", "OR"):
        lexer.next()
        terms.append(_and(lexer, text))
    return terms[0] if len(terms) == 1 else nodes.Or(tuple(terms))


def _and(lexer: _Lexer, text: str) -> nodes.Expr:
    left = _unit(lexer, text)
    while True:
        item = lexer.peek()
        if item is None or item in ((")", ")"), ("op", "OR")):
            return left
        if item == ("op", "AND"):
            lexer.next()
            if lexer.peek() == ("op", "NOT"):
                lexer.next()
                left = nodes.AndNot(left, _unit(lexer, text))
                continue
            left = _joined(left, _unit(lexer, text))
        elif item == ("op", "NOT"):
            fail(f"NOT must follow AND (AND NOT) in the search: {text}")
        else:  # words side by side: all of them must match
            left = _joined(left, _unit(lexer, text))


def _joined(left: nodes.Expr, right: nodes.Expr) -> nodes.Expr:
    if isinstance(left, nodes.And):
        return nodes.And((*left.terms, right))
    return nodes.And((left, right))


def _unit(lexer: _Lexer, text: str) -> nodes.Expr:
    item = lexer.peek()
    if item is None:
        fail(f"the search ends where a term is expected: {text}")
    kind, value = lexer.next()
    if kind == "(":
        inner = _or(lexer, text)
        if lexer.peek() != (")", ")"):
            fail(f"missing ')' in the search: {text}")
        lexer.next()
        return inner
    if kind == "word":
        return nodes.Term(value)
    if kind == "phrase":
        return nodes.Term(value, quoted=True)
    if value == "NOT":
        fail(f"NOT must follow AND (AND NOT) in the search: {text}")
    fail(f"unexpected {value!r} in the search: {text}")


def _letters(value: str) -> int:
    return sum(1 for ch in value if ch.isalnum())


def _check_terms(expr: nodes.Expr, text: str) -> None:
    """The minimum term length and wildcard placement (INVALID_SEARCH)."""
    terms = list(_terms(expr))
    for term in terms:
        for word in term.text.split():
            if word[0] in _WILD:
                raise errors.InvalidSearch(f"wildcards cannot start a search term: {word}")
            if any(w in word for w in _WILD) and _letters(word) < 2:
                raise errors.InvalidSearch(f"{TOO_SHORT}: {word}")
    if not any(_letters(t.text) >= 2 for t in terms):
        raise errors.InvalidSearch(f"{TOO_SHORT}: {text.strip()}")


def _terms(expr: nodes.Expr) -> list[nodes.Term]:
    if isinstance(expr, nodes.Term):
        return [expr]
    if isinstance(expr, nodes.AndNot):
        return _terms(expr.left) + _terms(expr.right)
    return [t for e in expr.terms for t in _terms(e)]
