"""What the Pub/Sub server's command-line options default to, in a module of their own: the
``opencadence`` command builds its parser from them without importing grpc and the server."""

from __future__ import annotations

DEFAULT_PORT = 7443
#: Salesforce sends an empty FetchResponse within 270 seconds when there is nothing to send.
KEEPALIVE_SECONDS = 270.0
