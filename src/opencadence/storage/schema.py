"""Database tables generated from the registry, plus opencadence's own bookkeeping tables.

One table per sObject, named as the object, one column per stored field, named as the field.
Calculated fields have no column: they are derived (see ``formulas``). Every reference field is
indexed, and so are the columns the runtime scans (``SCAN_INDEXES``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from opencadence.metadata import model
from opencadence.metadata.registry import Registry
from opencadence.storage import dialect

#: Extra indexes the cadence runtime and the replication calls (getUpdated) scan by.
SCAN_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "ActionCadenceStepTracker": (("State", "DueDateTime"), ("ScheduledStartDateTime",)),
    "ActionCadenceTracker": (("State", "ScheduledResumeDateTime"), ("IsTrackerActive",)),
    "ActionCadence": (("Name",),),
    "ActionCadenceStep": (("ActionCadenceId", "StepName"),),
    "User": (("Username",),),
    "Contact": (("Email",),),
    "Lead": (("Email",),),
}

#: Unique indexes on lower(column): values unique case-insensitively, as Salesforce compares
#: usernames. An expression index is outside what the upgrade's comparison sees, so
#: migrate.upgrade creates these itself and the fingerprint lists them. (table, index, column,
#: live only: deleted rows, which stay in the table for undelete and queryAll, do not count)
LOWER_UNIQUE_INDEXES: tuple[tuple[str, str, str, bool], ...] = (
    ("User", "ux_User_Username_lower", "Username", False),
    ("EmailTemplate", "ux_EmailTemplate_DeveloperName_lower", "DeveloperName", True),
)

#: Name of the change-event log table.
EVENTS = "oc_change_event"
#: Name of the deleted-records log table (getDeleted, queryAll).
DELETED = "oc_deleted_record"
#: PostgreSQL-only indexes: Salesforce sorts nulls first ascending, PostgreSQL's indexes last,
#: so ORDER BY <datetime> ASC NULLS FIRST can only walk an index declared that way. SQLite
#: already sorts nulls first. (table, index name, columns; the last one is NULLS FIRST)
PG_EXTRA_INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ActionCadenceStepTracker", "ix_pg_steptracker_state_due", ("State", "DueDateTime")),
    ("ActionCadenceStepTracker", "ix_pg_steptracker_start", ("ScheduledStartDateTime",)),
    ("ActionCadenceTracker", "ix_pg_tracker_state_resume", ("State", "ScheduledResumeDateTime")),
)
#: The SCAN_INDEXES these replace on PostgreSQL, which has only the NULLS FIRST one: it
#: serves the same filters, and SOQL's default orders (ASC NULLS FIRST forwards, DESC NULLS
#: LAST backwards), so the default-order twin only cost every insert and every update of the
#: cadence trackers one more index entry. SQLite keeps them (it sorts nulls first anyway).
PG_REPLACED_INDEXES: frozenset[str] = frozenset(
    f"ix_{table}_{'_'.join(columns)}" for table, _name, columns in PG_EXTRA_INDEXES
)

#: Name of the counter table that hands out ID blocks on SQLite.
SEQUENCES = "oc_sequence"
#: Name of the table recording the schema state (registry fingerprint).
SCHEMA_STATE = "oc_schema_state"
#: Names of the query-cursor tables (query locators for queryMore / nextRecordsUrl).
CURSORS = "oc_query_cursor"
CURSOR_PAGES = "oc_query_page"
#: Run state of each active cadence tracker: its next wake-up (due_at, indexed, claimed by
#: the workers), last call outcome, listener signals and pause bookkeeping. The unique
#: target_id is what keeps a target in one cadence at a time. Owned by opencadence.cadence.
CADENCE_RUN = "oc_cadence_run"
#: Heartbeats of the running cadence worker loops, one row per process (storage.heartbeats).
WORKER_HEARTBEATS = "oc_worker_heartbeat"
#: CometD clients shared by the server processes of ``serve --processes N``, one row per
#: client: its subscriptions and their replay cursors (storage.cometd_clients).
COMETD_CLIENTS = "oc_cometd_client"
#: Name of the sharded live-row counters (storage.counts).
ROW_COUNTS = "oc_row_count"
#: Names of the authentication tables: credentials per user, sessions, connected apps.
CREDENTIALS = "oc_credential"
SESSIONS = "oc_session"
APPS = "oc_connected_app"
#: OAuth refresh tokens and authorization codes (their SHA-256 digests, never the values).
REFRESH_TOKENS = "oc_refresh_token"
AUTH_CODES = "oc_auth_code"
#: Email bookkeeping (owned by opencadence.email): one outbox row per automated send (its
#: Message-ID written before the SMTP transaction), engagement events, org/user email settings.
EMAIL_OUTBOX = "oc_email_outbox"
EMAIL_EVENTS = "oc_email_event"
#: Calls that completed a MakeACall step, with their call-result category (storage/metrics.py).
METRIC_CALLS = "oc_metric_call"
EMAIL_SETTINGS = "oc_email_setting"
#: The full-text search documents (storage.search_index): one row per searchable record, its
#: text tokenized into the SOSL search groups; the index over them is dialect.py's.
SEARCH_DOCS = "oc_search_doc"
#: Bulk API jobs (2.0 ingest and query, 1.0 JSON) and their chunks: an ingest chunk holds up to
#: a few thousand uploaded rows and, once a worker has written them, their results; a query
#: job's chunks hold its result rows (storage/bulk.py owns both).
BULK_JOBS = "oc_bulk_job"
BULK_CHUNKS = "oc_bulk_chunk"
#: PostgreSQL sequence handing out ID blocks.
ID_SEQUENCE = "oc_id_seq"
#: Size of an ID block; a transaction takes one block at a time.
ID_BLOCK = 1000


def column_type(f: model.FieldDef) -> sa.types.TypeEngine[Any]:
    """The SQL type that stores a field's values."""
    t = f.type
    if t in ("boolean",):
        return sa.Boolean()
    if t == "int":
        return sa.Integer()
    if t in ("double", "percent", "currency"):
        return sa.Double()
    if t == "date":
        return sa.Date()
    if t == "datetime":
        return sa.DateTime()
    if t in ("id", "reference"):
        return sa.String(18)
    if f.length > 4000:
        return sa.Text()
    return sa.String(max(f.length, 1))


def _object_table(meta: sa.MetaData, obj: model.ObjectDef) -> sa.Table:
    columns = [
        sa.Column(
            f.name,
            column_type(f),
            primary_key=f.name == "Id",
            nullable=f.name != "Id",
        )
        for f in obj.stored_fields
    ]
    table = sa.Table(obj.name, meta, *columns)
    for f in obj.stored_fields:
        if f.type == "reference":
            sa.Index(f"ix_{obj.name}_{f.name}", table.c[f.name])
    sa.Index(f"ix_{obj.name}_SystemModstamp", table.c.SystemModstamp)
    for cols in SCAN_INDEXES.get(obj.name, ()):
        if all(c in table.c for c in cols):
            sa.Index(f"ix_{obj.name}_{'_'.join(cols)}", *(table.c[c] for c in cols))
    return table


def _bookkeeping_tables(meta: sa.MetaData) -> None:
    sa.Table(
        EVENTS,
        meta,
        sa.Column(
            "replay_id",
            dialect.autoincrement_bigint(),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("entity", sa.String(80), nullable=False),
        sa.Column("change_type", sa.String(16), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=False),
        sa.Column("changed_fields", sa.Text(), nullable=False),
        sa.Column("nulled_fields", sa.Text(), nullable=False),
        sa.Column("transaction_key", sa.String(36), nullable=False),
        sa.Column("sequence_number", sa.Integer(), nullable=False),
        sa.Column("commit_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("commit_number", sa.BigInteger(), nullable=False),
        sa.Column("commit_user", sa.String(18), nullable=False),
        sa.Column("change_origin", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    deleted = sa.Table(
        DELETED,
        meta,
        sa.Column("record_id", sa.String(18), primary_key=True),
        sa.Column("entity", sa.String(80), nullable=False),
        sa.Column("deleted_date", sa.DateTime(), nullable=False),
    )
    sa.Index(f"ix_{DELETED}_entity_date", deleted.c.entity, deleted.c.deleted_date)
    cursors = sa.Table(
        CURSORS,
        meta,
        sa.Column("locator", sa.String(18), primary_key=True),
        sa.Column("user_id", sa.String(18), nullable=False),
        sa.Column("soql", sa.Text(), nullable=False),
        sa.Column("version", sa.String(8), nullable=False),
        sa.Column("include_deleted", sa.Boolean(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("total_size", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(40), nullable=False),
        sa.Column("query_now", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    sa.Index(f"ix_{CURSORS}_created_at", cursors.c.created_at)
    sa.Table(
        CURSOR_PAGES,
        meta,
        sa.Column("locator", sa.String(18), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("after_key", sa.Text(), nullable=False),
    )
    sa.Table(
        ROW_COUNTS,
        meta,
        sa.Column("entity", sa.String(80), primary_key=True),
        sa.Column("shard", sa.Integer(), primary_key=True),
        sa.Column("live", sa.BigInteger(), nullable=False),
    )
    sa.Table(
        CREDENTIALS,
        meta,
        sa.Column("user_id", sa.String(18), primary_key=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("security_token", sa.String(64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        # invalid login attempts in a row, and until when the user is locked out after
        # too many (Accounts.authenticate); NULL: none
        sa.Column("failed_logins", sa.Integer(), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
    )
    sessions = sa.Table(
        SESSIONS,
        meta,
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(18), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("client", sa.String(255), nullable=False),
        # the inactivity timeout each use extends expires_at by; NULL: a fixed expiry
        sa.Column("idle_seconds", sa.Integer(), nullable=True),
        # the refresh token this session was issued from (revoking it ends the session)
        sa.Column("refresh_hash", sa.String(64), nullable=True),
    )
    sa.Index(f"ix_{SESSIONS}_expires_at", sessions.c.expires_at)
    _oauth_tables(meta)
    sa.Table(
        APPS,
        meta,
        sa.Column("consumer_key", sa.String(64), primary_key=True),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("run_as_user_id", sa.String(18), nullable=False),
        # the web server flow's callback URL, the JWT bearer flow's X.509 certificate (PEM)
        # and the OAuth scopes the app may grant (space-separated); NULL: not configured
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("scopes", sa.String(255), nullable=True),
    )
    sa.Table(
        SEQUENCES,
        meta,
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    run = sa.Table(
        CADENCE_RUN,
        meta,
        sa.Column("tracker_id", sa.String(18), primary_key=True),
        sa.Column("target_id", sa.String(18), nullable=False),
        sa.Column("cadence_id", sa.String(18), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("call_outcome", sa.String(40), nullable=True),
        sa.Column("signals", sa.String(255), nullable=True),
        sa.Column("paused_at", sa.DateTime(), nullable=True),
        sa.Column("paused_state", sa.String(40), nullable=True),
        sa.Column("held_due_at", sa.DateTime(), nullable=True),
    )
    # One active tracker per target: a concurrent second enrolment fails on this index.
    sa.Index(f"ux_{CADENCE_RUN}_target_id", run.c.target_id, unique=True)
    sa.Index(f"ix_{CADENCE_RUN}_due_at", run.c.due_at)
    sa.Index(f"ix_{CADENCE_RUN}_cadence_id", run.c.cadence_id)
    _email_tables(meta)
    _bulk_tables(meta)
    sa.Table(
        WORKER_HEARTBEATS,
        meta,
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("transitions", sa.BigInteger(), nullable=False),
    )
    clients = sa.Table(
        COMETD_CLIENTS,
        meta,
        sa.Column("client_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(18), nullable=False),
        # whose record visibility limits its events (NULL: "View All Data")
        sa.Column("viewer", sa.String(18), nullable=True),
        sa.Column("subscriptions", sa.Text(), nullable=False),  # JSON {channel: replay cursor}
        sa.Column("connected", sa.Boolean(), nullable=False),
        # grows with every change a delivery must not race (cursors, subscriptions, holder)
        sa.Column("version", sa.BigInteger(), nullable=False),
        # the /meta/connect being held for it, and until when at most (a dead process's hold)
        sa.Column("holder", sa.String(32), nullable=True),
        sa.Column("held_until", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=False),  # the last response
    )
    sa.Index(f"ix_{COMETD_CLIENTS}_answered_at", clients.c.answered_at)
    sa.Table(
        METRIC_CALLS,
        meta,
        sa.Column("step_tracker_id", sa.String(18), primary_key=True),
        sa.Column("category", sa.String(40), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    sa.Table(
        SCHEMA_STATE,
        meta,
        sa.Column("key", sa.String(40), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def _oauth_tables(meta: sa.MetaData) -> None:
    sa.Table(
        REFRESH_TOKENS,
        meta,
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(18), nullable=False),
        sa.Column("consumer_key", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    codes = sa.Table(
        AUTH_CODES,
        meta,
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(18), nullable=False),
        sa.Column("consumer_key", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    sa.Index(f"ix_{AUTH_CODES}_expires_at", codes.c.expires_at)


def _email_tables(meta: sa.MetaData) -> None:
    outbox = sa.Table(
        EMAIL_OUTBOX,
        meta,
        sa.Column("key", sa.String(18), primary_key=True),  # the step tracker Id
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("owner_id", sa.String(18), nullable=False),
        sa.Column("target_id", sa.String(18), nullable=False),
        sa.Column("template_id", sa.String(18), nullable=True),
        sa.Column("tracker_id", sa.String(18), nullable=True),
        sa.Column("step_id", sa.String(18), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(), nullable=True),
        sa.Column("cap_day", sa.String(10), nullable=True),
        sa.Column("sender", sa.String(255), nullable=True),
        sa.Column("recipient", sa.String(255), nullable=True),
        sa.Column("mime", sa.Text(), nullable=True),
        sa.Column("tracked", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
    )
    # inbound replies find their message by Message-ID; each send mints its own
    sa.Index(f"ux_{EMAIL_OUTBOX}_message_id", outbox.c.message_id, unique=True)
    sa.Index(f"ix_{EMAIL_OUTBOX}_cap", outbox.c.cap_day, outbox.c.owner_id)
    sa.Index(f"ix_{EMAIL_OUTBOX}_status", outbox.c.status, outbox.c.enrolled_at)
    sa.Index(f"ix_{EMAIL_OUTBOX}_tracker", outbox.c.tracker_id)
    ev = sa.Table(
        EMAIL_EVENTS,
        meta,
        sa.Column(
            "id",
            dialect.autoincrement_bigint(),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("key", sa.String(18), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    sa.Index(f"ix_{EMAIL_EVENTS}_key", ev.c.key, ev.c.kind)
    docs = sa.Table(
        SEARCH_DOCS,
        meta,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(18), nullable=False),
        sa.Column("entity", sa.String(80), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("other", sa.Text(), nullable=False),
        # the weighted tsvector of the four (PostgreSQL; a trigger fills it), see dialect.py
        sa.Column("vector", dialect.search_vector_type(), nullable=True),
    )
    sa.Index(f"ux_{SEARCH_DOCS}_record_id", docs.c.record_id, unique=True)
    sa.Table(
        EMAIL_SETTINGS,
        meta,
        sa.Column("scope", sa.String(18), primary_key=True),  # "org" or a User Id
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def _bulk_tables(meta: sa.MetaData) -> None:
    job = sa.Table(
        BULK_JOBS,
        meta,
        sa.Column("id", sa.String(18), primary_key=True),
        sa.Column("api", sa.String(4), nullable=False),  # "2.0" | "1.0"
        sa.Column("kind", sa.String(8), nullable=False),  # "ingest" | "query"
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("object", sa.String(80), nullable=True),
        sa.Column("external_id", sa.String(80), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(16), nullable=False),
        sa.Column("column_delimiter", sa.String(12), nullable=False),
        sa.Column("line_ending", sa.String(4), nullable=False),
        sa.Column("concurrency_mode", sa.String(12), nullable=False),
        sa.Column("api_version", sa.String(8), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(18), nullable=False),
        sa.Column("time_zone", sa.String(40), nullable=False),
        # the creator's rights the job's writes and query are checked with
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("permissions", sa.Text(), nullable=False),  # JSON list of permission sets
        sa.Column("created_date", sa.DateTime(), nullable=False),
        sa.Column("system_modstamp", sa.DateTime(), nullable=False),
        sa.Column("header", sa.Text(), nullable=True),  # JSON list of column names
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("uploaded", sa.Boolean(), nullable=False),
        sa.Column("records_processed", sa.BigInteger(), nullable=False),
        sa.Column("records_failed", sa.BigInteger(), nullable=False),
        sa.Column("processing_ms", sa.BigInteger(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        # a query job's run: who holds it until when (a dead worker's lease runs out)
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
    )
    sa.Index(f"ix_{BULK_JOBS}_state", job.c.state, job.c.kind)
    sa.Index(f"ix_{BULK_JOBS}_created_by", job.c.created_by, job.c.created_date)
    chunk = sa.Table(
        BULK_CHUNKS,
        meta,
        sa.Column("job_id", sa.String(18), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("batch_id", sa.String(18), nullable=True),  # Bulk 1.0's batch
        # a Bulk 1.0 query batch's result sets: the seq of the batch they belong to
        sa.Column("parent_seq", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("first_record", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("success", sa.Text(), nullable=True),
        sa.Column("failures", sa.Text(), nullable=True),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column("processing_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_date", sa.DateTime(), nullable=False),
        sa.Column("system_modstamp", sa.DateTime(), nullable=False),
    )
    sa.Index(f"ix_{BULK_CHUNKS}_state", chunk.c.state, chunk.c.job_id)
    sa.Index(f"ux_{BULK_CHUNKS}_batch_id", chunk.c.batch_id, unique=True)


def build_metadata(registry: Registry) -> sa.MetaData:
    """A fresh MetaData holding every object table and the bookkeeping tables."""
    meta = sa.MetaData()
    for obj in registry:
        _object_table(meta, obj)
    _bookkeeping_tables(meta)
    return meta


@lru_cache(maxsize=8)
def metadata_for(registry: Registry) -> sa.MetaData:
    """The (cached) MetaData of a registry."""
    return build_metadata(registry)
