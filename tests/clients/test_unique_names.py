"""Values Salesforce keeps unique, through unmodified simple-salesforce against the server."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from opencadence import errors

from .conftest import Server
from .test_simple_salesforce import by_session

USER = {
    "LastName": "Dup",
    "Email": "dup@x.io",
    "Alias": "dup",
    "TimeZoneSidKey": "GMT",
    "LocaleSidKey": "en_US",
    "LanguageLocaleKey": "en_US",
    "EmailEncodingKey": "UTF-8",
}


def test_rest_user_create_refuses_an_existing_username(server: Server) -> None:
    sf = by_session(server)
    first = sf.User.create({**USER, "Username": "Rep@X.io"})
    assert first["success"] is True
    for taken in ("rep@x.io", server.admin.upper()):
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.User.create({**USER, "Username": taken})
        assert info.value.status == 400
        [error] = info.value.content
        assert error["errorCode"] == "DUPLICATE_USERNAME"
        assert error["message"].startswith("Duplicate Username.<br>The username already exists")
        assert error["fields"] == ["Username"]
    found = sf.query("SELECT Id FROM User WHERE Username = 'rep@x.io'")
    assert found["totalSize"] == 1


def test_rest_user_update_to_an_existing_username_is_refused(server: Server) -> None:
    sf = by_session(server)
    made = sf.User.create({**USER, "Username": "other@x.io"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.User.update(made, {"Username": "ADMIN@oc.test"})
    assert info.value.content[0]["errorCode"] == "DUPLICATE_USERNAME"
    assert sf.User.update(made, {"Username": "Other@X.io"}) == 204  # its own name, recased


def test_a_concurrent_duplicate_username_is_refused_by_the_database(server: Server) -> None:
    """Past the up-front check (two creates at once), the unique index still refuses it."""
    accounts = server.org.accounts
    accounts.create_user("race@x.io", "pw")
    original = accounts.check_username
    accounts.check_username = lambda *a, **k: None  # type: ignore[method-assign]
    try:
        sf = by_session(server)
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.User.create({**USER, "Username": "RACE@x.io"})
        assert info.value.content[0]["errorCode"] == "DUPLICATE_USERNAME"
        with pytest.raises(errors.DuplicateUsername):
            accounts.create_user("Race@X.io", "pw")
    finally:
        accounts.check_username = original  # type: ignore[method-assign]


def _template(folder: str, developer_name: str) -> dict[str, object]:
    return {
        "FolderId": folder,
        "Name": developer_name,
        "DeveloperName": developer_name,
        "TemplateType": "text",
        "Subject": "Hi",
        "Body": "Hello",
        "IsActive": True,
    }


def _refused_as_duplicate_developer_name(info: pytest.ExceptionInfo[Exception]) -> None:
    assert isinstance(info.value, SalesforceMalformedRequest) and info.value.status == 400
    [error] = info.value.content
    assert error["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    assert error["fields"] == ["DeveloperName"]
    assert error["message"].startswith("The Template Unique Name already exists")


def test_email_template_developer_names_are_unique(server: Server) -> None:
    sf = by_session(server)
    me = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    first = sf.EmailTemplate.create(_template(me, "Intro_Mail"))["id"]
    for taken in ("Intro_Mail", "intro_MAIL"):
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.EmailTemplate.create(_template(me, taken))
        _refused_as_duplicate_developer_name(info)
    second = sf.EmailTemplate.create(_template(me, "Follow_Up"))["id"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.EmailTemplate.update(second, {"DeveloperName": "INTRO_mail"})
    _refused_as_duplicate_developer_name(info)
    assert sf.EmailTemplate.get(second)["DeveloperName"] == "Follow_Up"
    assert sf.EmailTemplate.update(first, {"DeveloperName": "intro_mail", "Subject": "Hey"}) == 204
    names = sf.query("SELECT DeveloperName FROM EmailTemplate ORDER BY DeveloperName")
    assert [r["DeveloperName"] for r in names["records"]] == ["Follow_Up", "intro_mail"]
    sf.EmailTemplate.delete(second)  # a deleted template's name is free again
    assert sf.EmailTemplate.create(_template(me, "Follow_Up"))["success"] is True


def test_a_concurrent_duplicate_developer_name_is_refused_by_the_database(server: Server) -> None:
    """Past the up-front check (two creates at once), the partial unique index on
    lower(DeveloperName) still refuses it, as DUPLICATE_DEVELOPER_NAME, and writes nothing."""
    sf = by_session(server)
    me = sf.query("SELECT Id FROM User WHERE Username = 'admin@oc.test'")["records"][0]["Id"]
    sf.EmailTemplate.create(_template(me, "Race_Mail"))
    org = server.org
    original = org._check_developer_name
    org._check_developer_name = lambda *a, **k: None  # type: ignore[method-assign]
    try:
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.EmailTemplate.create(_template(me, "RACE_mail"))
        _refused_as_duplicate_developer_name(info)
    finally:
        org._check_developer_name = original  # type: ignore[method-assign]
    found = sf.query("SELECT Id FROM EmailTemplate WHERE DeveloperName = 'race_mail'")
    assert found["totalSize"] == 1
