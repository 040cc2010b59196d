"""The partner API's complex types, declared once: the WSDL is written from them and responses
are serialized against them, so what the server sends is always what the WSDL announces (zeep
refuses elements a type does not declare, and a sequence's order matters).

A type is a tuple of ``El``; ``spec("name:b other:s* ...")`` reads the short form: ``b`` boolean,
``i`` int, ``d`` double, ``s`` string, ``dt`` dateTime, ``id`` tns:ID, anything else a complex
type of this module; ``*`` repeats the element, ``!`` makes it required and not nillable.
"""

from __future__ import annotations

from dataclasses import dataclass

PARTNER_NS = "urn:partner.soap.sforce.com"
SOBJECT_NS = "urn:sobject.partner.soap.sforce.com"
FAULT_NS = "urn:fault.partner.soap.sforce.com"
ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True)
class Flavor:
    """The partner API (loosely typed sObjects) or the enterprise API (one type per object):
    the same calls and result types under their own namespaces and URL letter."""

    name: str
    api_ns: str
    sobject_ns: str
    fault_ns: str
    letter: str  # /services/Soap/{letter}/{version}

    @property
    def typed(self) -> bool:
        return self.name == "enterprise"


PARTNER = Flavor("partner", PARTNER_NS, SOBJECT_NS, FAULT_NS, "u")
ENTERPRISE = Flavor(
    "enterprise",
    "urn:enterprise.soap.sforce.com",
    "urn:sobject.enterprise.soap.sforce.com",
    "urn:fault.enterprise.soap.sforce.com",
    "c",
)

_SCALARS = {
    "b": "xsd:boolean",
    "i": "xsd:int",
    "d": "xsd:double",
    "s": "xsd:string",
    "dt": "xsd:dateTime",
    "id": "tns:ID",
}


@dataclass(frozen=True)
class El:
    name: str
    type: str  # "xsd:..." / "tns:ID" for scalars, "ens:sObject" or a key of TYPES otherwise
    many: bool = False
    required: bool = False  # "!": exactly once, never nil (else optional and nillable)

    @property
    def scalar(self) -> bool:
        return self.type.startswith("xsd:") or self.type == "tns:ID"


def spec(text: str) -> tuple[El, ...]:
    out = []
    for token in text.split():
        name, _, kind = token.partition(":")
        many, required = kind.endswith("*"), kind.endswith("!")
        kind = kind.rstrip("*!")
        out.append(El(name, _SCALARS.get(kind, kind), many, required))
    return tuple(out)


#: Complex types of the partner namespace (alphabetical element order, as Salesforce's WSDL).
TYPES: dict[str, tuple[El, ...]] = {
    "LoginResult": spec(
        "metadataServerUrl:s passwordExpired:b sandbox:b serverUrl:s sessionId:s userId:id "
        "userInfo:GetUserInfoResult"
    ),
    "GetUserInfoResult": spec(
        "accessibilityMode:b chatterExternal:b currencySymbol:s orgAttachmentFileSizeLimit:i "
        "orgDefaultCurrencyIsoCode:s orgDefaultCurrencyLocale:s orgDisallowHtmlAttachments:b "
        "orgHasPersonAccounts:b organizationId:id organizationMultiCurrency:b "
        "organizationName:s profileId:id roleId:id sessionSecondsValid:i "
        "userDefaultCurrencyIsoCode:s userEmail:s userFullName:s userId:id userLanguage:s "
        "userLocale:s userName:s userTimeZone:s userType:s userUiSkin:s"
    ),
    "GetServerTimestampResult": spec("timestamp:dt"),
    "DescribeGlobalResult": spec("encoding:s maxBatchSize:i sobjects:DescribeGlobalSObjectResult*"),
    "DescribeGlobalSObjectResult": spec(
        "activateable:b createable:b custom:b customSetting:b deepCloneable:b deletable:b "
        "deprecatedAndHidden:b feedEnabled:b hasSubtypes:b isInterface:b isSubtype:b "
        "keyPrefix:s label:s labelPlural:s layoutable:b mergeable:b mruEnabled:b name:s "
        "queryable:b replicateable:b retrieveable:b searchable:b triggerable:b undeletable:b "
        "updateable:b"
    ),
    "DescribeSObjectResult": spec(
        "activateable:b childRelationships:ChildRelationship* compactLayoutable:b createable:b "
        "custom:b customSetting:b deepCloneable:b deletable:b deprecatedAndHidden:b "
        "feedEnabled:b fields:Field* hasSubtypes:b isInterface:b isSubtype:b keyPrefix:s "
        "label:s labelPlural:s layoutable:b mergeable:b mruEnabled:b name:s "
        "networkScopeFieldName:s queryable:b replicateable:b retrieveable:b "
        "searchLayoutable:b searchable:b supportedScopes:ScopeInfo* triggerable:b "
        "undeletable:b updateable:b"
    ),
    "ChildRelationship": spec(
        "cascadeDelete:b childSObject:s deprecatedAndHidden:b field:s junctionIdListNames:s* "
        "junctionReferenceTo:s* relationshipName:s restrictedDelete:b"
    ),
    "ScopeInfo": spec("label:s name:s"),
    "Field": spec(
        "aggregatable:b aiPredictionField:b autoNumber:b byteLength:i calculated:b "
        "calculatedFormula:s cascadeDelete:b caseSensitive:b compoundFieldName:s "
        "controllerName:s createable:b custom:b defaultValueFormula:s defaultedOnCreate:b "
        "dependentPicklist:b deprecatedAndHidden:b digits:i displayLocationInDecimal:b "
        "encrypted:b externalId:b extraTypeInfo:s filterable:b formulaTreatNullNumberAsZero:b "
        "groupable:b highScaleNumber:b htmlFormatted:b idLookup:b inlineHelpText:s label:s "
        "length:i mask:s maskType:s name:s nameField:b namePointing:b nillable:b "
        "permissionable:b picklistValues:PicklistEntry* polymorphicForeignKey:b precision:i "
        "queryByDistance:b referenceTargetField:s referenceTo:s* relationshipName:s "
        "relationshipOrder:i restrictedDelete:b restrictedPicklist:b scale:i "
        "searchPrefilterable:b soapType:s sortable:b type:s unique:b updateable:b "
        "writeRequiresMasterRead:b"
    ),
    "PicklistEntry": spec("active:b defaultValue:b label:s validFor:s value:s"),
    "GetUpdatedResult": spec("ids:id* latestDateCovered:dt"),
    "GetDeletedResult": spec(
        "deletedRecords:DeletedRecord* earliestDateAvailable:dt latestDateCovered:dt"
    ),
    "DeletedRecord": spec("deletedDate:dt id:id"),
    "Error": spec("fields:s* message:s statusCode:s"),
    "SaveResult": spec("errors:Error* id:id success:b"),
    "UpsertResult": spec("created:b errors:Error* id:id success:b"),
    "DeleteResult": spec("errors:Error* id:id success:b"),
    "UndeleteResult": spec("errors:Error* id:id success:b"),
    "SearchResult": spec("queryId:s searchRecords:SearchRecord*"),
    "SearchRecord": spec("record:ens:sObject"),
    "LeadConvert": spec(
        "accountId:id contactId:id convertedStatus:s doNotCreateOpportunity:b leadId:id "
        "opportunityId:id opportunityName:s overwriteLeadSource:b ownerId:id "
        "sendNotificationEmail:b"
    ),
    "LeadConvertResult": spec(
        "accountId:id contactId:id errors:Error* leadId:id opportunityId:id success:b"
    ),
    "LimitInfo": spec("current:i! limit:i! type:s!"),  # required, as Salesforce declares it
    # QueryResult and sObject are written by hand (records carry their own fields)
}

#: Operation -> (request elements, response result element or None for an empty response).
OPERATIONS: dict[str, tuple[tuple[El, ...], El | None]] = {
    "login": (spec("username:s password:s"), El("result", "LoginResult")),
    "logout": ((), None),
    "getUserInfo": ((), El("result", "GetUserInfoResult")),
    "getServerTimestamp": ((), El("result", "GetServerTimestampResult")),
    "describeGlobal": ((), El("result", "DescribeGlobalResult")),
    "describeSObject": (spec("sObjectType:s"), El("result", "DescribeSObjectResult")),
    "describeSObjects": (spec("sObjectType:s*"), El("result", "DescribeSObjectResult", True)),
    "query": (spec("queryString:s"), El("result", "QueryResult")),
    "queryAll": (spec("queryString:s"), El("result", "QueryResult")),
    "queryMore": (spec("queryLocator:s"), El("result", "QueryResult")),
    "search": (spec("searchString:s"), El("result", "SearchResult")),
    "retrieve": (spec("fieldList:s sObjectType:s ids:id*"), El("result", "ens:sObject", True)),
    "getUpdated": (spec("sObjectType:s startDate:dt endDate:dt"), El("result", "GetUpdatedResult")),
    "getDeleted": (spec("sObjectType:s startDate:dt endDate:dt"), El("result", "GetDeletedResult")),
    "create": (spec("sObjects:ens:sObject*"), El("result", "SaveResult", True)),
    "update": (spec("sObjects:ens:sObject*"), El("result", "SaveResult", True)),
    "upsert": (
        spec("externalIDFieldName:s sObjects:ens:sObject*"),
        El("result", "UpsertResult", True),
    ),
    "delete": (spec("ids:id*"), El("result", "DeleteResult", True)),
    "undelete": (spec("ids:id*"), El("result", "UndeleteResult", True)),
    "convertLead": (spec("leadConverts:LeadConvert*"), El("result", "LeadConvertResult", True)),
}

#: The LimitInfoHeader's one limit type: the org's daily API requests (REST's api-usage).
API_REQUESTS = "API REQUESTS"

#: Response headers (element name -> its fields): every call but login answers LimitInfoHeader.
RESPONSE_HEADERS: dict[str, tuple[El, ...]] = {"LimitInfoHeader": spec("limitInfo:LimitInfo*")}


def response_headers_of(operation: str) -> tuple[str, ...]:
    return () if operation == "login" else tuple(RESPONSE_HEADERS)


#: SOAP headers (element name -> its fields) and which operations read which.
HEADERS: dict[str, tuple[El, ...]] = {
    "SessionHeader": spec("sessionId:s!"),  # required, as Salesforce declares it
    "CallOptions": spec("client:s defaultNamespace:s"),
    "QueryOptions": spec("batchSize:i"),
    "AllOrNoneHeader": spec("allOrNone:b"),
    "LoginScopeHeader": spec("organizationId:id portalId:id"),
}
_READS = ("query", "queryAll", "queryMore", "retrieve")
_WRITES = ("create", "update", "upsert", "delete", "undelete")


def headers_of(operation: str) -> tuple[str, ...]:
    if operation == "login":
        return ("LoginScopeHeader", "CallOptions")
    extra: tuple[str, ...] = ("QueryOptions",) if operation in _READS else ()
    extra += ("AllOrNoneHeader",) if operation in _WRITES else ()
    return ("SessionHeader", "CallOptions") + extra


#: Fault detail types (all extend ApiFault; the query faults add row and column).
QUERY_FAULTS = (
    "InvalidSObjectFault",
    "InvalidFieldFault",
    "MalformedQueryFault",
    "MalformedSearchFault",
)
PLAIN_FAULTS = (
    "LoginFault",
    "InvalidQueryLocatorFault",
    "InvalidIdFault",
    "UnexpectedErrorFault",
)


def faults_of(operation: str) -> tuple[str, ...]:
    if operation == "login":
        return ("LoginFault", "InvalidIdFault", "UnexpectedErrorFault")
    if operation == "search":
        return QUERY_FAULTS + ("UnexpectedErrorFault",)
    if operation in ("query", "queryAll", "queryMore", "retrieve"):
        return QUERY_FAULTS + ("InvalidQueryLocatorFault", "InvalidIdFault", "UnexpectedErrorFault")
    return ("InvalidSObjectFault", "InvalidFieldFault", "InvalidIdFault", "UnexpectedErrorFault")
