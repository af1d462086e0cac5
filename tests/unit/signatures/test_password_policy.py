"""Password policy and storage (URS-SEC-01): long enough, mixed case, stored as an argon2id hash."""
from __future__ import annotations

import pytest

from signatures.credentials import MIN_PASSWORD_LENGTH, _verify, hash_password, password_problem
from tests.fixtures.cast import password_hash

pytestmark = pytest.mark.urs("URS-SEC-01")


@pytest.mark.parametrize("password", ["Correct-horse-9", "Abcdefghij", "lONGENOUGHx", "Zürich-Basel-2026"])
def test_a_long_mixed_case_password_is_accepted(password):
    assert password_problem(password) is None


@pytest.mark.parametrize(("password", "words"), [
    ("Short-1", f"at least {MIN_PASSWORD_LENGTH} characters"),
    ("", f"at least {MIN_PASSWORD_LENGTH} characters"),
    ("Abcdefghi", f"at least {MIN_PASSWORD_LENGTH} characters"),
    ("all-lower-case-9", "upper- and lower-case"),
    ("ALL-UPPER-CASE-9", "upper- and lower-case"),
    ("1234567890123", "upper- and lower-case"),
])
def test_a_weak_password_is_refused_with_the_reason(password, words):
    assert words in (password_problem(password) or "")


def test_passwords_are_stored_as_salted_argon2id_hashes():
    first, second = password_hash(), hash_password("Correct-horse-9")
    assert first.startswith("$argon2id$")
    assert "Correct-horse-9" not in first
    assert first != second, "each hash carries its own salt"
    assert _verify(first, "Correct-horse-9") and _verify(second, "Correct-horse-9")


@pytest.mark.parametrize("attempt", ["correct-horse-9", "Correct-horse-9 ", "", "Correct-horse-8"])
def test_a_near_miss_does_not_verify(attempt):
    assert not _verify(password_hash(), attempt)  # the hash of "Correct-horse-9", made once per run


def test_a_corrupt_stored_hash_fails_closed():
    assert not _verify("not-a-hash", "Correct-horse-9")
