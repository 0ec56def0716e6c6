"""store.passwords: scrypt hashing and constant-time verification."""

from __future__ import annotations

import pytest

from store import accounts, passwords


def test_hash_password_uses_scrypt_with_salt() -> None:
    encoded = passwords.hash_password("correct horse")
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert salt and digest
    assert passwords.hash_password("correct horse") != encoded  # fresh salt each time
    assert "correct horse" not in encoded


def test_verify_password_true_for_right_false_for_wrong() -> None:
    encoded = passwords.hash_password("correct horse")
    assert passwords.verify_password("correct horse", encoded)
    assert not passwords.verify_password("correct horse!", encoded)
    assert not passwords.verify_password("", encoded)


@pytest.mark.parametrize("encoded", [None, "", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$a$b"])
def test_verify_password_rejects_malformed_hash(encoded: str | None) -> None:
    assert not passwords.verify_password("pw", encoded)


def test_accounts_reexports_the_password_functions() -> None:
    assert accounts.hash_password is passwords.hash_password
    assert accounts.verify_password is passwords.verify_password
