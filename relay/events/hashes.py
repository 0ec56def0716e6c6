"""Content hashes and reference hashes of events.

- The content hash covers the whole event (unredacted content included) minus
  ``unsigned``, ``signatures`` and ``hashes``; it is stored as
  ``hashes.sha256`` in unpadded standard base64. Signatures cover only the
  redacted form, so the content hash is what protects the rest.
- The reference hash covers the redacted event minus ``signatures`` and
  ``unsigned``; it is the event id (room v4+) and, in v12, the room id.

Spec: https://spec.matrix.org/v1.16/server-server-api/#calculating-the-content-hash-for-an-event
and https://spec.matrix.org/v1.16/server-server-api/#calculating-the-reference-hash-for-an-event
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from relay.events.canonical import canonical_json
from relay.events.redaction import redact
from relay.events.room_versions import RoomVersion
from relay.events.unpadded_base64 import decode_base64, encode_base64

_NOT_IN_CONTENT_HASH = frozenset({"unsigned", "signatures", "hashes"})
_NOT_IN_REFERENCE_HASH = frozenset({"signatures", "unsigned", "age_ts"})


def content_hash(event: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical JSON of ``event`` minus unsigned/signatures/hashes."""
    hashed = {k: v for k, v in event.items() if k not in _NOT_IN_CONTENT_HASH}
    return hashlib.sha256(canonical_json(hashed)).digest()


def add_content_hash(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` with ``hashes.sha256`` set (other hash algorithms kept)."""
    hashes = event.get("hashes")
    new_hashes = dict(hashes) if isinstance(hashes, dict) else {}
    new_hashes["sha256"] = encode_base64(content_hash(event))
    return {**event, "hashes": new_hashes}


def check_content_hash(event: dict[str, Any]) -> bool:
    """True if ``event`` carries a ``hashes.sha256`` matching its content hash."""
    hashes = event.get("hashes")
    if not isinstance(hashes, dict):
        return False
    claimed = hashes.get("sha256")
    if not isinstance(claimed, str):
        return False
    try:
        claimed_bytes = decode_base64(claimed)
        actual = content_hash(event)
    except (TypeError, ValueError):  # bad base64, or not encodable (lone surrogates)
        return False
    return hmac.compare_digest(claimed_bytes, actual)


def reference_hash(event: dict[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 of the canonical JSON of the redacted event minus signatures/unsigned."""
    redacted = redact(event, room_version)
    hashed = {k: v for k, v in redacted.items() if k not in _NOT_IN_REFERENCE_HASH}
    return hashlib.sha256(canonical_json(hashed)).digest()
