"""What the server logs: nothing for a CometD client that offers a WebSocket upgrade."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from opencadence.api import app as api_app
from opencadence.api import server as api_server
from opencadence.org import Org
from opencadence.storage import records

from .conftest import free_port, serving


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def logged() -> Iterator[_Collect]:
    """What uvicorn logs; attached after uvicorn.Config, which replaces its loggers' handlers."""
    handler = _Collect()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _post(port: int, path: str, headers: str, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "\r\n"
        ).encode()
        s.sendall(request + body)
        return s.recv(65536)


def test_a_websocket_upgrade_offer_logs_nothing(store: records.Store) -> None:
    org = Org(store)
    port = free_port()
    app = api_app.build_app(org, streaming_timeout=2.0)
    config = api_server.config(app, host="127.0.0.1", port=port, tls_files=None)
    with logged() as log, serving(config):
        response = _post(
            port,
            "/cometd/59.0",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            b'[{"channel": "/meta/handshake", "version": "1.0"}]',
        )
    assert response.startswith(b"HTTP/1.1 ")  # answered over plain HTTP (401: no session)
    warnings = [m for m in log.messages if "upgrade" in m.lower() or "WebSocket" in m]
    assert warnings == [], log.messages
