"""Server-side key backup: versions of a user's backup and the room keys in them.

Rules kept:

- The only algorithm is `m.megolm_backup.v1.curve25519-aes-sha2`; `auth_data` must be
  an object. Versions are strings to clients, numbers in the store.
- Keys are uploaded only to the current version; any other is 403
  M_WRONG_ROOM_KEYS_VERSION with `current_version`. An unknown version is M_NOT_FOUND.
- A key replaces the stored one only when it is better: verified beats unverified,
  then a lower `first_message_index`, then a lower `forwarded_count`.
- Each upload that changes something bumps the version's `etag`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups
"""

from __future__ import annotations

import json
from typing import Any

from relay.errors import InvalidParam, NotFound, WrongRoomKeysVersion
from relay.runtime.database import Database
from store import Connection
from store import key_backup as store_backup

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
JSON = dict[str, Any]


def parse_version(version: str | None) -> int | None:
    """A client's version string; None for a missing or non-numeric one (never exists)."""
    if version is None or not (version.isascii() and version.isdigit()) or len(version) > 18:
        return None
    return int(version)


def _check_version_body(body: JSON) -> str:
    if body.get("algorithm") != ALGORITHM:
        raise InvalidParam(f"algorithm must be {ALGORITHM}")
    if not isinstance(body.get("auth_data"), dict):
        raise InvalidParam("auth_data must be an object")
    return json.dumps(body["auth_data"], ensure_ascii=False, separators=(",", ":"))


def _key_data(value: Any) -> JSON:
    if not isinstance(value, dict):
        raise InvalidParam("A key must be an object")
    fmi, count = value.get("first_message_index"), value.get("forwarded_count")
    verified, data = value.get("is_verified"), value.get("session_data")
    if not isinstance(fmi, int) or not isinstance(count, int) or isinstance(fmi, bool):
        raise InvalidParam("first_message_index and forwarded_count must be integers")
    if not isinstance(verified, bool) or not isinstance(data, dict):
        raise InvalidParam("is_verified must be a boolean and session_data an object")
    return {
        "first_message_index": fmi,
        "forwarded_count": count,
        "is_verified": verified,
        "session_data": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    }


def _better(new: JSON, old: JSON | None) -> bool:
    if old is None:
        return True
    if new["is_verified"] != bool(old["is_verified"]):
        return new["is_verified"]
    if new["first_message_index"] != old["first_message_index"]:
        return new["first_message_index"] < old["first_message_index"]
    return new["forwarded_count"] < old["forwarded_count"]


def _key_json(row: JSON) -> JSON:
    return {
        "first_message_index": row["first_message_index"],
        "forwarded_count": row["forwarded_count"],
        "is_verified": bool(row["is_verified"]),
        "session_data": json.loads(row["session_data"]),
    }


class KeyBackup:
    def __init__(self, database: Database) -> None:
        self.database = database

    # -- versions -----------------------------------------------------------------------------

    async def create_version(self, user_id: str, body: JSON) -> str:
        auth_data = _check_version_body(body)
        version = await self.database.write(
            store_backup.create_version, user_id, ALGORITHM, auth_data
        )
        return str(version)

    async def get_version(self, user_id: str, version: str | None) -> JSON:
        """The version's info; `version` None means the current one."""

        def txn(conn: Connection) -> JSON | None:
            number = None if version is None else parse_version(version)
            if version is not None and number is None:
                return None
            row = store_backup.get_version(conn, user_id, number)
            if row is None:
                return None
            return {
                "algorithm": row["algorithm"],
                "auth_data": json.loads(row["auth_data"]),
                "version": str(row["version"]),
                "etag": str(row["etag"]),
                "count": store_backup.count_keys(conn, user_id, row["version"]),
            }

        found = await self.database.read(txn)
        if found is None:
            raise NotFound("Unknown backup version" if version else "No current backup version")
        return found

    async def update_version(self, user_id: str, version: str, body: JSON) -> None:
        auth_data = _check_version_body(body)
        if "version" in body and body["version"] != version:
            raise InvalidParam("version in the body does not match the path")
        number = parse_version(version)
        current = await self.database.read(store_backup.get_version, user_id, number)
        if number is None or current is None:
            raise NotFound("Unknown backup version")
        if current["algorithm"] != body["algorithm"]:
            raise InvalidParam("algorithm cannot change")
        await self.database.write(store_backup.update_version, user_id, number, auth_data)

    async def delete_version(self, user_id: str, version: str) -> None:
        number = parse_version(version)
        if number is None or not await self.database.write(
            store_backup.delete_version, user_id, number
        ):
            raise NotFound("Unknown backup version")

    # -- keys ---------------------------------------------------------------------------------

    async def put_keys(self, user_id: str, version: str | None, rooms: JSON) -> JSON:
        """Store {room_id: {session_id: key}} in the current version: {etag, count}."""
        parsed = {
            room_id: {sid: _key_data(key) for sid, key in sessions.items()}
            for room_id, sessions in rooms.items()
        }
        number = parse_version(version)

        def txn(conn: Connection) -> JSON:
            if number is None or store_backup.get_version(conn, user_id, number) is None:
                raise NotFound("Unknown backup version")
            current = store_backup.get_version(conn, user_id)
            assert current is not None  # `number` itself is live
            if number != current["version"]:
                raise WrongRoomKeysVersion(
                    "Wrong backup version", current_version=str(current["version"])
                )
            changed = False
            for room_id, sessions in parsed.items():
                for session_id, key in sessions.items():
                    old = store_backup.get_key(conn, user_id, number, room_id, session_id)
                    if _better(key, old):
                        store_backup.put_key(conn, user_id, number, room_id, session_id, **key)
                        changed = True
            if changed:
                store_backup.bump_etag(conn, user_id, number)
            row = store_backup.get_version(conn, user_id, number) or current
            return {
                "etag": str(row["etag"]),
                "count": store_backup.count_keys(conn, user_id, number),
            }

        return await self.database.write(txn)

    async def get_keys(
        self, user_id: str, version: str | None, room_id: str | None, session_id: str | None
    ) -> JSON:
        """All keys, a room's, or one session's (M_NOT_FOUND when that one is missing)."""
        number = parse_version(version)

        def txn(conn: Connection) -> list[JSON] | None:
            if number is None or store_backup.get_version(conn, user_id, number) is None:
                return None
            return store_backup.get_keys(conn, user_id, number, room_id, session_id)

        rows = await self.database.read(txn)
        if rows is None:
            raise NotFound("Unknown backup version")
        if session_id is not None:
            if not rows:
                raise NotFound("No such session in the backup")
            return _key_json(rows[0])
        rooms: JSON = {}
        for row in rows:
            rooms.setdefault(row["room_id"], {"sessions": {}})["sessions"][row["session_id"]] = (
                _key_json(row)
            )
        if room_id is not None:
            return rooms.get(room_id, {"sessions": {}})
        return {"rooms": rooms}

    async def delete_keys(
        self, user_id: str, version: str | None, room_id: str | None, session_id: str | None
    ) -> JSON:
        number = parse_version(version)

        def txn(conn: Connection) -> JSON | None:
            if number is None or store_backup.get_version(conn, user_id, number) is None:
                return None
            if store_backup.delete_keys(conn, user_id, number, room_id, session_id):
                store_backup.bump_etag(conn, user_id, number)
            row = store_backup.get_version(conn, user_id, number)
            assert row is not None
            return {
                "etag": str(row["etag"]),
                "count": store_backup.count_keys(conn, user_id, number),
            }

        found = await self.database.write(txn)
        if found is None:
            raise NotFound("Unknown backup version")
        return found
