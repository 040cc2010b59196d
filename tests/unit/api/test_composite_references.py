"""``@{referenceId.path}`` resolution of /composite subrequests (api/composite.py)."""

from __future__ import annotations

import pytest

from opencadence.api.composite import _Unresolved, resolve

RESULTS = {
    "A": {"id": "001000000000001AAA", "success": True},
    "Q": {"totalSize": 2, "records": [{"Id": "003A", "Account": {"Name": "Acme"}}, {"Id": "003B"}]},
}


def test_a_whole_string_reference_keeps_the_value_s_type() -> None:
    assert resolve("@{Q.totalSize}", RESULTS) == 2
    assert resolve("@{A.success}", RESULTS) is True
    assert resolve({"n": ["@{Q.records[1].Id}"]}, RESULTS) == {"n": ["003B"]}


def test_references_inside_text_are_spliced() -> None:
    got = resolve("x/@{A.id}/@{Q.records[0].Account.Name}?f=@{A.success}", RESULTS)
    assert got == "x/001000000000001AAA/Acme?f=true"
    assert resolve("no reference {here}", RESULTS) == "no reference {here}"


@pytest.mark.parametrize(
    "text",
    ["@{B.id}", "@{A.nope}", "@{Q.records[5].Id}", "@{Q.records}", "@{Q.records.Id}", "@{}"],
)
def test_an_unresolvable_reference_is_refused(text: str) -> None:
    with pytest.raises(_Unresolved):
        resolve(text, RESULTS)
