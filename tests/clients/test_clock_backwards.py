"""The manual clock refuses to move backwards with INVALID_OPERATION, not a JSON parse error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from .conftest import Server
from .test_simple_salesforce import by_session


def test_moving_the_clock_backwards_is_an_invalid_operation(server: Server) -> None:
    sf = by_session(server)
    before = server.clock.now()
    earlier = (before - timedelta(days=1)).isoformat()
    for body in (f'{{"set": "{earlier}"}}', '{"advance": -60}'):
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.restful("../../../_opencadence/clock", method="POST", data=body)
        error = info.value.content[0]
        assert info.value.status == 400
        assert error["errorCode"] == "INVALID_OPERATION"
        assert error["message"].startswith("the org's clock never moves backwards")
    assert server.clock.now() == before
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("../../../_opencadence/clock", method="POST", data='{"set": "not a date"}')
    assert info.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
