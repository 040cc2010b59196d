"""A starting ``opencadence worker`` waits out an unreachable database (a supervisor restarts
it during a database restart); other start-up failures still end it at once."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from opencadence import system
from opencadence.cli import cadence as cli_cadence
from opencadence.storage import database


def _lost() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def test_a_starting_worker_retries_while_the_database_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []
    slept: list[float] = []
    built = object()

    def build(settings: system.Settings) -> Any:
        attempts.append(1)
        if len(attempts) < 4:
            raise _lost()
        return built

    monkeypatch.setattr(cli_cadence.system, "build", build)
    monkeypatch.setattr(cli_cadence.time, "sleep", slept.append)
    assert cli_cadence._build_waiting(system.Settings(database_url="sqlite://")) is built
    assert len(attempts) == 4 and slept == [0.5, 1.0, 2.0]


def test_other_start_up_failures_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(settings: system.Settings) -> Any:
        raise ValueError("--smtp-relay must be HOST:PORT")

    monkeypatch.setattr(cli_cadence.system, "build", build)
    monkeypatch.setattr(cli_cadence.time, "sleep", lambda s: pytest.fail("must not wait"))
    with pytest.raises(ValueError):
        cli_cadence._build_waiting(system.Settings(database_url="sqlite://"))


def test_what_counts_as_unreachable() -> None:
    assert database.unreachable(_lost())
    assert not database.unreachable(sa.exc.IntegrityError("INSERT", {}, Exception("dup")))
    assert not database.unreachable(ValueError("x"))


def test_a_real_refused_connection_is_unreachable() -> None:
    engine = database.create_engine("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(sa.exc.DBAPIError) as info:
        engine.connect()
    engine.dispose()
    assert database.unreachable(info.value)
