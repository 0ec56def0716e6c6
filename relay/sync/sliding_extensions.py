"""The extensions of a sliding sync answer (MSC4186's, as Element X uses them):
`to_device` (MSC3885), `e2ee` (MSC3884), `account_data` (MSC3959), `receipts`
(MSC3960), `typing` (MSC3961).

Rules kept (Synapse's `SlidingSyncExtensionHandler` where the MSCs leave it open):

- An extension answers only when `enabled`; the rooms it covers are those its `lists`
  (`*`: every list) put in this answer's windows and its `rooms` (`*`: every
  subscription) among the subscriptions; absent, none.
- `to_device`: the device's messages up to the answer's position, at most `limit`;
  `next_batch` is the position the device has them all up to, so acknowledging it
  (`since` in the next request) never drops a message that was not sent.
- `e2ee`: one-time key counts and unused fallback key types always; device list
  changes after `pos`.
- `account_data`: global data changed after `pos` (all of it on a new connection);
  per room, changes after `pos`, all of it for a room new to the connection (a new
  connection lists every covered room, empty ones too).
- `receipts`: after `pos`; for a room new to the connection, those on the events it
  was sent and the user's own.
- `typing`: rooms whose typing changed after `pos` (a new connection: rooms where
  someone types).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from relay.sync.devices import DeviceSync
from relay.sync.rooms import RoomReader
from relay.sync.sliding_request import WILDCARD, Extension, SlidingRequest
from relay.sync.typing_notices import TypingSnapshot
from store import account_data as store_account_data
from store import receipts as store_receipts

if TYPE_CHECKING:
    from relay.sync.sliding import SlidingRoom


def extensions_txn(
    reader: RoomReader,
    devices: DeviceSync | None,
    request: SlidingRequest,
    *,
    lists: Mapping[str, Mapping[str, Any]],
    rooms: Mapping[str, SlidingRoom],
    since_stream: int | None,
    to: int,
    typing: TypingSnapshot,
    subscribed: set[str],
) -> tuple[dict[str, dict[str, Any]], bool]:
    """The enabled extensions' answers, and whether any holds news (key counts alone
    are not news), read in the answer's snapshot up to `to`."""
    conn, user_id = reader.conn, reader.user_id
    out: dict[str, dict[str, Any]] = {}
    news = False
    ext = request.extension("to_device")
    if ext.enabled and devices is not None:
        events, up_to = devices.to_device.page_txn(conn, user_id, reader.device_id, to, ext.limit)
        out["to_device"] = {"next_batch": str(up_to), "events": events}
        news |= bool(events)
    ext = request.extension("e2ee")
    if ext.enabled and devices is not None:
        counts, fallback = devices.keys.key_counts_txn(conn, user_id, reader.device_id)
        e2ee: dict[str, Any] = {
            "device_one_time_keys_count": counts,
            "device_unused_fallback_key_types": fallback,
        }
        if since_stream is not None:
            changed, left = devices.device_lists.changes_txn(conn, user_id, since_stream, to)
            e2ee["device_lists"] = {"changed": changed, "left": left}
            news |= bool(changed or left)
        out["e2ee"] = e2ee
    ext = request.extension("account_data")
    if ext.enabled:
        rows = store_account_data.account_data_since(
            conn, user_id, -1 if since_stream is None else since_stream
        )
        global_data = [
            {"type": r["type"], "content": json.loads(r["content"])}
            for r in rows
            if r["room_id"] == ""
        ]
        by_room: dict[str, list[dict[str, Any]]] = {}
        for room_id in _extension_rooms(ext, lists, subscribed):
            initial = room_id in rooms and rooms[room_id].initial
            room_rows = (
                store_account_data.account_data_since(conn, user_id, -1) if initial else rows
            )
            events = [
                {"type": r["type"], "content": json.loads(r["content"])}
                for r in room_rows
                if r["room_id"] == room_id
            ]
            # A new connection gets every room's list, empty ones too (as Synapse).
            if events or since_stream is None:
                by_room[room_id] = events
        out["account_data"] = {"global": global_data, "rooms": by_room}
        news |= bool(global_data or by_room)
    ext = request.extension("receipts")
    if ext.enabled:
        receipts: dict[str, Any] = {}
        for room_id in _extension_rooms(ext, lists, subscribed):
            room = rooms.get(room_id)
            if since_stream is None or (room is not None and room.initial):
                # New to the connection: receipts on what it was sent, and the user's.
                sent = {v.pdu.event_id for v in room.timeline} if room is not None else set()
                rows = [
                    r
                    for r in store_receipts.get_receipts(conn, room_id)
                    if r["event_id"] in sent or r["user_id"] == user_id
                ]
            else:
                rows = store_receipts.receipts_since(conn, [room_id], since_stream)
            content = _receipt_content(rows, user_id)
            if content:
                receipts[room_id] = {"type": "m.receipt", "content": content}
        out["receipts"] = {"rooms": receipts}
        news |= bool(receipts)
    ext = request.extension("typing")
    if ext.enabled:
        typing_rooms = {}
        for room_id in _extension_rooms(ext, lists, subscribed):
            typers = typing.typers(room_id, reader.ignored)
            if room_id in typing.changed if since_stream is not None else bool(typers):
                typing_rooms[room_id] = {"type": "m.typing", "content": {"user_ids": typers}}
        out["typing"] = {"rooms": typing_rooms}
        news |= bool(typing_rooms)
    return out, news


def _extension_rooms(
    ext: Extension, lists: Mapping[str, Mapping[str, Any]], subscribed: set[str]
) -> list[str]:
    """The rooms an extension covers: its `lists` (`*`: all) and `rooms` (`*`: all
    subscriptions), among those in this answer's windows and subscriptions."""
    found: dict[str, None] = {}
    for room_id in ext.rooms or ():
        if room_id == WILDCARD:
            found.update(dict.fromkeys(sorted(subscribed)))
            break
        if room_id in subscribed:
            found[room_id] = None
    for name in ext.lists or ():
        chosen = lists.values() if name == WILDCARD else [lists[name]] if name in lists else []
        for window in chosen:
            for op in window["ops"]:
                found.update(dict.fromkeys(op["room_ids"]))
        if name == WILDCARD:
            break
    return list(found)


def _receipt_content(rows: Iterable[Mapping[str, Any]], user_id: str) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for row in rows:
        if row["receipt_type"] == "m.read.private" and row["user_id"] != user_id:
            continue
        by_type = content.setdefault(row["event_id"], {})
        by_type.setdefault(row["receipt_type"], {})[row["user_id"]] = json.loads(row["data"])
    return content
