"""The operator's actions, each written once: the CLI (`relay user|token|peers|status`),
the operator page (relay/web/) and Synapse's admin API (relay/client/synapse_admin_*)
all call these, so a rule (what a token may look like, what deactivating does, what
status shows) lives in one place.

Rules kept:

- An action that writes is a `*_txn(conn, ...)` function and never commits (store's
  rule): the CLI runs it on its own connection to the live database (`relay` commands
  are safe while the relay runs), the relay process on `Database.write`.
- Password hashing is slow (scrypt): callers hash (`store.accounts.hash_password`)
  before the transaction and pass the hash.
- Problems are `MatrixError`s: the admin API returns them as they are, the CLI and the
  page show their message.
"""

from __future__ import annotations

import secrets
import shutil
import string
from typing import Any

from relay.accounts import Accounts, valid_new_localpart
from relay.config import Config
from relay.errors import InvalidParam, MatrixError, NotFound, UserInUse
from relay.events.ids import localpart_of, server_of
from relay.rooms.service import RoomService
from relay.rooms.visibility import content_of
from relay.runtime import clock
from relay.runtime.identity import SigningKey
from store import Connection, TokenExists
from store import accounts as store_accounts
from store import openid_tokens as store_openid
from store import peers as store_peers
from store import registration_tokens as store_tokens
from store import reports as store_reports
from store import rooms as store_rooms
from store import state as store_state
from store import status as store_status
from store.errors import UserExists

TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "._~-")
MAX_TOKEN_LENGTH = 64
DEFAULT_TOKEN_LENGTH = 16
MAX_PASSWORD_LENGTH = 512
_UNCHANGED: Any = object()

# -- registration tokens ---------------------------------------------------------------


def check_token_text(token: Any) -> str:
    """A token an operator chose: 1-64 of `A-Z a-z 0-9 . _ ~ -` (the spec's alphabet)."""
    if not isinstance(token, str):
        raise InvalidParam("token must be a string")
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise InvalidParam("token must not be empty and must not be longer than 64 characters")
    if not set(token) <= TOKEN_CHARS:
        raise InvalidParam("token must consist only of characters matched by [A-Za-z0-9._~-]")
    return token


def random_token(length: Any = DEFAULT_TOKEN_LENGTH) -> str:
    if isinstance(length, bool) or not isinstance(length, int):
        raise InvalidParam("length must be an integer")
    if not 0 < length <= MAX_TOKEN_LENGTH:
        raise InvalidParam("length must be greater than zero and not greater than 64")
    alphabet = string.ascii_letters + string.digits + "._~-"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def check_uses_allowed(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidParam("uses_allowed must be a non-negative integer or null")
    return value


def check_expiry_time(value: Any, now_ms: int) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidParam("expiry_time must be an integer or null")
    if value is not None and value < now_ms:
        raise InvalidParam("expiry_time must not be in the past")
    return value


def token_view(row: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """What an operator sees of a stored token. Tokens are stored hashed: `hint` is the
    start of it (store.registration_tokens)."""
    expiry, allowed = row["expiry_time"], row["uses_allowed"]
    unexpired = expiry is None or expiry > now_ms
    uses_left = allowed is None or row["pending"] + row["completed"] < allowed
    return {
        "hint": row["hint"] + "…",
        "uses_allowed": allowed,
        "pending": row["pending"],
        "completed": row["completed"],
        "expiry_time": expiry,
        "valid": unexpired and uses_left,
    }


def create_token_txn(
    conn: Connection, token: str, uses_allowed: int | None, expiry_time: int | None
) -> dict[str, Any]:
    """Create a token (already checked); its stored row. InvalidParam if it exists."""
    try:
        store_tokens.create_token(
            conn, token=token, uses_allowed=uses_allowed, expiry_time=expiry_time
        )
    except TokenExists:
        raise InvalidParam(f"Token already exists: {token}") from None
    row = store_tokens.get_token(conn, token)
    assert row is not None
    return row


def update_token_txn(
    conn: Connection,
    token: str,
    *,
    uses_allowed: int | None = _UNCHANGED,
    expiry_time: int | None = _UNCHANGED,
) -> dict[str, Any]:
    changes = {
        name: value
        for name, value in (("uses_allowed", uses_allowed), ("expiry_time", expiry_time))
        if value is not _UNCHANGED
    }
    if not store_tokens.update_token(conn, token, **changes):
        raise NotFound(f"No such registration token: {token}")
    row = store_tokens.get_token(conn, token)
    assert row is not None
    return row


def delete_token_txn(conn: Connection, token: str) -> None:
    if not store_tokens.delete_token(conn, token):
        raise NotFound(f"No such registration token: {token}")


def delete_listed_token_txn(conn: Connection, hashed: str) -> None:
    """Delete a token named by its listed hash (the operator page's delete buttons)."""
    if not store_tokens.delete_token_by_hash(conn, hashed):
        raise NotFound("No such registration token")


# -- users -----------------------------------------------------------------------------


def local_user_id(name: str, server_name: str) -> str:
    """`@localpart:server`, `@localpart` or `localpart` -> a valid local user id."""
    localpart = name.removeprefix("@")
    if ":" in localpart:
        if server_of(localpart) != server_name:
            raise InvalidParam("This endpoint can only be used with local users")
        localpart = localpart.partition(":")[0]
    return f"@{valid_new_localpart(localpart, server_name)}:{server_name}"


def check_password(password: Any) -> str:
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidParam("Invalid password")
    return password


def create_user_txn(
    conn: Connection,
    *,
    user_id: str,
    password_hash: str | None,
    admin: bool,
    displayname: str | None,
    now_ms: int,
) -> None:
    """Create a local user (UserInUse if the id is taken, deactivated users' included)."""
    try:
        store_accounts.create_user(
            conn,
            user_id=user_id,
            password=None,
            password_hash=password_hash,
            admin=admin,
            now_ms=now_ms,
        )
    except UserExists:
        raise UserInUse("User ID already taken") from None
    store_accounts.set_profile(conn, user_id, displayname=displayname or localpart_of(user_id))


async def add_user(
    accounts: Accounts, server_name: str, name: str, password: str, *, admin: bool
) -> str:
    """`create_user_txn` from inside the relay (hashing in a worker thread); the user id."""
    import trio

    user_id = local_user_id(name, server_name)
    password_hash = await trio.to_thread.run_sync(
        store_accounts.hash_password, check_password(password)
    )
    await accounts.database.write(
        lambda conn: create_user_txn(
            conn,
            user_id=user_id,
            password_hash=password_hash,
            admin=admin,
            displayname=None,
            now_ms=clock.now_ms(),
        )
    )
    return user_id


def existing_user_txn(conn: Connection, user_id: str) -> dict[str, Any]:
    user = store_accounts.get_user(conn, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def reset_password_txn(
    conn: Connection, user_id: str, password_hash: str, *, logout_devices: bool
) -> list[str]:
    """Set the user's password; with `logout_devices` every device (and its access
    tokens) is deleted. The deleted device ids."""
    existing_user_txn(conn, user_id)
    store_accounts.set_password(conn, user_id, None, password_hash=password_hash)
    if not logout_devices:
        return []
    return _delete_devices(conn, user_id)


def deactivate_user_txn(conn: Connection, user_id: str, *, erase: bool = False) -> list[str]:
    """Deactivate: no password, no devices, no access or OpenID tokens; the user id stays
    taken. With `erase`, the user is marked erased and its profile cleared. The deleted
    device ids."""
    existing_user_txn(conn, user_id)
    devices = [d["device_id"] for d in store_accounts.list_devices(conn, user_id)]
    store_accounts.deactivate_user(conn, user_id)
    store_openid.delete_user_openid_tokens(conn, user_id)
    if erase:
        store_accounts.erase_user(conn, user_id)
    return devices


def _delete_devices(conn: Connection, user_id: str) -> list[str]:
    devices = [d["device_id"] for d in store_accounts.list_devices(conn, user_id)]
    for device_id in devices:
        store_accounts.delete_device(conn, user_id, device_id)
    return devices


# -- rooms ---------------------------------------------------------------------------


def room_details_txn(conn: Connection, rooms: RoomService, room_id: str) -> dict[str, Any] | None:
    """A room as a server admin sees it, from its current state (Synapse's
    `get_room_with_stats` fields); None for a room we don't know."""
    room = store_rooms.get_room(conn, room_id)
    if room is None:
        return None
    state = store_state.get_current_state(conn, room_id)

    def field(event_type: str, key: str) -> Any:
        value = content_of(conn, rooms, state.get((event_type, ""))).get(key)
        return value if isinstance(value, str) else None

    create_id = state.get(("m.room.create", ""))
    create = rooms.get_pdu_txn(conn, create_id) if create_id else None
    joined = store_rooms.joined_users(conn, room_id)
    local_joined = [user for user in joined if server_of(user) == rooms.server_name]
    local_members = [
        user for user in store_rooms.members(conn, room_id) if server_of(user) == rooms.server_name
    ]
    room_type = create.content.get("type") if create is not None else None
    tombstone_id = state.get(("m.room.tombstone", ""))
    tombstone = rooms.get_pdu_txn(conn, tombstone_id) if tombstone_id else None
    replacement = tombstone.content.get("replacement_room") if tombstone is not None else None
    return {
        "room_id": room_id,
        "name": field("m.room.name", "name"),
        "topic": field("m.room.topic", "topic"),
        "avatar": field("m.room.avatar", "url"),
        "canonical_alias": field("m.room.canonical_alias", "alias"),
        "joined_members": len(joined),
        "joined_local_members": len(local_joined),
        "version": room["room_version"],
        "creator": room["creator"] or (create.sender if create is not None else None),
        "encryption": field("m.room.encryption", "algorithm"),
        "federatable": (create.content.get("m.federate", True) is not False)
        if create is not None
        else True,
        "public": room["is_public"],
        "join_rules": field("m.room.join_rules", "join_rule"),
        "guest_access": field("m.room.guest_access", "guest_access"),
        "history_visibility": field("m.room.history_visibility", "history_visibility"),
        "state_events": len(state),
        "room_type": room_type if isinstance(room_type, str) else None,
        "tombstoned": tombstone is not None,
        "replacement_room": replacement if isinstance(replacement, str) else None,
        "joined_local_devices": sum(
            len(store_accounts.list_devices(conn, user)) for user in local_joined
        ),
        "forgotten": bool(local_members)
        and all(room_id in store_rooms.forgotten_rooms(conn, user) for user in local_members),
    }


def rooms_txn(conn: Connection, rooms: RoomService) -> list[dict[str, Any]]:
    """`room_details_txn` of every room we know."""
    found = (room_details_txn(conn, rooms, r) for r in store_rooms.all_room_ids(conn))
    return [room for room in found if room is not None]


# -- LAN peers -------------------------------------------------------------------------


def reports_txn(
    conn: Connection,
    rooms: RoomService,
    *,
    kind: store_reports.Kind | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Users' content reports, newest first (see `report_view_txn`)."""
    rows = store_reports.list_reports(conn, kind=kind, offset=offset, limit=limit)
    return [report_view_txn(conn, rooms, row) for row in rows]


def report_view_txn(conn: Connection, rooms: RoomService, row: dict[str, Any]) -> dict[str, Any]:
    """A stored report with what the operator needs to judge it: the room's name and
    alias, and for an event its sender and (text) body."""
    view = dict(row)
    if row["room_id"] is not None:
        for field, type_, key in (
            ("room_name", "m.room.name", "name"),
            ("canonical_alias", "m.room.canonical_alias", "alias"),
        ):
            state = rooms.state_event_txn(conn, row["room_id"], type_, "")
            value = state.content.get(key) if state is not None else None
            view[field] = value if isinstance(value, str) else None
    if row["event_id"] is not None:
        pdu = rooms.get_pdu_txn(conn, row["event_id"])
        view["sender"] = pdu.sender if pdu is not None else None
        body = pdu.content.get("body") if pdu is not None else None
        view["body"] = body if isinstance(body, str) else None
    return view


def dismiss_report_txn(conn: Connection, report_id: int) -> None:
    """The operator has dealt with a report. Raises NotFound."""
    if not store_reports.delete_report(conn, report_id):
        raise NotFound(f"No report {report_id}")


def peers_txn(conn: Connection, config: Config) -> list[dict[str, Any]]:
    """LAN peers (and rejected impersonating announcements), as `relay peers list`."""
    out = []
    for row in store_peers.all_peers(conn):
        pinned = config.mesh_trusted.get(row["server_name"])
        out.append(
            {
                "name": row["server_name"],
                "address": f"{row['address']}:{row['port']}",
                "key_id": row["key_id"],
                "fingerprint": row["fingerprint"],
                "status": row["status"],
                "pinned_by": "config" if pinned else ("operator" if row["approved_key"] else None),
                "first_seen": row["first_seen_ts"],
                "last_seen": row["last_seen_ts"],
                "reachable": row["reachable"],
                "reason": row["reason"],
            }
        )
    for spoof in store_peers.rejected_announcements(conn):
        out.append(
            {
                "name": spoof["server_name"],
                "address": f"{spoof['address']}:{spoof['port']}",
                "key_id": None,
                "fingerprint": spoof["fingerprint"],
                "status": "rejected",
                "pinned_by": None,
                "first_seen": spoof["first_seen_ts"],
                "last_seen": spoof["last_seen_ts"],
                "reachable": False,
                "reason": spoof["reason"],
            }
        )
    return out


def approve_peer_txn(conn: Connection, name: str) -> dict[str, Any]:
    """Pin the key `name` serves now; its row. NotFound if its key was never seen."""
    row = store_peers.approve(conn, name)
    if row is None:
        raise NotFound(f"no LAN peer {name} with a known key")
    return row


def revoke_peer_txn(conn: Connection, name: str) -> None:
    if not store_peers.revoke(conn, name):
        raise NotFound(f"no LAN peer {name}")


# -- status ----------------------------------------------------------------------------


def status_txn(conn: Connection, config: Config, key: SigningKey) -> dict[str, Any]:
    """What `relay status` shows, read in the caller's read transaction."""
    snap = store_status.snapshot_txn(conn)
    counts, media_counts, depths = snap["counts"], snap["media"], snap["depths"]
    destinations = {row["destination"]: row for row in snap["destinations"]}
    names = sorted(set(depths) | set(destinations))
    try:
        disk = shutil.disk_usage(config.data_dir)
        disk_free: int | None = disk.free
    except OSError:
        disk_free = None
    return {
        "server_name": config.server_name,
        "key_id": key.key_id,
        "verify_key": key.verify_key_base64,
        "listeners": {
            "client": f"http://{config.client_listen}",
            "federation": f"https://{config.federation_listen}",
        },
        "upstream": config.upstream,
        "counts": counts,
        "database": snap["database"],
        "media": media_counts,
        "disk_free_bytes": disk_free,
        "federation": {
            name: {**dict(destinations.get(name, {})), "queue_depth": depths.get(name, 0)}
            for name in names
        },
    }


# -- in the relay process --------------------------------------------------------------


async def leave_all_rooms(rooms: RoomService, user_id: str) -> int:
    """After deactivating a local user: leave every room it is joined to and reject every
    invite it holds (as Synapse does); the number left. A room where the leave is refused
    is skipped."""

    def txn(conn: Connection) -> list[str]:
        return store_rooms.rooms_for_user(conn, user_id, "join") + store_rooms.rooms_for_user(
            conn, user_id, "invite"
        )

    left = 0
    for room_id in await rooms.database.read(txn):
        try:
            await rooms.update_membership(user_id, room_id, user_id, "leave")
        except MatrixError:
            continue
        left += 1
    return left


async def deactivate_user(
    accounts: Accounts, rooms: RoomService, user_id: str, *, erase: bool = False
) -> None:
    """Deactivate a local user from inside the relay (the admin API, the operator page,
    `/account/deactivate`): leave its rooms, then `deactivate_user_txn`, then tell the
    rest of the relay that its devices are gone."""
    await leave_all_rooms(rooms, user_id)
    devices = await rooms.database.write(
        lambda conn: deactivate_user_txn(conn, user_id, erase=erase)
    )
    await accounts.devices_deleted(user_id, devices)


async def reset_password(
    accounts: Accounts, rooms: RoomService, user_id: str, password: str, *, logout_devices: bool
) -> list[str]:
    """`reset_password_txn` from inside the relay (hashing in a worker thread); the
    devices logged out."""
    import trio

    password_hash = await trio.to_thread.run_sync(
        store_accounts.hash_password, check_password(password)
    )
    devices = await rooms.database.write(
        lambda conn: reset_password_txn(conn, user_id, password_hash, logout_devices=logout_devices)
    )
    await accounts.devices_deleted(user_id, devices)
    return devices
