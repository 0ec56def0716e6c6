"""Password hashing: a slow, salted KDF from the standard library.

Rules kept:

- ``hashlib.scrypt`` with n=2**14, r=8, p=1 and a fresh 16-byte random salt per hash,
  encoded self-describingly as ``scrypt$n$r$p$salt_b64$hash_b64`` so the parameters
  can be raised later without breaking stored hashes.
- Verification recomputes with the stored parameters and compares in constant time;
  a missing or malformed hash never matches (and never raises).
- No I/O, no database: callers may hash outside the writer thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["SCRYPT_N", "SCRYPT_P", "SCRYPT_R", "hash_password", "verify_password"]

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32


def hash_password(password: str) -> str:
    """Hash ``password`` with scrypt and a fresh random salt, self-describing encoding."""
    salt = os.urandom(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _HASH_BYTES)
    return "$".join(
        ("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    )


def verify_password(password: str, encoded: str | None) -> bool:
    """True iff ``password`` matches ``encoded`` (from ``hash_password``).

    Malformed or missing hashes never match. The comparison is constant-time.
    """
    if not encoded:
        return False
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
