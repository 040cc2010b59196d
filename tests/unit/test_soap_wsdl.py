"""The served WSDLs are valid XML Schema (what wsimport/svcutil-style generators compile first),
and what the server writes validates against them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lxml import etree

from opencadence.api.soap import envelope, schema, wsdl
from opencadence.metadata import describe
from opencadence.metadata.registry import default_registry

XSD = "http://www.w3.org/2001/XMLSchema"


def documents() -> dict[str, bytes]:
    registry = default_registry()
    return {
        "partner": wsdl.partner("https://127.0.0.1:8443"),
        "enterprise": wsdl.enterprise_wsdl("https://127.0.0.1:8443", registry),
    }


def compile_schemas(document: bytes, folder: Path) -> dict[str, etree.XMLSchema]:
    """Each <schema> of the WSDL as a file (with the WSDL's prefixes and schemaLocations)."""
    root = etree.fromstring(document)
    found = root.findall(f".//{{{XSD}}}schema")
    paths = {s.get("targetNamespace"): folder / f"s{i}.xsd" for i, s in enumerate(found)}
    for node in found:
        names = {k: v for k, v in {**root.nsmap, **node.nsmap}.items() if k}
        copied = etree.Element(node.tag, attrib=dict(node.attrib), nsmap=names)
        for child in node:
            copied.append(copy.deepcopy(child))
        for imported in copied.findall(f"{{{XSD}}}import"):
            imported.set("schemaLocation", str(paths[imported.get("namespace")]))
        paths[node.get("targetNamespace")].write_bytes(etree.tostring(copied))
    return {ns: etree.XMLSchema(etree.parse(str(path))) for ns, path in paths.items()}


@pytest.mark.parametrize("flavor", ["partner", "enterprise"])
def test_wsdl_schemas_compile(flavor: str, tmp_path: Path) -> None:
    compiled = compile_schemas(documents()[flavor], tmp_path)
    assert len(compiled) == 3


@pytest.mark.parametrize(
    "flavor", [schema.PARTNER, schema.ENTERPRISE], ids=["partner", "enterprise"]
)
def test_describe_response_validates_against_the_wsdl(
    flavor: schema.Flavor, tmp_path: Path
) -> None:
    compiled = compile_schemas(documents()[flavor.name], tmp_path)
    registry = default_registry()
    root, result = envelope.response_root("describeSObjects", flavor)
    for name in ("ActionCadenceStepTracker", "Contact"):
        data = describe.describe_object(registry, name, "59.0")
        envelope.write_type(envelope.sub(result, "result"), "DescribeSObjectResult", data)
    body = etree.fromstring(envelope.to_bytes(root))
    (response,) = body.find(f"{{{schema.ENVELOPE_NS}}}Body")
    compiled[flavor.api_ns].assertValid(etree.ElementTree(response))


def test_a_fault_detail_validates_against_the_wsdl(tmp_path: Path) -> None:
    compiled = compile_schemas(documents()["partner"], tmp_path)
    response = envelope.fault("MALFORMED_QUERY", "unexpected token: 'FROM'", row=1, column=8)
    body = etree.fromstring(response.body)
    (detail,) = body.find(".//detail")
    compiled[schema.FAULT_NS].assertValid(etree.ElementTree(detail))
