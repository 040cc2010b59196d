"""sObject Collections: ``/services/data/vXX.X/composite/sobjects[/{type}[/{externalIdField}]]``.

Create (POST, records of up to 10 type chunks), update (PATCH, each with its id), delete
(DELETE ``?ids=``), upsert (PATCH on an external id field) of up to 200 records, and retrieve
(GET ``?ids=&fields=`` or POST ``{ids, fields}``, up to 2,000 ids). Every record goes through
``Org`` as a single-record call does. Results come back in input order, one per record, as
Salesforce's SaveResult/UpsertResult JSON. With ``allOrNone`` every write runs in one
transaction that the first failure rolls back (no record written, no change event): that record
reports its error, every other one ALL_OR_NONE_OPERATION_ROLLED_BACK. Choices where Salesforce's
behaviour is not documented are in docs/collections-decisions.md.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from opencadence import errors, ids
from opencadence.api import rest
from opencadence.org import Org, partial_success
from opencadence.storage import accounts, records

#: Records per create/update/upsert/delete call; ids per retrieve; type chunks per create.
MAX_RECORDS = 200
MAX_RETRIEVE = 2000
MAX_CHUNKS = 10

#: One record's write: (the call's transaction or None, the record) -> (id, created).
Write = Callable[[records.Tx | None, Any], tuple[str, bool]]


class _Failed(Exception):
    def __init__(self, index: int, error: errors.OpenCadenceError) -> None:
        super().__init__(error.message)
        self.index, self.error = index, error


def _error(exc: errors.OpenCadenceError) -> dict[str, Any]:
    return {"statusCode": exc.error_code, "message": exc.message, "fields": exc.fields}


def _result(
    record_id: str | None, exc: errors.OpenCadenceError | None, created: bool | None
) -> dict[str, Any]:
    """A SaveResult (UpsertResult with ``created``): a failed record's id only when known."""
    out: dict[str, Any] = {}
    if record_id:
        out["id"] = record_id
    out["success"] = exc is None
    out["errors"] = [] if exc is None else [_error(exc)]
    if created is not None:
        out["created"] = created and exc is None
    return out


def _save(
    org: Org,
    session: accounts.Session,
    version: str,
    items: list[Any],
    known: list[str | None],
    write: Write,
    *,
    all_or_none: bool,
    upsert: bool = False,
) -> list[dict[str, Any]]:
    """All in one transaction that the first failure rolls back (the records after it are not
    tried: they are rolled back too), or, without allOrNone, partial success (``_partial``)."""
    flag = False if upsert else None
    if not all_or_none:
        return _partial(org, session, version, items, known, write, flag)
    try:
        done = []
        with org.transaction(session, version) as tx:
            for index, item in enumerate(items):
                try:
                    made, created = write(tx, item)
                except errors.OpenCadenceError as exc:
                    raise _Failed(index, exc) from None
                done.append(_result(made, None, created if upsert else None))
        return done
    except _Failed as failed:
        rolled = errors.AllOrNoneRolledBack()
        return [
            _result(record_id, failed.error if i == failed.index else rolled, flag)
            for i, record_id in enumerate(known)
        ]


#: Tries of the whole call in one transaction before the rest go one record at a time.
PARTIAL_TRIES = 3


def _partial(
    org: Org,
    session: accounts.Session,
    version: str,
    items: list[Any],
    known: list[str | None],
    write: Write,
    flag: bool | None,
) -> list[dict[str, Any]]:
    """Partial success as Salesforce saves it: the records go in one transaction; a record that
    fails is taken out and the rest tried again (up to PARTIAL_TRIES times), so the records that
    succeed commit together (one transactionKey on their change events). Each record taken out,
    and whatever is left after the last try, is then written on its own: its own outcome (what
    must run in a transaction of its own, such as an ActionCadence's State, succeeds there)."""
    outcomes = partial_success(
        len(items),
        lambda: org.transaction(session, version),
        lambda: nullcontext(None),  # alone: the write opens its own transaction
        lambda tx, index: write(tx, items[index]),
        PARTIAL_TRIES,
    )
    return [
        _result(known[i], outcome, flag)
        if isinstance(outcome, errors.OpenCadenceError)
        else _result(outcome[0], None, outcome[1] if flag is not None else None)
        for i, outcome in enumerate(outcomes)
    ]


def _check_count(count: int, limit: int = MAX_RECORDS) -> None:
    if count > limit:
        raise errors.ExceededIdLimit(
            f"record limit reached. cannot submit more than {limit} records into this call"
        )


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise errors.JsonParserError(f"{name}: expected a boolean, got {value!r}")


def _records(body: dict[str, Any]) -> list[dict[str, Any]]:
    given = body.get("records")
    if not isinstance(given, list) or not given:
        raise errors.JsonParserError("records: a non-empty list of sObjects is required")
    _check_count(len(given))
    if not all(isinstance(r, dict) for r in given):
        raise errors.JsonParserError("records: every element must be an sObject (a JSON object)")
    return given


def _type_of(org: Org, record: dict[str, Any]) -> str:
    """``attributes.type``: required, and a known object (else the call is not well formed)."""
    attributes = record.get("attributes")
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    if not isinstance(kind, str) or not kind:
        raise errors.InvalidType("Must send a concrete entity type.")
    obj = org.registry.get(kind)
    if obj is None:
        raise errors.InvalidType(f"sObject type '{kind}' is not supported.")
    return obj.name


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "attributes"}


def _check_chunks(types: list[str]) -> None:
    """Consecutive records of one type form a chunk; Salesforce processes up to 10."""
    chunks = sum(1 for i, t in enumerate(types) if i == 0 or t != types[i - 1])
    if chunks > MAX_CHUNKS:
        raise errors.InvalidOperation(
            f"Cannot have more than {MAX_CHUNKS} chunks in a single operation. Please rearrange "
            "the data to reduce chunking."
        )


# --- handlers -----------------------------------------------------------------------------


def create(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    body = request.state.body
    given = _records(body)
    types = [_type_of(org, r) for r in given]
    _check_chunks(types)
    items = list(zip(types, given))

    def write(tx: records.Tx | None, item: tuple[str, dict[str, Any]]) -> tuple[str, bool]:
        kind, record = item
        fields = _fields(record)
        if any(k.lower() == "id" for k in fields):
            raise errors.InvalidFieldForInsertUpdate(
                "cannot specify Id in an insert call", fields=["Id"]
            )
        return org.create(session, kind, fields, version, tx=tx), True

    all_or_none = _flag(body.get("allOrNone"), "allOrNone")
    return _save(org, session, version, items, [None] * len(items), write, all_or_none=all_or_none)


def _record_id(record: dict[str, Any]) -> str | None:
    value = next((v for k, v in record.items() if k.lower() == "id"), None)
    return value if isinstance(value, str) and value else None


def update(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    body = request.state.body
    given = _records(body)
    items = [(_type_of(org, r), r) for r in given]

    def write(tx: records.Tx | None, item: tuple[str, dict[str, Any]]) -> tuple[str, bool]:
        kind, record = item
        record_id = _record_id(record)
        if record_id is None:
            raise errors.MissingArgument("Id not specified in an update call", fields=["Id"])
        fields = {k: v for k, v in _fields(record).items() if k.lower() != "id"}
        org.update(session, kind, record_id, fields, version, tx=tx)
        return ids.parse(record_id), False

    known = [_known_id(_record_id(r)) for r in given]
    all_or_none = _flag(body.get("allOrNone"), "allOrNone")
    return _save(org, session, version, items, known, write, all_or_none=all_or_none)


def _known_id(record_id: str | None) -> str | None:
    """The 18-character id of a well-formed id (a failed record's result names it), else None."""
    if record_id is None:
        return None
    try:
        return ids.parse(record_id)
    except errors.OpenCadenceError:
        return None


def delete(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    raw = request.query_params.get("ids", "")
    wanted = [i.strip() for i in raw.split(",") if i.strip()]
    if not wanted:
        raise errors.MissingArgument("ids: at least one record id is required", fields=["ids"])
    _check_count(len(wanted))

    def write(tx: records.Tx | None, record_id: str) -> tuple[str, bool]:
        canonical = ids.parse(record_id)
        obj = org.registry.object_of_id(canonical)
        if obj is None:
            raise errors.InvalidCrossReferenceKey("invalid cross reference id")
        org.delete(session, obj.name, canonical, version, tx=tx)
        return canonical, False

    all_or_none = _flag(request.query_params.get("allOrNone"), "allOrNone")
    known = [_known_id(i) for i in wanted]
    return _save(org, session, version, wanted, known, write, all_or_none=all_or_none)


def retrieve(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    """GET ``?ids=&fields=`` or POST ``{"ids": [...], "fields": [...]}``: the records in the
    order asked, null for an id that is malformed, of another object or not visible."""
    name = request.path_params["sobject"]
    if request.method == "POST":
        body = request.state.body
        wanted, fields = body.get("ids"), body.get("fields")
        if not _strings(wanted) or not _strings(fields):
            raise errors.JsonParserError("ids and fields: non-empty lists of strings are required")
    else:
        wanted = _split(request.query_params.get("ids", ""))
        fields = _split(request.query_params.get("fields", ""))
        if not wanted or not fields:
            raise errors.MissingArgument("ids and fields are required", fields=["ids", "fields"])
    _check_count(len(wanted), MAX_RETRIEVE)
    return org.retrieve_many(session, name, wanted, fields, version)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def upsert(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    """PATCH ``/composite/sobjects/{type}/{externalIdField}``: records of that type only."""
    name, key = request.path_params["sobject"], request.path_params["field"]
    obj = org.registry.object(name)
    if obj.field(key) is None:
        raise errors.NotFound(
            f"Provided external ID field does not exist or is not accessible: {key}"
        )
    f = org.external_id_field(obj.name, key, version)
    if f.name == "Id":  # Salesforce's Collections upsert takes external ids, not record ids
        raise errors.InvalidField(
            f"Field name provided, {key} is not an External ID or indexed field for {obj.name}",
            fields=[key],
        )
    body = request.state.body
    given = _records(body)
    for record in given:
        if _type_of(org, record) != obj.name:
            raise errors.InvalidType(
                f"All records in the request must be of the type in the URL: {obj.name}"
            )

    def write(tx: records.Tx | None, record: dict[str, Any]) -> tuple[str, bool]:
        fields = _fields(record)
        value = next((v for k, v in fields.items() if k.lower() == f.name.lower()), None)
        return org.upsert(session, obj.name, f.name, value, fields, version, tx=tx)

    known = [_known_id(_record_id(r)) for r in given]
    all_or_none = _flag(body.get("allOrNone"), "allOrNone")
    return _save(org, session, version, given, known, write, all_or_none=all_or_none, upsert=True)


def routes() -> list[Route]:
    c = "/services/data/v{version}/composite/sobjects"
    return [
        Route(c, rest.endpoint(_by_method), methods=["POST", "PATCH", "DELETE"]),
        Route(f"{c}/", rest.endpoint(_by_method), methods=["POST", "PATCH", "DELETE"]),
        Route(f"{c}/{{sobject}}", rest.endpoint(retrieve), methods=["GET", "POST"]),
        Route(f"{c}/{{sobject}}/{{field}}", rest.endpoint(upsert), methods=["PATCH"]),
    ]


def _by_method(request: Request, org: Org, session: accounts.Session, version: str) -> Any:
    handler = {"POST": create, "PATCH": update, "DELETE": delete}[request.method]
    return handler(request, org, session, version)
