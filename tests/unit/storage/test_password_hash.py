"""Password hashes (storage/accounts.py): scrypt at 2**14 unless the cost variable says
otherwise, each hash carrying its own cost, and the older form without one still verifying."""

from __future__ import annotations

import hashlib

import pytest

from opencadence.storage import accounts


def test_the_default_cost_is_2_to_the_14(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(accounts.COST_VARIABLE, raising=False)
    stored = accounts.hash_secret("s3cret!")
    scheme, salt, digest = stored.split("$")
    assert scheme == "scrypt-14"
    expected = hashlib.scrypt(b"s3cret!", salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=32)
    assert digest == expected.hex()
    assert accounts.check_secret("s3cret!", stored)
    assert not accounts.check_secret("s3cret?", stored)


def test_a_hash_verifies_whatever_the_cost_setting_is_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(accounts.COST_VARIABLE, "5")
    cheap = accounts.hash_secret("pw")
    assert cheap.startswith("scrypt-5$")
    monkeypatch.delenv(accounts.COST_VARIABLE)
    assert accounts.check_secret("pw", cheap)
    assert not accounts.check_secret("pW", cheap)


def test_the_older_form_is_the_default_cost() -> None:
    salt = bytes(range(16))
    digest = hashlib.scrypt(b"old", salt=salt, n=2**14, r=8, p=1, dklen=32)
    stored = f"scrypt${salt.hex()}${digest.hex()}"
    assert accounts.check_secret("old", stored)
    assert not accounts.check_secret("new", stored)


@pytest.mark.parametrize(
    "stored", ["", "scrypt$zz$00", "bcrypt$00$00", "scrypt-x$00$00", "scrypt-40$00$00", "a$b"]
)
def test_a_malformed_hash_matches_nothing(stored: str) -> None:
    assert not accounts.check_secret("anything", stored)


@pytest.mark.parametrize("value", ["0", "21", "four", "-3", "4.5"])
def test_a_bad_cost_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(accounts.COST_VARIABLE, value)
    with pytest.raises(ValueError, match=accounts.COST_VARIABLE):
        accounts.hash_secret("pw")
