"""Field paths, function calls and literal values: the leaves of the SOQL grammar."""

from __future__ import annotations

import re
from collections.abc import Callable

from opencadence.soql import nodes
from opencadence.soql.cursor import Cursor
from opencadence.soql.literals import (
    LiteralError,
    decode_string,
    parse_date,
    parse_datetime,
    parse_number,
    parse_time,
)
from opencadence.soql.tokens import (
    AGGREGATES,
    DATE_FUNCTIONS,
    FIXED_DATE_LITERALS,
    FUNCTION_NAMES,
    N_DATE_LITERALS,
    PATH_RESERVED,
    Token,
    TokenType,
)

_IDENT = TokenType.IDENT
_COMMA = TokenType.COMMA
_LPAREN = TokenType.LPAREN
_RPAREN = TokenType.RPAREN

# Which functions may open an expression in each clause (by upper-case name).
SELECT_FUNCS = (
    AGGREGATES
    | DATE_FUNCTIONS
    | {
        "TOLABEL",
        "CONVERTCURRENCY",
        "FORMAT",
        "GROUPING",
        "DISTANCE",
    }
)
WHERE_FUNCS = DATE_FUNCTIONS | {"TOLABEL", "DISTANCE", "FORMULA"}
HAVING_FUNCS = AGGREGATES | DATE_FUNCTIONS | {"TOLABEL", "GROUPING", "DISTANCE"}
GROUP_FUNCS = DATE_FUNCTIONS
ORDER_FUNCS = AGGREGATES | DATE_FUNCTIONS | {"DISTANCE", "GROUPING"}
_FORMAT_ARGS = AGGREGATES | DATE_FUNCTIONS | {"TOLABEL", "CONVERTCURRENCY"}

# An identifier in value position that is a currency literal: ISO code glued to digits.
_CURRENCY_RX = re.compile(r"[A-Za-z]{3}\d+$")
_DISTANCE_UNITS = ("mi", "km")


def _pos(tok: Token) -> nodes.Pos:
    return (tok.line, tok.column)


class ExprParser(Cursor):
    """Leaf rules shared by every clause of the query parser."""

    # --- paths and functions ----------------------------------------------------------------

    def _parse_path(self) -> nodes.FieldPath:
        tok = self._peek()
        if tok.type is not _IDENT or tok.key in PATH_RESERVED:
            self._error(tok, "expecting a field name")
        self._next()
        parts = [tok.text]
        while self._accept(TokenType.DOT):
            parts.append(self._expect(_IDENT, "expecting a field name").text)
        return nodes.FieldPath(tuple(parts), pos=_pos(tok))

    def _at_function(self) -> bool:
        tok = self._peek()
        return tok.type is _IDENT and tok.key in FUNCTION_NAMES and self._peek(1).type is _LPAREN

    def _parse_operand(
        self, allowed: frozenset[str], clause: str
    ) -> nodes.FieldPath | nodes.Function:
        if self._at_function():
            return self._parse_function(allowed, clause)
        return self._parse_path()

    def _parse_function(self, allowed: frozenset[str], clause: str) -> nodes.Function:
        tok = self._next()
        if tok.key not in allowed:
            self._error(tok, f"{FUNCTION_NAMES[tok.key]}() is not allowed in {clause}")
        self._next()  # the '('
        args = _ARG_PARSERS[tok.key](self)
        self._expect(_RPAREN, "expecting ')'")
        return nodes.Function(FUNCTION_NAMES[tok.key], args, pos=_pos(tok))

    def _args_paths(self) -> tuple[nodes.Expr, ...]:
        paths = [self._parse_path()]
        while self._accept(_COMMA):
            paths.append(self._parse_path())
        return tuple(paths)

    def _args_path(self) -> tuple[nodes.Expr, ...]:
        return (self._parse_path(),)

    def _args_date(self) -> tuple[nodes.Expr, ...]:
        return (self._parse_operand(frozenset({"CONVERTTIMEZONE"}), "a date function"),)

    def _args_format(self) -> tuple[nodes.Expr, ...]:
        return (self._parse_operand(_FORMAT_ARGS, "FORMAT()"),)

    def _args_distance(self) -> tuple[nodes.Expr, ...]:
        field = self._parse_path()
        self._expect(_COMMA)
        target = self._parse_operand(frozenset({"GEOLOCATION"}), "DISTANCE()")
        self._expect(_COMMA)
        unit_tok = self._peek()
        unit = self._parse_string()
        if unit.value.lower() not in _DISTANCE_UNITS:
            self._error(unit_tok, "the DISTANCE unit must be 'mi' or 'km'")
        return (field, target, unit)

    def _args_geolocation(self) -> tuple[nodes.Expr, ...]:
        lat = self._parse_number()
        self._expect(_COMMA)
        return (lat, self._parse_number())

    def _args_formula(self) -> tuple[nodes.Expr, ...]:
        return (self._parse_string(),)

    # --- values -------------------------------------------------------------------------------

    def _parse_number(self) -> nodes.Number:
        tok = self._expect(TokenType.NUMBER, "expecting a number")
        return nodes.Number(tok.text, parse_number(tok.text), pos=_pos(tok))

    def _parse_string(self, like: bool = False) -> nodes.String:
        tok = self._expect(TokenType.STRING, "expecting a string in single quotes")
        try:
            value = decode_string(tok.text[1:-1], like=like)
        except LiteralError as exc:
            self._error(tok, str(exc))
        return nodes.String(value, pos=_pos(tok))

    def _parse_value(self) -> nodes.Value:
        tok = self._peek()
        convert = _VALUE_PARSERS.get(tok.type)
        if convert is None:
            self._error(tok, "expecting a literal value")
        if tok.type is TokenType.STRING:
            return self._parse_string()
        self._next()
        try:
            return convert(tok)
        except LiteralError as exc:
            self._error(tok, str(exc))


def _word_value(tok: Token) -> nodes.Value:
    pos = _pos(tok)
    key = tok.key
    if key in ("TRUE", "FALSE"):
        return nodes.Boolean(key == "TRUE", pos=pos)
    if key == "NULL":
        return nodes.Null(pos=pos)
    if key in FIXED_DATE_LITERALS:
        return nodes.DateLiteral(key, pos=pos)
    if key in N_DATE_LITERALS:
        raise LiteralError(f"date literal {key} needs a value, e.g. {key}:7")
    if _CURRENCY_RX.match(tok.text):
        return _currency(tok)
    raise LiteralError("expecting a literal value (fields cannot be compared to fields)")


def _date_n_value(tok: Token) -> nodes.Value:
    name, _, n = tok.text.partition(":")
    key = name.upper()
    if key not in N_DATE_LITERALS:
        if key in FIXED_DATE_LITERALS:
            raise LiteralError(f"date literal {key} takes no :n value")
        raise LiteralError(f"unknown date literal {name}")
    if len(n) > 9:  # no date is that many days, weeks, ... away (and int() stays cheap)
        raise LiteralError(f"Invalid value {n} for date literal {key}")
    return nodes.DateLiteral(key, int(n), pos=_pos(tok))


def _currency(tok: Token) -> nodes.Currency:
    amount = tok.text[3:]
    number = nodes.Number(amount, parse_number(amount), pos=(tok.line, tok.column + 3))
    return nodes.Currency(tok.text[:3], number, pos=_pos(tok))


_VALUE_PARSERS: dict[TokenType, Callable[[Token], nodes.Value]] = {
    TokenType.STRING: lambda tok: nodes.String(tok.text),  # unused: strings decode in the parser
    TokenType.NUMBER: lambda tok: nodes.Number(tok.text, parse_number(tok.text), pos=_pos(tok)),
    TokenType.DATE: lambda tok: nodes.Date(parse_date(tok.text), pos=_pos(tok)),
    TokenType.DATETIME: lambda tok: nodes.DateTime(parse_datetime(tok.text), pos=_pos(tok)),
    TokenType.TIME: lambda tok: nodes.Time(parse_time(tok.text), pos=_pos(tok)),
    TokenType.CURRENCY: _currency,
    TokenType.DATE_N: _date_n_value,
    TokenType.IDENT: _word_value,
}

_ARG_PARSERS: dict[str, Callable[[ExprParser], tuple[nodes.Expr, ...]]] = {
    **{name: ExprParser._args_paths for name in AGGREGATES | {"GROUPING"}},
    **{name: ExprParser._args_date for name in DATE_FUNCTIONS},
    "TOLABEL": ExprParser._args_path,
    "CONVERTCURRENCY": ExprParser._args_path,
    "CONVERTTIMEZONE": ExprParser._args_path,
    "FORMAT": ExprParser._args_format,
    "DISTANCE": ExprParser._args_distance,
    "GEOLOCATION": ExprParser._args_geolocation,
    "FORMULA": ExprParser._args_formula,
}
