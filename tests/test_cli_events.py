"""``opencadence events tail``: change events as JSON lines as they are committed, in a
subprocess (so commits come from another process, as they do from a server), on both databases."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from opencadence import cli
from opencadence.storage import records


class Tail:
    """``opencadence events tail`` in a subprocess: its output lines as a reader thread gets
    them; ``stop`` is Ctrl-C, then (exit status, stderr)."""

    def __init__(self, db_url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opencadence", "events", "tail", "--database", db_url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def next(self, timeout: float = 20) -> Any:
        return json.loads(self.lines.get(timeout=timeout))

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=10)
        finally:
            self.proc.kill()
            self.reader.join(5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
            self.proc.wait()
        return self.proc.returncode, err


def _insert(store: records.Store, obj: str, values: dict[str, Any]) -> str:
    with store.transaction() as tx:
        return tx.insert(obj, values)


def test_tail_replays_then_prints_new_events_as_they_commit(
    store: records.Store, db_url: str
) -> None:
    first = _insert(store, "Contact", {"LastName": "Before"})
    _insert(store, "Account", {"Name": "Another object"})
    tail = Tail(db_url, "--channel", "/data/ContactChangeEvent", "--replay", "-2")
    try:
        replayed = tail.next()
        assert replayed["channel"] == "/data/ContactChangeEvent"
        assert replayed["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [first]
        assert replayed["data"]["schema"] and replayed["data"]["event"]["replayId"] > 0
        _insert(store, "Account", {"Name": "Not on this channel"})
        committed = time.monotonic()
        second = _insert(store, "Contact", {"LastName": "After"})
        arrived = tail.next(timeout=10)
        waited = time.monotonic() - committed
        assert arrived["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [second]
        assert waited < 3.0, f"printed {waited:.2f} s after the commit"  # SQLite: 1 s stat
        assert tail.lines.empty()
    finally:
        code, err = tail.stop()
    assert code == 0 and "Traceback" not in err, err


def test_tail_after_a_replay_id_prints_only_later_events(store: records.Store, db_url: str) -> None:
    _insert(store, "Contact", {"LastName": "One"})
    tail = Tail(db_url, "--replay", "-2")
    try:
        mark = tail.next()["data"]["event"]["replayId"]
    finally:
        tail.stop()
    later = _insert(store, "Contact", {"LastName": "Two"})
    tail = Tail(db_url, "--replay", str(mark))
    try:
        got = tail.next()
        assert got["channel"] == "/data/ChangeEvents"
        assert got["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [later]
    finally:
        code, err = tail.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err, err


def test_an_unknown_channel_is_named_and_exits_1(db_url: str) -> None:
    tail = Tail(db_url, "--channel", "/data/NoSuchChangeEvent")
    tail.proc.wait(timeout=30)
    code, err = tail.stop()
    assert code == 1 and "/data/NoSuchChangeEvent" in err and "does not exist" in err, err
    assert tail.lines.empty()


@pytest.mark.parametrize("replay", ["99999999", "-3", "soon"])
def test_a_replay_id_outside_the_window_names_the_channel(
    store: records.Store, db_url: str, replay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _insert(store, "Contact", {"LastName": "Window"})
    args = ["events", "tail", "--database", db_url, "--channel", "/data/ContactChangeEvent"]
    assert cli.main([*args, "--replay", replay]) == 1
    err = capsys.readouterr().err
    assert f"The replayId {{{replay}}}" in err and "/data/ContactChangeEvent" in err, err
