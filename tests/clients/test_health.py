"""``GET /_opencadence/health`` on the real server: unauthenticated JSON a supervisor polls."""

from __future__ import annotations

from .conftest import Server


def test_health_answers_without_a_session(server: Server) -> None:
    r = server.session().get(f"https://{server.instance}/_opencadence/health", timeout=10)
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "ok" and doc["database"] == {"reachable": True, "error": None}
    # the test server runs its worker on demand (manual clock), not in a thread
    assert doc["workers"] == []
    assert doc["email"] == {"unknownOutcomeSends": 0}
