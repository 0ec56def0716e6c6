"""Unpadded base64, standard and URL-safe, as Matrix writes hashes, keys and ids.

Encoding never pads. Decoding accepts input with or without ``=`` padding (the
spec's SHOULD), but rejects characters outside the chosen alphabet, wrong
padding and impossible lengths. ``relay.events.ids`` re-exports both helpers.

Spec: https://spec.matrix.org/v1.16/appendices/#unpadded-base64
"""

from __future__ import annotations

import base64
import re

_STANDARD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URLSAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def encode_base64(data: bytes, urlsafe: bool = False) -> str:
    """Unpadded base64 of ``data``; ``urlsafe`` uses ``-`` and ``_``."""
    encoder = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encoder(data).rstrip(b"=").decode("ascii")


def decode_base64(data: str, urlsafe: bool = False) -> bytes:
    """Decode padded or unpadded base64.

    Raises:
        ValueError: characters outside the alphabet, bad padding or length.
    """
    pattern = _URLSAFE if urlsafe else _STANDARD
    if not pattern.fullmatch(data):
        raise ValueError("not base64")
    stripped = data.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError("impossible base64 length")
    padding = -len(stripped) % 4
    if data != stripped and len(data) - len(stripped) != padding:
        raise ValueError("wrong base64 padding")
    padded = (stripped + "=" * padding).encode("ascii")
    if urlsafe:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)


def decode_base64_either(data: str) -> bytes:
    """Decode padded or unpadded base64 in either alphabet (a third-party identity
    server's public key may be published URL-safe).

    Raises:
        ValueError: as `decode_base64`.
    """
    return decode_base64(data, urlsafe="-" in data or "_" in data)
