"""Accounts, devices and access tokens: the service behind login, logout and register.

Tokens are random and shown to the client once; the store keeps only their hash.
"""

from __future__ import annotations

import secrets
import sqlite3
import string
from dataclasses import dataclass

from relay.database import Database
from relay.errors import Forbidden, UnknownToken
from relay.events.ids import is_valid_localpart
from relay.services import now_ms
from store import accounts as store_accounts
from store.errors import UserExists

DEVICE_ID_ALPHABET = string.ascii_uppercase


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    device_id: str
    access_token: str


def new_access_token() -> str:
    return "er_" + secrets.token_urlsafe(32)


def new_device_id() -> str:
    return "".join(secrets.choice(DEVICE_ID_ALPHABET) for _ in range(10))


def user_id_for(identifier: str, server_name: str) -> str | None:
    """`alice` or `@alice:server` -> `@alice:server`; None when it is not a local user."""
    identifier = identifier.strip()
    if identifier.startswith("@"):
        localpart, sep, server = identifier[1:].partition(":")
        if not sep or server != server_name:
            return None
    else:
        localpart = identifier
    localpart = localpart.lower()
    if not is_valid_localpart(localpart):
        return None
    return f"@{localpart}:{server_name}"


class Accounts:
    def __init__(self, database: Database, server_name: str) -> None:
        self.database = database
        self.server_name = server_name

    async def authenticate(self, token: str) -> Requester:
        found = await self.database.read(store_accounts.lookup_access_token, token)
        if found is None:
            raise UnknownToken("Unrecognised access token")
        user_id, device_id = found
        return Requester(user_id, device_id, token)

    async def check_password(self, user_id: str, password: str) -> bool:
        user = await self.database.read(store_accounts.get_user, user_id)
        if user is None or user.get("deactivated") or not user.get("password_hash"):
            return False
        import trio

        # scrypt is slow on purpose; keep it off the trio thread.
        return await trio.to_thread.run_sync(
            store_accounts.verify_password, password, user["password_hash"]
        )

    async def login(
        self, user_id: str, device_id: str | None, display_name: str | None
    ) -> Requester:
        """A new access token for `user_id` on `device_id` (created if new)."""
        device_id = device_id or new_device_id()
        token = new_access_token()

        def txn(conn: sqlite3.Connection) -> None:
            # Re-logging in with a device id replaces that device's old tokens.
            store_accounts.delete_device_tokens(conn, user_id, device_id)
            store_accounts.upsert_device(
                conn,
                user_id=user_id,
                device_id=device_id,
                display_name=display_name,
                now_ms=now_ms(),
            )
            store_accounts.add_access_token(
                conn, token=token, user_id=user_id, device_id=device_id, now_ms=now_ms()
            )

        await self.database.write(txn)
        return Requester(user_id, device_id, token)

    async def logout(self, requester: Requester) -> None:
        await self.database.write(
            store_accounts.delete_device, requester.user_id, requester.device_id
        )

    async def logout_all(self, requester: Requester) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            for device in store_accounts.list_devices(conn, requester.user_id):
                store_accounts.delete_device(conn, requester.user_id, device["device_id"])

        await self.database.write(txn)

    async def register(self, localpart: str, password: str | None) -> str:
        user_id = f"@{localpart}:{self.server_name}"

        def txn(conn: sqlite3.Connection) -> None:
            store_accounts.create_user(
                conn, user_id=user_id, password=password, admin=False, now_ms=now_ms()
            )

        try:
            await self.database.write(txn)
        except UserExists:
            raise Forbidden("User ID already taken") from None
        return user_id
