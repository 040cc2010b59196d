"""The web app under ``/app``: sign-in and My Work, server-rendered over the same ``Org``.

Every read is a SOQL query through ``Org.query`` and every write an ``Org.create`` or
``Org.invoke_action`` for the signed-in session, so the app sees and changes exactly what the
same user could through the API (visibility, permissions, change events)."""

from opencadence.web.pages import mount

__all__ = ["mount"]
