"""Read receipts and the fully-read marker.

Rules kept:

- `m.read` is shared with the room; `m.read.private` only ever reaches its owner's
  sync; `m.fully_read` is not a receipt at all but the room account data of that type
  (`{"event_id": ...}`).
- The user must be joined and the event must be a stored event of the room.
- A receipt replaces the user's previous one of the same type and thread, takes a
  position on the shared stream, and wakes syncs. (Receipts don't go to peers yet.)

Spec: https://spec.matrix.org/v1.16/client-server-api/#receipts,
https://spec.matrix.org/v1.16/client-server-api/#fully-read-markers
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from relay.errors import Forbidden, InvalidParam, NotFound
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from relay.sync.account_data import put_account_data_txn
from store import Connection
from store import events as store_events
from store import receipts as store_receipts
from store import rooms as store_rooms

RECEIPT_TYPES = ("m.read", "m.read.private")
MARKER_TYPES = ("m.fully_read", *RECEIPT_TYPES)


class ReceiptService:
    def __init__(
        self,
        database: Database,
        notifier: Notifier,
        *,
        edu_sink: Callable[[str, str, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.database = database
        self.notifier = notifier
        #: Sends public receipts to the other servers in the room.
        self.edu_sink = edu_sink

    async def set_markers(
        self,
        user_id: str,
        room_id: str,
        markers: dict[str, str],
        thread_id: str | None = None,
    ) -> None:
        """Set receipts and/or the fully-read marker: `{receipt_type: event_id}`."""
        for receipt_type in markers:
            if receipt_type not in MARKER_TYPES:
                raise InvalidParam(f"Unknown receipt type {receipt_type}")
        now = now_ms()

        def txn(conn: Connection) -> int:
            if store_rooms.get_membership(conn, room_id, user_id) != "join":
                raise Forbidden("You are not joined to this room")
            position = 0
            for receipt_type, event_id in markers.items():
                row = store_events.get_event_row(conn, event_id)
                if row is None or row["room_id"] != room_id:
                    raise NotFound(f"Unknown event {event_id} in {room_id}")
                if receipt_type == "m.fully_read":
                    content = {"event_id": event_id}
                    position = put_account_data_txn(conn, user_id, receipt_type, content, room_id)
                    continue
                data: dict[str, object] = {"ts": now}
                if thread_id is not None:
                    data["thread_id"] = thread_id
                position = store_events.next_stream_ordering(conn)
                store_receipts.set_receipt(
                    conn,
                    room_id=room_id,
                    receipt_type=receipt_type,
                    user_id=user_id,
                    event_id=event_id,
                    thread_id=thread_id or "",
                    data=json.dumps(data, separators=(",", ":")),
                    stream_ordering=position,
                )
            return position

        position = await self.database.write(txn)
        if position:
            self.notifier.on_stream(position)
        if self.edu_sink is not None and "m.read" in markers:
            receipt: dict[str, Any] = {"event_ids": [markers["m.read"]], "data": {"ts": now}}
            if thread_id is not None:
                receipt["data"]["thread_id"] = thread_id
            await self.edu_sink(room_id, "m.receipt", {room_id: {"m.read": {user_id: receipt}}})
