"""The partner WSDL, written from ``schema`` (the same declarations responses are written from).

Like Salesforce's, the partner WSDL does not list objects: an ``sObject`` is a type, an Id and
any fields of the sObject namespace. It is served at ``/soap/wsdl.jsp?type=*`` (the Setup
download's address) and ``/services/wsdl/partner``, without a session: it holds no org data.
Its service address is this server's ``/services/Soap/u/{newest version}``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache

from opencadence.api import versions
from opencadence.api.soap import enterprise, schema
from opencadence.api.soap.envelope import sub
from opencadence.metadata.registry import Registry

_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
_XSD = "http://www.w3.org/2001/XMLSchema"


def _type_ref(el: schema.El) -> str:
    if el.scalar or el.type.startswith("ens:"):
        return el.type
    return f"tns:{el.type}"


def _element(seq: ET.Element, el: schema.El, *, optional: bool = True) -> None:
    if el.required:
        ET.SubElement(seq, "element", {"name": el.name, "type": _type_ref(el)})
        return
    attrs = {"name": el.name, "type": _type_ref(el), "nillable": "true"}
    if optional or el.many:
        attrs["minOccurs"] = "0"
    if el.many:
        attrs["maxOccurs"] = "unbounded"
    ET.SubElement(seq, "element", attrs)


def _complex(schema_node: ET.Element, name: str, elements: tuple[schema.El, ...]) -> None:
    seq = sub(sub(schema_node, "complexType", name=name), "sequence")
    for el in elements:
        _element(seq, el)


def _sobject_schema(types: ET.Element, flavor: schema.Flavor, registry: Registry | None) -> None:
    node = sub(
        types,
        "schema",
        elementFormDefault="qualified",
        targetNamespace=flavor.sobject_ns,
        xmlns=_XSD,
    )
    sub(node, "import", namespace=flavor.api_ns)
    if registry is not None:
        _typed_sobjects(node, registry)
        return
    seq = sub(sub(node, "complexType", name="sObject"), "sequence")
    ET.SubElement(seq, "element", {"name": "type", "type": "xsd:string"})
    ET.SubElement(
        seq,
        "element",
        {
            "name": "fieldsToNull",
            "type": "xsd:string",
            "nillable": "true",
            "minOccurs": "0",
            "maxOccurs": "unbounded",
        },
    )
    ET.SubElement(seq, "element", {"name": "Id", "type": "tns:ID", "nillable": "true"})
    ET.SubElement(
        seq,
        "any",
        {
            "namespace": "##targetNamespace",
            "minOccurs": "0",
            "maxOccurs": "unbounded",
            "processContents": "lax",
        },
    )


def _typed_sobjects(node: ET.Element, registry: Registry) -> None:
    """The enterprise sObject, AggregateResult and one type per object (newest version)."""
    seq = sub(sub(node, "complexType", name="sObject"), "sequence")
    ET.SubElement(
        seq,
        "element",
        {
            "name": "fieldsToNull",
            "type": "xsd:string",
            "nillable": "true",
            "minOccurs": "0",
            "maxOccurs": "unbounded",
        },
    )
    # Id is required (nil when unknown): with an optional Id, AggregateResult's <any> after it
    # would make the content model ambiguous, which schema validators (and wsimport) refuse
    ET.SubElement(seq, "element", {"name": "Id", "type": "tns:ID", "nillable": "true"})
    aggregate = _extension(node, "AggregateResult")
    ET.SubElement(
        aggregate,
        "any",
        {
            "namespace": "##targetNamespace",
            "minOccurs": "0",
            "maxOccurs": "unbounded",
            "processContents": "lax",
        },
    )
    newest = f"{versions.NEWEST}.0"
    for obj in registry:
        if not obj.visible_in(newest):
            continue
        seq = _extension(node, obj.name)
        for name, type_ref in enterprise.elements(registry, obj, newest):
            ET.SubElement(
                seq,
                "element",
                {"name": name, "type": type_ref, "nillable": "true", "minOccurs": "0"},
            )


def _extension(node: ET.Element, name: str) -> ET.Element:
    content = sub(sub(node, "complexType", name=name), "complexContent")
    return sub(sub(content, "extension", base="ens:sObject"), "sequence")


def _partner_schema(types: ET.Element, flavor: schema.Flavor) -> None:
    node = sub(
        types,
        "schema",
        elementFormDefault="qualified",
        targetNamespace=flavor.api_ns,
        xmlns=_XSD,
    )
    sub(node, "import", namespace=flavor.sobject_ns)
    restriction = sub(sub(node, "simpleType", name="ID"), "restriction", base="xsd:string")
    sub(restriction, "length", value="18")
    sub(restriction, "pattern", value="[a-zA-Z0-9]{18}")
    seq = sub(sub(node, "complexType", name="QueryResult"), "sequence")
    ET.SubElement(seq, "element", {"name": "done", "type": "xsd:boolean"})
    ET.SubElement(
        seq, "element", {"name": "queryLocator", "type": "xsd:string", "nillable": "true"}
    )
    ET.SubElement(
        seq,
        "element",
        {
            "name": "records",
            "type": "ens:sObject",
            "nillable": "true",
            "minOccurs": "0",
            "maxOccurs": "unbounded",
        },
    )
    ET.SubElement(seq, "element", {"name": "size", "type": "xsd:int"})
    for name, elements in schema.TYPES.items():
        _complex(node, name, elements)
    for operation, (request, result) in schema.OPERATIONS.items():
        seq = sub(sub(sub(node, "element", name=operation), "complexType"), "sequence")
        for el in request:
            _element(seq, el, optional=False)
        seq = sub(sub(sub(node, "element", name=f"{operation}Response"), "complexType"), "sequence")
        if result is not None:
            _element(seq, result, optional=result.many)
    for header, elements in {**schema.HEADERS, **schema.RESPONSE_HEADERS}.items():
        seq = sub(sub(sub(node, "element", name=header), "complexType"), "sequence")
        for el in elements:
            _element(seq, el)


def _fault_schema(types: ET.Element, flavor: schema.Flavor) -> None:
    node = sub(
        types,
        "schema",
        elementFormDefault="qualified",
        targetNamespace=flavor.fault_ns,
        xmlns=_XSD,
    )
    sub(node, "import", namespace=flavor.api_ns)
    seq = sub(sub(node, "complexType", name="ApiFault"), "sequence")
    ET.SubElement(seq, "element", {"name": "exceptionCode", "type": "xsd:string"})
    ET.SubElement(
        seq, "element", {"name": "exceptionMessage", "type": "xsd:string", "nillable": "true"}
    )
    _extends(node, "ApiQueryFault", "fns:ApiFault", ("row", "column"))
    for name in schema.QUERY_FAULTS:
        _extends(node, name, "fns:ApiQueryFault", ())
    for name in schema.PLAIN_FAULTS:
        _extends(node, name, "fns:ApiFault", ())
    for name in schema.QUERY_FAULTS + schema.PLAIN_FAULTS:
        sub(node, "element", name=name, type=f"fns:{name}")


def _extends(node: ET.Element, name: str, base: str, ints: tuple[str, ...]) -> None:
    content = sub(sub(node, "complexType", name=name), "complexContent")
    seq = sub(sub(content, "extension", base=base), "sequence")
    for field in ints:
        ET.SubElement(seq, "element", {"name": field, "type": "xsd:int"})


def _messages(root: ET.Element) -> None:
    header = sub(root, "message", name="Header")
    for name in {**schema.HEADERS, **schema.RESPONSE_HEADERS}:
        sub(header, "part", name=name, element=f"tns:{name}")
    for name in schema.QUERY_FAULTS + schema.PLAIN_FAULTS:
        sub(sub(root, "message", name=name), "part", name="fault", element=f"fns:{name}")
    for operation in schema.OPERATIONS:
        request = sub(root, "message", name=f"{operation}Request")
        sub(request, "part", name="parameters", element=f"tns:{operation}")
        response = sub(root, "message", name=f"{operation}Response")
        sub(response, "part", name="parameters", element=f"tns:{operation}Response")


def _port_type(root: ET.Element) -> None:
    port = sub(root, "portType", name="Soap")
    for operation in schema.OPERATIONS:
        op = sub(port, "operation", name=operation)
        sub(op, "input", message=f"tns:{operation}Request")
        sub(op, "output", message=f"tns:{operation}Response")
        for name in schema.faults_of(operation):
            sub(op, "fault", name=name, message=f"tns:{name}")


def _binding(root: ET.Element) -> None:
    binding = sub(root, "binding", name="SoapBinding", type="tns:Soap")
    sub(binding, "soap:binding", style="document", transport="http://schemas.xmlsoap.org/soap/http")
    for operation in schema.OPERATIONS:
        op = sub(binding, "operation", name=operation)
        sub(op, "soap:operation", soapAction="")
        given = sub(op, "input")
        for name in schema.headers_of(operation):
            sub(given, "soap:header", use="literal", message="tns:Header", part=name)
        sub(given, "soap:body", use="literal", parts="parameters")
        output = sub(op, "output")
        for name in schema.response_headers_of(operation):
            sub(output, "soap:header", use="literal", message="tns:Header", part=name)
        sub(output, "soap:body", use="literal")
        for name in schema.faults_of(operation):
            sub(sub(op, "fault", name=name), "soap:fault", name=name, use="literal")


@lru_cache(maxsize=16)
def partner(base_url: str) -> bytes:
    """The partner WSDL whose service address is ``{base_url}/services/Soap/u/{newest}``."""
    return _document(base_url, schema.PARTNER, None)


@lru_cache(maxsize=16)
def enterprise_wsdl(base_url: str, registry: Registry) -> bytes:
    """The enterprise WSDL of ``registry``: ``{base_url}/services/Soap/c/{newest}``."""
    return _document(base_url, schema.ENTERPRISE, registry)


def _document(base_url: str, flavor: schema.Flavor, registry: Registry | None) -> bytes:
    root = ET.Element(
        "definitions",
        {
            "xmlns": _WSDL,
            "xmlns:soap": _SOAP,
            "xmlns:xsd": _XSD,
            "xmlns:tns": flavor.api_ns,
            "xmlns:fns": flavor.fault_ns,
            "xmlns:ens": flavor.sobject_ns,
            "targetNamespace": flavor.api_ns,
        },
    )
    types = sub(root, "types")
    _sobject_schema(types, flavor, registry)
    _partner_schema(types, flavor)
    _fault_schema(types, flavor)
    _messages(root)
    _port_type(root)
    _binding(root)
    service = sub(root, "service", name="SforceService")
    port = sub(service, "port", binding="tns:SoapBinding", name="Soap")
    address = f"{base_url}/services/Soap/{flavor.letter}/{versions.NEWEST}.0"
    sub(port, "soap:address", location=address)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data
