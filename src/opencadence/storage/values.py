"""Field values: validation and conversion between API values and database values.

API values are what JSON carries (str, int, float, bool, None) or native Python values
(datetime, date); database values are what the column types store (naive UTC datetimes,
truncated to milliseconds as Salesforce keeps them). Every failure raises the Salesforce error
naming the field at fault.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from opencadence import errors, ids
from opencadence.metadata import model

_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _type_error(f: model.FieldDef, value: Any) -> errors.InvalidTypeOnField:
    return errors.InvalidTypeOnField(
        f"{f.name}: value not of required type: {value}", fields=[f.name]
    )


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 dateTime (``Z``, ``±hh:mm`` or ``±hhmm``) to naive UTC."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", s):
        s = s[:-2] + ":" + s[-2:]
    value = datetime.fromisoformat(s)
    if value.tzinfo is not None:
        try:
            value = value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
            raise ValueError(f"{text} is outside years 1-9999 in UTC") from None
    return value


def to_db_datetime(value: datetime) -> datetime:
    """Naive UTC, millisecond precision."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if value.microsecond % 1000:
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def _text(f: model.FieldDef, value: Any) -> str | None:
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise _type_error(f, value)
    if value == "":
        return None  # Salesforce stores an empty text value as null
    if not _storable(value):
        raise _type_error(f, value.encode("utf-8", "backslashreplace").decode()[:40])
    if len(value) > f.length:
        raise errors.StringTooLong(
            f"{f.name}: data value too large: {value[:40]} (max length={f.length})",
            fields=[f.name],
        )
    return str(value)


def _storable(text: str) -> bool:
    """No NUL (PostgreSQL text cannot hold it) and no lone surrogate (not Unicode: neither
    database can encode it); both databases must store the same values."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_ALLOWED: dict[int, frozenset[str]] = {}


def _allowed(f: model.FieldDef) -> frozenset[str]:
    """Active values of a picklist, computed once per field."""
    found = _ALLOWED.get(id(f))
    if found is None:
        found = _ALLOWED[id(f)] = frozenset(p.value for p in f.picklist if p.active)
    return found


def _picklist(f: model.FieldDef, value: Any) -> str | None:
    text = _text(f, value)
    if text is not None and f.restricted_picklist:
        if text not in _allowed(f):
            raise errors.InvalidPicklistValue(
                f"{f.name}: bad value for restricted picklist field: {text}", fields=[f.name]
            )
    return text


def _email(f: model.FieldDef, value: Any) -> str | None:
    text = _text(f, value)
    if text is not None and not _EMAIL_RE.match(text):
        raise errors.InvalidEmailAddress(
            f"{f.name}: invalid email address: {text}", fields=[f.name]
        )
    return text


def _reference(f: model.FieldDef, value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        canonical = ids.parse(value, field=f.name)
    except errors.MalformedId:
        raise errors.MalformedId(
            f"{f.name}: id value of incorrect type: {value}", fields=[f.name]
        ) from None
    return canonical


def _boolean(f: model.FieldDef, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _type_error(f, value)


#: What an integer column holds (SQLite INTEGER, PostgreSQL BIGINT).
_INT64 = 2**63 - 1


def _int(f: model.FieldDef, value: Any) -> int:
    if isinstance(value, bool):
        raise _type_error(f, value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,30}", value.strip()):
        value = int(value)
    if not isinstance(value, int):
        raise _type_error(f, str(value)[:40])
    if abs(value) > _INT64 or (f.digits and abs(value) >= 10**f.digits):
        raise errors.NumberOutsideValidRange(
            f"{f.name}: number outside the valid range: {value}", fields=[f.name]
        )
    return value


def _double(f: model.FieldDef, value: Any) -> float:
    if isinstance(value, bool):
        raise _type_error(f, value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _type_error(f, value) from None
    if not isinstance(value, (int, float)):
        raise _type_error(f, value)
    try:
        number = float(value)
    except OverflowError:  # an integer past a double's range
        number = math.inf
    if not math.isfinite(number):  # Infinity/NaN: JSON cannot carry them back
        raise errors.NumberOutsideValidRange(
            f"{f.name}: number outside the valid range: {value}", fields=[f.name]
        )
    if f.precision and abs(number) >= 10 ** (f.precision - f.scale):
        raise errors.NumberOutsideValidRange(
            f"{f.name}: number outside the valid range: {value}", fields=[f.name]
        )
    return number


def _date(f: model.FieldDef, value: Any) -> date:
    if isinstance(value, datetime):
        raise _type_error(f, value)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _type_error(f, value)


def _datetime(f: model.FieldDef, value: Any) -> datetime:
    if isinstance(value, datetime):
        return to_db_datetime(value)
    if isinstance(value, str):
        try:
            return to_db_datetime(parse_datetime(value))
        except ValueError:
            pass
    raise _type_error(f, value)


_CONVERTERS: dict[str, Callable[[model.FieldDef, Any], Any]] = {
    "id": _reference,
    "reference": _reference,
    "string": _text,
    "textarea": _text,
    "phone": _text,
    "url": _text,
    "email": _email,
    "picklist": _picklist,
    "multipicklist": _text,
    "boolean": _boolean,
    "int": _int,
    "double": _double,
    "percent": _double,
    "currency": _double,
    "date": _date,
    "datetime": _datetime,
}


def converter(f: model.FieldDef) -> Callable[[Any], Any]:
    """The function that validates and converts non-null API values for ``f``."""
    return functools.partial(_CONVERTERS[f.type], f)


def to_db(f: model.FieldDef, value: Any) -> Any:
    """Validate an API value for ``f`` and return what the column stores (None stays None)."""
    if value is None:
        return None
    return _CONVERTERS[f.type](f, value)


def to_api(f: model.FieldDef, value: Any) -> Any:
    """A database value as Salesforce's REST JSON writes it."""
    if value is None:
        return None
    if f.type == "datetime":
        return format_datetime(value)
    if f.type == "date":
        return value.isoformat() if isinstance(value, date) else str(value)
    if f.type == "boolean":
        return bool(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # stored before such values were refused; JSON cannot carry it
    return value


def format_datetime(value: datetime) -> str:
    """Salesforce's REST form: ``2024-01-01T00:00:00.000+0000``."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def format_event_datetime(value: datetime) -> str:
    """Change events (CometD JSON) write UTC with ``Z``: ``2024-01-01T00:00:00.000Z``."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # isoformat (C) pads the year to four digits and truncates to milliseconds, as
    # f"{year:04d}-...{microsecond // 1000:03d}" did, at a fraction of its cost (three per
    # inserted step tracker's change event)
    return value.isoformat(timespec="milliseconds") + "Z"
