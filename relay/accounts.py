"""Accounts, devices and access tokens: the service behind login, logout, register,
password changes, device management and profiles.

Tokens are random and shown to the client once; the store keeps only their hash.
Passwords are hashed (scrypt) off the trio thread, never in the writer.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from relay.errors import (
    Forbidden,
    InvalidUsername,
    NotFound,
    UnknownToken,
    UserInUse,
)
from relay.events.ids import is_valid_localpart
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from store import Connection
from store import accounts as store_accounts
from store import registration_tokens as store_tokens
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
    def __init__(
        self,
        database: Database,
        server_name: str,
        *,
        on_devices_deleted: Callable[[str, list[str]], Awaitable[None]] | None = None,
        on_device_created: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.database = database
        self.server_name = server_name
        #: Called with (user_id, device_ids) after devices were deleted: their keys and
        #: messages go, other servers hear of it.
        self.on_devices_deleted = on_devices_deleted
        #: Called with (user_id, device_id) after a login or registration created a new
        #: device: users sharing a room, and the user's other devices, must re-fetch keys.
        self.on_device_created = on_device_created

    async def devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        """Tell the rest of the relay that devices were deleted outside this class (the
        operator's actions: password reset, deactivation)."""
        await self._deleted(user_id, device_ids)

    async def _deleted(self, user_id: str, device_ids: list[str]) -> None:
        if self.on_devices_deleted is not None and device_ids:
            await self.on_devices_deleted(user_id, device_ids)

    async def authenticate(self, token: str) -> Requester:
        # One row by its key, on every request: looked up on the trio thread (exact, so a
        # token revoked by any path, the CLI's included, is refused at once).
        found = await self.database.read_now(store_accounts.lookup_access_token, token)
        if found is None:
            raise UnknownToken("Unrecognised access token")
        user_id, device_id = found
        return Requester(user_id, device_id, token)

    async def check_password(self, user_id: str, password: str) -> bool:
        """Whether `password` is the user's; never for a deactivated account (whose login
        then answers 403 M_FORBIDDEN, as Synapse 1.163.2 does, not M_USER_DEACTIVATED)."""
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

        def txn(conn: Connection) -> bool:
            is_new = store_accounts.get_device(conn, user_id, device_id) is None
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
            return is_new

        if await self.database.write(txn):
            await self._created(user_id, device_id)
        return Requester(user_id, device_id, token)

    async def _created(self, user_id: str, device_id: str) -> None:
        if self.on_device_created is not None:
            await self.on_device_created(user_id, device_id)

    async def logout(self, requester: Requester) -> None:
        await self.database.write(
            store_accounts.delete_device, requester.user_id, requester.device_id
        )
        await self._deleted(requester.user_id, [requester.device_id])

    async def logout_all(self, requester: Requester) -> None:
        def txn(conn: Connection) -> list[str]:
            devices = [d["device_id"] for d in store_accounts.list_devices(conn, requester.user_id)]
            for device_id in devices:
                store_accounts.delete_device(conn, requester.user_id, device_id)
            return devices

        await self._deleted(requester.user_id, await self.database.write(txn))

    async def register(
        self,
        localpart: str,
        password: str | None,
        *,
        admin: bool = False,
        displayname: str | None = None,
        device_id: str | None = None,
        device_display_name: str | None = None,
        inhibit_login: bool = False,
        registration_token: str | None = None,
    ) -> Registered:
        """Create `@localpart:server` and, unless `inhibit_login`, log it in; one transaction.

        `registration_token` (already reserved by the UIA stage) is marked used in the
        same transaction. Raises UserInUse when the user id is taken.
        """
        user_id = f"@{localpart}:{self.server_name}"
        password_hash = await _hash(password) if password is not None else None
        device_id = None if inhibit_login else (device_id or new_device_id())
        token = None if inhibit_login else new_access_token()

        def txn(conn: Connection) -> None:
            store_accounts.create_user(
                conn,
                user_id=user_id,
                password=None,
                password_hash=password_hash,
                admin=admin,
                now_ms=now_ms(),
            )
            store_accounts.set_profile(conn, user_id, displayname=displayname or localpart)
            if registration_token is not None:
                store_tokens.complete_token(conn, registration_token)
            if device_id is not None and token is not None:
                store_accounts.upsert_device(
                    conn,
                    user_id=user_id,
                    device_id=device_id,
                    display_name=device_display_name,
                    now_ms=now_ms(),
                )
                store_accounts.add_access_token(
                    conn, token=token, user_id=user_id, device_id=device_id, now_ms=now_ms()
                )

        try:
            await self.database.write(txn)
        except UserExists:
            raise UserInUse("User ID already taken") from None
        if device_id is not None:
            await self._created(user_id, device_id)
        return Registered(user_id, device_id, token)

    async def check_username(self, username: str) -> str:
        """The localpart for a new account named `username`, or M_INVALID_USERNAME /
        M_USER_IN_USE. Upper case is refused, not folded (as Synapse does)."""
        localpart = valid_new_localpart(username, self.server_name)
        user_id = f"@{localpart}:{self.server_name}"
        if await self.database.read(store_accounts.get_user, user_id) is not None:
            raise UserInUse("User ID already taken")
        return localpart

    async def change_password(
        self, requester: Requester, new_password: str, *, logout_devices: bool
    ) -> None:
        """Set a new password; with `logout_devices`, every other device (and its tokens)
        is deleted; the requester's own token stays valid."""
        password_hash = await _hash(new_password)

        def txn(conn: Connection) -> list[str]:
            store_accounts.set_password(conn, requester.user_id, None, password_hash=password_hash)
            deleted = []
            if logout_devices:
                for device in store_accounts.list_devices(conn, requester.user_id):
                    if device["device_id"] != requester.device_id:
                        store_accounts.delete_device(conn, requester.user_id, device["device_id"])
                        deleted.append(device["device_id"])
            return deleted

        await self._deleted(requester.user_id, await self.database.write(txn))

    # Devices -----------------------------------------------------------------------

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        return await self.database.read(store_accounts.list_devices, user_id)

    async def device(self, user_id: str, device_id: str) -> dict[str, Any]:
        device = await self.database.read(store_accounts.get_device, user_id, device_id)
        if device is None:
            raise NotFound("Unknown device")
        return device

    async def rename_device(self, user_id: str, device_id: str, display_name: str | None) -> None:
        if not await self.database.write(
            store_accounts.rename_device, user_id, device_id, display_name
        ):
            raise NotFound("Unknown device")

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """Delete the devices and their access tokens; unknown ids are ignored."""

        def txn(conn: Connection) -> list[str]:
            return [d for d in device_ids if store_accounts.delete_device(conn, user_id, d)]

        await self._deleted(user_id, await self.database.write(txn))

    # Profiles ----------------------------------------------------------------------

    async def profile(self, user_id: str) -> dict[str, str]:
        """{displayname?, avatar_url?} of a local user; M_NOT_FOUND for unknown or
        deactivated users."""
        user = await self.database.read(store_accounts.get_user, user_id)
        if user is None or user["deactivated"]:
            raise NotFound("Profile not found")
        return {k: user[k] for k in PROFILE_FIELDS if user[k] is not None}

    async def set_profile_field(self, user_id: str, field: str, value: str | None) -> None:
        """Set (None: clear) `displayname` or `avatar_url`."""
        if field not in PROFILE_FIELDS:
            raise Forbidden(f"Profile field {field} cannot be set on this server")
        if not await self.database.write(
            lambda conn: store_accounts.set_profile(conn, user_id, **{field: value})
        ):
            raise NotFound("Profile not found")


@dataclass(frozen=True, slots=True)
class Registered:
    user_id: str
    #: None with inhibit_login.
    device_id: str | None
    access_token: str | None


PROFILE_FIELDS = ("displayname", "avatar_url")
#: The longest user id the spec allows, in bytes.
MAX_USER_ID_BYTES = 255


def valid_new_localpart(username: str, server_name: str) -> str:
    """`username` as the localpart of a new account, or M_INVALID_USERNAME."""
    if not is_valid_localpart(username):
        raise InvalidUsername("User ID may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'")
    if len(f"@{username}:{server_name}".encode()) > MAX_USER_ID_BYTES:
        raise InvalidUsername("User ID is too long")
    return username


async def _hash(password: str) -> str:
    import trio

    # scrypt is slow on purpose; keep it off the trio thread.
    return await trio.to_thread.run_sync(store_accounts.hash_password, password)
