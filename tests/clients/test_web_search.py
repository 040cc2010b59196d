"""The web app's target search (SOSL through the same Org as /parameterizedSearch), in Chromium
against a real server, on both databases: a rep finds their contacts and leads by name, email
or phone, never another rep's; a search Salesforce refuses shows its message."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.conftest import Server
from tests.clients.test_web_app import (
    OTHER,
    REP,
    REP_PASSWORD,
    base,
    browser,
    context,
    log_in,
    org_server,
    pytestmark,
)

__all__ = ["browser", "context", "org_server", "pytestmark"]  # fixtures and the skip mark


def _names(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("tr.target td.name").all_inner_texts()]


@pytest.fixture
def people(org_server: Server) -> Server:
    org = org_server.org
    rita, sam = org.accounts.find_user(REP), org.accounts.find_user(OTHER)
    assert rita is not None and sam is not None
    with org.store.transaction() as tx:
        account = tx.insert("Account", {"Name": "Quasar Labs"})
        tx.insert(
            "Contact",
            {
                "FirstName": "Zora",
                "LastName": "Quilliam",
                "Email": "zora@quasar.example",
                "Phone": "(312) 555-0199",
                "AccountId": account,
                "OwnerId": rita["Id"],
            },
        )
        tx.insert(
            "Lead",
            {
                "FirstName": "Quentin",
                "LastName": "Quilliam",
                "Company": "Quasar Labs",
                "OwnerId": rita["Id"],
            },
        )
        tx.insert("Contact", {"LastName": "Quilliam", "FirstName": "Sam's", "OwnerId": sam["Id"]})
    return org_server


def test_a_rep_finds_their_targets(people: Server, context: Any) -> None:
    page = context.new_page()
    log_in(page, people, REP, REP_PASSWORD)
    page.get_by_role("heading", name="My Work").wait_for()
    page.get_by_label("Find a target").fill("quilliam")
    page.get_by_label("Find a target").press("Enter")  # the search box in every page's header
    page.get_by_role("heading", name="Find a target").wait_for()
    assert sorted(_names(page)) == ["Quentin Quilliam", "Zora Quilliam"]  # not Sam's contact
    zora = page.locator("tr.target", has_text="Zora")
    assert "Quasar Labs" in zora.inner_text() and "zora@quasar.example" in zora.inner_text()
    page.goto(f"{base(people)}/search?q=3125550199")
    assert _names(page) == ["Zora Quilliam"]
    page.goto(f"{base(people)}/search?q=quil*+AND+NOT+zora")
    assert _names(page) == ["Quentin Quilliam"]
    page.goto(f"{base(people)}/search?q=nobody-here")
    assert "Nothing found" in page.content()
    page.goto(f"{base(people)}/search?q=q")
    assert page.get_by_role("alert").inner_text() == (
        "search term must be longer than one character: q"
    )


def test_searching_needs_a_session(people: Server, context: Any) -> None:
    page = context.new_page()
    page.goto(f"{base(people)}/search?q=quilliam")
    assert page.url.endswith("/app/login")
