"""A change-event subscriber in an integration test: an unmodified aiosfstream-ng client on the
``opencadence_org`` fixture's org (the user guide's "Testing an integration" includes this file,
and tests/test_docs.py runs it)."""

import asyncio
import os

import pytest


@pytest.fixture
def streaming(opencadence_org):
    """aiosfstream-ng, trusting the org's certificate: aiohttp reads SSL_CERT_FILE once, when it
    is imported, so the variable is set first (outside a test, set it in the shell)."""
    os.environ["SSL_CERT_FILE"] = opencadence_org.ca_file
    import aiosfstream_ng

    return aiosfstream_ng


def local_auth(streaming, token, instance_url):
    """An authenticator that hands the client the org's token instead of logging in."""

    class LocalAuth(streaming.auth.AuthenticatorBase):
        async def _authenticate(self):
            return 200, {
                "access_token": token,
                "token_type": "Bearer",
                "instance_url": instance_url,
                "id": "local",
                "issued_at": "0",
                "signature": "local",
            }

    return LocalAuth()


async def first_contact_event(streaming, org, create):
    """Subscribe, then make a change, and return the first event's header."""
    auth = local_auth(streaming, org.access_token, org.instance_url)
    async with streaming.Client(auth) as client:
        await client.subscribe("/data/ContactChangeEvent")
        await asyncio.to_thread(create)
        async for message in client:
            return message["data"]["payload"]["ChangeEventHeader"]


def test_a_new_contact_is_published(opencadence_org, streaming):
    created = []

    def create():
        created.append(opencadence_org.sf.Contact.create({"LastName": "Ng"})["id"])

    header = asyncio.run(
        asyncio.wait_for(first_contact_event(streaming, opencadence_org, create), timeout=60)
    )
    assert header["changeType"] == "CREATE"
    assert header["entityName"] == "Contact"
    assert header["recordIds"] == created
