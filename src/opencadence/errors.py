"""The one error tree of opencadence.

Every error raised deep in the system carries its Salesforce ``errorCode`` as the class
attribute ``error_code``; the API layers translate it once, at the edge, into the REST JSON
list ``[{"message", "errorCode", "fields"}]``, a SOAP fault or a Bayeux error. With no message
given, the class docstring is the message.
"""

from __future__ import annotations

from collections.abc import Sequence


class OpenCadenceError(Exception):
    """An unexpected error occurred."""

    error_code: str = "UNKNOWN_EXCEPTION"
    http_status: int = 500

    def __init__(self, message: str | None = None, *, fields: Sequence[str] = ()) -> None:
        self.message = message or (self.__doc__ or self.error_code).strip()
        self.fields = list(fields)
        super().__init__(self.message)


class InvalidDefinition(OpenCadenceError):
    """A metadata or cadence definition is invalid."""

    error_code = "INVALID_DEFINITION"


# --- record and field errors (DML) -------------------------------------------------------


class DmlError(OpenCadenceError):
    """A record could not be written."""

    error_code = "FIELD_INTEGRITY_EXCEPTION"
    http_status = 400


class RequiredFieldMissing(DmlError):
    """Required fields are missing."""

    error_code = "REQUIRED_FIELD_MISSING"


class StringTooLong(DmlError):
    """Data value too large."""

    error_code = "STRING_TOO_LONG"


class InvalidPicklistValue(DmlError):
    """Bad value for restricted picklist field."""

    error_code = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


class InvalidTypeOnField(DmlError):
    """Value of wrong type for field."""

    error_code = "INVALID_TYPE_ON_FIELD_IN_RECORD"


class InvalidFieldForInsertUpdate(DmlError):
    """Unable to create/update fields: the field is not writable."""

    error_code = "INVALID_FIELD_FOR_INSERT_UPDATE"


class FieldIntegrity(DmlError):
    """field integrity exception"""

    error_code = "FIELD_INTEGRITY_EXCEPTION"


class CannotUpdateConvertedLead(DmlError):
    """cannot reference converted lead"""

    error_code = "CANNOT_UPDATE_CONVERTED_LEAD"


class InvalidStatus(DmlError):
    """invalid convertedStatus"""

    error_code = "INVALID_STATUS"


class InvalidCrossReferenceKey(DmlError):
    """The referenced record does not exist or has the wrong type."""

    error_code = "INVALID_CROSS_REFERENCE_KEY"


class InvalidEmailAddress(DmlError):
    """Invalid email address."""

    error_code = "INVALID_EMAIL_ADDRESS"


class DuplicateValue(DmlError):
    """Duplicate value found."""

    error_code = "DUPLICATE_VALUE"


class DuplicateUsername(DmlError):
    """Duplicate Username.<br>The username already exists in this or another Salesforce \
organization. Usernames must be unique across all Salesforce organizations. To resolve, use a \
different username (it doesn't need to match the user's email address)."""

    error_code = "DUPLICATE_USERNAME"

    def __init__(
        self, message: str | None = None, *, fields: Sequence[str] = ("Username",)
    ) -> None:
        super().__init__(message, fields=fields)


class DuplicateDeveloperName(DmlError):
    """The Template Unique Name already exists or has been previously used. Please choose a \
different name."""

    error_code = "DUPLICATE_DEVELOPER_NAME"

    def __init__(
        self, message: str | None = None, *, fields: Sequence[str] = ("DeveloperName",)
    ) -> None:
        super().__init__(message, fields=fields)


class MissingArgument(DmlError):
    """A required argument is missing."""

    error_code = "MISSING_ARGUMENT"


class DuplicateExternalId(DmlError):
    """More than one record matches the external id."""

    error_code = "DUPLICATE_EXTERNAL_ID"
    http_status = 300

    def __init__(
        self, message: str | None = None, *, fields: Sequence[str] = (), matches: Sequence[str] = ()
    ) -> None:
        super().__init__(message, fields=fields)
        #: the ids of the matching records (REST's 300 lists them)
        self.matches = list(matches)


class AllOrNoneRolledBack(DmlError):
    """Record rolled back because not all records were valid and the request was using \
AllOrNone header"""

    error_code = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


class EntityIsDeleted(DmlError):
    """Entity is deleted."""

    error_code = "ENTITY_IS_DELETED"


class InsufficientAccessOnRecord(DmlError):
    """insufficient access rights on object id"""

    # A write the caller's permissions or record access refuse (sharing, object permission):
    # a DML error, 400 as Salesforce's REST API answers DML failures (docs/security-model.md).
    error_code = "INSUFFICIENT_ACCESS_OR_READONLY"


class InsufficientAccessOnCrossReference(DmlError):
    """insufficient access rights on cross-reference id"""

    # A reference field naming a record that exists but that the caller cannot see.
    error_code = "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"


class UndeleteFailed(DmlError):
    """The record is not in the recycle bin."""

    error_code = "UNDELETE_FAILED"


class InvalidTypeForOperation(DmlError):
    """The object does not support this operation."""

    error_code = "INVALID_TYPE_FOR_OPERATION"
    http_status = 405


class FieldCustomValidation(DmlError):
    """A validation rule of the object failed."""

    error_code = "FIELD_CUSTOM_VALIDATION_EXCEPTION"


class UnableToLockRow(DmlError):
    """unable to obtain exclusive access to this record: another transaction holds it; try the
    request again"""

    error_code = "UNABLE_TO_LOCK_ROW"


class StaleTransition(OpenCadenceError):
    """The record changed under this transition (a guarded write matched no row)."""

    error_code = "UNABLE_TO_LOCK_ROW"
    http_status = 409


# --- authentication -----------------------------------------------------------------------


class InvalidSession(OpenCadenceError):
    """Session expired or invalid"""

    error_code = "INVALID_SESSION_ID"
    http_status = 401


class LoginFailed(OpenCadenceError):
    """authentication failure"""

    error_code = "INVALID_LOGIN"
    http_status = 400

    def __init__(self, message: str | None = None, *, oauth_error: str = "invalid_grant") -> None:
        super().__init__(message)
        self.oauth_error = oauth_error


class InsufficientAccess(OpenCadenceError):
    """insufficient access rights on object id"""

    error_code = "INSUFFICIENT_ACCESS_OR_READONLY"
    http_status = 403


class RequestLimitExceeded(OpenCadenceError):
    """TotalRequests Limit exceeded."""

    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 403


class MethodNotAllowed(OpenCadenceError):
    """HTTP Method not allowed for this resource"""

    error_code = "METHOD_NOT_ALLOWED"
    http_status = 405


class UnsupportedApiVersion(OpenCadenceError):
    """Invalid Api version specified on URL"""

    error_code = "UNSUPPORTED_API_VERSION"
    http_status = 500


class JsonParserError(OpenCadenceError):
    """The request body could not be parsed as JSON."""

    error_code = "JSON_PARSER_ERROR"
    http_status = 400


class RequestTooLarge(OpenCadenceError):
    """The request body is larger than this endpoint accepts."""

    error_code = "EXCEEDED_MAX_SIZE_REQUEST"
    http_status = 413


class InvalidOperation(OpenCadenceError):
    """The operation is not allowed."""

    error_code = "INVALID_OPERATION"
    http_status = 400


# --- ids and lookups ----------------------------------------------------------------------


class MalformedId(OpenCadenceError):
    """Malformed ID."""

    error_code = "MALFORMED_ID"
    http_status = 400


class InvalidIdField(OpenCadenceError):
    """Invalid id value for this SObject type."""

    error_code = "INVALID_ID_FIELD"
    http_status = 400


class NotFound(OpenCadenceError):
    """The requested resource does not exist"""

    error_code = "NOT_FOUND"
    http_status = 404


class InvalidType(OpenCadenceError):
    """sObject type is not supported."""

    error_code = "INVALID_TYPE"
    http_status = 400


class InvalidField(OpenCadenceError):
    """No such column on entity."""

    error_code = "INVALID_FIELD"
    http_status = 400


# --- queries ------------------------------------------------------------------------------


class MalformedQuery(OpenCadenceError):
    """The query is malformed.

    Carries the 1-based ``line`` and ``column`` of the offending token and the token text,
    so messages can show a caret under the spot, as Salesforce does.
    """

    error_code = "MALFORMED_QUERY"
    http_status = 400

    def __init__(
        self,
        message: str | None = None,
        *,
        line: int | None = None,
        column: int | None = None,
        token: str | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(message, fields=fields)
        self.line = line
        self.column = column
        self.token = token


class MalformedSearch(OpenCadenceError):
    """The search is malformed (SOSL syntax)."""

    error_code = "MALFORMED_SEARCH"
    http_status = 400


class InvalidSearch(OpenCadenceError):
    """The search cannot run: a search term Salesforce refuses (too short, a leading
    wildcard)."""

    error_code = "INVALID_SEARCH"
    http_status = 400


class InvalidQueryFilterOperator(OpenCadenceError):
    """Invalid operator for this field."""

    error_code = "INVALID_QUERY_FILTER_OPERATOR"
    http_status = 400


class NumberOutsideValidRange(OpenCadenceError):
    """Number outside of the valid range."""

    error_code = "NUMBER_OUTSIDE_VALID_RANGE"
    http_status = 400


class InvalidQueryLocator(OpenCadenceError):
    """invalid query locator"""

    error_code = "INVALID_QUERY_LOCATOR"
    http_status = 400


class InvalidReplicationDate(OpenCadenceError):
    """The replication date range is invalid."""

    error_code = "INVALID_REPLICATION_DATE"
    http_status = 400


class ExceededIdLimit(OpenCadenceError):
    """Too many ids in the requested range."""

    error_code = "EXCEEDED_ID_LIMIT"
    http_status = 400
