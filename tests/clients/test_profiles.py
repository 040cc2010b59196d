"""The minimal Profile object the sf CLI and ``User.Profile.Name`` queries read: two seeded,
read-only profiles; a user's ProfileId names System Administrator for an administrator and
Standard User otherwise (docs/how-to/sf-cli.md)."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceError

from opencadence.storage import authorization

from .conftest import Server
from .test_simple_salesforce import by_session


def test_users_have_the_profile_of_their_admin_flag(server: Server) -> None:
    sf = by_session(server)
    profiles = sf.query("SELECT Id, Name, UserType FROM Profile ORDER BY Name")["records"]
    assert [(p["Id"], p["Name"], p["UserType"]) for p in profiles] == [
        (authorization.STANDARD_PROFILE_ID, "Standard User", "Standard"),
        (authorization.ADMIN_PROFILE_ID, "System Administrator", "Standard"),
    ]
    admin = sf.query(f"SELECT Profile.Name FROM User WHERE Username = '{server.admin}'")
    assert admin["records"][0]["Profile"]["Name"] == "System Administrator"

    rep_id, _ = server.org.accounts.create_user("rep@oc.test", "pw")
    made = sf.User.create(
        {"Username": "api@oc.test", "LastName": "Api", "Alias": "api", "Email": "api@oc.test",
         "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US", "LanguageLocaleKey": "en_US",
         "EmailEncodingKey": "UTF-8"}
    )["id"]  # fmt: skip
    for user_id in (rep_id, made):
        assert sf.User.get(user_id)["ProfileId"] == authorization.STANDARD_PROFILE_ID
    server.org.accounts.set_admin(rep_id, True)  # `opencadence users update --admin`
    assert sf.User.get(rep_id)["ProfileId"] == authorization.ADMIN_PROFILE_ID
    server.org.accounts.set_admin(rep_id, False)
    assert sf.User.get(rep_id)["ProfileId"] == authorization.STANDARD_PROFILE_ID

    described = sf.Profile.describe()
    assert described["keyPrefix"] == "00e" and described["createable"] is False
    with pytest.raises(SalesforceError):
        sf.Profile.create({"Name": "Mine"})
    with pytest.raises(SalesforceError):
        sf.Profile.update(authorization.STANDARD_PROFILE_ID, {"Name": "Renamed"})
    assert sf.Profile.get(authorization.STANDARD_PROFILE_ID)["Name"] == "Standard User"
