"""``message.compose_parts``: the records' values it gives without parsing the MIME back are
those ``activity.from_outbox`` reads from it, over subjects, names, bodies, tracking and
threading; where it cannot be sure it gives None (and the MIME is parsed back)."""

from __future__ import annotations

import itertools
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from opencadence.email import activity, checks, message, templates

KEY = "0cK0C00000001yOUAQ"
NOW = datetime(2026, 1, 5, 14, 3, 7)
TRACK = message.Tracking(b"s" * 32, "https://track.example.com/")

SUBJECTS = [
    "Quick question, F1",
    "",
    "x  ",
    "two  spaces inside",
    "=",
    "a = b ? c",
    "Re: earlier",
    "RE: shouting",
    "A long subject " * 12,
    'semi; colon, comma: quote" (paren) <angle> [bracket] back\\slash',
    # not plain: the fast path must decline (None) or agree
    "  leading blanks",
    "\ttab first",
    "inner\ttab",
    "Café à midi",
    "日本語の件名",
    "looks =?utf-8?q?encoded?= inside",
    "emoji 🚀 launch " * 6,
    "Folded? " + "word " * 40,
    "x" * 200,
]
NAMES = [
    None,
    "",
    "Rita Rep",
    "Rita",
    "O'Brien",
    "Jean-Luc Picard",
    "under_score",
    "R. Rep",
    "Rep, Rita",
    'Rita "the rep"',
    "Rita  Rep",
    " Rita",
    "Rité Rep",
    "Ri\\ta",
    "Rita (rep)",
]
BODIES: list[tuple[str | None, str | None]] = [
    ("Hi F1,\n\nDo you have 15 minutes?\n\nRita Rep", None),
    (None, "<p>Hi <a href='https://example.com/x'>there</a></p>"),
    ("Hi\r\nthere\r\n", "<p>Hi</p>"),
    ("Grüße, 日本\n.\n..leading dots\nFrom the start\n", "<p>é</p>"),
    (None, None),
    ("", ""),
    ("x" * 3000, None),
    ("y" * 56 + "\n" + "z" * 57 + "\n" + "é" * 40, None),
    (None, "<p>" + "long line " * 400 + "</p>"),
    (None, ""),
    ("", None),
]


class FakeCache:
    """What ``compose`` reads: the step (threaded or not) and the tracker's earlier emails."""

    def __init__(self, previous: list[tuple[str, str]]) -> None:
        self.conn = None
        self._previous = previous
        self.outbox = SimpleNamespace(thread=lambda conn, tracker_id, key: list(self._previous))

    def record(self, obj: str, record_id: str) -> dict[str, Any]:
        return {"Id": record_id, "IsThreaded": bool(self._previous)}


def earlier(subject: str, n: int) -> list[tuple[str, str]]:
    """The (Message-ID, MIME) of ``n`` earlier emails of the tracker, composed as sent."""
    found: list[tuple[str, str]] = []
    for i in range(n):
        mid = f"<0cK0C0000000{i}xxxAQ.{i:016x}@bench.example.com>"
        mime, _ = message.compose_parts(
            FakeCache(list(found)),  # type: ignore[arg-type]
            prepared(subject, "Rita Rep", "text", None),
            key=KEY,
            message_id=mid,
            tracker_id="a0T",
            step_id="a0S",
            now=NOW,
            track=None,
        )
        found.append((mid, mime))
    return found


def prepared(subject: str, name: str | None, text: str | None, html: str | None) -> Any:
    return checks.Prepared(
        sender="rep@bench.example.com",
        sender_name=name,
        recipient="t1@bench.example.org",
        rendered=templates.Rendered(subject, text, html),
        target={},
        user={},
    )


def cases() -> list[Any]:
    out = []
    for subject, name in itertools.product(SUBJECTS, NAMES):
        out.append((subject, name, BODIES[0], None, 0))
    for (text, html), track in itertools.product(BODIES, (None, TRACK)):
        out.append((SUBJECTS[0], NAMES[2], (text, html), track, 0))
    for subject, threads in itertools.product(SUBJECTS, (1, 3)):
        out.append((subject, NAMES[2], BODIES[1], TRACK, threads))
    return out


@pytest.mark.parametrize(("subject", "name", "bodies", "track", "threads"), cases())
def test_parts_equal_the_mime_read_back(
    subject: str,
    name: str | None,
    bodies: tuple[str | None, str | None],
    track: message.Tracking | None,
    threads: int,
) -> None:
    previous = earlier(subject, threads)
    cache = FakeCache(previous)
    p = prepared(subject, name, *bodies)
    mid = f"<{KEY}.0123456789abcdef@bench.example.com>"
    kwargs: dict[str, Any] = dict(
        key=KEY, message_id=mid, tracker_id="a0T", step_id="a0S", now=NOW, track=track
    )
    mime, parts = message.compose_parts(cache, p, **kwargs)  # type: ignore[arg-type]
    row = {
        "key": KEY,
        "tracker_id": "a0T",
        "owner_id": "005",
        "target_id": "003",
        "sender": p.sender,
        "recipient": p.recipient,
        "message_id": mid,
        "mime": mime,
        "tracked": track is not None and bodies[1] is not None,
    }
    if parts is None:  # declined: only where a value is not plain
        plain_name = name is None or message._NAME.fullmatch(name)
        assert not plain_name or not message._PLAIN.fullmatch(subject) or threads
        return
    assert activity.from_parts(row, parts) == activity.from_outbox(row)


@pytest.mark.parametrize(("subject", "name", "bodies", "track", "threads"), cases())
def test_a_one_part_message_is_written_as_the_email_package_writes_it(
    monkeypatch: pytest.MonkeyPatch,
    subject: str,
    name: str | None,
    bodies: tuple[str | None, str | None],
    track: message.Tracking | None,
    threads: int,
) -> None:
    if bodies[0] is not None and bodies[1] is not None:
        return  # multipart: always the email package (its boundary is random)
    previous = earlier(subject, threads)
    p = prepared(subject, name, *bodies)
    kwargs: dict[str, Any] = dict(
        key=KEY,
        message_id=f"<{KEY}.0123456789abcdef@bench.example.com>",
        tracker_id="a0T",
        step_id="a0S",
        now=NOW,
        track=track,
    )
    ours, _ = message.compose_parts(FakeCache(previous), p, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(message, "_single_part", lambda *a: None)
    theirs, _ = message.compose_parts(FakeCache(previous), p, **kwargs)  # type: ignore[arg-type]
    assert ours.encode() == theirs.encode()


def test_the_bench_message_takes_the_fast_path() -> None:
    p = prepared("Quick question, F1", "Rita Rep", BODIES[0][0], None)
    _, parts = message.compose_parts(
        FakeCache([]),  # type: ignore[arg-type]
        p,
        key=KEY,
        message_id=f"<{KEY}.0@x>",
        tracker_id=None,
        step_id=None,
        now=NOW,
        track=None,
    )
    assert parts is not None
    headers = [("From", "Rita Rep <rep@bench.example.com>"), ("Subject", p.rendered.subject)]
    assert message._single_part(p.rendered.text, None, headers) is not None
