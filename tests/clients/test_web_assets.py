"""The web app's static assets: the vendored htmx and the stylesheet under content-hash URLs
with a year-long immutable cache lifetime; a URL with another digest is never served."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from opencadence.web import assets
from tests.clients.conftest import Server

VENDOR = Path(assets.__file__).parent / "static" / "vendor"


def test_assets_are_served_under_their_content_hash_with_long_cache_headers(
    server: Server,
) -> None:
    s = server.session()
    page = s.get(f"https://{server.instance}/app/login")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"  # the page itself is never cached
    urls = re.findall(r'(?:href|src)="(/app/static/[^"]+)"', page.text)
    assert {u.rsplit("/", 1)[1] for u in urls} == {"app.css", "htmx-2.0.11.min.js"}
    for url in urls:
        digest, path = url.removeprefix("/app/static/").split("/", 1)
        body = (Path(assets.__file__).parent / "static" / path).read_bytes()
        assert digest == hashlib.sha256(body).hexdigest()[:16]
        got = s.get(f"https://{server.instance}{url}")
        assert got.status_code == 200 and got.content == body
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert got.headers["content-type"].startswith(
            "text/css" if path.endswith(".css") else "text/javascript"
        )
        again = s.get(
            f"https://{server.instance}{url}", headers={"If-None-Match": got.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        stale = s.get(f"https://{server.instance}/app/static/{'0' * 16}/{path}")
        assert stale.status_code == 404 and "immutable" not in stale.headers["cache-control"]
    assert s.get(f"https://{server.instance}/app/static/app.css").status_code == 404


def test_htmx_is_the_pinned_release_with_its_licence() -> None:
    body = (VENDOR / "htmx-2.0.11.min.js").read_bytes()
    # the npm package htmx.org@2.0.11's dist/htmx.min.js, unmodified
    assert hashlib.sha256(body).hexdigest() == (
        "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
    )
    assert b'version:"2.0.11"' in body
    assert "Zero-Clause BSD" in (VENDOR / "htmx-LICENSE.txt").read_text()
