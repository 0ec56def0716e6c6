"""Signed device and cross-signing keys for E2EE route tests (what a client builds)."""

from __future__ import annotations

from typing import Any

import nacl.signing

from relay.events.canonical import canonical_json
from relay.events.unpadded_base64 import encode_base64


def public(key: nacl.signing.SigningKey) -> str:
    return encode_base64(bytes(key.verify_key))


def sign(obj: dict[str, Any], user_id: str, key_id: str, key: nacl.signing.SigningKey) -> dict:
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = encode_base64(key.sign(canonical_json(unsigned)).signature)
    signatures = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[key_id] = signature
    return {**obj, "signatures": signatures}


def device_keys(user_id: str, device_id: str, key: nacl.signing.SigningKey) -> dict[str, Any]:
    keys = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device_id}": "curve" + device_id,
            f"ed25519:{device_id}": public(key),
        },
    }
    return sign(keys, user_id, f"ed25519:{device_id}", key)


def cross_signing_key(
    user_id: str, usage: str, key: nacl.signing.SigningKey, master: nacl.signing.SigningKey | None
) -> dict[str, Any]:
    obj = {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public(key)}": public(key)}}
    if master is not None:
        obj = sign(obj, user_id, f"ed25519:{public(master)}", master)
    return obj
