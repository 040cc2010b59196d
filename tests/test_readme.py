"""The README stands alone: it names nothing a reader cannot see, and says what login needs."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_refers_to_no_issue() -> None:
    assert not re.search(r"\bissues?\b", README, re.IGNORECASE)


def test_readme_says_the_password_grant_needs_a_connected_app() -> None:
    oauth = next(line for line in README.splitlines() if "OAuth 2.0 password" in line)
    assert "client_id" in oauth and "opencadence apps create" in oauth
