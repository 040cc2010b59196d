"""API usage as Salesforce reports it: ``Sforce-Limit-Info`` on every counted response (parsed by
unmodified simple-salesforce into ``sf.api_usage``), ``/limits`` with the standard keys and the
metered DailyApiRequests, ``/limits/recordCount``, and REQUEST_LIMIT_EXCEEDED past a configured
daily limit."""

from __future__ import annotations

from opencadence.api.rest import STANDARD_LIMITS
from opencadence.org import DEFAULT_DAILY_API_REQUESTS

from .conftest import Server
from .test_simple_salesforce import by_session

V = "/services/data/v59.0"


def _used(sf) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    usage = sf.api_usage["api-usage"]
    return usage.used, usage.total


def test_every_response_says_the_day_s_api_usage(server: Server) -> None:
    sf = by_session(server)
    sf.query("SELECT Id FROM User")
    first, total = _used(sf)
    assert total == DEFAULT_DAILY_API_REQUESTS and first >= 1
    sf.Contact.create({"LastName": "Counted"})
    sf.query("SELECT Id FROM Contact")
    assert _used(sf) == (first + 2, total)
    r = server.session().get(  # an error is a counted request, and says so
        f"https://{server.instance}{V}/query",
        params={"q": "SELECT Nope FROM Contact"},
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    assert r.status_code == 400
    assert r.headers["Sforce-Limit-Info"] == f"api-usage={first + 3}/{total}"


def test_an_unauthenticated_request_is_not_counted(server: Server) -> None:
    s = server.session()
    before = server.org.api_usage.used()
    r = s.get(f"https://{server.instance}{V}/limits")
    assert r.status_code == 401 and "Sforce-Limit-Info" not in r.headers
    assert server.org.api_usage.used() == before


def test_limits_has_the_standard_keys_and_meters_api_requests(server: Server) -> None:
    sf = by_session(server)
    limits = sf.limits()
    assert set(limits) == set(STANDARD_LIMITS)
    assert "ActiveCadenceTrackers" not in limits  # not a Salesforce limit
    for name, value in limits.items():
        assert set(value) - {"CreateCustom"} == {"Max", "Remaining"}, name
    api = limits["DailyApiRequests"]
    used, total = _used(sf)
    assert api == {"Max": total, "Remaining": total - used}
    assert limits["PermissionSets"]["CreateCustom"] == {"Max": 1000, "Remaining": 1000}


def test_record_count_counts_live_records(server: Server) -> None:
    sf = by_session(server)
    made = [sf.Contact.create({"LastName": f"C{i}"})["id"] for i in range(3)]
    sf.Contact.delete(made[0])
    sf.Lead.create({"LastName": "L", "Company": "Acme"})
    r = sf.restful("limits/recordCount", params={"sObjects": "Lead,contact,NoSuchObject"})
    assert r == {"sObjects": [{"count": 1, "name": "Lead"}, {"count": 2, "name": "Contact"}]}
    everything = {o["name"]: o["count"] for o in sf.restful("limits/recordCount")["sObjects"]}
    assert everything["Contact"] == 2 and everything["User"] >= 1


def test_past_a_configured_daily_limit_requests_are_refused(server: Server) -> None:
    sf = by_session(server)
    sf.query("SELECT Id FROM User")
    used, _ = _used(sf)
    server.org.api_request_limit = used + 1
    sf.query("SELECT Id FROM User")
    assert _used(sf) == (used + 1, used + 1)
    s = server.session()
    r = s.get(
        f"https://{server.instance}{V}/query",
        params={"q": "SELECT Id FROM User"},
        headers={"Authorization": f"Bearer {sf.session_id}"},
    )
    assert r.status_code == 403
    assert r.json() == [
        {
            "message": "TotalRequests Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "fields": [],
        }
    ]


def test_every_url_describe_advertises_is_served(server: Server) -> None:
    sf = by_session(server)
    s = server.session()
    auth = {"Authorization": f"Bearer {sf.session_id}"}
    sf.Contact.create({"LastName": "Described"})
    for name in ("Contact", "User"):
        urls = sf.restful(f"sobjects/{name}/describe")["urls"]
        record = sf.query(f"SELECT Id FROM {name} LIMIT 1")["records"]
        for key, url in urls.items():
            url = url.replace("{ID}", record[0]["Id"])
            r = s.get(f"https://{server.instance}{url}", headers=auth)
            assert r.status_code == 200, (name, key, url, r.status_code)


def test_sforce_call_options_client_goes_into_change_origin(server: Server) -> None:
    """REST writes carry ``Sforce-Call-Options: client=ID`` into changeOrigin, as SOAP's
    CallOptions do (Salesforce's header; simple-salesforce sends it as a plain header)."""
    sf = by_session(server)
    after = max([e["event"]["replayId"] for e in server.org.store.read_events()] or [0])
    headers = {"Sforce-Call-Options": "client=Sync/2, defaultNamespace=x"}
    made = sf.Contact.create({"LastName": "Origin"}, headers=headers)["id"]
    sf.Contact.update(made, {"Title": "CEO"}, headers=headers)
    sf.Contact.delete(made)  # no header: the plain origin
    origins = [
        e["payload"]["ChangeEventHeader"]["changeOrigin"]
        for e in server.org.store.read_events(after=after, entity="Contact")
    ]
    assert origins == [
        "com/salesforce/api/rest/59.0;client=Sync/2",
        "com/salesforce/api/rest/59.0;client=Sync/2",
        "com/salesforce/api/rest/59.0",
    ]
