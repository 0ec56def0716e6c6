"""End-to-end encryption keys: upload, query, claim and cross-signing, for local users
and, through relay/e2ee/device_lists.py, remote ones.

Rules kept:

- Device keys are accepted only for the requester's own device and only with a valid
  self-signature by the device's ed25519 key; a changed set is a device list change.
- A one-time key id is uploaded once: the same key again is ignored, another key under
  the same id is M_INVALID_PARAM. Claiming takes a one-time key, else the fallback key.
- Cross-signing keys must name their user and usage and hold one ed25519 key; the
  self-signing and user-signing keys must be signed by the master key. Replacing an
  existing master key needs UIA (the client handler asks); the first upload does not
  (spec v1.11, MSC3967).
- A signature uploaded to /keys/signatures/upload is kept only when it verifies with
  one of the requester's keys (a device key or a cross-signing key); it is merged into
  the signed object whenever that object is served.

Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing
import trio

from relay.e2ee.device_lists import DeviceLists, dumps
from relay.errors import InvalidParam, InvalidSignature
from relay.events.canonical import canonical_json
from relay.events.ids import server_of
from relay.events.unpadded_base64 import decode_base64
from relay.runtime.database import Database
from store import Connection
from store import e2ee_keys as store_e2e

JSON = dict[str, Any]
CROSS_SIGNING_TYPES = ("master", "self_signing", "user_signing")
DEFAULT_QUERY_TIMEOUT_S = 10.0


def verify_signed(obj: JSON, user_id: str, key_id: str, public_key: str) -> bool:
    """Whether `obj` carries a valid signature by `user_id`'s ed25519 `key_id`."""
    signature = ((obj.get("signatures") or {}).get(user_id) or {}).get(key_id)
    if not isinstance(signature, str) or not isinstance(public_key, str):
        return False
    try:
        key = nacl.signing.VerifyKey(decode_base64(public_key))
        signed = canonical_json(
            {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        )
        key.verify(signed, decode_base64(signature))
    except (ValueError, TypeError, nacl.exceptions.CryptoError):
        return False
    return True


def cross_signing_public_key(key: JSON) -> str | None:
    """The one ed25519 public key of a cross-signing key object."""
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    ((key_id, public),) = keys.items()
    if not key_id.startswith("ed25519:") or not isinstance(public, str):
        return None
    return public


def _with_signatures(conn: Connection, user_id: str, target: str, obj: JSON) -> JSON:
    extra = store_e2e.signatures_for(conn, user_id, target)
    if not extra:
        return obj
    signatures = {u: dict(s) for u, s in (obj.get("signatures") or {}).items()}
    for row in extra:
        signatures.setdefault(row["signer_user_id"], {})[row["signer_key_id"]] = row["signature"]
    return {**obj, "signatures": signatures}


@dataclass
class KeyQueryResult:
    device_keys: dict[str, dict[str, JSON]] = field(default_factory=dict)
    master_keys: dict[str, JSON] = field(default_factory=dict)
    self_signing_keys: dict[str, JSON] = field(default_factory=dict)
    user_signing_keys: dict[str, JSON] = field(default_factory=dict)
    failures: dict[str, JSON] = field(default_factory=dict)

    def as_json(self) -> JSON:
        return {
            "device_keys": self.device_keys,
            "master_keys": self.master_keys,
            "self_signing_keys": self.self_signing_keys,
            "user_signing_keys": self.user_signing_keys,
            "failures": self.failures,
        }


class E2eKeys:
    def __init__(self, database: Database, device_lists: DeviceLists, server_name: str) -> None:
        self.database = database
        self.device_lists = device_lists
        self.server_name = server_name

    def is_local(self, user_id: str) -> bool:
        return server_of(user_id) == self.server_name

    # -- upload ----------------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str, body: JSON) -> dict[str, int]:
        """`/keys/upload`: returns the device's one-time key counts."""
        device_keys = body.get("device_keys")
        if device_keys is not None:
            _check_device_keys(device_keys, user_id, device_id)
        one_time = _key_map(body.get("one_time_keys"), "one_time_keys")
        fallback = _key_map(
            body.get("fallback_keys", body.get("org.matrix.msc2732.fallback_keys")),
            "fallback_keys",
        )

        def txn(conn: Connection) -> tuple[dict[str, int], int]:
            stream = 0
            if device_keys is not None:
                text = dumps(device_keys)
                if store_e2e.get_device_keys(conn, user_id, device_id) != text:
                    store_e2e.set_device_keys(conn, user_id, device_id, text)
                    stream = self.device_lists.local_change_txn(conn, user_id, device_id)
            for (algorithm, key_id), key in one_time.items():
                text = dumps(key)
                existing = store_e2e.get_one_time_key(conn, user_id, device_id, algorithm, key_id)
                if existing is not None and existing != text:
                    raise InvalidParam(f"One time key {algorithm}:{key_id} already exists")
                store_e2e.add_one_time_key(conn, user_id, device_id, algorithm, key_id, text)
            for (algorithm, key_id), key in fallback.items():
                store_e2e.set_fallback_key(conn, user_id, device_id, algorithm, key_id, dumps(key))
            return store_e2e.count_one_time_keys(conn, user_id, device_id), stream

        counts, stream = await self.database.write(txn)
        if stream:
            await self.device_lists.written(stream)
        return {"signed_curve25519": 0, **counts}

    # -- query -----------------------------------------------------------------------------

    async def query(
        self, requester_id: str | None, device_keys: JSON, timeout_s: float
    ) -> KeyQueryResult:
        """`/keys/query` (requester_id set) or `/user/keys/query` (local users only)."""
        result = KeyQueryResult()
        local = {u: d for u, d in device_keys.items() if self.is_local(u)}
        await self.database.read(self._local_query_txn, local, requester_id, result)
        if requester_id is None:
            return result
        remote: dict[str, dict[str, list[str]]] = {}
        for user_id, devices in device_keys.items():
            if not self.is_local(user_id) and server_of(user_id):
                remote.setdefault(server_of(user_id), {})[user_id] = devices
        with trio.move_on_after(timeout_s):
            async with trio.open_nursery() as nursery:
                for server, users in remote.items():
                    nursery.start_soon(self._remote_query, server, users, timeout_s, result)
        for server in remote:
            if not any(u in result.device_keys for u in remote[server]):
                result.failures.setdefault(server, {"status": 504, "message": "timed out"})
        return result

    def _local_query_txn(
        self,
        conn: Connection,
        users: dict[str, list[str]],
        requester_id: str | None,
        result: KeyQueryResult,
    ) -> None:
        for user_id, wanted in users.items():
            devices: dict[str, JSON] = {}
            for row in store_e2e.devices_with_keys(conn, user_id):
                if row["key_json"] is None or (wanted and row["device_id"] not in wanted):
                    continue
                keys = _with_signatures(
                    conn, user_id, row["device_id"], json.loads(row["key_json"])
                )
                if row["display_name"]:
                    keys["unsigned"] = {"device_display_name": row["display_name"]}
                devices[row["device_id"]] = keys
            result.device_keys[user_id] = devices
            cross = store_e2e.get_cross_signing_keys(conn, user_id)
            for key_type, text in cross.items():
                key = json.loads(text)
                public = cross_signing_public_key(key)
                if public is not None:
                    key = _with_signatures(conn, user_id, public, key)
                if key_type == "master":
                    result.master_keys[user_id] = key
                elif key_type == "self_signing":
                    result.self_signing_keys[user_id] = key
                elif user_id == requester_id:
                    result.user_signing_keys[user_id] = key

    async def _remote_query(
        self, server: str, users: dict[str, list[str]], timeout_s: float, result: KeyQueryResult
    ) -> None:
        uncached: dict[str, list[str]] = {}
        for user_id, wanted in users.items():
            cached = await self.device_lists.cached_list(user_id)
            if cached is None:
                uncached[user_id] = wanted
                continue
            result.device_keys[user_id] = {
                d["device_id"]: _remote_device_keys(d)
                for d in cached["devices"]
                if d["key_json"] is not None and (not wanted or d["device_id"] in wanted)
            }
            if cached["master_key"]:
                result.master_keys[user_id] = json.loads(cached["master_key"])
            if cached["self_signing_key"]:
                result.self_signing_keys[user_id] = json.loads(cached["self_signing_key"])
        remote = self.device_lists.remote
        if not uncached or remote is None:
            return
        answer = await remote.query(server, {"device_keys": uncached}, timeout_s)
        if answer is None:
            result.failures[server] = {"status": 503, "message": f"{server} unreachable"}
            return
        for user_id in uncached:
            devices = (answer.get("device_keys") or {}).get(user_id)
            result.device_keys[user_id] = devices if isinstance(devices, dict) else {}
            for name, target in (
                ("master_keys", result.master_keys),
                ("self_signing_keys", result.self_signing_keys),
            ):
                key = (answer.get(name) or {}).get(user_id)
                if isinstance(key, dict):
                    target[user_id] = key

    # -- claim -----------------------------------------------------------------------------

    async def claim(self, wanted: JSON, timeout_s: float, *, local_only: bool = False) -> JSON:
        """`/keys/claim` or `/user/keys/claim`: {one_time_keys, failures}."""
        local = {u: d for u, d in wanted.items() if self.is_local(u)}

        def txn(conn: Connection) -> JSON:
            claimed: JSON = {}
            for user_id, devices in local.items():
                for device_id, algorithm in devices.items():
                    found = store_e2e.claim_one_time_key(conn, user_id, device_id, algorithm)
                    if found is not None:
                        key_id, text = found
                        claimed.setdefault(user_id, {})[device_id] = {key_id: json.loads(text)}
            return claimed

        claimed = await self.database.write(txn) if local else {}
        failures: JSON = {}
        remote: dict[str, JSON] = {}
        if not local_only:
            for user_id, devices in wanted.items():
                if not self.is_local(user_id) and server_of(user_id):
                    remote.setdefault(server_of(user_id), {})[user_id] = devices
        source = self.device_lists.remote

        async def one(server: str, users: JSON) -> None:
            answer = None
            if source is not None:
                answer = await source.claim(server, {"one_time_keys": users}, timeout_s)
            if answer is None:
                failures[server] = {"status": 503, "message": f"{server} unreachable"}
                return
            for user_id, devices in (answer.get("one_time_keys") or {}).items():
                if user_id in users and isinstance(devices, dict):
                    claimed[user_id] = devices

        with trio.move_on_after(timeout_s):
            async with trio.open_nursery() as nursery:
                for server, users in remote.items():
                    nursery.start_soon(one, server, users)
        return {"one_time_keys": claimed, "failures": failures}

    # -- cross-signing -----------------------------------------------------------------------

    async def has_master_key(self, user_id: str, body: JSON) -> bool:
        """Whether uploading `body` would replace an existing, different master key."""
        current = await self.database.read(store_e2e.get_cross_signing_keys, user_id)
        new = body.get("master_key")
        return "master" in current and (new is None or dumps(new) != current["master"])

    async def upload_cross_signing(self, user_id: str, body: JSON) -> None:
        """`/keys/device_signing/upload` once authorised."""
        keys: dict[str, JSON] = {}
        for key_type in CROSS_SIGNING_TYPES:
            key = body.get(f"{key_type}_key")
            if key is None:
                continue
            if not isinstance(key, dict) or key.get("user_id") != user_id:
                raise InvalidParam(f"{key_type}_key must be a key of {user_id}")
            usage = key.get("usage")
            if not isinstance(usage, list) or key_type not in usage:
                raise InvalidParam(f"{key_type}_key must have usage {key_type}")
            if cross_signing_public_key(key) is None:
                raise InvalidParam(f"{key_type}_key must hold exactly one ed25519 key")
            keys[key_type] = key
        current = await self.database.read(store_e2e.get_cross_signing_keys, user_id)
        master = keys.get("master") or (
            json.loads(current["master"]) if "master" in current else None
        )
        for key_type in ("self_signing", "user_signing"):
            if key_type not in keys:
                continue
            if master is None:
                raise InvalidParam("A master key is needed first")
            public = cross_signing_public_key(master) or ""
            if not verify_signed(keys[key_type], user_id, f"ed25519:{public}", public):
                raise InvalidSignature(f"{key_type}_key is not signed by the master key")

        def txn(conn: Connection) -> int:
            for key_type, key in keys.items():
                store_e2e.set_cross_signing_key(conn, user_id, key_type, dumps(key))
            public = {f"{t}_key": k for t, k in keys.items() if t in ("master", "self_signing")}
            return self.device_lists.local_change_txn(conn, user_id, None, signing_keys=public)

        if keys:
            await self.device_lists.written(await self.database.write(txn))

    async def upload_signatures(self, user_id: str, body: JSON) -> JSON:
        """`/keys/signatures/upload`: returns {failures}."""

        def txn(conn: Connection) -> tuple[JSON, int]:
            failures: JSON = {}
            changed: set[str] = set()
            signer_keys = _signer_keys(conn, user_id)
            for target_user, objects in body.items():
                if not isinstance(objects, dict):
                    raise InvalidParam("Each user must map key ids to signed objects")
                for target_key, obj in objects.items():
                    stored = 0
                    signatures = obj.get("signatures") if isinstance(obj, dict) else None
                    by_uploader = signatures.get(user_id) if isinstance(signatures, dict) else None
                    sigs: dict[str, Any] = by_uploader if isinstance(by_uploader, dict) else {}
                    for key_id in sigs:
                        public = signer_keys.get(key_id)
                        if public is None or key_id == f"ed25519:{target_key}":
                            continue  # unknown key, or the object's own self-signature
                        if not verify_signed(obj, user_id, key_id, public):
                            continue
                        store_e2e.add_signature(
                            conn,
                            signer_user_id=user_id,
                            signer_key_id=key_id,
                            target_user_id=target_user,
                            target_key_id=target_key,
                            signature=sigs[key_id],
                        )
                        stored += 1
                    if stored:
                        changed.add(target_user)
                    else:
                        failures.setdefault(target_user, {})[target_key] = {
                            "errcode": "M_INVALID_SIGNATURE",
                            "error": "No valid signature by a key of the uploader",
                        }
            stream = 0
            for target_user in changed:
                if self.is_local(target_user):
                    stream = self.device_lists.local_change_txn(conn, target_user, None)
            return failures, stream

        failures, stream = await self.database.write(txn)
        await self.device_lists.written(stream)
        return {"failures": failures}

    # -- sync --------------------------------------------------------------------------------

    def key_counts_txn(
        self, conn: Connection, user_id: str, device_id: str
    ) -> tuple[dict[str, int], list[str]]:
        counts = {"signed_curve25519": 0, **store_e2e.count_one_time_keys(conn, user_id, device_id)}
        return counts, store_e2e.unused_fallback_key_types(conn, user_id, device_id)


def _signer_keys(conn: Connection, user_id: str) -> dict[str, str]:
    """key_id -> public key of every key `user_id` may sign with."""
    keys: dict[str, str] = {}
    for row in store_e2e.devices_with_keys(conn, user_id):
        if row["key_json"]:
            device = json.loads(row["key_json"])
            key_id = f"ed25519:{row['device_id']}"
            public = (device.get("keys") or {}).get(key_id)
            if isinstance(public, str):
                keys[key_id] = public
    for text in store_e2e.get_cross_signing_keys(conn, user_id).values():
        public = cross_signing_public_key(json.loads(text))
        if public is not None:
            keys[f"ed25519:{public}"] = public
    return keys


def _remote_device_keys(device: JSON) -> JSON:
    keys = json.loads(device["key_json"])
    if device.get("display_name"):
        keys["unsigned"] = {
            **(keys.get("unsigned") or {}),
            "device_display_name": device["display_name"],
        }
    return keys


def _check_device_keys(keys: Any, user_id: str, device_id: str) -> None:
    if not isinstance(keys, dict):
        raise InvalidParam("device_keys must be an object")
    if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
        raise InvalidParam("device_keys must be for the requester's own device")
    if not isinstance(keys.get("algorithms"), list) or not isinstance(keys.get("keys"), dict):
        raise InvalidParam("device_keys needs algorithms and keys")
    key_id = f"ed25519:{device_id}"
    public = keys["keys"].get(key_id)
    if not isinstance(public, str):
        raise InvalidParam(f"device_keys has no {key_id} key")
    if not verify_signed(keys, user_id, key_id, public):
        raise InvalidSignature("device_keys is not signed by the device's own key")


def _key_map(value: Any, name: str) -> dict[tuple[str, str], Any]:
    """{"algorithm:key_id": key} -> {(algorithm, key_id): key}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParam(f"{name} must be an object")
    out: dict[tuple[str, str], Any] = {}
    for full_id, key in value.items():
        algorithm, sep, key_id = full_id.partition(":")
        if not sep or not algorithm or not key_id or not isinstance(key, dict | str):
            raise InvalidParam(f"{name} keys must be named algorithm:key_id")
        out[(algorithm, key_id)] = key
    return out
