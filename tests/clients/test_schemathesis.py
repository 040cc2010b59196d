"""Schemathesis against the OpenAPI document: no generated request may cause a 5xx.

The operations are driven with Hypothesis directly (one property per operation) rather than
through schemathesis's pytest plugin, so the test runs on both databases like the rest.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from opencadence.api import app as api_app
from opencadence.org import Org
from opencadence.storage import records


def test_no_server_errors(store: records.Store) -> None:
    org = Org(store)
    user_id, _token = org.accounts.create_user("fuzz@oc.test", "pw", admin=True)
    token = org.accounts.open_session(user_id)
    schema = schemathesis.openapi.from_asgi("/services/data/openapi.json", api_app.build_app(org))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    paths = {op.path for op in operations}
    for wanted in (
        "/composite",
        "/composite/batch",
        "/composite/tree/{sobject}",
        "/composite/sobjects",
        "/composite/sobjects/{sobject}",
        "/composite/sobjects/{sobject}/{field}",
        "/sobjects/{sobject}/{field}/{value}",
    ):
        assert f"/services/data/v{{version}}{wanted}" in paths, wanted
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def property_(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                )

        property_()
    assert failures == []
