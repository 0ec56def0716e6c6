"""Device lists: who must re-fetch whose device keys, here and on other servers.

Rules kept:

- A change to a local user's devices or keys takes a position on the main stream
  (`device_list_changes`) and, in the same write, queues an `m.device_list_update`
  EDU (with `stream_id` that position and `prev_id` the one before) for every other
  server sharing a room with the user: the durable outbox carries it across outages.
- `/sync` `device_lists.changed` lists users sharing a room with the syncing user
  whose devices changed after `since`, and users who newly share a room with them;
  `left` lists users who no longer share any room after a leave or ban since `since`
  (an invite or a knock is not a leave: nobody shared a room through it).
- Remote users' device lists are cached. An `m.device_list_update` whose `prev_id`
  names the cached `stream_id` is applied in place; any other marks the cache stale and,
  when the list was fresh and the user shares a room with us, resyncs it via
  `/user/devices` at once (the spec: an unrecognised `prev_id` "must resynchronise"; once
  per fresh-to-stale change, so gaps make us ask the origin once per answer it gave).
  Either way the change is recorded so local clients re-query; a query of a stale or
  uncached user who shares a room with us resyncs too. When a server
  comes back after an outage every cached user of it is resynced, and a list that
  moved while the link was down is recorded as changed.
- Remote requests go through `remote` (relay/federation/user_keys.py), which answers
  None for a server that failed: this module never sees federation errors.

Spec: https://spec.matrix.org/v1.16/client-server-api/#tracking-the-device-list-for-a-user
and https://spec.matrix.org/v1.16/server-server-api/#device-management
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from relay.events.ids import server_of
from relay.rooms.service import RoomService
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from store import Connection
from store import e2ee_keys as store_e2e
from store import events as store_events
from store import outbox as store_outbox
from store import rooms as store_rooms

log = logging.getLogger(__name__)

JSON = dict[str, Any]
#: Memberships that end sharing a room. An invite or a knock never shared one, so it
#: never puts anyone in `left` (nor do they make anyone's keys news: not joined).
LEAVING = frozenset({"leave", "ban"})


class RemoteKeys(Protocol):
    """Other servers' answers about their users' keys (None: the server failed)."""

    async def query(self, server: str, device_keys: JSON, timeout_s: float) -> JSON | None: ...

    async def claim(self, server: str, one_time_keys: JSON, timeout_s: float) -> JSON | None: ...

    async def user_devices(self, server: str, user_id: str, timeout_s: float) -> JSON | None: ...


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def servers_sharing_rooms(conn: Connection, user_id: str, exclude: str) -> list[str]:
    servers: set[str] = set()
    for room_id in store_rooms.rooms_for_user(conn, user_id):
        servers.update(store_rooms.servers_in_room(conn, room_id))
    servers.discard(exclude)
    return sorted(servers)


def shares_room_with_local_user(conn: Connection, user_id: str, server_name: str) -> bool:
    suffix = ":" + server_name
    return any(u.endswith(suffix) for u in store_rooms.users_sharing_rooms(conn, user_id))


class DeviceLists:
    def __init__(
        self, database: Database, rooms: RoomService, notifier: Notifier, server_name: str
    ) -> None:
        self.database = database
        self.rooms = rooms
        self.notifier = notifier
        self.server_name = server_name
        #: Set by node.py (relay/federation/user_keys.py); None: no federation.
        self.remote: RemoteKeys | None = None

    # -- local users ----------------------------------------------------------------------

    def local_change_txn(
        self,
        conn: Connection,
        user_id: str,
        device_id: str | None,
        *,
        deleted: bool = False,
        signing_keys: JSON | None = None,
    ) -> int:
        """Record that a local user's device (or, with `signing_keys`, cross-signing keys)
        changed, and queue the EDU for every server sharing a room. Returns the position."""
        prev = store_e2e.last_device_list_change(conn, user_id)
        stream = store_events.next_stream_ordering(conn)
        store_e2e.add_device_list_change(conn, user_id, stream)
        servers = servers_sharing_rooms(conn, user_id, self.server_name)
        if not servers:
            return stream
        if signing_keys is not None:
            edu = {
                "edu_type": "m.signing_key_update",
                "content": {"user_id": user_id, **signing_keys},
            }
        else:
            content: JSON = {
                "user_id": user_id,
                "device_id": device_id,
                "stream_id": stream,
                "prev_id": [prev] if prev is not None else [],
                "deleted": deleted,
            }
            if not deleted and device_id is not None:
                keys = store_e2e.get_device_keys(conn, user_id, device_id)
                if keys is not None:
                    content["keys"] = json.loads(keys)
                for row in store_e2e.devices_with_keys(conn, user_id):
                    if row["device_id"] == device_id and row["display_name"]:
                        content["device_display_name"] = row["display_name"]
            edu = {"edu_type": "m.device_list_update", "content": content}
        payload = dumps(edu).encode()
        for destination in servers:
            store_outbox.enqueue(
                conn, destination=destination, kind="edu", payload=payload, now_ms=now_ms()
            )
        return stream

    async def local_changed(self, user_id: str, device_ids: list[str], *, deleted: bool) -> None:
        """Devices of a local user were added or deleted (outside a key upload)."""

        def txn(conn: Connection) -> int:
            stream = 0
            for device_id in device_ids:
                stream = self.local_change_txn(conn, user_id, device_id, deleted=deleted)
            return stream

        if device_ids:
            await self.written(await self.database.write(txn))

    async def written(self, stream: int) -> None:
        """After a write that recorded changes: wake syncs and the federation sender."""
        if stream:
            self.notifier.on_stream(stream)
        if self.rooms.outbox_listener is not None:
            await self.rooms.outbox_listener()

    def local_stream_id(self, conn: Connection, user_id: str) -> int:
        return store_e2e.last_device_list_change(conn, user_id) or 0

    # -- what a client must re-fetch ------------------------------------------------------

    def changes_txn(
        self, conn: Connection, user_id: str, since: int, to: int
    ) -> tuple[list[str], list[str]]:
        """(changed, left) for `user_id` between stream positions `since` and `to`."""
        moved = store_e2e.users_with_device_changes(conn, since, to)
        my_rooms = set(store_rooms.rooms_for_user(conn, user_id))
        mine = store_rooms.memberships_of_user(conn, user_id, since)
        members_moved = store_e2e.membership_changes(conn, my_rooms, since, to)
        if not (moved or mine or members_moved):
            return [], []  # nothing moved: who shares a room need not be asked
        sharing = set(store_rooms.users_sharing_rooms(conn, user_id)) | {user_id}
        changed = moved & sharing
        left: set[str] = set()
        for row in mine:
            if row["stream_ordering"] > to:
                continue
            members = store_rooms.joined_users(conn, row["room_id"])
            if row["membership"] == "join":
                changed.update(members)  # newly joined: every member's keys are news
            elif row["membership"] in LEAVING:
                left.update(m for m in members if m not in sharing)
        for _room, member, membership in members_moved:
            if membership == "join":
                changed.add(member)
            elif membership in LEAVING and member not in sharing:
                left.add(member)
        changed.discard("")
        left.discard(user_id)
        return sorted(changed - left), sorted(left)

    # -- remote users ---------------------------------------------------------------------

    async def on_device_list_update(self, origin: str, content: JSON) -> None:
        """An inbound `m.device_list_update` EDU."""
        user_id, device_id = content.get("user_id"), content.get("device_id")
        stream_id, prev_ids = content.get("stream_id"), content.get("prev_id") or []
        if (
            not isinstance(user_id, str)
            or server_of(user_id) != origin
            or not isinstance(device_id, str)
            or not isinstance(stream_id, int)
            or not isinstance(prev_ids, list)
        ):
            return
        keys = content.get("keys")
        name = content.get("device_display_name")

        def txn(conn: Connection) -> tuple[int, bool]:
            """(the change's stream position or 0, whether a fresh list fell behind)"""
            gap = False
            cached = store_e2e.get_remote_device_list(conn, user_id)
            if cached is not None:
                known = cached["stream_id"]
                if known is not None and stream_id <= known and not cached["stale"]:
                    return 0, False  # seen before
                if not cached["stale"] and known is not None and known in prev_ids:
                    store_e2e.update_remote_device(
                        conn,
                        user_id,
                        device_id,
                        stream_id=stream_id,
                        display_name=name if isinstance(name, str) else None,
                        key_json=dumps(keys) if isinstance(keys, dict) else None,
                        deleted=content.get("deleted") is True,
                    )
                else:
                    gap = not cached["stale"]
                    store_e2e.mark_remote_device_list_stale(conn, user_id)
            stream = store_events.next_stream_ordering(conn)
            store_e2e.add_device_list_change(conn, user_id, stream)
            return stream, gap

        stream, gap = await self.database.write(txn)
        if stream:
            self.notifier.on_stream(stream)
        if gap and await self.database.read(shares_room_with_local_user, user_id, self.server_name):
            if not await self.resync(user_id):
                log.info("device list resync of %s failed; it stays stale", user_id)

    async def on_signing_key_update(self, origin: str, content: JSON) -> None:
        """An inbound `m.signing_key_update` EDU: new cross-signing keys of a remote user."""
        user_id = content.get("user_id")
        if not isinstance(user_id, str) or server_of(user_id) != origin:
            return

        def txn(conn: Connection) -> int:
            store_e2e.mark_remote_device_list_stale(conn, user_id)
            stream = store_events.next_stream_ordering(conn)
            store_e2e.add_device_list_change(conn, user_id, stream)
            return stream

        self.notifier.on_stream(await self.database.write(txn))

    async def resync(self, user_id: str, timeout_s: float = 10.0) -> bool:
        """Fetch a remote user's whole device list; records a change when it moved."""
        if self.remote is None:
            return False
        answer = await self.remote.user_devices(server_of(user_id), user_id, timeout_s)
        if answer is None or answer.get("user_id", user_id) != user_id:
            return False
        devices: list[tuple[str, str | None, str | None]] = []
        for device in answer.get("devices") or []:
            if not isinstance(device, dict) or not isinstance(device.get("device_id"), str):
                continue
            keys = device.get("keys")
            name = device.get("device_display_name")
            devices.append(
                (
                    device["device_id"],
                    name if isinstance(name, str) else None,
                    dumps(keys) if isinstance(keys, dict) else None,
                )
            )
        stream_id = answer.get("stream_id")
        master = answer.get("master_key")
        self_signing = answer.get("self_signing_key")

        def txn(conn: Connection) -> int:
            before = store_e2e.get_remote_device_list(conn, user_id)
            store_e2e.replace_remote_device_list(
                conn,
                user_id,
                stream_id=stream_id if isinstance(stream_id, int) else None,
                devices=sorted(devices),
                master_key=dumps(master) if isinstance(master, dict) else None,
                self_signing_key=dumps(self_signing) if isinstance(self_signing, dict) else None,
                now_ms=now_ms(),
            )
            after = store_e2e.get_remote_device_list(conn, user_id)
            if before is not None and _same_list(before, after):
                return 0
            stream = store_events.next_stream_ordering(conn)
            store_e2e.add_device_list_change(conn, user_id, stream)
            return stream

        stream = await self.database.write(txn)
        if stream:
            self.notifier.on_stream(stream)
        return True

    async def on_link_up(self, destination: str) -> None:
        """`destination` answers again: resync every user of it we keep a list for."""
        users = await self.database.read(store_e2e.remote_users_of_server, destination)
        for user_id in users:
            if not await self.resync(user_id):
                log.info("device list resync of %s failed; it stays stale", user_id)

                def mark(conn: Connection, user_id: str = user_id) -> None:
                    store_e2e.mark_remote_device_list_stale(conn, user_id)

                await self.database.write(mark)
                return

    async def cached_list(self, user_id: str) -> JSON | None:
        """A remote user's list for a key query: the cache when fresh, else a resync if
        the user shares a room with us (falling back to a stale cache)."""
        cached = await self.database.read(store_e2e.get_remote_device_list, user_id)
        if cached is not None and not cached["stale"]:
            return cached
        shares = await self.database.read(shares_room_with_local_user, user_id, self.server_name)
        if shares and await self.resync(user_id):
            return await self.database.read(store_e2e.get_remote_device_list, user_id)
        return cached


def _same_list(before: JSON, after: JSON | None) -> bool:
    if after is None:
        return False
    return (
        before["devices"] == after["devices"]
        and before["master_key"] == after["master_key"]
        and before["self_signing_key"] == after["self_signing_key"]
    )
