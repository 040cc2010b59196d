"""Avro schemas of the change event entities, generated from the object metadata."""

from __future__ import annotations

import dataclasses

import fastavro

from opencadence.api import pubsub_avro
from opencadence.metadata import event_schema
from opencadence.metadata.registry import default_registry
from opencadence.storage import events

REGISTRY = default_registry()


def test_every_change_event_entity_has_a_valid_schema_and_a_distinct_id() -> None:
    ids = set()
    for obj in event_schema.entities(REGISTRY):
        schema = event_schema.avro_schema(obj)
        fastavro.parse_schema(schema)
        assert schema["name"] == f"{obj.name}ChangeEvent"
        assert schema["fields"][0]["name"] == "ChangeEventHeader"
        assert event_schema.by_schema_id(REGISTRY, event_schema.schema_id(obj)) is obj
        ids.add(event_schema.schema_id(obj))
    assert len(ids) == len(event_schema.entities(REGISTRY))
    assert event_schema.by_event_name(REGISTRY, "ActionCadenceRuleChangeEvent") is None
    assert event_schema.by_event_name(REGISTRY, "contactChangeEvent") is None  # exact case


def test_schema_fields_are_the_fields_change_events_carry() -> None:
    """The log's event fields (storage/events.py) less Id, with a person name compound."""
    for obj in event_schema.entities(REGISTRY):
        logged = [f.name for f in events.event_fields(obj) if f.name != "Id"]
        parts = event_schema.name_parts(obj)
        assert [f.name for f in event_schema.event_fields(obj)] == [
            n for n in logged if n not in parts
        ]


def test_schema_id_changes_with_the_fields() -> None:
    contact = REGISTRY.object("Contact")
    fewer = dataclasses.replace(
        contact, fields=tuple(f for f in contact.fields if f.name != "Title")
    )
    assert event_schema.schema_id(fewer) != event_schema.schema_id(contact)
    assert len(event_schema.schema_id(contact)) == 22


def test_bitmaps_set_the_bit_of_each_schema_position() -> None:
    contact = REGISTRY.object("Contact")
    positions = event_schema.field_positions(contact)
    title, modified = positions["Title"], positions["LastModifiedDate"]
    assert event_schema.bitmap(contact, ["Title"]) == [f"0x{1 << title:X}"]
    assert event_schema.bitmap(contact, ["Title", "LastModifiedDate", "Nope"]) == [
        f"0x{(1 << title) | (1 << modified):X}"
    ]
    assert event_schema.bitmap(contact, []) == []
    # parts of the compound Name: Salutation, FirstName, LastName are bits 0, 1, 2 of Name's
    name = positions["Name"]
    assert event_schema.bitmap(contact, ["LastName", "Salutation"]) == ["0x0", f"{name}-0x5"]
    task = REGISTRY.object("Task")
    assert event_schema.name_parts(task) == ()


def test_an_event_round_trips_through_avro() -> None:
    contact = REGISTRY.object("Contact")
    payload = {
        "ChangeEventHeader": {
            "entityName": "Contact",
            "recordIds": ["0030C0000000001AAA"],
            "changeType": "UPDATE",
            "changeOrigin": "",
            "transactionKey": "k",
            "sequenceNumber": 1,
            "commitTimestamp": 1,
            "commitNumber": 2,
            "commitUser": "0050C0000000001QAA",
            "changedFields": ["LastName", "DoNotCall", "LastModifiedDate"],
            "nulledFields": [],
            "diffFields": [],
        },
        "LastName": "Lovelace",
        "DoNotCall": True,
        "LastModifiedDate": "2026-01-02T03:04:05.006Z",
    }
    back = pubsub_avro.decode(contact, pubsub_avro.encode(contact, payload))
    assert back["Name"] == {"Salutation": None, "FirstName": None, "LastName": "Lovelace"}
    assert back["DoNotCall"] is True and back["Title"] is None
    assert back["LastModifiedDate"] == 1767323045006
    assert back["ChangeEventHeader"]["changeType"] == "UPDATE"
