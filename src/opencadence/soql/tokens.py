"""SOQL tokenizer: one compiled regex, keyword and date-literal tables."""

from __future__ import annotations

import enum
import re


class TokenType(enum.Enum):
    """Kinds of SOQL tokens; keywords are IDENT tokens, told apart by ``Token.key``."""

    IDENT = "ident"
    DATE_N = "date_n"  # LAST_N_DAYS:30 (a word glued to ':n')
    STRING = "string"
    DQSTRING = "dqstring"  # "..." -- always an error, lexed whole for a useful message
    UNTERMINATED = "unterminated"  # a ' with no closing quote
    NUMBER = "number"
    CURRENCY = "currency"  # only the forms no identifier can take: USD-500, EUR10.5
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    OP = "op"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    DOT = "."
    COLON = ":"
    SEMI = ";"
    BAD = "bad"
    EOF = "eof"


class Token:
    """One token; ``line``/``column`` are 1-based, ``offset`` 0-based into the text."""

    __slots__ = ("type", "text", "key", "line", "column", "offset")

    def __init__(self, type: TokenType, text: str, line: int, column: int, offset: int) -> None:
        self.type = type
        self.text = text
        self.key = text.upper()  # keywords and identifiers compare case-insensitively
        self.line = line
        self.column = column
        self.offset = offset

    def __repr__(self) -> str:
        return f"Token({self.type.name}, {self.text!r}, {self.line}:{self.column})"


# A.1: words that can never be an alias. FOR is added because `FROM Account For` must
# fail (conformance) and a FOR alias would make `FOR VIEW` ambiguous.
ALIAS_RESERVED = frozenset(
    "AND ASC DESC EXCLUDES FIRST FROM GROUP HAVING IN INCLUDES LAST LIKE LIMIT NOT NULL "
    "NULLS OR SELECT USING WHERE WITH FOR".split()
)
# Words that cannot name a field or object. GROUP is usable (`FROM Group`), as are the
# other non-reserved keywords A.1 lists (ORDER, OFFSET, TYPEOF, COUNT, ...).
PATH_RESERVED = ALIAS_RESERVED - {"GROUP"}

AGGREGATES = frozenset({"AVG", "SUM", "MIN", "MAX", "COUNT", "COUNT_DISTINCT"})
DATE_FUNCTIONS = frozenset(
    "CALENDAR_MONTH CALENDAR_QUARTER CALENDAR_YEAR DAY_IN_MONTH DAY_IN_WEEK DAY_IN_YEAR "
    "DAY_ONLY FISCAL_MONTH FISCAL_QUARTER FISCAL_YEAR HOUR_IN_DAY WEEK_IN_MONTH "
    "WEEK_IN_YEAR".split()
)
# Canonical spelling of every function name (the key is the upper-case form).
FUNCTION_NAMES: dict[str, str] = {
    **{name: name for name in AGGREGATES | DATE_FUNCTIONS},
    "TOLABEL": "toLabel",
    "CONVERTCURRENCY": "convertCurrency",
    "CONVERTTIMEZONE": "convertTimezone",
    "FORMAT": "FORMAT",
    "GROUPING": "GROUPING",
    "DISTANCE": "DISTANCE",
    "GEOLOCATION": "GEOLOCATION",
    "FORMULA": "FORMULA",
}

FIXED_DATE_LITERALS = frozenset(
    "YESTERDAY TODAY TOMORROW LAST_WEEK THIS_WEEK NEXT_WEEK LAST_MONTH THIS_MONTH "
    "NEXT_MONTH LAST_90_DAYS NEXT_90_DAYS LAST_QUARTER THIS_QUARTER NEXT_QUARTER "
    "LAST_YEAR THIS_YEAR NEXT_YEAR LAST_FISCAL_QUARTER THIS_FISCAL_QUARTER "
    "NEXT_FISCAL_QUARTER LAST_FISCAL_YEAR THIS_FISCAL_YEAR NEXT_FISCAL_YEAR".split()
)
N_DATE_LITERALS = frozenset(
    "LAST_N_DAYS NEXT_N_DAYS N_DAYS_AGO LAST_N_WEEKS NEXT_N_WEEKS N_WEEKS_AGO "
    "LAST_N_MONTHS NEXT_N_MONTHS N_MONTHS_AGO LAST_N_QUARTERS NEXT_N_QUARTERS "
    "N_QUARTERS_AGO LAST_N_YEARS NEXT_N_YEARS N_YEARS_AGO LAST_N_FISCAL_QUARTERS "
    "NEXT_N_FISCAL_QUARTERS N_FISCAL_QUARTERS_AGO LAST_N_FISCAL_YEARS "
    "NEXT_N_FISCAL_YEARS N_FISCAL_YEARS_AGO".split()
)

SCOPE_KEYWORDS = frozenset({"SECURITY_ENFORCED", "USER_MODE", "SYSTEM_MODE"})
CATEGORY_SELECTORS = frozenset({"AT", "ABOVE", "BELOW", "ABOVE_OR_BELOW"})
FIELDS_KINDS = frozenset({"ALL", "STANDARD", "CUSTOM"})
COMPARISON_OPS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})

# Order matters: the first alternative that matches wins. Literals that start with digits
# come before NUMBER; CURRENCY before IDENT; the catch-all BAD is last.
_TOKEN_RX = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<datetime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)(?![\w.])
    |(?P<date>\d{4}-\d\d-\d\d)(?![\w.:-])
    |(?P<time>\d\d:\d\d:\d\d(?:\.\d+)?Z)(?![\w.])
    |(?P<number>[+-]?(?:\d+(?:\.\d+)?|\.\d+))(?![\w.])
    |(?P<currency>[A-Za-z]{3}(?:[+-]\d+(?:\.\d+)?|\d+\.\d+))(?![\w.])
    |(?P<date_n>[A-Za-z_][A-Za-z0-9_]*:\d+)(?![\w.])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<unterminated>')
    |(?P<dqstring>"(?:[^"\\]|\\.)*"?)
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),.:;])
    |(?P<bad>\d[\w.]*|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_GROUP_TYPES = {t.value: t for t in TokenType}
_PUNCT_TYPES = {
    "(": TokenType.LPAREN,
    ")": TokenType.RPAREN,
    ",": TokenType.COMMA,
    ".": TokenType.DOT,
    ":": TokenType.COLON,
    ";": TokenType.SEMI,
}
_MULTILINE = {"ws", "string", "dqstring"}


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with one EOF token.

    Never raises: characters that start no token become BAD tokens, so the parser
    reports the first problem in reading order.
    """
    tokens: list[Token] = []
    append = tokens.append
    line, line_start = 1, 0
    for m in _TOKEN_RX.finditer(text):
        kind = m.lastgroup
        start = m.start()
        tok_text = m.group()
        if kind == "punct":
            append(Token(_PUNCT_TYPES[tok_text], tok_text, line, start - line_start + 1, start))
        elif kind != "ws":
            assert kind is not None
            append(Token(_GROUP_TYPES[kind], tok_text, line, start - line_start + 1, start))
        if kind in _MULTILINE and "\n" in tok_text:
            line += tok_text.count("\n")
            line_start = start + tok_text.rindex("\n") + 1
    end = len(text)
    append(Token(TokenType.EOF, "", line, end - line_start + 1, end))
    return tokens
