"""Printing query results for people: an aligned table, JSON or CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"Target": {"Name": "x"}}`` -> ``{"Target.Name": "x"}``; attributes dropped."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict) and "records" in value:
            flat[prefix + key] = f"<{value.get('totalSize', 0)} records>"
        elif isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key)
    return list(seen)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write(out: TextIO, fmt: str, records: list[dict[str, Any]], total: int) -> None:
    if fmt == "json":
        json.dump({"totalSize": total, "done": True, "records": records}, out, indent=2)
        out.write("\n")
        return
    rows = [flatten(r) for r in records]
    columns = _columns(rows)
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_text(row.get(c)) for c in columns])
        return
    widths = {c: max([len(c)] + [len(_text(r.get(c))) for r in rows]) for c in columns}
    out.write("  ".join(c.ljust(widths[c]) for c in columns).rstrip() + "\n")
    out.write("  ".join("-" * widths[c] for c in columns) + "\n")
    for row in rows:
        out.write("  ".join(_text(row.get(c)).ljust(widths[c]) for c in columns).rstrip() + "\n")
    out.write(f"({total} record{'s' if total != 1 else ''})\n")
