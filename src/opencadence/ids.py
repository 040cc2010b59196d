"""Salesforce record IDs: 15-character case-sensitive and 18-character case-safe forms.

Layout of the 15 characters: 3-character key prefix, 2-character instance, 1 reserved
character, 9 base-62 digits. The 18-character form appends a 3-character checksum: for each
5-character chunk, bit j is set when character j is an uppercase letter, and the 0-31 value is
looked up in ``ABCDEFGHIJKLMNOPQRSTUVWXYZ012345``.
"""

from __future__ import annotations

import re

from opencadence import errors

BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")

#: Instance part of every ID opencadence mints ("0C": opencadence). Two characters.
INSTANCE = "0C"
#: 62**9: how many distinct counters fit in the 9 base-62 digits.
MAX_COUNTER = 62**9
#: The "empty" ID Salesforce uses in change-event overflow headers.
EMPTY_ID = "000000000000000AAA"


#: Maps upper-case letters to "1" and every other ID character to "0".
_UPPER_BITS = str.maketrans({c: ("1" if c.isupper() else "0") for c in BASE62})


def checksum(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character ID."""
    # Bit j of each 5-character chunk is set when character j is upper-case: reversing the
    # chunk's 0/1 string makes it a binary number (hot path: every write mints and checks IDs).
    bits = id15.translate(_UPPER_BITS)
    return (
        _SUFFIX_ALPHABET[int(bits[4::-1], 2)]
        + _SUFFIX_ALPHABET[int(bits[9:4:-1], 2)]
        + _SUFFIX_ALPHABET[int(bits[14:9:-1], 2)]
    )


def to18(id15: str) -> str:
    """The 18-character form of a 15-character ID."""
    return id15 + checksum(id15)


#: Every pair of base-62 digits, so a counter is encoded two digits per division.
_PAIRS = [a + b for a in BASE62 for b in BASE62]


def encode_counter(counter: int) -> str:
    """``counter`` as 9 base-62 digits."""
    if not 0 <= counter < MAX_COUNTER:
        raise ValueError(f"ID counter out of range: {counter}")
    counter, d4 = divmod(counter, 3844)
    counter, d3 = divmod(counter, 3844)
    counter, d2 = divmod(counter, 3844)
    top, d1 = divmod(counter, 3844)
    return BASE62[top] + _PAIRS[d1] + _PAIRS[d2] + _PAIRS[d3] + _PAIRS[d4]


def make_id(prefix: str, counter: int, instance: str = INSTANCE) -> str:
    """An 18-character ID for ``prefix`` and a counter unique in the org."""
    return to18(f"{prefix}{instance}0{encode_counter(counter)}")


def parse(value: object, *, field: str = "Id") -> str:
    """Validate a 15- or 18-character ID and return its canonical 18-character form.

    A 15-character ID is case-sensitive, so its checksum is computed. An 18-character ID is
    case-insensitive: its suffix says which of the first 15 characters are upper-case, so the
    case is restored from it; a suffix that marks a digit as upper-case is malformed.
    """
    if isinstance(value, str) and value in _RECENT:
        return value
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise errors.MalformedId(f"{field}: id value of incorrect type: {value}", fields=[field])
    if len(value) == 15:
        return to18(value)
    if checksum(value[:15]) == value[15:]:
        _remember(value)
        return value  # already canonical: the common case, kept cheap
    restored = _restore_case(value[:15], value[15:].upper())
    if restored is None:
        raise errors.MalformedId(f"{field}: id value of incorrect type: {value}", fields=[field])
    return restored + value[15:].upper()


#: Canonical 18-character IDs validated recently: the same parents (cadence, tracker, target)
#: recur in every write, so they are checked once. Bounded; cleared when full.
_RECENT: set[str] = set()
_RECENT_MAX = 65536


def _remember(value: str) -> None:
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.clear()
    _RECENT.add(value)


def _restore_case(body: str, suffix: str) -> str | None:
    chars = list(body)
    for chunk, code in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.index(code)
        for j in range(5):
            i = chunk * 5 + j
            upper = bool(bits & (1 << j))
            if upper and not chars[i].isalpha():
                return None
            chars[i] = chars[i].upper() if upper else chars[i].lower()
    return "".join(chars)


def is_valid(value: object) -> bool:
    try:
        parse(value)
    except errors.MalformedId:
        return False
    return True


def parse_for_object(value: object, key_prefix: str, object_name: str, *, field: str = "Id") -> str:
    """Parse an ID and check it belongs to ``object_name``; else INVALID_ID_FIELD."""
    try:
        canonical = parse(value, field=field)
    except errors.MalformedId:
        raise errors.InvalidIdField(f"invalid ID field: {value}", fields=[field]) from None
    if canonical[:3] != key_prefix:
        raise errors.InvalidIdField(
            f"invalid ID field: {value} is not a valid {object_name} id", fields=[field]
        )
    return canonical
