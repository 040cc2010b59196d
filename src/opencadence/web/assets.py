"""Static assets under content-hash URLs: ``/app/static/{digest}/{path}``.

The digest is the first 16 hex digits of the file's SHA-256, computed once when the process
starts. A URL names one exact content, so it is served with a year-long ``immutable`` cache
lifetime; a changed file gets a new URL, which the pages (rendered with ``url``) pick up at
once. A URL whose digest is not the file's current one answers 404, never stale bytes."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

ROOT = Path(__file__).parent / "static"
#: a year, the longest lifetime RFC 9111 caches are asked to honour
CACHE_CONTROL = "public, max-age=31536000, immutable"
DIGEST_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Asset:
    path: str  # relative to ROOT, with "/"
    digest: str
    body: bytes
    media_type: str

    @property
    def url(self) -> str:
        return f"/app/static/{self.digest}/{self.path}"


def _load(root: Path) -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for file in sorted(root.rglob("*")):
        if not file.is_file() or file.name.endswith(".md"):
            continue
        rel = file.relative_to(root).as_posix()
        body = file.read_bytes()
        media = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if media.startswith("text/") or media.endswith("javascript"):
            media += "; charset=utf-8"
        digest = hashlib.sha256(body).hexdigest()[:DIGEST_LENGTH]
        found[rel] = Asset(rel, digest, body, media)
    return found


ASSETS = _load(ROOT)


def url(path: str) -> str:
    """The content-hash URL of ``path`` (relative to web/static); KeyError if there is none."""
    return ASSETS[path].url


async def serve(request: Request) -> Response:
    asset = ASSETS.get(request.path_params["path"])
    if asset is None or asset.digest != request.path_params["digest"]:
        return PlainTextResponse(
            "Not Found", status_code=404, headers={"cache-control": "no-store"}
        )
    etag = f'"{asset.digest}"'
    headers = {
        "cache-control": CACHE_CONTROL,
        "etag": etag,
        "x-content-type-options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
