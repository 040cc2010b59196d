from __future__ import annotations

import pytest

from opencadence import errors, ids

# Published IDs (reference: objects.md 3.2), 18-character forms.
PUBLISHED = [
    "77Cxx0000004CXEEA2",
    "00Qxx000002TRI2EAO",
    "005R0000000eg3zIAA",
    "0015f00002J9YYEAA3",
    "0055f000005mc66AAA",
    "a0D30000001n7PiEAI",
    "0019000000B98deAAB",
]


@pytest.mark.parametrize("id18", PUBLISHED)
def test_checksum_matches_published_ids(id18: str) -> None:
    assert ids.to18(id18[:15]) == id18
    assert ids.parse(id18[:15]) == id18
    assert ids.parse(id18) == id18


@pytest.mark.parametrize("id18", PUBLISHED)
def test_eighteen_char_ids_are_case_insensitive(id18: str) -> None:
    assert ids.parse(id18.lower()) == id18
    assert ids.parse(id18.upper()) == id18


def test_empty_id_is_all_lowercase_suffix() -> None:
    assert ids.to18("000000000000000") == ids.EMPTY_ID


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "0015f00002J9YYE",
        "0015f00002J9YYEA",
        "0015f00002J9YYEAA3x",
        "0015f0000-J9YYE",
        None,
        12,
    ],
)
def test_malformed_ids_are_rejected(bad: object) -> None:
    if bad == "0015f00002J9YYE":  # 15 characters: valid
        assert ids.parse(bad) == "0015f00002J9YYEAA3"
        return
    with pytest.raises(errors.MalformedId) as info:
        ids.parse(bad)
    assert info.value.error_code == "MALFORMED_ID"


def test_suffix_marking_a_digit_uppercase_is_malformed() -> None:
    # suffix "B" says character 0 of chunk 1 is upper-case, but it is the digit 0
    with pytest.raises(errors.MalformedId):
        ids.parse("005000000000000BAA")


def test_make_id_layout_and_uniqueness() -> None:
    made = {ids.make_id("0cK", n) for n in range(1000)}
    assert len(made) == 1000
    one = ids.make_id("0cK", 61)
    assert one.startswith("0cK0C0") and len(one) == 18
    assert one[6:15] == "00000000Z"
    assert ids.parse(one) == one


def test_counter_bounds() -> None:
    ids.encode_counter(ids.MAX_COUNTER - 1)
    with pytest.raises(ValueError):
        ids.encode_counter(ids.MAX_COUNTER)


def test_parse_for_object_checks_prefix() -> None:
    assert ids.parse_for_object("77Cxx0000004CXE", "77C", "ActionCadence") == "77Cxx0000004CXEEA2"
    with pytest.raises(errors.InvalidIdField):
        ids.parse_for_object("00Qxx000002TRI2EAO", "77C", "ActionCadence")
    with pytest.raises(errors.InvalidIdField):
        ids.parse_for_object("nope", "77C", "ActionCadence")
