"""The SOAP calls, for the partner (``/services/Soap/u/{version}[/{orgId}]``) and enterprise
(``/services/Soap/c/...``) APIs: every call goes through ``Org``, as REST does, so visibility,
validation, the write path, change events and error codes are shared. This module only reads the
call's elements and writes its result (typed enterprise records: ``enterprise``).

The envelope is parsed once; the session in ``SessionHeader`` is checked before anything of the
body is read; then the operation is dispatched. The partner ``login`` is answered by
``api.oauth`` (after this module's envelope checks); the enterprise one here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opencadence import errors, ids
from opencadence.api import bodies, oauth, versions
from opencadence.api.soap import enterprise, envelope, schema
from opencadence.api.soap.envelope import Call, sub
from opencadence.cadence import conversion
from opencadence.metadata.registry import Registry
from opencadence.org import Org
from opencadence.storage import accounts, migrate, records, values

#: Records per create/update/upsert/delete/undelete call; ids per retrieve (Salesforce's).
MAX_RECORDS = 200
MAX_RETRIEVE = 2000
MAX_DESCRIBE = 100
MAX_CLIENT = 255  # characters of a CallOptions client id kept
API = "soap"


@dataclass
class Context:
    org: Org
    session: accounts.Session
    version: str
    token: str
    call: Call
    flavor: schema.Flavor = schema.PARTNER
    #: (API requests today, the daily limit): the response's LimitInfoHeader
    usage: tuple[int, int] | None = None

    @property
    def registry(self) -> Registry:
        return self.org.registry

    @property
    def client(self) -> str:
        """CallOptions ``client``: it goes into the change events' changeOrigin."""
        return (self.call.header("CallOptions", "client") or "").strip()[:MAX_CLIENT]


Operation = Callable[[Context, ET.Element], None]


def endpoint(flavor: schema.Flavor) -> Callable[[Request], Awaitable[Response]]:
    """The POST handler of ``/services/Soap/{u|c}/{version}[/{orgId}]``."""

    async def run(request: Request) -> Response:
        org: Org = request.app.state.org
        try:
            call = envelope.parse(await _read_bounded(request))
        except envelope.ClientFault as exc:
            return envelope.client_fault(exc.message, flavor, exc.status)
        try:
            version = _version(request)
        except errors.OpenCadenceError as exc:
            return envelope.error_fault(exc, flavor)
        if call.operation == "login" and not flavor.typed:
            return await oauth.soap_login(request)
        if call.operation == "login":
            return await run_in_threadpool(_login, org, call, version, _base(request), flavor)
        return await run_in_threadpool(_run, org, call, version, flavor)

    return run


async def _read_bounded(request: Request) -> bytes:
    """The body, refused past ``envelope.MAX_BYTES`` without reading the rest (``api.bodies``:
    a declared Content-Length that is too large is refused before anything is read)."""
    try:
        raw = await bodies.read(request, envelope.MAX_BYTES)
    except errors.RequestTooLarge as exc:
        raise envelope.ClientFault(f"EXCEEDED_MAX_SIZE_REQUEST: {exc.message}", 413) from None
    request._body = raw  # Starlette's cache of body(): api.oauth's login reads the same bytes
    return raw


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _version(request: Request) -> str:
    """The URL's version, served range only; the org id of a serverUrl must be this org's."""
    version: str = request.path_params["version"]
    try:
        versions.check(version)
    except errors.NotFound:
        raise errors.UnsupportedApiVersion("Invalid Api version specified on URL") from None
    org_id = request.path_params.get("org")
    if org_id is not None and org_id not in (migrate.ORG_ID, migrate.ORG_ID[:15]):
        raise errors.InvalidSession("Invalid Session ID found in SessionHeader: Illegal Session")
    return version


def _run(org: Org, call: Call, version: str, flavor: schema.Flavor) -> Response:
    try:
        ctx = _authenticate(org, call, version, flavor)
        operation = OPERATIONS.get(call.operation)
        if operation is None:
            return envelope.client_fault(
                f"No operation available for request {{{flavor.api_ns}}}{call.operation}", flavor
            )
        root, result = envelope.response_root(call.operation, flavor, ctx.usage)
        operation(ctx, result)
        return envelope.to_response(root)
    except errors.OpenCadenceError as exc:
        return envelope.error_fault(exc, flavor)


def _login(org: Org, call: Call, version: str, base: str, flavor: schema.Flavor) -> Response:
    """The enterprise ``login`` (the partner one is ``api.oauth``'s): a LoginResult whose
    serverUrl is this flavor's endpoint."""
    username = (envelope.text_of(call.body, "username") or "").strip()
    try:
        user_id = org.accounts.authenticate(
            username, envelope.text_of(call.body, "password") or "", token_suffix=True
        )
    except errors.LoginFailed:
        return envelope.fault(
            "INVALID_LOGIN",
            "Invalid username, password, security token; or user locked out.",
            flavor=flavor,
        )
    token = org.accounts.open_session(user_id, client="soap")
    session = org.accounts.session(token)
    org15 = migrate.ORG_ID[:15]
    root, result = envelope.response_root("login", flavor)
    data = {
        "metadataServerUrl": f"{base}/services/Soap/m/{version}/{org15}",
        "passwordExpired": False,
        "sandbox": False,
        "serverUrl": f"{base}/services/Soap/{flavor.letter}/{version}/{org15}",
        "sessionId": token,
        "userId": user_id,
        "userInfo": user_info(org, session),
    }
    envelope.write_type(sub(result, "result"), "LoginResult", data)
    return envelope.to_response(root)


def _authenticate(org: Org, call: Call, version: str, flavor: schema.Flavor) -> Context:
    token = (call.header("SessionHeader", "sessionId") or "").strip()
    try:
        if not token:
            raise errors.InvalidSession()
        session = org.accounts.session(token)
    except errors.InvalidSession:
        raise errors.InvalidSession(
            "Invalid Session ID found in SessionHeader: Illegal Session"
        ) from None
    # an authenticated call counts, as over REST (and may be refused); the count goes back in
    # the LimitInfoHeader, as REST's goes back in Sforce-Limit-Info
    usage = org.count_api_request()
    return Context(org, session, version, token, call, flavor, usage)


# --- session and describe -------------------------------------------------------------------


def logout(ctx: Context, result: ET.Element) -> None:
    ctx.org.accounts.revoke(ctx.token)


def get_user_info(ctx: Context, result: ET.Element) -> None:
    envelope.write_type(sub(result, "result"), "GetUserInfoResult", user_info(ctx.org, ctx.session))


def user_info(org: Org, session: accounts.Session) -> dict[str, Any]:
    user = org.store.get("User", session.user_id) or {}
    return {
        "accessibilityMode": False,
        "currencySymbol": "$",
        "orgDefaultCurrencyIsoCode": "USD",
        "organizationId": migrate.ORG_ID,
        "organizationMultiCurrency": False,
        "organizationName": "opencadence",
        "profileId": user.get("ProfileId"),
        "sessionSecondsValid": int(accounts.DEFAULT_SESSION_TTL.total_seconds()),
        "userEmail": user.get("Email"),
        "userFullName": user.get("Name"),
        "userId": session.user_id,
        "userLanguage": "en_US",
        "userLocale": "en_US",
        "userName": user.get("Username"),
        "userTimeZone": session.time_zone,
        "userType": "Standard",
        "userUiSkin": "Theme3",
    }


def get_server_timestamp(ctx: Context, result: ET.Element) -> None:
    now = values.format_datetime(ctx.org.store.clock.now())
    envelope.write_type(sub(result, "result"), "GetServerTimestampResult", {"timestamp": now})


def describe_global(ctx: Context, result: ET.Element) -> None:
    data = ctx.org.describe_global(ctx.version)
    envelope.write_type(sub(result, "result"), "DescribeGlobalResult", data)


def describe_sobject(ctx: Context, result: ET.Element) -> None:
    name = _required(ctx.call.body, "sObjectType")
    envelope.write_type(
        sub(result, "result"), "DescribeSObjectResult", ctx.org.describe(name, ctx.version)
    )


def describe_sobjects(ctx: Context, result: ET.Element) -> None:
    names = envelope.texts_of(ctx.call.body, "sObjectType")
    if len(names) > MAX_DESCRIBE:
        raise errors.ExceededIdLimit(f"describeSObjects takes at most {MAX_DESCRIBE} types")
    described = [ctx.org.describe(name, ctx.version) for name in names]  # all or one fault
    for data in described:
        envelope.write_type(sub(result, "result"), "DescribeSObjectResult", data)


def _required(node: ET.Element, name: str) -> str:
    value = envelope.text_of(node, name)
    if value is None or not value.strip():
        raise errors.InvalidOperation(f"The required element {name} is missing")
    return value.strip()


# --- queries --------------------------------------------------------------------------------


def _batch_size(ctx: Context) -> int | None:
    value = (ctx.call.header("QueryOptions", "batchSize") or "").strip()
    return int(value) if value.isdigit() else None


def _query(include_deleted: bool) -> Operation:
    def run(ctx: Context, result: ET.Element) -> None:
        soql = envelope.text_of(ctx.call.body, "queryString")
        if not soql or not soql.strip():
            raise errors.MalformedQuery("A query string has to be specified")
        page = ctx.org.query(
            ctx.session,
            soql,
            ctx.version,
            include_deleted=include_deleted,
            batch_size=_batch_size(ctx),
        )
        write_query_result(ctx, sub(result, "result"), page)

    return run


def query_more(ctx: Context, result: ET.Element) -> None:
    locator = _required(ctx.call.body, "queryLocator")
    page = ctx.org.query_more(ctx.session, locator, ctx.version)
    write_query_result(ctx, sub(result, "result"), page)


def search(ctx: Context, result: ET.Element) -> None:
    """SearchResult: queryId, then a searchRecords (its sObject ``record``) per record found."""
    sosl = envelope.text_of(ctx.call.body, "searchString")
    if not sosl or not sosl.strip():
        raise errors.MalformedSearch(
            "No search term found. The search term must be enclosed in braces."
        )
    found = ctx.org.search(ctx.session, sosl, ctx.version)
    node = sub(result, "result")
    sub(node, "queryId", "")
    for record in found["searchRecords"]:
        write_sobject(ctx, sub(node, "searchRecords"), "record", record)


def write_query_result(ctx: Context, node: ET.Element, page: dict[str, Any]) -> None:
    """QueryResult: done, queryLocator (the locator of REST's nextRecordsUrl), records, size."""
    out: list[str] = []
    page_markup(ctx, page, out)
    envelope.raw(node, "".join(out))


def write_sobject(ctx: Context, parent: ET.Element, tag: str, record: dict[str, Any]) -> None:
    """A partner ``sObject`` (or an enterprise typed record) as the element ``tag``."""
    out: list[str] = []
    sobject_markup(ctx, tag, record, out)
    envelope.raw(parent, "".join(out))


# Records are written straight to markup (a 2,000-record page as an element tree cost several
# times the query); the tags of each object's fields are built once (``_partner_plan``) and
# every value goes through ``escape_text``, as the tree writer escapes it: the same bytes.


def page_markup(ctx: Context, page: dict[str, Any], out: list[str]) -> None:
    """The QueryResult's elements (its own element is the caller's)."""
    append = out.append
    append("<done>true</done>" if page["done"] else "<done>false</done>")
    next_url = page.get("nextRecordsUrl")
    if next_url:
        append("<queryLocator>" + _esc(next_url.rsplit("/", 1)[-1]) + "</queryLocator>")
    else:
        append('<queryLocator xsi:nil="true"/>')
    for record in page["records"]:
        sobject_markup(ctx, "records", record, out)
    append("<size>" + str(page["totalSize"]) + "</size>")


def sobject_markup(ctx: Context, tag: str, record: dict[str, Any], out: list[str]) -> None:
    """A partner ``sObject``: type, Id (nil when not selected), then the fields in the sObject
    namespace as selected (Id again among them, as Salesforce sends it), parents nested as
    sObjects and child subqueries as QueryResults."""
    if ctx.flavor.typed:
        enterprise.record_markup(
            ctx.registry,
            tag,
            record,
            ctx.version,
            out,
            lambda page, into: page_markup(ctx, page, into),
        )
        return
    append = out.append
    kind = record.get("attributes", {}).get("type", "")
    plan = _partner_plan(ctx.registry, kind, tag, tuple(record))
    append(plan.head)
    record_id = record.get("Id")
    append("<sf:Id>" + _esc(str(record_id)) + "</sf:Id>" if record_id else _NIL_ID)
    for key, start, end, null, is_datetime in plan.fields:
        value = record[key]
        if value.__class__ is str:  # most values: checked first
            if is_datetime:
                value = envelope.soap_datetime(value)
            if "&" in value or "<" in value or ">" in value:
                value = _escape(value)
            append(start + value + end)
        elif value is None:
            append(null)
        elif value is True:
            append(start + "true" + end)
        elif value is False:
            append(start + "false" + end)
        elif isinstance(value, dict):
            if "records" in value:
                append(start[:-1] + ' xsi:type="QueryResult">')
                page_markup(ctx, value, out)
                append(end)
            else:
                sobject_markup(ctx, start[1:-1], value, out)
        elif is_datetime:
            append(start + _esc(envelope.soap_datetime(str(value))) + end)
        else:
            append(start + _esc(str(value)) + end)
    append(plan.tail)


_esc = envelope.escape_text
_escape = escape
_NIL_ID = '<sf:Id xsi:nil="true"/>'


@dataclass(frozen=True)
class _Plan:
    head: str  # the element's start tag and its sf:type
    tail: str
    #: (key, start tag, end tag, nil element, is a datetime field) per key of the record
    fields: tuple[tuple[str, str, str, str, bool], ...]


@lru_cache(maxsize=1024)
def _partner_plan(registry: Registry, kind: str, tag: str, keys: tuple[str, ...]) -> _Plan:
    datetimes = _datetime_fields(registry, kind)
    fields = tuple(
        (
            key,
            f"<sf:{key}>",
            f"</sf:{key}>",
            f'<sf:{key} xsi:nil="true"/>',
            key.lower() in datetimes,
        )
        for key in keys
        if key != "attributes"
    )
    head = f'<{tag} xsi:type="sf:sObject"><sf:type>{_esc(kind)}</sf:type>'
    return _Plan(head, f"</{tag}>", fields)


@lru_cache(maxsize=256)
def _datetime_fields(registry: Registry, kind: str) -> frozenset[str]:
    """Lower-case names of an object's datetime fields (written as xsd:dateTime, ``...Z``)."""
    obj = registry.get(kind)
    if obj is None:
        return frozenset()
    return frozenset(f.name.lower() for f in obj.fields if f.type == "datetime")


def retrieve(ctx: Context, result: ET.Element) -> None:
    """retrieve(fieldList, sObjectType, ids[]): one sObject per id, in order, nil if not found."""
    body = ctx.call.body
    fields = [f.strip() for f in _required(body, "fieldList").split(",") if f.strip()]
    name = _required(body, "sObjectType")
    wanted = envelope.texts_of(body, "ids")
    if len(wanted) > MAX_RETRIEVE:
        raise errors.ExceededIdLimit(f"retrieve takes at most {MAX_RETRIEVE} ids")
    for record_id in wanted:
        try:
            record = ctx.org.retrieve(ctx.session, name, record_id, fields, ctx.version)
        except errors.NotFound:
            envelope.nil(result, "result")
            continue
        write_sobject(ctx, result, "result", record)


# --- replication ----------------------------------------------------------------------------


def _window(ctx: Context) -> tuple[str, str, str]:
    body = ctx.call.body
    return (
        _required(body, "sObjectType"),
        envelope.text_of(body, "startDate") or "",
        envelope.text_of(body, "endDate") or "",
    )


def get_updated(ctx: Context, result: ET.Element) -> None:
    name, start, end = _window(ctx)
    data = ctx.org.updated(ctx.session, name, start.strip(), end.strip(), ctx.version)
    envelope.write_type(sub(result, "result"), "GetUpdatedResult", data)


def get_deleted(ctx: Context, result: ET.Element) -> None:
    name, start, end = _window(ctx)
    data = ctx.org.deleted(ctx.session, name, start.strip(), end.strip(), ctx.version)
    envelope.write_type(sub(result, "result"), "GetDeletedResult", data)


# --- writes ---------------------------------------------------------------------------------


@dataclass
class Reference:
    """A parent named by one of its idLookup fields instead of its Id: the partner API's nested
    sObject under the relationship name (``<Owner><type>User</type><Username>…``), the
    enterprise API's typed relationship element (``<Owner><Username>…``)."""

    relationship: str
    type: str  # as sent ("" when not named: the relationship's one target object)
    keys: dict[str, str]  # field -> value (exactly one is valid)


@dataclass
class Incoming:
    """One ``sObjects`` element of a create/update/upsert call."""

    type: str
    id: str | None
    fields: dict[str, Any]
    references: list[Reference] = field(default_factory=list)


def read_sobject(node: ET.Element, typed: bool = False) -> Incoming:
    """type (the enterprise API's is the xsi:type), Id, the fields by local name (``fieldsToNull``
    sets null, and so does xsi:nil in the partner API; typed .NET proxies send every unset
    element as xsi:nil, which the enterprise API ignores); nested elements are parents by
    external id."""
    kind, record_id = (enterprise.sobject_type(node) if typed else ""), None
    fields: dict[str, Any] = {}
    references: list[Reference] = []
    for child in node:
        name = envelope.local(child.tag)
        if name == "type" and not typed:
            kind = (child.text or "").strip()
        elif name == "Id":
            record_id = (child.text or "").strip() or None
        elif name == "fieldsToNull":
            fields[(child.text or "").strip()] = None
        elif len(child):
            references.append(_reference(child, name, typed))
        elif envelope.is_nil(child):
            if not typed:  # the enterprise API ignores a nil element: fieldsToNull sets null
                fields[name] = None
        else:
            fields[name] = child.text or ""
    if not kind:
        raise errors.InvalidType("Must send a concrete entity type.")
    return Incoming(kind, record_id, fields, references)


def _reference(node: ET.Element, relationship: str, typed: bool) -> Reference:
    kind = enterprise.sobject_type(node) if typed else ""
    keys: dict[str, str] = {}
    for child in node:
        name = envelope.local(child.tag)
        if name == "type" and not typed:
            kind = (child.text or "").strip()
        elif name == "fieldsToNull" or envelope.is_nil(child) or len(child):
            continue  # zeep sends the sObject's required Id as nil
        else:
            keys[name] = (child.text or "").strip()
    return Reference(relationship, kind, keys)


def _resolved(ctx: Context, item: Incoming) -> dict[str, Any]:
    """The record's fields with each parent reference replaced by the parent's Id, matched as
    REST's upsert matches (``Org.external_id_field``/``matching_ids``: the session's visible
    records, case-insensitively). Errors are the record's own, as Salesforce reports them."""
    if not item.references:
        return item.fields
    fields = dict(item.fields)
    obj = ctx.registry.object(item.type)
    for ref in item.references:
        f = next(
            (
                f
                for f in obj.fields_at(ctx.version)
                if f.relationship_name and f.relationship_name.lower() == ref.relationship.lower()
            ),
            None,
        )
        if f is None:
            raise errors.InvalidField(
                f"No such column '{ref.relationship}' on entity '{obj.name}'. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after "
                "the custom relationship name.",
                fields=[ref.relationship],
            )
        targets = [t for t in f.reference_to if t in ctx.registry]
        named = ref.type or (targets[0] if len(targets) == 1 else "")
        target = next((t for t in targets if t.lower() == named.lower()), None)
        if target is None:
            raise errors.InvalidField(
                f"Invalid foreign key relationship {f.relationship_name}: "
                + (f"{named} is not one of {', '.join(targets)}" if named else "no type named"),
                fields=[f.name],
            )
        if len(ref.keys) != 1:
            raise errors.InvalidField(
                f"More than 1 field provided in an external foreign key reference in entity: "
                f"{target}"
                if ref.keys
                else f"No external id field provided in the foreign key reference {ref.relationship}"
            )
        ((key, value),) = ref.keys.items()
        key_field = ctx.org.external_id_field(target, key, ctx.version)
        found = ctx.org.matching_ids(ctx.session, target, key_field.name, value, ctx.version)
        if not found:
            raise errors.InvalidField(
                f"Foreign key external ID: {value} not found for field {key_field.name} "
                f"in entity {target}"
            )
        if len(found) > 1:
            raise errors.DuplicateExternalId(
                f"Foreign key external ID: {value} matched more than one record for field "
                f"{key_field.name} in entity {target}",
                matches=found,
            )
        fields[f.name] = found[0]
    return fields


def _records(ctx: Context) -> list[Incoming]:
    nodes = envelope.children(ctx.call.body, "sObjects")
    _check_count(len(nodes))
    incoming = [read_sobject(n, ctx.flavor.typed) for n in nodes]
    for item in incoming:  # an unknown type faults the call, as Salesforce does
        ctx.registry.object(item.type)
    return incoming


def _check_count(count: int) -> None:
    if count > MAX_RECORDS:
        raise errors.ExceededIdLimit(
            f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call"
        )


def _all_or_none(ctx: Context) -> bool:
    return (ctx.call.header("AllOrNoneHeader", "allOrNone") or "").strip().lower() in ("true", "1")


#: One record's write: (the record's transaction or None, its input) -> (id, created).
Write = Callable[[records.Tx | None, Any], tuple[str | None, bool]]
#: One record's outcome: (id, created, error or None).
Outcome = tuple[str | None, bool, errors.OpenCadenceError | None]


class RolledBack(errors.OpenCadenceError):
    """Record rolled back because not all records were valid and the request was using AllOrNone header"""

    error_code = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


class _Failed(Exception):
    def __init__(self, index: int, error: errors.OpenCadenceError) -> None:
        super().__init__(error.message)
        self.index, self.error = index, error


def _save(ctx: Context, items: list[Any], ids_of: list[str | None], write: Write) -> list[Outcome]:
    """Each record on its own (the default), or with ``allOrNone`` all in one transaction that
    the first failure rolls back: that record gets its error, every other one
    ALL_OR_NONE_OPERATION_ROLLED_BACK (records after the failure are not tried)."""
    if not _all_or_none(ctx):
        out: list[Outcome] = []
        for item, known in zip(items, ids_of):
            try:
                out.append((*write(None, item), None))
            except errors.OpenCadenceError as exc:
                out.append((known, False, exc))
        return out
    try:
        with ctx.org.transaction(ctx.session, ctx.version, api=API, client=ctx.client) as tx:
            done: list[Outcome] = []
            for index, item in enumerate(items):
                try:
                    done.append((*write(tx, item), None))
                except errors.OpenCadenceError as exc:
                    raise _Failed(index, exc) from None
        return done
    except _Failed as failed:
        return [
            (known, False, failed.error if i == failed.index else RolledBack())
            for i, known in enumerate(ids_of)
        ]


def _outcome(node: ET.Element, outcome: Outcome, *, upsert: bool = False) -> None:
    record_id, created, exc = outcome
    if upsert:
        sub(node, "created", "true" if created and exc is None else "false")
    if exc is not None:
        error = sub(node, "errors")
        for f in exc.fields:
            sub(error, "fields", f)
        sub(error, "message", exc.message)
        sub(error, "statusCode", exc.error_code)
    if record_id:
        sub(node, "id", record_id)
    else:
        envelope.nil(node, "id")
    sub(node, "success", "true" if exc is None else "false")


def _write_results(result: ET.Element, outcomes: list[Outcome], *, upsert: bool = False) -> None:
    for outcome in outcomes:
        _outcome(sub(result, "result"), outcome, upsert=upsert)


def create(ctx: Context, result: ET.Element) -> None:
    def write(tx: records.Tx | None, item: Incoming) -> tuple[str | None, bool]:
        body = _resolved(ctx, item)
        new_id = ctx.org.create(
            ctx.session, item.type, body, ctx.version, api=API, client=ctx.client, tx=tx
        )
        return new_id, True

    incoming = _records(ctx)
    _write_results(result, _save(ctx, incoming, [None] * len(incoming), write))


def update(ctx: Context, result: ET.Element) -> None:
    def write(tx: records.Tx | None, item: Incoming) -> tuple[str | None, bool]:
        if not item.id:
            raise errors.MissingArgument("Id not specified in an update call", fields=["Id"])
        ctx.org.update(
            ctx.session,
            item.type,
            item.id,
            _resolved(ctx, item),
            ctx.version,
            api=API,
            client=ctx.client,
            tx=tx,
        )
        return ids.parse(item.id), False

    incoming = _records(ctx)
    _write_results(result, _save(ctx, incoming, [i.id for i in incoming], write))


def upsert(ctx: Context, result: ET.Element) -> None:
    """upsert(externalIDFieldName, sObjects[]): Id, or an idLookup field matched by value
    (``Org.upsert``, as REST's)."""
    key = _required(ctx.call.body, "externalIDFieldName")
    incoming = _records(ctx)
    for item in incoming:  # a field that is no external id faults the call, before any write
        ctx.org.external_id_field(item.type, key, ctx.version)

    def write(tx: records.Tx | None, item: Incoming) -> tuple[str | None, bool]:
        if key.lower() == "id":
            value: Any = item.id
        else:
            value = next((v for k, v in item.fields.items() if k.lower() == key.lower()), None)
        return ctx.org.upsert(
            ctx.session,
            item.type,
            key,
            value,
            _resolved(ctx, item),
            ctx.version,
            api=API,
            client=ctx.client,
            tx=tx,
        )

    outcomes = _save(ctx, incoming, [i.id for i in incoming], write)
    _write_results(result, outcomes, upsert=True)


ByIdWrite = Callable[[str, str, records.Tx | None], None]


def _by_ids(ctx: Context, result: ET.Element, write: ByIdWrite) -> None:
    """delete/undelete(ids[]): each id's object from its key prefix."""
    wanted = envelope.texts_of(ctx.call.body, "ids")
    _check_count(len(wanted))

    def one(tx: records.Tx | None, record_id: str) -> tuple[str | None, bool]:
        canonical = ids.parse(record_id)
        obj = ctx.registry.object_of_id(canonical)
        if obj is None:
            raise errors.InvalidCrossReferenceKey("invalid cross reference id")
        write(obj.name, canonical, tx)
        return canonical, False

    _write_results(result, _save(ctx, wanted, list(wanted), one))


def delete(ctx: Context, result: ET.Element) -> None:
    _by_ids(
        ctx,
        result,
        lambda name, rid, tx: ctx.org.delete(
            ctx.session, name, rid, ctx.version, api=API, client=ctx.client, tx=tx
        ),
    )


def undelete(ctx: Context, result: ET.Element) -> None:
    _by_ids(
        ctx,
        result,
        lambda name, rid, tx: ctx.org.undelete(
            ctx.session, name, rid, ctx.version, api=API, client=ctx.client, tx=tx
        ),
    )


def convert_lead(ctx: Context, result: ET.Element) -> None:
    """convertLead(leadConverts[]): each lead in its own transaction (a failure converts that
    lead not at all and the others still), one LeadConvertResult per LeadConvert, in order."""
    nodes = envelope.children(ctx.call.body, "leadConverts")
    if len(nodes) > conversion.MAX_CONVERTS:
        raise errors.ExceededIdLimit(
            f"too many leads: cannot convert more than {conversion.MAX_CONVERTS} in one call"
        )
    for node in nodes:
        data = {
            envelope.local(c.tag): None if envelope.is_nil(c) else (c.text or "").strip()
            for c in node
        }
        out = sub(result, "result")
        try:
            request = conversion.from_mapping(data)
            done = ctx.org.convert_lead(
                ctx.session, request, ctx.version, api=API, client=ctx.client
            )
        except errors.OpenCadenceError as exc:
            _convert_result(out, request_lead=data.get("leadId"), error=exc)
            continue
        _convert_result(out, done=done)


def _convert_result(
    node: ET.Element,
    *,
    done: conversion.Converted | None = None,
    request_lead: str | None = None,
    error: errors.OpenCadenceError | None = None,
) -> None:
    """A LeadConvertResult, its elements in the WSDL's order."""

    def id_element(tag: str, value: str | None) -> None:
        if value:
            sub(node, tag, value)
        else:
            envelope.nil(node, tag)

    id_element("accountId", done.account_id if done else None)
    id_element("contactId", done.contact_id if done else None)
    if error is not None:
        errors_node = sub(node, "errors")
        for f in error.fields:
            sub(errors_node, "fields", f)
        sub(errors_node, "message", error.message)
        sub(errors_node, "statusCode", error.error_code)
    id_element("leadId", done.lead_id if done else _canonical(request_lead))
    id_element("opportunityId", done.opportunity_id if done else None)
    sub(node, "success", "true" if error is None else "false")


def _canonical(value: str | None) -> str | None:
    try:
        return ids.parse(value) if value else None
    except errors.OpenCadenceError:
        return None


OPERATIONS: dict[str, Operation] = {
    "logout": logout,
    "getUserInfo": get_user_info,
    "getServerTimestamp": get_server_timestamp,
    "describeGlobal": describe_global,
    "describeSObject": describe_sobject,
    "describeSObjects": describe_sobjects,
    "query": _query(False),
    "queryAll": _query(True),
    "queryMore": query_more,
    "search": search,
    "retrieve": retrieve,
    "getUpdated": get_updated,
    "getDeleted": get_deleted,
    "create": create,
    "update": update,
    "upsert": upsert,
    "delete": delete,
    "undelete": undelete,
    "convertLead": convert_lead,
}
