"""``If-Modified-Since`` on describe and describeGlobal: 304 Not Modified when the metadata has
not changed since the given time, the full answer otherwise (unmodified simple-salesforce, which
raises its general error for a 304, as it does for any status of 300 or more). The metadata
changes only when a server starts, so "changed" is the moment this server started serving; its
answers say it in ``Last-Modified``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from simple_salesforce.exceptions import SalesforceGeneralError

from .conftest import Server
from .test_simple_salesforce import by_session


def _http(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def test_describe_and_describe_global_answer_304_when_nothing_changed(server: Server) -> None:
    sf = by_session(server)
    base = f"https://{server.instance}/services/data/v59.0"
    s = server.session()
    auth = {"Authorization": f"Bearer {sf.session_id}"}
    first = s.get(f"{base}/sobjects/Contact/describe", headers=auth)
    assert first.status_code == 200
    started = parsedate_to_datetime(first.headers["Last-Modified"])

    for since in (started, started + timedelta(days=1)):
        with pytest.raises(SalesforceGeneralError) as contact:
            sf.Contact.describe(headers={"If-Modified-Since": _http(since)})
        assert contact.value.status == 304
        with pytest.raises(SalesforceGeneralError) as every:
            sf.describe(headers={"If-Modified-Since": _http(since)})
        assert every.value.status == 304
        bare = s.get(f"{base}/sobjects", headers={**auth, "If-Modified-Since": _http(since)})
        assert bare.status_code == 304 and bare.content == b""

    # before the server started: changed since then, the whole describe
    earlier = _http(started - timedelta(seconds=1))
    assert sf.Contact.describe(headers={"If-Modified-Since": earlier})["name"] == "Contact"
    listed = sf.describe(headers={"If-Modified-Since": earlier})["sobjects"]
    assert any(o["name"] == "Contact" for o in listed)
    # a date that does not parse is ignored (HTTP), and an unknown object is still 404
    assert sf.Contact.describe(headers={"If-Modified-Since": "yesterday"})["name"] == "Contact"
    unknown = s.get(
        f"{base}/sobjects/Nope/describe", headers={**auth, "If-Modified-Since": _http(started)}
    )
    assert unknown.status_code == 404
    # the header needs a session like any request
    anonymous = s.get(f"{base}/sobjects", headers={"If-Modified-Since": _http(started)})
    assert anonymous.status_code == 401
