"""Open and click tracking: signed tokens, HTML rewriting at send time, and the handlers the
HTTP routes call (``Tracker.record_open`` / ``Tracker.record_click``).

A token is ``base64url(json payload) "." base64url(HMAC-SHA256(secret, payload))``. The
payload names the outbox row (the step tracker Id), the kind (o = open, c = click) and, for a
click, the destination. A token that does not verify changes nothing, and a click token is
the only way to get a redirect: the destination is inside the signed payload, so the
redirect endpoint can never be used as an open redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from opencadence.email import engagement
from opencadence.storage import records

log = logging.getLogger(__name__)

OPEN_PATH = "/email/o/"
CLICK_PATH = "/email/c/"
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.I)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, key: str, kind: str, url: str | None = None) -> str:
    """A signed token for the open ("o") or a click ("c", with its destination) of ``key``."""
    body: dict[str, Any] = {"k": key, "t": kind}
    if url is not None:
        body["u"] = url
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
    sig = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(sig)}"


def verify_token(secret: bytes, token: str) -> dict[str, Any] | None:
    """The payload of a token signed with ``secret``, or None for anything else."""
    try:
        p64, s64 = token.split(".")
        payload, sig = _unb64(p64), _unb64(s64)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(sig, hmac.new(secret, payload, hashlib.sha256).digest()):
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("k"), str)
        or body.get("t") not in ("o", "c")
    ):
        return None
    return body


def rewrite_html(html: str, secret: bytes, public_url: str, key: str) -> str:
    """Route every http(s) link through the click redirect and add the open pixel."""
    base = public_url.rstrip("/")

    def link(m: re.Match[str]) -> str:
        token = make_token(secret, key, "c", m.group(3))
        return f"{m.group(1)}{m.group(2)}{base}{CLICK_PATH}{token}{m.group(2)}"

    out = _HREF.sub(link, html)
    pixel = (
        f'<img src="{base}{OPEN_PATH}{make_token(secret, key, "o")}" width="1" height="1" '
        'alt="" style="display:none">'
    )
    at = out.lower().rfind("</body>")
    return out[:at] + pixel + out[at:] if at >= 0 else out + pixel


@dataclass
class Tracker:
    """What the HTTP routes call; no web framework here."""

    store: records.Store
    secret: bytes

    def record_open(self, token: str) -> bool:
        """The pixel was fetched. Returns whether the token was genuine (the route answers
        with the pixel either way)."""
        body = verify_token(self.secret, token)
        if body is None or body["t"] != "o":
            log.info("open with an invalid token ignored")
            return False
        engagement.record(self.store, body["k"], "open")
        return True

    def record_click(self, token: str) -> str | None:
        """A tracked link was followed: the destination to redirect to, None if forged."""
        body = verify_token(self.secret, token)
        if body is None or body["t"] != "c" or not isinstance(body.get("u"), str):
            log.info("click with an invalid token ignored")
            return None
        engagement.record(self.store, body["k"], "click", body["u"])
        url: str = body["u"]
        return url
