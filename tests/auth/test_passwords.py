from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from kpidash.auth import Passwords, check_password, hash_password, verify_password
from kpidash.errors import InputError

FAST = Passwords(PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)))


def test_default_hash_is_argon2id_salted_and_verifies() -> None:
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a.startswith("$argon2id$") and a != b
    assert verify_password("correct horse battery", a) and verify_password(
        "correct horse battery", b)
    assert not verify_password("correct horse batterY", a)


def test_unrecognised_hashes_never_match() -> None:
    assert not FAST.verify("anything at all", "plaintext")
    assert FAST.verify_and_update("anything at all", "") == (False, None)


def test_outdated_parameters_ask_for_a_rehash() -> None:
    old = FAST.hash("correct horse battery")
    ok, new = Passwords().verify_and_update("correct horse battery", old)
    assert ok and new is not None and new.startswith("$argon2id$v=19$m=65536")
    assert FAST.verify_and_update("correct horse battery", old) == (True, None)


def test_dummy_verify_spends_a_verification() -> None:
    FAST.dummy_verify("whatever")  # no error, no result


@pytest.mark.parametrize(("password", "username", "match"), [
    ("short", "ana", "at least 10 characters, got 5"),
    ("123456789", "", "got 9"),
    ("anabelle-99", "anabelle-99", "must not be the username"),
    ("Anabelle-99", "anabelle-99", "must not be the username"),
    ("x" * 1025, "ana", "too long"),
    (None, "ana", "must be a string"),
], ids=["short", "nine", "same-as-username", "same-ignoring-case", "huge", "not-a-string"])
def test_policy_says_why(password: str, username: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_password(password, username)


@pytest.mark.parametrize("password", ["0123456789", "correct horse", "ümlaut-pass"])
def test_policy_accepts(password: str) -> None:
    check_password(password, "ana")


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=10, max_size=40), st.text(min_size=1, max_size=40))
def test_any_accepted_password_round_trips_and_no_other_matches(password: str,
                                                                other: str) -> None:
    check_password(password, "someone")
    hashed = FAST.hash(password)
    assert password not in hashed
    assert FAST.verify(password, hashed)
    assert FAST.verify(other, hashed) is (other == password)
