"""Signing keys and ed25519 signatures over canonical JSON.

- A JSON signature covers the canonical JSON of the object minus
  ``signatures`` and ``unsigned``, and is stored, unpadded base64, at
  ``signatures[server_name][key_id]``; other signatures are kept.
- An event signature covers the *redacted* event (so it survives redaction);
  the content hash in ``hashes`` protects the rest. Sign after hashing.
- Only ``ed25519:<version>`` key ids are understood; verifying any other
  algorithm fails, as step 2 of "Checking for a Signature" says.
- Verification failures raise ``SignatureError`` (a ``ValueError``) whose
  message says which step failed.

Spec: https://spec.matrix.org/v1.16/appendices/#signing-json
and https://spec.matrix.org/v1.16/server-server-api/#signing-events
"""

from __future__ import annotations

import re
from typing import Any

import nacl.exceptions
import nacl.signing

from relay.events.canonical import canonical_json
from relay.events.redaction import redact
from relay.events.room_versions import RoomVersion
from relay.events.unpadded_base64 import decode_base64, encode_base64

_KEY_ID = re.compile(r"ed25519:[A-Za-z0-9_]+")
_NOT_SIGNED = frozenset({"signatures", "unsigned"})


class SignatureError(ValueError):
    """A signature is missing, malformed, or does not verify."""


def is_valid_key_id(key_id: str) -> bool:
    """Whether ``key_id`` is ``ed25519:`` followed by ``[A-Za-z0-9_]+``."""
    return _KEY_ID.fullmatch(key_id) is not None


def generate_signing_key() -> nacl.signing.SigningKey:
    """A fresh random ed25519 signing key."""
    return nacl.signing.SigningKey.generate()


def encode_signing_key_seed(signing_key: nacl.signing.SigningKey) -> str:
    """The 32-byte seed of ``signing_key`` as unpadded base64 (for the key file)."""
    return encode_base64(bytes(signing_key))


def decode_signing_key_seed(seed: str) -> nacl.signing.SigningKey:
    """The signing key whose seed is the (padded or unpadded) base64 ``seed``.

    Raises:
        ValueError: not base64, or not 32 bytes.
    """
    raw = decode_base64(seed)
    if len(raw) != 32:
        raise ValueError(f"signing key seed must be 32 bytes, got {len(raw)}")
    return nacl.signing.SigningKey(raw)


def verify_key_base64(key: nacl.signing.SigningKey | nacl.signing.VerifyKey) -> str:
    """The public (verify) key as unpadded base64, as ``/_matrix/key/v2`` publishes it."""
    verify_key = key.verify_key if isinstance(key, nacl.signing.SigningKey) else key
    return encode_base64(bytes(verify_key))


def decode_verify_key_base64(key: str) -> nacl.signing.VerifyKey:
    """The verify key from its unpadded base64 form.

    Raises:
        ValueError: not base64, or not 32 bytes.
    """
    raw = decode_base64(key)
    if len(raw) != 32:
        raise ValueError(f"verify key must be 32 bytes, got {len(raw)}")
    return nacl.signing.VerifyKey(raw)


def _signed_bytes(obj: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in obj.items() if k not in _NOT_SIGNED})


def sign_json(
    obj: dict[str, Any],
    server_name: str,
    key_id: str,
    signing_key: nacl.signing.SigningKey,
) -> dict[str, Any]:
    """A copy of ``obj`` with our signature added at ``signatures[server_name][key_id]``.

    Raises:
        ValueError: ``key_id`` is not an ``ed25519:`` key id.
    """
    if not is_valid_key_id(key_id):
        raise ValueError(f"not an ed25519 key id: {key_id!r}")
    signature = signing_key.sign(_signed_bytes(obj)).signature
    signatures = obj.get("signatures")
    new_signatures = (
        {name: dict(keys) if isinstance(keys, dict) else keys for name, keys in signatures.items()}
        if isinstance(signatures, dict)
        else {}
    )
    by_server = new_signatures.get(server_name)
    by_server = dict(by_server) if isinstance(by_server, dict) else {}
    by_server[key_id] = encode_base64(signature)
    new_signatures[server_name] = by_server
    return {**obj, "signatures": new_signatures}


def verify_json_signature(
    obj: dict[str, Any],
    server_name: str,
    key_id: str,
    verify_key: nacl.signing.VerifyKey,
) -> None:
    """Check that ``server_name`` signed ``obj`` with ``key_id``.

    Raises:
        SignatureError: no such signature, unknown algorithm, bad base64, or
            the signature does not match.
    """
    if not is_valid_key_id(key_id):
        raise SignatureError(f"unsupported signing key id: {key_id!r}")
    signatures = obj.get("signatures")
    if not isinstance(signatures, dict):
        raise SignatureError("no signatures object")
    by_server = signatures.get(server_name)
    if not isinstance(by_server, dict):
        raise SignatureError(f"not signed by {server_name}")
    signature_b64 = by_server.get(key_id)
    if not isinstance(signature_b64, str):
        raise SignatureError(f"not signed by {server_name} with {key_id}")
    try:
        signature = decode_base64(signature_b64)
    except ValueError as e:
        raise SignatureError(f"signature of {server_name} {key_id} is not base64") from e
    if len(signature) != 64:
        raise SignatureError(f"signature of {server_name} {key_id} is not 64 bytes")
    try:
        signed_bytes = _signed_bytes(obj)
    except (TypeError, ValueError) as e:
        raise SignatureError(f"cannot encode signed object as canonical JSON: {e}") from e
    try:
        verify_key.verify(signed_bytes, signature)
    except nacl.exceptions.BadSignatureError as e:
        raise SignatureError(f"bad signature from {server_name} {key_id}") from e


def sign_event(
    event: dict[str, Any],
    room_version: RoomVersion,
    server_name: str,
    key_id: str,
    signing_key: nacl.signing.SigningKey,
) -> dict[str, Any]:
    """A copy of ``event`` with our signature over its redacted form added.

    Add the content hash first (``hashes.add_content_hash``): the signature
    covers ``hashes``, and through it the unredacted content.
    """
    signed_redacted = sign_json(redact(event, room_version), server_name, key_id, signing_key)
    return {**event, "signatures": signed_redacted["signatures"]}


def verify_event_signature(
    event: dict[str, Any],
    room_version: RoomVersion,
    server_name: str,
    key_id: str,
    verify_key: nacl.signing.VerifyKey,
) -> None:
    """Check ``server_name``'s signature over the redacted form of ``event``.

    Raises:
        SignatureError: as ``verify_json_signature``.
    """
    verify_json_signature(redact(event, room_version), server_name, key_id, verify_key)
