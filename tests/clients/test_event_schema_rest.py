"""The event schema REST resources of change event entities, over HTTPS to the real server."""

from __future__ import annotations

import fastavro

from opencadence.metadata import event_schema

from .conftest import Server


def _get(server: Server, path: str) -> tuple[int, object]:
    user_id = server.org.accounts.authenticate(server.admin, server.admin_password)
    token = server.org.accounts.open_session(user_id)
    s = server.session()
    r = s.get(
        f"https://{server.instance}/services/data/v62.0{path}",
        headers={"Authorization": f"Bearer {token}"},
    )
    return r.status_code, r.json()


def test_schema_by_entity_and_by_id_agree(server: Server) -> None:
    status, by_entity = _get(server, "/sobjects/ActionCadenceStepTrackerChangeEvent/eventSchema")
    assert status == 200 and isinstance(by_entity, dict)
    assert by_entity["name"] == "ActionCadenceStepTrackerChangeEvent"
    assert by_entity["fields"][0]["name"] == "ChangeEventHeader"
    schema_id = by_entity.pop("uuid")
    obj = server.org.registry.object("ActionCadenceStepTracker")
    assert schema_id == event_schema.schema_id(obj)  # what Pub/Sub's GetTopic/events carry
    fastavro.parse_schema(by_entity)
    status, by_id = _get(server, f"/event/eventSchema/{schema_id}")
    assert status == 200 and isinstance(by_id, dict)
    assert by_id.pop("uuid") == schema_id and by_id == by_entity


def test_unknown_entity_or_schema_id_is_not_found(server: Server) -> None:
    for path in (
        "/sobjects/NopeChangeEvent/eventSchema",
        "/sobjects/ActionCadenceRuleChangeEvent/eventSchema",  # no change events
        "/event/eventSchema/nope",
    ):
        status, body = _get(server, path)
        assert status == 404, path
        assert isinstance(body, list) and body[0]["errorCode"] == "NOT_FOUND"


def test_change_event_entities_describe_as_read_only_non_sobjects(server: Server) -> None:
    status, found = _get(server, "/sobjects/ActionCadenceStepTrackerChangeEvent/describe")
    assert status == 200 and isinstance(found, dict)
    assert found["name"] == "ActionCadenceStepTrackerChangeEvent"
    tracker = server.org.registry.object("ActionCadenceStepTracker")
    assert found["label"] == f"{tracker.label} Change Event"
    assert not any(found[k] for k in ("createable", "updateable", "deletable", "queryable"))
    fields = {f["name"]: f for f in found["fields"]}
    assert fields["ChangeEventHeader"]["type"] == "complexvalue"
    assert {"Id", "ReplayId", "State", "LastModifiedDate"} <= set(fields)
    assert "IsDeleted" not in fields and "SystemModstamp" not in fields
    assert not any(f["createable"] or f["updateable"] for f in found["fields"])
    # the real objects still describe as before, unknown change events are NOT_FOUND
    status, contact = _get(server, "/sobjects/Contact/describe")
    assert status == 200 and isinstance(contact, dict) and contact["name"] == "Contact"
    status, _ = _get(server, "/sobjects/NopeChangeEvent/describe")
    assert status == 404
