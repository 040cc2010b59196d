"""Email templates and tracking links through the real server."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceRefusedRequest

from opencadence.email import tracking

from .conftest import Server
from .test_simple_salesforce import by_session


def test_template_merge_fields_are_checked_when_saved(server: Server) -> None:
    sf = by_session(server)
    me = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    ok = sf.EmailTemplate.create(
        {
            "FolderId": me,
            "Name": "Intro",
            "DeveloperName": "Intro",
            "TemplateType": "text",
            "Subject": "Hi {!Contact.FirstName, there}",
            "Body": "From {!User.Name}",
            "IsActive": True,
        }
    )
    assert ok["success"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.EmailTemplate.create(
            {
                "FolderId": me,
                "Name": "Bad",
                "DeveloperName": "Bad",
                "TemplateType": "text",
                "Subject": "Hi {!Contact.NoSuchField}",
                "Body": "x",
                "IsActive": True,
            }
        )
    assert "NoSuchField" in info.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest):
        sf.EmailTemplate.update(ok["id"], {"Body": "{!Lead.Nope}"})
    assert sf.EmailTemplate.get(ok["id"])["Body"] == "From {!User.Name}"


def test_tracking_links_verify_their_signature(server: Server) -> None:
    s = server.session()
    base = f"https://{server.instance}"
    secret = server.org.accounts.secret("tracking")
    token = tracking.make_token(secret, "0cK0C00000000AAAAA", "c", "https://example.com/pricing")
    r = s.get(f"{base}/email/c/{token}", allow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "https://example.com/pricing"
    forged = tracking.make_token(
        b"not the org secret", "0cK0C00000000AAAAA", "c", "https://evil.example"
    )
    assert s.get(f"{base}/email/c/{forged}", allow_redirects=False).status_code == 404
    pixel = s.get(f"{base}/email/o/{forged}")
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"


def test_email_settings_are_editable_by_admins(server: Server) -> None:
    sf = by_session(server)
    path = "opencadence/email-settings"
    before = sf.restful(path)
    assert before["defaults"]["user_daily_auto_cap"] == 1000
    after = sf.restful(
        path,
        method="PATCH",
        data='{"scope": "org", "values": {"user_daily_auto_cap": 50, "window_start_minute": 540}}',
    )
    assert after["scopes"]["org"] == {"user_daily_auto_cap": 50, "window_start_minute": 540}
    for bad in (
        '{"values": {"nope": 1}}',
        '{"values": {"user_daily_auto_cap": "x"}}',
        '{"scope": "zz", "values": {"email_enabled": 0}}',
    ):
        with pytest.raises(SalesforceMalformedRequest):
            sf.restful(path, method="PATCH", data=bad)
    assert sf.restful(path)["scopes"]["org"] == {
        "user_daily_auto_cap": 50,
        "window_start_minute": 540,
    }
    user_id, _ = server.org.accounts.create_user("rep@oc.test", "pw")
    rep = Salesforce(
        session_id=server.org.accounts.open_session(user_id),
        instance=server.instance,
        session=server.session(),
    )
    with pytest.raises(SalesforceRefusedRequest):
        rep.restful(path)
