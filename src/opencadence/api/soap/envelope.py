"""SOAP 1.1 envelopes: reading a request once (defusedxml, bounded) and writing responses and
faults with xml.etree, so user data only ever lands in escaped text and attribute values.

Prefixes are written literally ("soapenv:Body", "sf:type") with their ``xmlns`` declarations on
the envelope, as Salesforce writes them: the partner namespace is the default one, ``sf`` is the
sObject namespace in responses and the fault namespace in faults (xsi:type values name them).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import defusedxml
import defusedxml.ElementTree as SafeET
from starlette.responses import Response

from opencadence import errors
from opencadence.api.soap import schema

#: Largest request accepted (Salesforce's SOAP limit is 50 MB; 200 records fit in far less).
MAX_BYTES = 10_000_000
#: Deepest element nesting accepted (a partner request nests about 6 deep).
MAX_DEPTH = 64
MEDIA_TYPE = "text/xml; charset=utf-8"


class ClientFault(Exception):
    """A request that is not a SOAP call we can read: faultcode soapenv:Client, no detail."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # SOAP 1.1 faults are 500; an oversized body is 413


@dataclass
class Call:
    """One parsed request: the operation's element and the SOAP headers by local name."""

    operation: str
    body: ET.Element
    headers: dict[str, ET.Element] = field(default_factory=dict)

    def header(self, name: str, child: str) -> str | None:
        """The text of ``<name><child>`` in the SOAP header, if sent."""
        node = self.headers.get(name)
        return None if node is None else text_of(node, child)


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if local(c.tag) == name]


def text_of(node: ET.Element, name: str) -> str | None:
    found = children(node, name)
    return None if not found else (found[0].text or "")


def texts_of(node: ET.Element, name: str) -> list[str]:
    return [(c.text or "").strip() for c in children(node, name)]


def is_nil(node: ET.Element) -> bool:
    return node.get(f"{{{schema.XSI_NS}}}nil", "").lower() in ("true", "1")


def parse(raw: bytes) -> Call:
    """The envelope's operation and headers; hostile or oversized XML is refused unread."""
    if len(raw) > MAX_BYTES:
        raise ClientFault(
            f"EXCEEDED_MAX_SIZE_REQUEST: the request is larger than {MAX_BYTES} bytes", 413
        )
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True)
    except (SafeET.ParseError, defusedxml.DefusedXmlException, ValueError) as exc:
        raise ClientFault(f"Could not read the request XML: {exc}") from None
    _check_depth(root)
    if root.tag != f"{{{schema.ENVELOPE_NS}}}Envelope":
        raise ClientFault("The request is not a SOAP 1.1 Envelope")
    body = root.find(f"{{{schema.ENVELOPE_NS}}}Body")
    if body is None or len(body) == 0:
        raise ClientFault("The SOAP Body names no operation")
    header = root.find(f"{{{schema.ENVELOPE_NS}}}Header")
    headers = {local(h.tag): h for h in header} if header is not None else {}
    return Call(local(body[0].tag), body[0], headers)


def _check_depth(root: ET.Element) -> None:
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ClientFault(f"The request nests elements deeper than {MAX_DEPTH}")
        stack.extend((c, depth + 1) for c in node)


# --- writing --------------------------------------------------------------------------------


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """A child element; ``xsi_type=`` is the attribute ``xsi:type`` (the first "_" is a ":")."""
    if attrs:
        node = ET.SubElement(parent, tag, {k.replace("_", ":", 1): v for k, v in attrs.items()})
    else:
        node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = text
    return node


def nil(parent: ET.Element, tag: str) -> ET.Element:
    return sub(parent, tag, xsi_nil="true")


def _envelope(
    sf_namespace: str, default: str | None, usage: tuple[int, int] | None = None
) -> tuple[ET.Element, ET.Element]:
    """A fault has no default namespace: faultcode, faultstring and detail are unqualified.
    ``usage`` (requests today, daily limit) is sent as the ``LimitInfoHeader`` response header."""
    names = {"xmlns:soapenv": schema.ENVELOPE_NS}
    if default is not None:
        names["xmlns"] = default
    names.update({"xmlns:sf": sf_namespace, "xmlns:xsi": schema.XSI_NS})
    root = ET.Element("soapenv:Envelope", names)
    if usage is not None:
        info = sub(sub(sub(root, "soapenv:Header"), "LimitInfoHeader"), "limitInfo")
        sub(info, "current", str(usage[0]))
        sub(info, "limit", str(usage[1]))
        sub(info, "type", schema.API_REQUESTS)
    return root, sub(root, "soapenv:Body")


def response_root(
    operation: str,
    flavor: schema.Flavor = schema.PARTNER,
    usage: tuple[int, int] | None = None,
) -> tuple[ET.Element, ET.Element]:
    """(envelope, ``<{operation}Response>``) to fill in; with ``usage``, a LimitInfoHeader."""
    root, body = _envelope(flavor.sobject_ns, flavor.api_ns, usage)
    return root, sub(body, f"{operation}Response")


_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


def to_bytes(root: ET.Element) -> bytes:
    """The document as UTF-8. Every tag here is a constant or a registry name written with its
    prefix, so the tree is written without ElementTree's namespace pass (a third of the time
    of a 2,000-record page); every text and attribute value is escaped."""
    out: list[str] = []
    _write_node(root, out)
    return _DECLARATION + "".join(out).encode("utf-8")


#: The tag of a node whose text is markup already written (and escaped): ``raw``.
RAW = "\x00raw"


def raw(parent: ET.Element, markup: str) -> None:
    """Append markup written as a string (records: ``partner``/``enterprise`` write them
    straight to text, every value through ``escape_text``): the writer copies it as is."""
    ET.SubElement(parent, RAW).text = markup


def _write_node(node: ET.Element, out: list[str]) -> None:
    append, tag, text = out.append, node.tag, node.text
    if tag is RAW or tag == RAW:
        append(text or "")
        return
    append("<" + tag + _attributes(node.attrib) if node.attrib else "<" + tag)
    if len(node):
        append(">" + _escape(text) if text else ">")
        for child in node:
            _write_node(child, out)
        append("</" + tag + ">")
    elif text is None:
        append("/>")
    else:
        append(">" + _escape(text) + "</" + tag + ">")


def _escape(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return escape(text)
    return text


escape_text = _escape  # element text, as the tree writer escapes it


_ATTRIBUTES: dict[tuple[tuple[str, str], ...], str] = {}


def _attributes(attrib: dict[str, str]) -> str:
    """`` name="value"`` for each attribute, escaped (the few constant sets are kept)."""
    key = tuple(attrib.items())
    found = _ATTRIBUTES.get(key)
    if found is None:
        found = "".join(f" {name}={quoteattr(value)}" for name, value in key)
        if len(_ATTRIBUTES) < 256:
            _ATTRIBUTES[key] = found
    return found


def to_response(root: ET.Element, status: int = 200) -> Response:
    return Response(to_bytes(root), status_code=status, media_type=MEDIA_TYPE)


#: errorCode -> the fault detail type Salesforce raises it as (others: UnexpectedErrorFault).
FAULT_TYPES = {
    "INVALID_LOGIN": "LoginFault",
    "INVALID_TYPE": "InvalidSObjectFault",
    "INVALID_FIELD": "InvalidFieldFault",
    "MALFORMED_QUERY": "MalformedQueryFault",
    "INVALID_QUERY_FILTER_OPERATOR": "MalformedQueryFault",
    "INVALID_QUERY_LOCATOR": "InvalidQueryLocatorFault",
    "MALFORMED_SEARCH": "MalformedSearchFault",
    "INVALID_SEARCH": "MalformedSearchFault",
    "MALFORMED_ID": "InvalidIdFault",
    "INVALID_ID_FIELD": "InvalidIdFault",
}


def fault(
    code: str,
    message: str,
    *,
    row: int | None = None,
    column: int | None = None,
    flavor: schema.Flavor = schema.PARTNER,
) -> Response:
    """A Salesforce API fault: ``sf:CODE`` and the typed detail in the fault namespace."""
    root, body = _envelope(flavor.fault_ns, None)
    node = sub(body, "soapenv:Fault")
    sub(node, "faultcode", f"sf:{code}")
    sub(node, "faultstring", f"{code}: {message}")
    kind = FAULT_TYPES.get(code, "UnexpectedErrorFault")
    detail = sub(sub(node, "detail"), f"sf:{kind}", xsi_type=f"sf:{kind}")
    sub(detail, "sf:exceptionCode", code)
    sub(detail, "sf:exceptionMessage", message)
    if kind in schema.QUERY_FAULTS:
        sub(detail, "sf:row", str(row if row is not None else -1))
        sub(detail, "sf:column", str(column if column is not None else -1))
    return to_response(root, 500)


def error_fault(exc: errors.OpenCadenceError, flavor: schema.Flavor = schema.PARTNER) -> Response:
    return fault(
        exc.error_code,
        exc.message,
        row=getattr(exc, "line", None),
        column=getattr(exc, "column", None),
        flavor=flavor,
    )


def client_fault(
    message: str, flavor: schema.Flavor = schema.PARTNER, status: int = 500
) -> Response:
    root, body = _envelope(flavor.fault_ns, None)
    node = sub(body, "soapenv:Fault")
    sub(node, "faultcode", "soapenv:Client")
    sub(node, "faultstring", message)
    return to_response(root, status)


# --- typed values ---------------------------------------------------------------------------


def scalar_text(xsd_type: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if xsd_type == "xsd:dateTime":
        return soap_datetime(text)
    return text


def soap_datetime(text: str) -> str:
    """REST's ``...000+0000`` as xsd:dateTime (``...000Z``), as the SOAP API writes it."""
    return text[:-5] + "Z" if text.endswith("+0000") else text


def write(parent: ET.Element, el: schema.El, value: Any) -> None:
    """``value`` as the element ``el`` declares it (a mapping for a complex type)."""
    if el.many and value is None:
        return
    for item in value if el.many else [value]:
        if item is None:
            nil(parent, el.name)
        elif el.scalar:
            sub(parent, el.name, scalar_text(el.type, item))
        else:
            write_type(sub(parent, el.name), el.type, item)


def write_type(node: ET.Element, type_name: str, data: Mapping[str, Any]) -> None:
    for el in schema.TYPES[type_name]:
        if el.name in data:
            write(node, el, data[el.name])
