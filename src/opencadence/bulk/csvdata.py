"""CSV as Bulk API 2.0 reads and writes it: delimiters, line endings, ``#N/A``, error texts.

Uploaded rows are kept in the chunks as CSV of their own (comma, LF, minimal quoting), so a
chunk's results repeat the uploaded values exactly; results and query pages are written with
every value quoted, as Salesforce writes them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from opencadence import errors

DELIMITERS = {
    "BACKQUOTE": "`",
    "CARET": "^",
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
#: The value that sets a field to null (an empty value leaves it as it is).
NULL = "#N/A"


def internal_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows as a chunk stores them."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def internal_rows(text: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text))


def quoted_text(rows: Iterable[Sequence[Any]], delimiter: str = ",", line: str = "\n") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=line, quoting=csv.QUOTE_ALL).writerows(rows)
    return out.getvalue()


def header_line(names: Sequence[str], delimiter: str = ",", line: str = "\n") -> str:
    """A results header: the ``sf__`` columns quoted, the uploaded ones as they were named."""
    return delimiter.join(f'"{n}"' if n.startswith("sf__") else _plain(n) for n in names) + line


def _plain(name: str) -> str:
    return f'"{name}"' if any(ch in name for ch in ',"\n\r`^|;\t') else name


def error_text(exc: errors.OpenCadenceError) -> str:
    """``REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --``: the
    status code, the message and the fields, as Salesforce's Bulk API writes ``sf__Error``."""
    if exc.fields:
        return f"{exc.error_code}:{exc.message}:{','.join(exc.fields)} --"
    return f"{exc.error_code}:{exc.message}:--"


def split_records(text: str, line: str) -> Iterator[str]:
    """The records of CSV ``text`` (each with its line ending): a line ending inside a quoted
    value does not end a record (an odd count of quotes so far means a value is open)."""
    pending: list[str] = []
    quotes = 0
    for piece in text.split(line):
        pending.append(piece)
        quotes += piece.count('"')
        if quotes % 2 == 0:
            record = line.join(pending)
            pending, quotes = [], 0
            if record:
                yield record + line
    if pending and line.join(pending):
        yield line.join(pending)
