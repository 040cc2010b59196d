"""Let the database format values the way Salesforce's REST API writes them.

Formatting a dateTime in SQL (``2026-01-05T09:00:00.000+0000``) costs the database next to
nothing and spares Python a datetime object and a strftime per value, which is most of the
cost of shaping a 2,000-record page.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class api_datetime(FunctionElement[str]):
    """A naive-UTC dateTime column as ``YYYY-MM-DDTHH:MM:SS.mmm+0000`` text."""

    type = sa.String()
    inherit_cache = True
    name = "api_datetime"


class api_date(FunctionElement[str]):
    """A date column as ``YYYY-MM-DD`` text."""

    type = sa.String()
    inherit_cache = True
    name = "api_date"


@compiles(api_datetime, "sqlite")
def _sqlite_datetime(element: api_datetime, compiler: SQLCompiler, **kw: Any) -> str:
    # %f is seconds with milliseconds (SS.SSS)
    return "strftime('%%Y-%%m-%%dT%%H:%%M:%%f+0000', %s)" % compiler.process(element.clauses, **kw)


@compiles(api_datetime, "postgresql")
def _pg_datetime(element: api_datetime, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return 'to_char(%s, \'YYYY-MM-DD"T"HH24:MI:SS.MS"+0000"\')' % arg


@compiles(api_date, "sqlite")
def _sqlite_date(element: api_date, compiler: SQLCompiler, **kw: Any) -> str:
    return "strftime('%%Y-%%m-%%d', %s)" % compiler.process(element.clauses, **kw)


@compiles(api_date, "postgresql")
def _pg_date(element: api_date, compiler: SQLCompiler, **kw: Any) -> str:
    return "to_char(%s, 'YYYY-MM-DD')" % compiler.process(element.clauses, **kw)


def api_value(expr: ColumnElement[Any], field_type: str) -> ColumnElement[Any]:
    """``expr`` as the JSON-ready value the API returns for a field of ``field_type``."""
    if field_type == "datetime":
        return api_datetime(expr)
    if field_type == "date":
        return api_date(expr)
    if field_type == "boolean":
        return sa.type_coerce(expr, sa.Boolean())
    if field_type in ("double", "percent", "currency"):
        return sa.cast(expr, sa.Double())
    return expr
