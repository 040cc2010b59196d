"""Records are written straight to markup for speed: the bytes must be those an element tree
gives, written by the envelope's tree writer. The reference below builds the tree as the SOAP
layer did before (partner sObjects and enterprise typed records), on both flavours."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

import pytest

from opencadence.api.soap import enterprise as ent
from opencadence.api.soap import envelope, partner, schema
from opencadence.metadata.registry import default_registry

REGISTRY = default_registry()
VERSION = "59.0"


def _ref_page(flavor: schema.Flavor, node: ET.Element, page: dict[str, Any]) -> None:
    envelope.sub(node, "done", "true" if page["done"] else "false")
    if page.get("nextRecordsUrl"):
        envelope.sub(node, "queryLocator", page["nextRecordsUrl"].rsplit("/", 1)[-1])
    else:
        envelope.nil(node, "queryLocator")
    for record in page["records"]:
        _ref_record(flavor, node, "records", record)
    envelope.sub(node, "size", str(page["totalSize"]))


def _ref_record(
    flavor: schema.Flavor, parent: ET.Element, tag: str, record: dict[str, Any]
) -> None:
    kind = record.get("attributes", {}).get("type", "")
    if flavor.typed:
        node = envelope.sub(parent, tag, xsi_type=f"sf:{kind}")
        rest = {k: v for k, v in record.items() if k != "attributes"}
        if REGISTRY.get(kind) is None:
            envelope.nil(node, "sf:Id")
            items = [(k, "xsd:string", v) for k, v in rest.items()]
        else:
            order = ent._order(REGISTRY, kind, VERSION)
            record_id = rest.pop("Id", None)
            if record_id is None:
                envelope.nil(node, "sf:Id")
            else:
                envelope.sub(node, "sf:Id", str(record_id))
            placed = [
                (order.get(k.lower(), (len(order), k, "xsd:string")), v) for k, v in rest.items()
            ]
            items = [(n, t, v) for (_, n, t), v in sorted(placed, key=lambda i: i[0][0])]
        for name, type_ref, value in items:
            _ref_value(flavor, node, f"sf:{name}", value, type_ref)
        return
    node = envelope.sub(parent, tag, xsi_type="sf:sObject")
    envelope.sub(node, "sf:type", kind)
    if record.get("Id"):
        envelope.sub(node, "sf:Id", str(record["Id"]))
    else:
        envelope.nil(node, "sf:Id")
    obj = REGISTRY.get(kind)
    datetimes = {f.name.lower() for f in obj.fields if f.type == "datetime"} if obj else set()
    for key, value in record.items():
        if key != "attributes":
            dt = "xsd:dateTime" if key.lower() in datetimes else "xsd:string"
            _ref_value(flavor, node, f"sf:{key}", value, dt)


def _ref_value(
    flavor: schema.Flavor, node: ET.Element, tag: str, value: Any, type_ref: str
) -> None:
    if value is None:
        envelope.nil(node, tag)
    elif isinstance(value, dict) and "records" in value:
        _ref_page(flavor, envelope.sub(node, tag, xsi_type="QueryResult"), value)
    elif isinstance(value, dict):
        _ref_record(flavor, node, tag, value)
    else:
        envelope.sub(node, tag, envelope.scalar_text(type_ref, value))


def _contact(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "attributes": {"type": "Contact", "url": f"/x/{n}"},
        "Id": f"003000000000{n:03d}AAA",
        "LastName": f"L{n} <&> \"q\" 'a'",
        "Title": None,
        "Email": "",
        "CreatedDate": "2026-01-02T03:04:05.000+0000",
        "Account": None if n % 2 else {"attributes": {"type": "Account"}, "Name": "A & B"},
        **extra,
    }


PAGES = [
    {
        "done": False,
        "nextRecordsUrl": "/services/data/v59.0/query/0r8xx-200",
        "totalSize": 3,
        "records": [_contact(1), _contact(2, Id=None), _contact(3, Phone=555, DoNotCall=True)],
    },
    {
        "done": True,
        "totalSize": 1,
        "records": [
            {
                "attributes": {"type": "Account"},
                "Name": "Acme",
                "Contacts": {"done": True, "totalSize": 2, "records": [_contact(4), _contact(5)]},
                "Opportunities": None,
            }
        ],
    },
    {
        "done": True,
        "totalSize": 2,
        "records": [
            {"attributes": {"type": "AggregateResult"}, "expr0": 3, "AccountId": None},
            {"attributes": {"type": "AggregateResult"}, "c": 1.5, "AccountId": "001x<"},
        ],
    },
    {"done": True, "totalSize": 0, "records": []},
]


@pytest.mark.parametrize("flavor", [schema.PARTNER, schema.ENTERPRISE], ids=lambda f: f.name)
@pytest.mark.parametrize("page", PAGES, ids=["contacts", "children", "aggregates", "empty"])
def test_markup_is_the_tree_writers_bytes(flavor: schema.Flavor, page: dict[str, Any]) -> None:
    ctx: Any = SimpleNamespace(
        org=SimpleNamespace(registry=REGISTRY), version=VERSION, flavor=flavor
    )
    ctx.registry = REGISTRY
    expected_root, expected = envelope.response_root("query", flavor)
    _ref_page(flavor, envelope.sub(expected, "result"), page)
    root, result = envelope.response_root("query", flavor)
    partner.write_query_result(ctx, envelope.sub(result, "result"), page)
    for record in page["records"]:  # retrieve/search write single records
        partner.write_sobject(ctx, result, "result", record)
        _ref_record(flavor, expected, "result", record)
    assert envelope.to_bytes(root) == envelope.to_bytes(expected_root)
