"""Decoding of SOQL literal text (strings, numbers, dates) and its inverse for rendering."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

# A.1 escapes. Upper-case forms are accepted too (\N, \U2019, ...).
_SIMPLE_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_ESCAPE_RX = re.compile(r"\\([uU][0-9a-fA-F]{4}|.?)", re.DOTALL)
_DATETIME_RX = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:(Z)|([+-])(\d\d):?(\d\d))?$"
)
_TIME_RX = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z$")


class LiteralError(ValueError):
    """Bad literal text; ``detail`` is the message line for the user."""


def decode_string(body: str, *, like: bool = False) -> str:
    """Decode the text between the quotes of a string literal.

    With ``like`` the result is in LIKE pattern form: ``\\%``, ``\\_`` and an escaped
    backslash stay escaped so literal and wildcard characters remain distinct.
    """
    if "\\" not in body:
        return _storable(body)

    def replace(m: re.Match[str]) -> str:
        esc = m.group(1)
        if len(esc) == 5:
            return chr(int(esc[1:], 16))
        if like and esc in ("%", "_", "\\"):
            return "\\" + esc
        key = esc.lower() if esc in ("N", "R", "T", "B", "F") else esc
        if key in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[key]
        raise LiteralError(
            f"Invalid string literal '{body}'. "
            f"Illegal character sequence '\\{esc}' in string literal."
        )

    return _storable(_ESCAPE_RX.sub(replace, body))


def _storable(text: str) -> str:
    """A string no field can hold is refused: NUL (PostgreSQL text has none) and lone
    surrogates (not Unicode), as the write path refuses them; both databases agree."""
    if "\x00" in text:
        raise LiteralError("Invalid string literal: it contains the NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise LiteralError("Invalid string literal: it contains a lone surrogate") from None
    return text


_ENCODE = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_ENCODE_RX = re.compile(r"[\\'\n\r\t\b\f]")
_LIKE_ENCODE_RX = re.compile(r"\\.|['\n\r\t\b\f]", re.DOTALL)


def _encode_like_char(m: re.Match[str]) -> str:
    text = m.group()
    return text if len(text) == 2 else _ENCODE[text]


def encode_string(value: str, *, like: bool = False) -> str:
    """The quoted SOQL literal for ``value`` (pattern form if ``like``)."""
    if like:
        # Pattern-form escapes (\%, \_, \\) are already SOQL escapes: keep them as is.
        body = _LIKE_ENCODE_RX.sub(_encode_like_char, value)
    else:
        body = _ENCODE_RX.sub(lambda m: _ENCODE[m.group()], value)
    return f"'{body}'"


#: Digits a numeric literal may have: past Python's int-from-text limit (4,300 digits) no
#: field could hold it anyway, and refusing it here keeps the parse linear.
MAX_NUMBER_DIGITS = 400


def parse_number(text: str) -> int | Decimal:
    if len(text) > MAX_NUMBER_DIGITS:
        raise LiteralError(f"number too long: {text[:40]}...")
    if "." in text:
        return Decimal(text)
    return int(text)


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise LiteralError(f"Invalid date: {text}") from None


def parse_datetime(text: str) -> dt.datetime:
    m = _DATETIME_RX.match(text)
    if m is None or not (m.group(8) or m.group(9)):
        raise LiteralError(f"Invalid dateTime (a time zone, Z or +hh:mm, is required): {text}")
    y, mo, d, h, mi, s, frac, _z, sign, oh, om = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        tz = dt.UTC
        if sign:  # an offset of 24 hours or more is no time zone (ValueError)
            delta = dt.timedelta(hours=int(oh), minutes=int(om))
            tz = dt.timezone(-delta if sign == "-" else delta)
        value = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tz)
        value.astimezone(dt.UTC)  # OverflowError: outside years 1-9999 once in UTC
    except (ValueError, OverflowError):
        raise LiteralError(f"Invalid dateTime: {text}") from None
    return value


def parse_time(text: str) -> dt.time:
    m = _TIME_RX.match(text)
    assert m is not None  # the tokenizer only produces matching text
    h, mi, s, frac = m.groups()
    try:
        return dt.time(int(h), int(mi), int(s), int((frac or "0")[:6].ljust(6, "0")))
    except ValueError:
        raise LiteralError(f"Invalid time: {text}") from None


def format_datetime(value: dt.datetime) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    offset = value.utcoffset() or dt.timedelta(0)
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


def format_time(value: dt.time) -> str:
    text = value.strftime("%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"
