"""The protocol-neutral facade: what REST, SOAP and the CLI call.

Describe, record reads and writes, SOQL, getUpdated/getDeleted and the Sales Engagement
actions, each for a calling session. The API layers only parse requests and render results.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence, Sized
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from opencadence import errors, ids
from opencadence.cadence import actions as cadence_actions
from opencadence.cadence import conversion, definition_file, runtime
from opencadence.cadence import engine as cadence_engine
from opencadence.cadence.sender import OutgoingEmail
from opencadence.clock import Clock
from opencadence.email import checks, no_relay, templates
from opencadence.metadata import describe, model
from opencadence.metadata.sales_engagement import STEP, TRACKER
from opencadence.soql import columns, execute
from opencadence.sosl import execute as sosl_execute
from opencadence.storage import (
    accounts,
    api_usage,
    authorization,
    counts,
    mail,
    records,
    replication,
    values,
)
from opencadence.storage.runs import RunStore

#: getUpdated looks back at most 30 days; getDeleted 15 (Salesforce's REST documentation).
UPDATED_WINDOW = timedelta(days=30)
DELETED_WINDOW = timedelta(days=15)
MAX_REPLICATION_IDS = 600_000
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}|:)?$")

STEP_OBJECT = "ActionCadenceStep"

#: Hook run inside the transaction of a record write: (tx, object, id, changes) -> None.
WriteHook = Callable[[records.Tx, model.ObjectDef, str, Mapping[str, Any]], None]


#: Every Org write inside it joins an all-or-none composite request's transaction.
ambient_transaction = records.ambient


#: The DailyApiRequests maximum reported when no limit is configured (Enterprise Edition's
#: 100,000 a day plus 1,000 per user license would depend on licences this org doesn't have).
DEFAULT_DAILY_API_REQUESTS = 15_000_000


@dataclass(frozen=True, slots=True)
class EmailDraft:
    """The composer of a manual email step (``Org.email_draft``)."""

    step_tracker_id: str
    target_id: str
    sender: str
    recipient: str
    subject: str
    body: str
    html: bool
    template_id: str | None
    #: why the email cannot be sent (then the rest is empty), or None
    problem: str | None


class Org:
    """One org: its store, query service, accounts and (optionally) the cadence runtime."""

    def __init__(
        self,
        store: records.Store,
        *,
        actions: Any = None,
        session_clock: Clock | None = None,
        api_request_limit: int | None = None,
    ) -> None:
        self.store = store
        self.registry = store.registry
        self.queries = execute.QueryService(store)
        self.searches = sosl_execute.SearchService(store)
        # sessions are timed on their own clock (None: the wall clock), not the org's
        self.accounts = accounts.Accounts(store, clock=session_clock)
        self.actions = actions if actions is not None else cadence_actions.Actions(store)
        self.api_usage = api_usage.ApiUsage(store)
        #: the daily API request limit refused past (None: reported, never enforced)
        self.api_request_limit = api_request_limit
        #: object name -> hooks run inside the transaction that creates a record of it
        self.after_write: dict[str, list[WriteHook]] = {
            "Task": [_task_created],
            "Account": [_person_account_created],
        }
        #: sends a rep's own email (a manual SendAnEmail step) through the outbox as the
        #: runtime's emails go (``system`` wires the relay's; without one, recorded as sent)
        self.mailer: Any = None
        self._mailer_lock = threading.Lock()

    # --- API usage --------------------------------------------------------------------------

    def count_api_request(self) -> tuple[int, int]:
        """Count one API request: (requests today, the daily maximum). Past a configured limit,
        REQUEST_LIMIT_EXCEEDED (the refused request is counted too, as Salesforce counts it)."""
        used = self.api_usage.count()
        if self.api_request_limit is not None and used > self.api_request_limit:
            raise errors.RequestLimitExceeded()
        return used, self.daily_api_requests_max

    @property
    def daily_api_requests_max(self) -> int:
        if self.api_request_limit is not None:
            return self.api_request_limit
        return DEFAULT_DAILY_API_REQUESTS

    def record_counts(self, names: list[str] | None) -> list[dict[str, Any]]:
        """Live records per object (``/limits/recordCount``): the named objects, in the order
        given (unknown names left out, as Salesforce leaves them out), or every stored one."""
        tables = self.store.meta.tables
        if names is None:
            found = [o.name for o in self.registry if o.name in tables]
        else:
            found = [o.name for n in names if (o := self.registry.get(n)) and o.name in tables]
        with self.store.reading() as conn:
            return [{"count": counts.live(conn, self.store.meta, n), "name": n} for n in found]

    # --- describe ---------------------------------------------------------------------------

    def describe_global(self, version: str) -> dict[str, Any]:
        return describe.describe_global(self.registry, version)

    def describe(self, name: str, version: str) -> dict[str, Any]:
        return describe.describe_object(self.registry, name, version)

    def basic_info(self, name: str, version: str) -> dict[str, Any]:
        obj = self._object(name, version)
        return {"objectDescribe": describe.object_summary(obj, version), "recentItems": []}

    def _object(self, name: str, version: str) -> model.ObjectDef:
        obj = self.registry.object(name)
        if not obj.visible_in(version):
            raise errors.NotFound("The requested resource does not exist")
        return obj

    # --- records ----------------------------------------------------------------------------

    def retrieve(
        self,
        session: accounts.Session,
        name: str,
        record_id: str,
        fields: list[str] | None,
        version: str,
    ) -> dict[str, Any]:
        """One record through SOQL (so visibility and shaping are the query's)."""
        obj = self._object(name, version)
        if not obj.supports("retrieve"):
            raise errors.MethodNotAllowed(f"entity type {obj.name} does not support retrieve")
        canonical = ids.parse_for_object(record_id, obj.key_prefix, obj.name)
        names = fields or [f.name for f in obj.fields_at(version)]
        soql = f"SELECT {', '.join(names)} FROM {obj.name} WHERE Id = '{canonical}'"
        result = self.queries.query(soql, self.caller(session), version=version)
        if not result["records"]:
            raise errors.NotFound("The requested resource does not exist")
        record: dict[str, Any] = result["records"][0]
        return record

    def retrieve_many(
        self,
        session: accounts.Session,
        name: str,
        wanted: Sequence[str],
        fields: Sequence[str],
        version: str,
    ) -> list[dict[str, Any] | None]:
        """Records by id in one query (sObject Collections' retrieve): in the order asked, None
        for an id that is malformed, of another object, or not visible to the session."""
        obj = self._object(name, version)
        if not obj.supports("retrieve"):
            raise errors.MethodNotAllowed(f"entity type {obj.name} does not support retrieve")
        canonical: list[str | None] = []
        for record_id in wanted:
            try:
                canonical.append(ids.parse_for_object(record_id, obj.key_prefix, obj.name))
            except errors.OpenCadenceError:
                canonical.append(None)
        found: dict[str, dict[str, Any]] = {}
        valid = sorted({c for c in canonical if c is not None})
        names = list(dict.fromkeys(fields))
        selected = names if any(n.lower() == "id" for n in names) else [*names, "Id"]
        for start in range(0, len(valid), 500):  # bounded IN lists
            quoted = ", ".join(f"'{c}'" for c in valid[start : start + 500])
            soql = f"SELECT {', '.join(selected)} FROM {obj.name} WHERE Id IN ({quoted})"
            for record in self.queries.query(soql, self.caller(session), version=version)[
                "records"
            ]:
                found[str(record["Id"])] = record
        if selected is not names:  # Id was added to match rows: not asked for
            for record in found.values():
                record.pop("Id", None)
        return [found.get(c) if c is not None else None for c in canonical]

    def create(
        self,
        session: accounts.Session,
        name: str,
        body: Mapping[str, Any],
        version: str,
        *,
        api: str = "rest",
        client: str = "",
        tx: records.Tx | None = None,
    ) -> str:
        obj = self._object(name, version)
        authorization.check_object(session.principal, obj.name, "create")
        self._check_visible_fields(obj, body, version)
        body, state = _split_state(obj, body)
        _own_transaction(tx, state is not None, "ActionCadence.State")
        if obj.name == "EmailTemplate":  # merge fields are checked when the template is saved
            templates.validate(body, self.registry)
        if obj.name == "Account":
            body = _person_account_name(body)
        with (
            records.duplicates_refused(),
            self._writing(session, version, api, client, tx) as tx,
        ):
            self._check_unique(tx, obj, body, None)
            record_id = tx.insert(obj.name, body)
            runtime.builder_edit(tx, obj.name, record_id)  # an active cadence's graph: checked
            self._after_write(tx, obj, record_id, body)
        if state is not None and state != "Draft":
            runtime.set_state(self.store, record_id, state, session.user_id)
        return record_id

    def update(
        self,
        session: accounts.Session,
        name: str,
        record_id: str,
        body: Mapping[str, Any],
        version: str,
        *,
        api: str = "rest",
        client: str = "",
        tx: records.Tx | None = None,
    ) -> None:
        obj = self._object(name, version)
        if not obj.supports("update"):
            raise errors.InvalidTypeForOperation(f"entity type {obj.name} does not support update")
        canonical = ids.parse_for_object(record_id, obj.key_prefix, obj.name)
        authorization.check_object(session.principal, obj.name, "update")
        self._check_visible_fields(obj, body, version)
        body, state = _split_state(obj, body)
        _own_transaction(tx, state is not None, "ActionCadence.State")
        if obj.name == "EmailTemplate":
            current = self.store.get(obj.name, canonical) or {}
            templates.validate({**current, **body}, self.registry)
        if body:
            with (
                records.duplicates_refused(),
                self._writing(session, version, api, client, tx) as tx,
            ):
                self._check_unique(tx, obj, body, canonical)
                runtime.builder_edit(tx, obj.name, canonical, body)
                if obj.name == "Lead":
                    _check_not_converted(tx, canonical)
                changed = tx.update(obj.name, canonical, body)
                if obj.name == "Account":
                    _sync_person_contact(tx, canonical, changed)
                if obj.name == "User":  # IsActive=false ends the user's sessions for good
                    self.accounts.end_sessions_if_inactive(tx.conn, canonical)
        if state is not None:
            runtime.set_state(self.store, canonical, state, session.user_id)

    def delete(
        self,
        session: accounts.Session,
        name: str,
        record_id: str,
        version: str,
        *,
        api: str = "rest",
        client: str = "",
        tx: records.Tx | None = None,
    ) -> None:
        obj = self._object(name, version)
        if not obj.supports("delete"):
            raise errors.InvalidTypeForOperation(f"entity type {obj.name} does not support delete")
        canonical = ids.parse_for_object(record_id, obj.key_prefix, obj.name)
        authorization.check_object(session.principal, obj.name, "delete")
        if (
            obj.name == "ActionCadenceStep"
        ):  # Orphaned before activation, Retired after (targets exit)
            _own_transaction(tx, True, "deleting an ActionCadenceStep")
            runtime.delete_step(self.store, canonical, session.user_id)
            return
        with self._writing(session, version, api, client, tx) as tx:
            if obj.name == TRACKER:  # takes the target out of the cadence in the same transaction
                runtime.delete_tracker(tx, canonical, self.caller(session).viewer)
            else:
                runtime.builder_edit(tx, obj.name, canonical)
                if obj.name in _TARGET_OBJECTS:  # a deleted target leaves its cadence
                    runtime.target_deleted(tx, _targets_of(tx, obj.name, canonical))
                tx.delete(obj.name, canonical)
                if obj.name == "Account":
                    _person_contact_too(tx, canonical, tx.delete)

    def undelete(
        self,
        session: accounts.Session,
        name: str,
        record_id: str,
        version: str,
        *,
        api: str = "rest",
        client: str = "",
        tx: records.Tx | None = None,
    ) -> None:
        """Restore a record from the recycle bin (UNDELETE_FAILED when it is not there)."""
        obj = self._object(name, version)
        if not obj.supports("undelete"):
            raise errors.InvalidTypeForOperation(
                f"entity type {obj.name} does not support undelete"
            )
        canonical = ids.parse_for_object(record_id, obj.key_prefix, obj.name)
        authorization.check_object(session.principal, obj.name, "undelete")
        with self._writing(session, version, api, client, tx) as tx:
            tx.undelete(obj.name, canonical)
            if obj.name == "Account":
                _person_contact_too(tx, canonical, tx.undelete)

    def external_id_field(self, name: str, key: str, version: str) -> model.FieldDef:
        """The field ``key`` of ``name`` that upserts and lookups match on: Id or a field the
        registry marks idLookup (Salesforce's standard objects have no externalId fields;
        their idLookup ones, such as Contact.Email, are what upsert accepts)."""
        obj = self._object(name, version)
        f = obj.field(key)
        if f is None or not f.visible_in(version) or not (f.id_lookup or f.name == "Id"):
            raise errors.InvalidField(
                f"Field name provided, {key} is not an External ID or indexed field for {obj.name}",
                fields=[key],
            )
        return f

    def matching_ids(
        self,
        session: accounts.Session,
        name: str,
        key: str,
        value: Any,
        version: str,
        *,
        limit: int = 2,
    ) -> list[str]:
        """Ids of the records the session can see whose ``key`` field equals ``value`` (as
        SOQL's = compares: case-insensitively), at most ``limit``."""
        obj = self._object(name, version)
        f = self.external_id_field(obj.name, key, version)
        if f.name == "Id":
            value = ids.parse_for_object(str(value), obj.key_prefix, obj.name)
        literal = str(value).replace("\\", "\\\\").replace("'", "\\'")
        soql = f"SELECT Id FROM {obj.name} WHERE {f.name} = '{literal}' LIMIT {limit}"
        return [str(r["Id"]) for r in self.query(session, soql, version)["records"]]

    def upsert(
        self,
        session: accounts.Session,
        name: str,
        key: str,
        value: Any,
        body: Mapping[str, Any],
        version: str,
        *,
        api: str = "rest",
        client: str = "",
        tx: records.Tx | None = None,
    ) -> tuple[str, bool]:
        """Create or update the record whose ``key`` field is ``value``: (id, created).
        Several matches: DUPLICATE_EXTERNAL_ID, carrying their ids. Upsert on Id with no value
        creates; on an Id that matches nothing, NOT_FOUND (the update's)."""
        obj = self._object(name, version)
        if not obj.supports("upsert"):
            raise errors.InvalidTypeForOperation(f"entity type {obj.name} does not support upsert")
        f = self.external_id_field(obj.name, key, version)
        rest = {k: v for k, v in body.items() if k.lower() not in ("id", f.name.lower())}
        if f.name == "Id":
            if value is None or value == "":
                return self.create(
                    session, obj.name, rest, version, api=api, client=client, tx=tx
                ), True
            found = ids.parse_for_object(str(value), obj.key_prefix, obj.name)
            self.update(session, obj.name, found, rest, version, api=api, client=client, tx=tx)
            return found, False
        if value is None or value == "":
            raise errors.MissingArgument(f"{f.name} not specified", fields=[f.name])
        matches = self.matching_ids(session, obj.name, f.name, value, version)
        if len(matches) > 1:
            every = self.matching_ids(session, obj.name, f.name, value, version, limit=2000)
            raise errors.DuplicateExternalId(
                f"{f.name}: more than one record found for external id field",
                fields=[f.name],
                matches=every,
            )
        if not matches:
            created = {**rest, f.name: value}
            return self.create(
                session, obj.name, created, version, api=api, client=client, tx=tx
            ), True
        self.update(session, obj.name, matches[0], rest, version, api=api, client=client, tx=tx)
        return matches[0], False

    def transaction(
        self, session: accounts.Session, version: str, *, api: str = "rest", client: str = ""
    ) -> AbstractContextManager[records.Tx]:
        """One transaction for several writes (SOAP's AllOrNoneHeader): pass it as ``tx=`` to
        create/update/delete/undelete and they all commit, or none does. What runs in its own
        transaction anyway (an ActionCadence's State, an ActionCadenceStep's delete) is not
        held back by it. Its writes are checked against the user's permissions and record
        access (docs/security-model.md). Inside an ambient transaction (an all-or-none
        composite request) it is that one."""
        ambient = records.AMBIENT.get()
        if ambient is not None:
            return nullcontext(ambient)
        return self.store.transaction(
            session.user_id, origin=_origin(version, api, client), principal=session.principal
        )

    def _writing(
        self,
        session: accounts.Session,
        version: str,
        api: str,
        client: str,
        tx: records.Tx | None,
    ) -> AbstractContextManager[records.Tx]:
        """A write on behalf of ``session`` (``records.Tx`` checks it against the user's
        permissions and record access), inside ``tx`` when the caller holds one."""
        if tx is not None:
            return nullcontext(tx)
        return self.transaction(session, version, api=api, client=client)  # or the ambient one

    def _check_unique(
        self, tx: records.Tx, obj: model.ObjectDef, body: Mapping[str, Any], record_id: str | None
    ) -> None:
        """Values Salesforce keeps unique, checked up front in the writing transaction."""
        if obj.name == "User":
            sets, username = accounts.username_of(body)
            if sets:
                self.accounts.check_username(tx.conn, username, except_id=record_id)
        elif obj.name == "EmailTemplate":
            self._check_developer_name(body, record_id)
        elif obj.name == "PermissionSetAssignment" and record_id is None:
            self._check_assignment(body)

    def _check_assignment(self, body: Mapping[str, Any]) -> None:
        """DUPLICATE_VALUE when the user already holds the permission set, as Salesforce
        refuses a second identical assignment."""
        given = {k.lower(): v for k, v in body.items()}
        user, granted = given.get("assigneeid"), given.get("permissionsetid")
        if not isinstance(user, str) or not isinstance(granted, str):
            return  # missing or mistyped: the write reports it
        try:
            user, granted = ids.parse(user), ids.parse(granted)
        except errors.OpenCadenceError:
            return
        soql = (
            "SELECT Id FROM PermissionSetAssignment "
            f"WHERE AssigneeId = '{user}' AND PermissionSetId = '{granted}' LIMIT 1"
        )
        if self.queries.query(soql)["records"]:
            raise errors.DuplicateValue(
                f"duplicate value found: PermissionSetId duplicates value on record with id: "
                f"{granted}",
                fields=["PermissionSetId"],
            )

    def _check_developer_name(self, body: Mapping[str, Any], record_id: str | None) -> None:
        """DUPLICATE_DEVELOPER_NAME when another live template has the DeveloperName ``body``
        sets (SOQL's = compares case-insensitively, as Salesforce compares unique names)."""
        name = next((v for k, v in body.items() if k.lower() == "developername"), None)
        if not isinstance(name, str) or not name:
            return  # not set here, or a bad value: the write reports it
        literal = name.replace("\\", "\\\\").replace("'", "\\'")
        soql = f"SELECT Id FROM EmailTemplate WHERE DeveloperName = '{literal}'"
        if record_id is not None:
            soql += f" AND Id != '{record_id}'"
        if self.queries.query(soql + " LIMIT 1")["records"]:
            raise errors.DuplicateDeveloperName()

    def _check_visible_fields(
        self, obj: model.ObjectDef, body: Mapping[str, Any], version: str
    ) -> None:
        for key in body:
            f = obj.field(key)
            if f is not None and not f.visible_in(version):
                raise errors.InvalidField(
                    f"No such column '{key}' on sobject of type {obj.name}", fields=[key]
                )

    def _after_write(
        self, tx: records.Tx, obj: model.ObjectDef, record_id: str, body: Mapping[str, Any]
    ) -> None:
        for hook in self.after_write.get(obj.name, ()):
            hook(tx, obj, record_id, body)

    # --- lead conversion --------------------------------------------------------------------

    def convert_lead(
        self,
        session: accounts.Session,
        request: conversion.LeadConvert,
        version: str,
        *,
        api: str = "rest",
        client: str = "",
    ) -> conversion.Converted:
        """Convert one lead for ``session``'s user, in one transaction (``cadence.conversion``):
        the Account, Contact and Opportunity written, the lead converted, its tracker
        completed with LeadConverted; any failure writes nothing."""
        with (
            records.duplicates_refused(),
            self.transaction(session, version, api=api, client=client) as tx,
        ):
            return conversion.convert(tx, request)

    # --- actions ----------------------------------------------------------------------------

    def invoke_action(
        self, session: accounts.Session, name: str, inputs: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """A Sales Engagement action for the session's user, limited to what they may act on
        (an admin acts on everything)."""
        results: list[dict[str, Any]] = self.actions.invoke(
            name, inputs, session.user_id, viewer=self.caller(session).viewer
        )
        return results

    # --- a rep's email on a manual SendAnEmail step ------------------------------------------

    def email_draft(self, session: accounts.Session, step_tracker_id: str) -> EmailDraft:
        """The composer of a manual SendAnEmail step: the template the step tracker uses
        (``selectTemplateForSalesCadenceStepTracker``, variants and splits honoured) rendered
        for its target as the signed-in user sends it. A check that would refuse the send
        (no email address, opted out, ...) is reported in ``problem``; the draft is empty."""
        sid, _, target_id = self._email_step(session, step_tracker_id)
        (chosen,) = self.invoke_action(
            session, "selectTemplateForSalesCadenceStepTracker", [{"stepTrackerId": sid}]
        )
        template_id = None
        if chosen["isSuccess"]:
            template_id = json.loads(chosen["outputValues"]["output"]).get("templateId")
        with self.store.reading() as conn:
            cache = checks.Cache(self.store, conn)
            # without a template the rep writes the email: only the other checks run
            blank = None if template_id else templates.Rendered("-", "-", None)
            try:
                p = checks.prepare(
                    cache,
                    auto=False,
                    template_id=template_id,
                    owner_id=session.user_id,
                    target_id=target_id,
                    composed=blank,
                )
            except checks.SendRefused as exc:
                return EmailDraft(sid, target_id, "", "", "", "", False, template_id, exc.message)
        if blank is not None:
            return EmailDraft(sid, target_id, p.sender, p.recipient, "", "", False, None, None)
        html = p.rendered.text is None
        body = (p.rendered.html if html else p.rendered.text) or ""
        return EmailDraft(
            sid, target_id, p.sender, p.recipient, p.rendered.subject, body, html, template_id, None
        )

    def send_step_email(
        self,
        session: accounts.Session,
        step_tracker_id: str,
        subject: str,
        body: str,
        *,
        html: bool = False,
        version: str = "62.0",
    ) -> None:
        """Send the rep's (edited) email of a manual SendAnEmail step and complete the step
        (AutomaticallyCompleted, ActionTakenDateTime: the action was taken), in one
        transaction with the outbox row; the relay gets it after the commit, as the runtime's
        emails (``email/smtp_sender.py``). Who may: as for the actions (the tracker's owner,
        a manager above them, an admin). A refused check (``checks.SendRefused``) changes
        nothing."""
        sid, tracker_id, target_id = self._email_step(session, step_tracker_id)
        composed = templates.Rendered(subject, None if html else body, body if html else None)
        email = OutgoingEmail(sid, None, session.user_id, target_id)
        user = session.user_id
        with self._mailer_lock:
            mailer = self.mailer if self.mailer is not None else no_relay.NoRelaySender(self.store)
            with self.store.transaction(user, origin=_origin(version, "web")) as tx:
                runtime.transition(
                    self.store,
                    tracker_id,
                    user,
                    lambda c, cad, s: cadence_engine.on_step_event(
                        c, cad, s, runtime.now_of(self.store), user, sid, "ActionTaken"
                    ),
                    self.actions.config,
                    tx,
                )
                mailer.begin(tx)
                try:
                    mailer.send_composed(email, composed, runtime.now_of(self.store))
                except BaseException:
                    mailer.after_commit()  # nothing staged survives the rollback
                    raise
            try:
                mailer.after_commit()
            finally:  # a rep's email is one message: no connection is kept to the relay
                close = getattr(mailer, "close", None)
                if close is not None:
                    close()

    def email_engagement(self, session: accounts.Session, target_id: str) -> list[dict[str, Any]]:
        """The target's cadence emails the user may see (their step trackers, through SOQL
        with the user's visibility), each with when it was sent, opened, clicked, replied to
        and bounced (the first of each, from the engagement log; an email recorded without a
        relay has no log, only its send time), oldest first."""
        canonical = ids.parse(target_id)
        found = self.query(
            session,
            "SELECT Id, StepTitle, StepType, State, ActionCadenceName, ActionTakenDateTime FROM "
            f"ActionCadenceStepTracker WHERE TargetId = '{canonical}' AND StepType IN "
            "('SendAnEmail', 'AutoSendAnEmail') ORDER BY CreatedDate, Id",
            "62.0",
        )["records"]
        by_key = {r["Id"]: {**r, "events": {}} for r in found}
        with self.store.reading() as conn:
            log = mail.event_log(self.store.meta).of_keys(conn, list(by_key))
        for key, kind, at in log:
            by_key[key]["events"].setdefault(kind, values.format_datetime(at))
        for r in by_key.values():  # sent without a relay (recorded only): the step's send time
            if r["ActionTakenDateTime"] and "send" not in r["events"]:
                r["events"]["send"] = r["ActionTakenDateTime"]
        return [r for r in by_key.values() if r["events"]]

    def _email_step(self, session: accounts.Session, step_tracker_id: str) -> tuple[str, str, str]:
        """(step tracker, tracker, target) of an open SendAnEmail step the user may act on;
        NOT_FOUND for one they may not (the answer does not say whether it exists)."""
        try:
            sid = ids.parse_for_object(step_tracker_id, self.registry.prefix(STEP), STEP)
        except (errors.OpenCadenceError, ValueError):
            raise errors.NotFound("That step does not exist or you cannot see it.") from None
        runs = RunStore(self.store)
        with self.store.reading() as conn:
            try:
                cadence_actions.Access(self.store, conn, self.caller(session).viewer).step(
                    sid, runs
                )
            except errors.InsufficientAccess:
                raise errors.NotFound("That step does not exist or you cannot see it.") from None
            tracker_id = runs.trackers_of_steps(conn, [sid]).get(sid)
        row = self.store.get(STEP, sid)
        if row is None or tracker_id is None:
            raise errors.NotFound("That step does not exist or you cannot see it.")
        if row["StepType"] != "SendAnEmail" or row["State"] not in ("Active", "InProgress"):
            raise errors.InvalidOperation("Only an open manual email step is sent from here.")
        return sid, tracker_id, str(row["TargetId"])

    # --- cadence definition files (the web app's builder) --------------------------------------

    def import_cadence(self, session: accounts.Session, data: Mapping[str, Any]) -> str:
        """Create a cadence from a definition (``cadence/definition_file.py``) for a user
        allowed to build cadences (INSUFFICIENT_ACCESS_OR_READONLY otherwise): owned by them,
        all or nothing, activated when it says ``state: Active``. Returns its Id."""
        authorization.check_object(session.principal, "ActionCadence", "create")
        if not isinstance(data, Mapping) or "cadence" not in data or "steps" not in data:
            raise errors.InvalidDefinition("a definition needs 'cadence' and 'steps'")
        if not isinstance(data["cadence"], Mapping) or not isinstance(data["steps"], list):
            raise errors.InvalidDefinition("'cadence' is a mapping and 'steps' a list")
        return definition_file.import_definition(self.store, data, session.user_id)

    def add_cadence_rule(
        self, session: accounts.Session, step_id: str, rule: Mapping[str, Any]
    ) -> str:
        """A rule of a step with its conditions, in the definition file's form
        (``{RuleName, RuleType, OutcomeNextStepName, conditions: [...]}``), for a user allowed
        to build cadences: ActionCadenceRuleCondition has no create call, so the builder adds a
        branch rule and its conditions together, as an import does. An edit of an active
        cadence is checked as activation checks it (``runtime.builder_edit``); a refused one
        changes nothing. Returns the rule's Id."""
        authorization.check_object(session.principal, "ActionCadenceRule", "create")
        canonical = ids.parse_for_object(step_id, self.registry.prefix(STEP_OBJECT), STEP_OBJECT)
        with self.transaction(session, "62.0", api="web") as tx:
            if tx.get(STEP_OBJECT, canonical) is None:
                raise errors.NotFound("The requested resource does not exist")
            rule_id = definition_file.insert_rule(tx, canonical, rule)
            runtime.builder_edit(tx, "ActionCadenceRule", rule_id)
        return rule_id

    def export_cadence(self, session: accounts.Session, cadence_id: str) -> dict[str, Any]:
        """The definition of a cadence the user can see (cadences are public read)."""
        canonical = ids.parse_for_object(
            cadence_id, self.registry.prefix("ActionCadence"), "ActionCadence"
        )
        found = self.query(
            session, f"SELECT Id FROM ActionCadence WHERE Id = '{canonical}'", "62.0"
        )
        if not found["records"]:
            raise errors.NotFound("The requested resource does not exist")
        return definition_file.export_definition(self.store, canonical)

    # --- query ------------------------------------------------------------------------------

    def caller(self, session: accounts.Session) -> execute.Caller:
        return execute.Caller(session.user_id, session.time_zone, view_all=session.is_admin)

    def query(
        self,
        session: accounts.Session,
        soql: str,
        version: str,
        *,
        include_deleted: bool = False,
        batch_size: int | None = None,
    ) -> dict[str, Any]:
        return self.queries.query(
            soql,
            self.caller(session),
            version=version,
            include_deleted=include_deleted,
            batch_size=batch_size,
        )

    def query_columns(self, session: accounts.Session, soql: str) -> dict[str, Any]:
        """The columns of ``soql`` (``/query?columns=true``), checked, not run."""
        return columns.describe(soql, self.registry)

    def query_more(self, session: accounts.Session, locator: str, version: str) -> dict[str, Any]:
        return self.queries.query_more(locator, self.caller(session), version=version)

    # --- search -----------------------------------------------------------------------------

    def search(self, session: accounts.Session, sosl: str, version: str) -> dict[str, Any]:
        """A SOSL search, limited to what the session's user may see."""
        return self.searches.search(sosl, self.caller(session), version=version)

    def parameterized_search(
        self, session: accounts.Session, params: Mapping[str, Any], version: str
    ) -> dict[str, Any]:
        return self.searches.parameterized(params, self.caller(session), version=version)

    # --- replication ------------------------------------------------------------------------

    def updated(
        self, session: accounts.Session, name: str, start: str, end: str, version: str
    ) -> dict[str, Any]:
        """getUpdated: ids whose SystemModstamp falls in [start, end), minute precision."""
        obj = self._replicable(name, version)
        lo, hi, latest = self._window(start, end, UPDATED_WINDOW)
        found = replication.updated_ids(
            self.store,
            obj.name,
            lo,
            hi,
            viewer=self.caller(session).viewer,
            limit=MAX_REPLICATION_IDS + 1,
        )
        _check_cap(found)
        return {"ids": found, "latestDateCovered": values.format_datetime(latest)}

    def deleted(
        self, session: accounts.Session, name: str, start: str, end: str, version: str
    ) -> dict[str, Any]:
        """getDeleted: records deleted in [start, end) that are still in the deleted log."""
        obj = self._replicable(name, version)
        lo, hi, latest = self._window(start, end, DELETED_WINDOW)
        rows, earliest = replication.deleted(
            self.store,
            obj.name,
            lo,
            hi,
            viewer=self.caller(session).viewer,
            limit=MAX_REPLICATION_IDS + 1,
        )
        _check_cap(rows)
        return {
            "deletedRecords": [
                {"id": r[0], "deletedDate": values.format_datetime(r[1])} for r in rows
            ],
            "earliestDateAvailable": values.format_datetime(earliest or lo),
            "latestDateCovered": values.format_datetime(latest),
        }

    def _replicable(self, name: str, version: str) -> model.ObjectDef:
        obj = self._object(name, version)
        if not obj.supports("getUpdated"):
            raise errors.InvalidTypeForOperation(f"entity type {obj.name} is not replicateable")
        return obj

    def _window(
        self, start: str, end: str, window: timedelta
    ) -> tuple[datetime, datetime, datetime]:
        """Parse and check a replication window; seconds are truncated, as Salesforce does."""
        lo, hi = _minute(_parse_when(start, "start")), _minute(_parse_when(end, "end"))
        now = self.store.clock.now().replace(tzinfo=None)
        if lo >= hi:
            raise errors.InvalidReplicationDate(
                "startDate must chronologically precede endDate by more than one minute"
            )
        if lo < _minute(now) - window:
            raise errors.InvalidReplicationDate(
                f"startDate cannot be more than {window.days} days ago"
            )
        latest = min(hi, _minute(now))
        return lo, hi, latest


def _split_state(
    obj: model.ObjectDef, body: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """ActionCadence.State goes through activation (the whole graph is validated first)."""
    rest = dict(body)
    if obj.name != "ActionCadence":
        return rest, None
    state = rest.pop("State", None)
    if state is not None:
        values.to_db(obj.by_name["state"], state)  # a bad value fails before anything is written
    return rest, state


def _own_transaction(tx: records.Tx | None, needed: bool, what: str) -> None:
    """The runtime writes these in a transaction of its own: not inside a caller's."""
    if (tx is not None or records.AMBIENT.get() is not None) and needed:
        raise errors.InvalidOperation(f"{what} cannot be written in an all-or-none call")


#: A person account's fields -> its person contact's, kept in step by the account (the contact
#: is the cadence target: docs/runtime-decisions.md "Person accounts").
PERSON_FIELDS: Mapping[str, str] = {
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Salutation": "Salutation",
    "PersonEmail": "Email",
    "PersonMobilePhone": "MobilePhone",
    "PersonHasOptedOutOfEmail": "HasOptedOutOfEmail",
    "PersonDoNotCall": "DoNotCall",
    "OwnerId": "OwnerId",
}


def _given(body: Mapping[str, Any], name: str) -> Any:
    return next((v for k, v in body.items() if k.lower() == name.lower()), None)


def _person_account_name(body: Mapping[str, Any]) -> dict[str, Any]:
    """An Account created with a LastName is a person account: its Name is "First Last"."""
    out = dict(body)
    last = _given(body, "LastName")
    if isinstance(last, str) and last:
        first = _given(body, "FirstName")
        out = {k: v for k, v in out.items() if k.lower() != "name"}
        out["Name"] = f"{first} {last}" if isinstance(first, str) and first else last
    return out


def _person_account_created(
    tx: records.Tx, obj: model.ObjectDef, record_id: str, body: Mapping[str, Any]
) -> None:
    """A person account gets its person contact (IsPersonAccount, on the account), in the
    transaction that creates it."""
    if not _given(body, "LastName"):
        return
    account = tx.get("Account", record_id) or {}
    contact = {c: account.get(a) for a, c in PERSON_FIELDS.items() if account.get(a) is not None}
    contact.update(AccountId=record_id, IsPersonAccount=True)
    contact_id = tx.insert("Contact", contact, system=True)
    tx.update(
        "Account", record_id, {"IsPersonAccount": True, "PersonContactId": contact_id}, system=True
    )


#: Objects whose records a cadence targets (an Account as a person account).
_TARGET_OBJECTS = frozenset({"Contact", "Lead", "Account"})


def _targets_of(tx: records.Tx, name: str, record_id: str) -> list[str]:
    """The cadence target ids a delete of ``record_id`` takes away: the record, and for a
    person account its person contact too."""
    if name != "Account":
        return [record_id]
    account = tx.get("Account", record_id) or {}
    return [record_id, account.get("PersonContactId") or ""]


def _person_contact_too(tx: records.Tx, account_id: str, write: Callable[..., None]) -> None:
    """A person account's contact is deleted and undeleted with it (same transaction)."""
    account = tx.get("Account", account_id, include_deleted=True) or {}
    contact_id = account.get("PersonContactId")
    if not account.get("IsPersonAccount") or not contact_id:
        return
    contact = tx.get("Contact", contact_id, include_deleted=True) or {}
    if contact and bool(contact["IsDeleted"]) != bool(account["IsDeleted"]):
        write("Contact", contact_id, system=True)


def _sync_person_contact(tx: records.Tx, account_id: str, changed: Sequence[str]) -> None:
    """A person account's changed person fields go to its contact (and First/Last to Name)."""
    moved = [f for f in changed if f in PERSON_FIELDS]
    if not moved:
        return
    account = tx.get("Account", account_id) or {}
    contact_id = account.get("PersonContactId")
    if not account.get("IsPersonAccount") or not contact_id:
        return
    tx.update("Contact", contact_id, {PERSON_FIELDS[f]: account.get(f) for f in moved}, system=True)
    if {"FirstName", "LastName"} & set(moved) and account.get("LastName"):
        named = _person_account_name(account)["Name"]
        tx.update("Account", account_id, {"Name": named}, system=True)


def _check_not_converted(tx: records.Tx, lead_id: str) -> None:
    """A converted lead can't be changed (CANNOT_UPDATE_CONVERTED_LEAD), as Salesforce's."""
    lead = tx.get("Lead", lead_id)
    if lead is not None and lead.get("IsConverted"):
        raise errors.CannotUpdateConvertedLead()


def _task_created(
    tx: records.Tx, obj: model.ObjectDef, record_id: str, body: Mapping[str, Any]
) -> None:
    """A Task logged as a call completes the target's MakeACall step (same transaction)."""
    if body.get("TaskSubtype") == "Call":
        runtime.on_task_created(tx.store, record_id, tx=tx)


def _parse_when(text: str, name: str) -> datetime:
    """ISO-8601 with an offset; simple-salesforce's naive form (trailing ':') is taken as UTC."""
    if not text or not _ISO.match(text):
        raise errors.InvalidReplicationDate(f"{name}: invalid date/time format: {text}")
    try:
        return (
            values.parse_datetime(text.rstrip(":"))
            if text.endswith(":")
            else values.parse_datetime(text)
        )
    except ValueError:
        raise errors.InvalidReplicationDate(f"{name}: invalid date/time: {text}") from None


def _minute(when: datetime) -> datetime:
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.replace(second=0, microsecond=0)


def _check_cap(found: Sized) -> None:
    if len(found) > MAX_REPLICATION_IDS:
        raise errors.ExceededIdLimit(
            "The number of records is greater than 600,000: narrow the date range"
        )


def _origin(version: str, api: str = "rest", client: str = "") -> str:
    """The change events' changeOrigin: ``com/salesforce/api/{rest|soap}/{version}``, with
    ``;client=ID`` when the call named its client (SOAP CallOptions)."""
    origin = f"com/salesforce/api/{api}/{version}"
    return f"{origin};client={client}" if client else origin


R = TypeVar("R")


class _RecordFailed(Exception):
    def __init__(self, index: int, error: errors.OpenCadenceError) -> None:
        super().__init__(error.message)
        self.index, self.error = index, error


def partial_success(
    count: int,
    together: Callable[[], AbstractContextManager[records.Tx | None]],
    alone: Callable[[], AbstractContextManager[records.Tx | None]],
    write: Callable[[records.Tx | None, int], R],
    tries: int,
) -> list[R | errors.OpenCadenceError]:
    """Partial success as Salesforce saves it (sObject Collections with allOrNone false, Bulk
    API rows): records 0..count-1 are written in one ``together`` transaction; one that fails is
    taken out and the rest tried again (up to ``tries`` times), so those that succeed commit
    together. Each record taken out, and whatever is left after the last try, is then written
    in an ``alone`` transaction of its own. Returns each record's result or its error."""
    out: dict[int, R | errors.OpenCadenceError] = {}
    pending = list(range(count))
    taken_out: list[int] = []
    for _ in range(tries):
        done: dict[int, R] = {}
        try:
            with together() as tx:
                for index in pending:
                    try:
                        done[index] = write(tx, index)
                    except errors.OpenCadenceError as exc:
                        raise _RecordFailed(index, exc) from None
        except _RecordFailed as failed:
            pending.remove(failed.index)
            taken_out.append(failed.index)
            continue
        out.update(done)
        pending = []
        break
    for index in sorted(taken_out + pending):
        try:
            with alone() as tx:
                out[index] = write(tx, index)
        except errors.OpenCadenceError as exc:
            out[index] = exc
    return [out[i] for i in range(count)]
