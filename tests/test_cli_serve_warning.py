"""`serve` says loudly at start-up when automated emails are recorded instead of sent."""

from __future__ import annotations

from typing import Any

import pytest

from opencadence import cli
from opencadence.api import server


def _serve(monkeypatch: pytest.MonkeyPatch, db_url: str, *extra: str) -> None:
    started: list[Any] = []
    monkeypatch.setattr(server, "run", lambda built, **kw: started.append(kw))
    assert (
        cli.main(["serve", "--database", db_url, "--no-worker", "--pubsub-port", "0", *extra]) == 0
    )
    assert len(started) == 1


def test_serve_without_relay_warns_that_emails_are_not_sent(
    monkeypatch: pytest.MonkeyPatch, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve(monkeypatch, db_url)
    err = capsys.readouterr().err
    assert "automated emails are recorded, not sent, until --smtp-relay is given" in err


def test_serve_with_relay_does_not_warn(
    monkeypatch: pytest.MonkeyPatch, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve(monkeypatch, db_url, "--smtp-relay", "127.0.0.1:2525", "--smtp-tls", "none")
    assert "recorded, not sent" not in capsys.readouterr().err
