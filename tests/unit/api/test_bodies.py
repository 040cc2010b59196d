"""Bodies are read within their cap: refused from Content-Length before any byte is read, and
while a chunked body streams in as soon as it passes the cap (never read whole)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from opencadence import errors
from opencadence.api import bodies

CHUNK = 65536


def _request(headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[Request, list[int]]:
    read: list[int] = []

    async def receive() -> dict[str, Any]:
        read.append(1)
        more = len(read) < chunks
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": more}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive), read


def test_a_declared_length_over_the_cap_is_refused_unread() -> None:
    request, read = _request([(b"content-length", b"400000000")], chunks=6000)
    with pytest.raises(errors.RequestTooLarge):
        asyncio.run(bodies.read(request, bodies.REST_MAX))
    assert read == []


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_cap() -> None:
    request, read = _request([], chunks=6000)  # 400 MB, no Content-Length
    with pytest.raises(errors.RequestTooLarge):
        asyncio.run(bodies.read(request, bodies.REST_MAX))
    assert len(read) == bodies.REST_MAX // CHUNK + 1


def test_a_body_within_the_cap_is_read() -> None:
    request, _read = _request([], chunks=3)
    assert asyncio.run(bodies.read(request, bodies.REST_MAX)) == b"x" * CHUNK * 3


@pytest.mark.parametrize(
    "raw", [b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"[" * 100_000, b"1" * 5000, b"\xff"]
)
def test_strict_json(raw: bytes) -> None:
    with pytest.raises(errors.JsonParserError):
        bodies.parse_json(raw)
