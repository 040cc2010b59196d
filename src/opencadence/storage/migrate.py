"""Create or upgrade a database in place to the schema the registry describes.

The schema is derived from metadata, so most upgrades are additive: a new object is a new
table, a new field a new nullable column, a new index an index. ``upgrade`` asks alembic's
autogenerate comparison what differs between the live database and the registry's tables and
applies the additive operations with alembic's Operations. A difference that would lose data
(a dropped or retyped column) is refused with an error naming the table and column: such a
change needs a hand-written migration, never a silent rewrite.

The bootstrap rows every org has (the Organization and the Automated Process user that owns
system changes) are created here too, once.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Engine

from opencadence import errors, ids
from opencadence.clock import Clock, SystemClock
from opencadence.metadata import sales_engagement
from opencadence.metadata.registry import Registry, default_registry
from opencadence.storage import (
    authorization,
    counts,
    dialect,
    events,
    records,
    schema,
    search_index,
    values,
)

#: The Organization record every database has.
ORG_ID = ids.make_id(default_registry().prefix("Organization"), 1)
#: The first ID counter handed out to ordinary records (lower ones are reserved).
FIRST_COUNTER = 1000

Progress = Callable[[str], None]


def fingerprint(registry: Registry) -> str:
    """The schema fingerprint of ``registry`` (see ``_fingerprint``)."""
    return _fingerprint(schema.build_metadata(registry))


def _fingerprint(target: sa.MetaData) -> str:
    """A hash of the whole schema's shape: every table the registry and the bookkeeping of
    ``schema.py`` declare, with columns, types and indexes, so that a change to either is
    compared against the live database at the next upgrade; the expression indexes of
    ``schema.LOWER_UNIQUE_INDEXES`` too, which the comparison cannot see."""
    shape: list[tuple[str, list[Any], list[Any]]] = [
        (
            table.name,
            [(c.name, str(c.type), c.nullable, c.primary_key) for c in table.columns],
            sorted((i.name or "", [c.name for c in i.columns], i.unique) for i in table.indexes),
        )
        for table in target.sorted_tables
    ]
    shape.append(("lower unique indexes", list(schema.LOWER_UNIQUE_INDEXES), []))
    shape.append(("postgresql extra indexes", list(schema.PG_EXTRA_INDEXES), ["replace"]))
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def upgrade(
    engine: Engine,
    registry: Registry,
    progress: Progress | None = None,
    clock: Clock | None = None,
) -> list[str]:
    """Bring the database to the registry's schema; returns a line per change made."""
    say = progress or (lambda _msg: None)
    now = values.to_db_datetime((clock or SystemClock()).now())
    target = schema.build_metadata(registry)
    done: list[str] = []
    with engine.connect() as conn:
        conn = conn.execution_options(**{dialect.WRITE_OPTION: True})
        with conn.begin():
            dialect.upgrade_lock(conn, _waiting_notice(say))
            wanted = _fingerprint(target)
            if _current_fingerprint(conn) != wanted:
                done = _apply_diff(conn, target, say)
                _ensure_sequence(conn)
                _pg_indexes(conn, target, say, done)
                _lower_unique_indexes(conn, target, say, done)
                _search_index(conn, target, registry, say, done)
                if f"created table {schema.ROW_COUNTS}" in done:
                    counts.recount(conn, target, [o.name for o in registry])
                _write_state(conn, target, wanted)
            _ensure_replay_counter(conn)
            _bootstrap(conn, target, now)
            _bootstrap_permission_sets(conn, target, now)
            _bootstrap_profiles(conn, target, now)
            _bootstrap_call_results(conn, target, registry, now)
            _bootstrap_lead_statuses(conn, target, registry, now)
    return done


def _waiting_notice(say: Progress) -> Callable[[], None]:
    """Say once that another process's upgrade is being waited for (a long one is not a hang)."""
    said = False

    def waiting() -> None:
        nonlocal said
        if not said:
            say("waiting for another process's schema upgrade to finish")
            said = True

    return waiting


def _current_fingerprint(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(schema.SCHEMA_STATE):
        return None
    table = sa.table(schema.SCHEMA_STATE, sa.column("key"), sa.column("value"))
    return conn.execute(sa.select(table.c.value).where(table.c.key == "fingerprint")).scalar()


def _apply_diff(conn: sa.Connection, target: sa.MetaData, say: Progress) -> list[str]:
    replaced = frozenset() if dialect.is_sqlite(conn) else schema.PG_REPLACED_INDEXES

    def included(_obj: Any, name: str | None, type_: str, _reflected: bool, _to: Any) -> bool:
        # PostgreSQL has their NULLS FIRST replacements instead (_pg_indexes)
        return not (type_ == "index" and name in replaced)

    ctx = MigrationContext.configure(
        conn,
        opts={"compare_type": False, "include_name": _compared, "include_object": included},
    )
    ops = Operations(ctx)
    done = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=dialect.EXPRESSION_INDEX_WARNING)
        diffs = list(_flatten(compare_metadata(ctx, target)))
    for diff in diffs:
        line = _apply_one(ops, diff, replaced)
        if line:
            say(line)
            done.append(line)
    return done


def _compared(name: str | None, type_: str, _parents: Any) -> bool:
    """What the comparison looks at: not the full-text index's own tables (dialect.py)."""
    return not (type_ == "table" and name is not None and dialect.is_search_index_table(name))


def _search_index(
    conn: sa.Connection, target: sa.MetaData, registry: Registry, say: Progress, done: list[str]
) -> None:
    """The full-text index of SOSL, created and filled from the records when missing."""
    if schema.SEARCH_DOCS not in target.tables:
        return
    if dialect.search_index_exists(conn):
        return
    written = search_index.ensure(conn, target, registry)
    line = f"created the search index ({written} records)"
    say(line)
    done.append(line)


def _flatten(diffs: Iterable[Any]) -> Iterable[tuple[Any, ...]]:
    for d in diffs:
        if isinstance(d, list):  # column modifications come grouped
            yield from d
        else:
            yield d


def _apply_one(ops: Operations, diff: tuple[Any, ...], skipped: frozenset[str]) -> str | None:
    """Apply one difference; the indexes named in ``skipped`` are never created."""
    kind = diff[0]
    if kind == "add_table":
        table = diff[1]
        ops.create_table(table.name, *[_fresh(c) for c in table.columns])
        for index in table.indexes:
            if index.name not in skipped:
                _create_index(ops, index)
        return f"created table {table.name}"
    if kind == "add_column":
        _schema, table_name, column = diff[1], diff[2], diff[3]
        ops.add_column(table_name, _fresh(column))
        return f"added column {table_name}.{column.name}"
    if kind == "add_index":
        index = diff[1]
        _create_index(ops, index)
        return f"created index {index.name}"
    if kind in ("remove_column", "modify_type", "modify_nullable", "remove_table"):
        raise errors.InvalidDefinition(
            f"schema change needs a hand-written migration: {kind} {_describe(diff)}"
        )
    return None  # index removals, comment changes, … are left alone


def _create_index(ops: Operations, index: sa.Index) -> None:
    assert index.name is not None and index.table is not None  # schema.py names every index
    columns = [c.name for c in index.columns]
    ops.create_index(index.name, index.table.name, columns, unique=bool(index.unique))


def _fresh(column: sa.Column[Any]) -> sa.Column[Any]:
    """An unattached copy of a column (a Column belongs to one table only)."""
    return sa.Column(
        column.name,
        column.type,
        primary_key=column.primary_key,
        nullable=column.nullable,
        autoincrement=column.autoincrement,
    )


def _describe(diff: tuple[Any, ...]) -> str:
    parts = [getattr(x, "name", x) for x in diff[1:4] if x is not None]
    return " ".join(str(p) for p in parts)


def _ensure_sequence(conn: sa.Connection) -> None:
    """Create the ID counter (a SEQUENCE on PostgreSQL, a row on SQLite) if missing."""
    dialect.create_id_counter(
        conn,
        counter_table=schema.SEQUENCES,
        sequence=schema.ID_SEQUENCE,
        start=FIRST_COUNTER,
        block=schema.ID_BLOCK,
    )


def _pg_indexes(conn: sa.Connection, target: sa.MetaData, say: Progress, done: list[str]) -> None:
    for table, name, columns in schema.PG_EXTRA_INDEXES:
        if table not in target.tables or any(c not in target.tables[table].c for c in columns):
            continue
        if dialect.ensure_nulls_first_index(conn, table, name, columns):
            say(f"created index {name}")
            done.append(f"created index {name}")
        twin = f"ix_{table}_{'_'.join(columns)}"  # schema.PG_REPLACED_INDEXES
        if not dialect.is_sqlite(conn) and dialect.index_exists(conn, twin):
            conn.exec_driver_sql(f'DROP INDEX "{twin}"')
            say(f"dropped index {twin}")
            done.append(f"dropped index {twin}")


def _lower_unique_indexes(
    conn: sa.Connection, target: sa.MetaData, say: Progress, done: list[str]
) -> None:
    """The case-insensitive unique indexes; values that already collide are refused by name
    (which row to rename is the owner's choice, never the upgrade's)."""
    for table_name, name, column, live_only in schema.LOWER_UNIQUE_INDEXES:
        table = target.tables.get(table_name)
        if table is None or column not in table.c or dialect.index_exists(conn, name):
            continue
        lowered = sa.func.lower(table.c[column])
        counted = sa.select(lowered)
        if live_only:
            counted = counted.where(table.c.IsDeleted == sa.false())
        clashes = conn.execute(
            counted.group_by(lowered).having(sa.func.count() > 1).order_by(lowered)
        ).scalars()
        found = list(clashes)
        if found:
            raise errors.InvalidDefinition(
                f"cannot make {table_name}.{column} unique: {', '.join(found)} "
                "appear more than once (case-insensitively); rename all but one first"
            )
        if dialect.ensure_lower_unique_index(conn, table_name, name, column, live_only):
            say(f"created index {name}")
            done.append(f"created index {name}")


def _ensure_replay_counter(conn: sa.Connection) -> None:
    """The replay-id counter (events.reserve_replay_ids), after the log's last event."""
    seq = sa.table(schema.SEQUENCES, sa.column("name"), sa.column("value"))
    if (
        conn.execute(sa.select(seq.c.value).where(seq.c.name == events.REPLAY_COUNTER)).first()
        is None
    ):
        last = conn.execute(
            sa.text(f"SELECT coalesce(max(replay_id), 0) FROM {schema.EVENTS}")
        ).scalar_one()
        conn.execute(seq.insert().values(name=events.REPLAY_COUNTER, value=int(last)))


def _write_state(conn: sa.Connection, target: sa.MetaData, value: str) -> None:
    table = target.tables[schema.SCHEMA_STATE]
    conn.execute(table.delete().where(table.c.key == "fingerprint"))
    conn.execute(table.insert().values(key="fingerprint", value=value))


def _bootstrap(conn: sa.Connection, target: sa.MetaData, now: datetime) -> None:
    """The Organization and the Automated Process user, created once."""
    users = target.tables.get("User")
    orgs = target.tables.get("Organization")
    if users is None or orgs is None:
        return
    if conn.execute(sa.select(users.c.Id).where(users.c.Id == records.AUTOMATED_USER)).first():
        return
    org = records.created_fields(ORG_ID, records.AUTOMATED_USER, now)
    conn.execute(
        orgs.insert().values(Name="opencadence", **_only(orgs, {"TimeZoneSidKey": "GMT"}), **org)
    )
    user = {
        "Username": "autoproc@opencadence.local",
        "LastName": "Automated Process",
        "Name": "Automated Process",
        "Alias": "autoproc",
        "Email": "autoproc@opencadence.local",
        "IsActive": True,
        "TimeZoneSidKey": "GMT",
        "LocaleSidKey": "en_US",
        "LanguageLocaleKey": "en_US",
        "EmailEncodingKey": "UTF-8",
        "UserType": "AutomatedProcess",
    }
    audit = records.created_fields(records.AUTOMATED_USER, records.AUTOMATED_USER, now)
    conn.execute(users.insert().values(**_only(users, user), **audit))
    if schema.ROW_COUNTS in target.tables:
        counts.apply(conn, target, Counter({"Organization": 1, "User": 1}))


def _bootstrap_permission_sets(conn: sa.Connection, target: sa.MetaData, now: datetime) -> None:
    """The permission sets opencadence's checks know (authorization.PERMISSION_SETS), each
    created once: also in a database made before they existed."""
    table = target.tables.get("PermissionSet")
    if table is None:
        return
    have = set(conn.execute(sa.select(table.c.Id)).scalars())
    added = 0
    for set_id, (name, label, description) in authorization.PERMISSION_SETS.items():
        if set_id in have:
            continue
        audit = records.created_fields(set_id, records.AUTOMATED_USER, now)
        conn.execute(
            table.insert().values(
                Name=name,
                Label=label,
                Description=description,
                IsOwnedByProfile=False,
                PermissionsViewAllData=False,
                PermissionsModifyAllData=False,
                PermissionsManageUsers=False,
                **audit,
            )
        )
        added += 1
    if added and schema.ROW_COUNTS in target.tables:
        counts.apply(conn, target, Counter({"PermissionSet": added}))


def _bootstrap_profiles(conn: sa.Connection, target: sa.MetaData, now: datetime) -> None:
    """The two profiles (authorization.PROFILES), each created once: also in an older database,
    whose users keep a null ProfileId until an admin flag is set again."""
    table = target.tables.get("Profile")
    if table is None:
        return
    have = set(conn.execute(sa.select(table.c.Id)).scalars())
    added = 0
    for profile_id, (name, description) in authorization.PROFILES.items():
        if profile_id in have:
            continue
        audit = records.created_fields(profile_id, records.AUTOMATED_USER, now)
        conn.execute(
            table.insert().values(Name=name, Description=description, UserType="Standard", **audit)
        )
        added += 1
    if added and schema.ROW_COUNTS in target.tables:
        counts.apply(conn, target, Counter({"Profile": added}))


#: The Lead Status values seeded as converted statuses (LeadStatus.IsConverted).
CONVERTED_LEAD_STATUSES = frozenset({"Closed - Converted"})


def _seed(
    conn: sa.Connection,
    target: sa.MetaData,
    name: str,
    prefix: str,
    rows: list[dict[str, Any]],
    now: datetime,
    *,
    only_if_empty: bool,
) -> None:
    """Insert ``rows`` into ``name`` with fixed Ids (``prefix`` + 1, 2, ...), each once: the
    missing ones, or (``only_if_empty``) all of them into a table that never held a row, so a
    row an administrator deleted does not come back at the next upgrade."""
    table = target.tables.get(name)
    if table is None:
        return
    have = set(conn.execute(sa.select(table.c.Id)).scalars())
    if only_if_empty and have:
        return
    added = 0
    for number, row in enumerate(rows, start=1):
        row_id = ids.make_id(prefix, number)
        if row_id in have:
            continue
        audit = records.created_fields(row_id, records.AUTOMATED_USER, now)
        conn.execute(table.insert().values(**_only(table, row), **audit))
        added += 1
    if added and schema.ROW_COUNTS in target.tables:
        counts.apply(conn, target, Counter({name: added}))


def category_id(registry: Registry, category: str) -> str:
    """The fixed Id of a seeded CallDispositionCategory."""
    number = list(sales_engagement.CALL_CATEGORIES).index(category) + 1
    return ids.make_id(registry.prefix("CallDispositionCategory"), number)


def _bootstrap_call_results(
    conn: sa.Connection, target: sa.MetaData, registry: Registry, now: datetime
) -> None:
    """Salesforce's five call-result categories (always all of them) and the default call
    results, once (docs/runtime-decisions.md "Calls")."""
    if "CallDispositionCategory" not in registry or "CallDisposition" not in registry:
        return
    categories = [
        {"Category": c, "DeveloperName": c, "MasterLabel": label, "Language": "en_US"}
        for c, label in sales_engagement.CALL_CATEGORIES.items()
    ]
    prefix = registry.prefix("CallDispositionCategory")
    _seed(conn, target, "CallDispositionCategory", prefix, categories, now, only_if_empty=False)
    results = [
        {"Disposition": d, "DispositionCategoryId": category_id(registry, c)}
        for d, c in sales_engagement.DEFAULT_CALL_DISPOSITIONS.items()
    ]
    prefix = registry.prefix("CallDisposition")
    _seed(conn, target, "CallDisposition", prefix, results, now, only_if_empty=True)


def _bootstrap_lead_statuses(
    conn: sa.Connection, target: sa.MetaData, registry: Registry, now: datetime
) -> None:
    """One LeadStatus per value of the Lead Status picklist, once."""
    if "LeadStatus" not in registry or "Lead" not in registry:
        return
    status = registry.object("Lead").field("Status")
    if status is None:
        return
    rows = [
        {
            "ApiName": p.value,
            "MasterLabel": p.label or p.value,
            "SortOrder": order,
            "IsDefault": p.value == status.default_value,
            "IsConverted": p.value in CONVERTED_LEAD_STATUSES,
        }
        for order, p in enumerate(status.picklist, start=1)
    ]
    prefix = registry.prefix("LeadStatus")
    _seed(conn, target, "LeadStatus", prefix, rows, now, only_if_empty=True)


def _only(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` that ``table`` has columns for."""
    return {k: v for k, v in values.items() if k in table.c}
