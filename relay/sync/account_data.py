"""Account data: per-user JSON blobs, global or per room, that clients store on the
server and get back in `/sync`.

Rules kept:

- A write replaces the blob and takes a new position on the shared stream, then wakes
  the user's sync.
- `m.fully_read` and `m.push_rules` are kept by the server: clients set them through
  `/read_markers` and the push rules API, never through the generic endpoints (405
  `M_BAD_JSON`, as the spec says).

Spec: https://spec.matrix.org/v1.16/client-server-api/#client-config
"""

from __future__ import annotations

import json
from typing import Any

from relay.errors import BadJson, InvalidParam, NotFound
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from store import Connection
from store import account_data as store_account_data
from store import events as store_events
from store import rooms as store_rooms

SERVER_KEPT_TYPES = ("m.fully_read", "m.push_rules")


def put_account_data_txn(
    conn: Connection, user_id: str, type_: str, content: dict[str, Any], room_id: str = ""
) -> int:
    """Store one blob in the caller's write transaction; returns its stream position."""
    position = store_events.next_stream_ordering(conn)
    store_account_data.set_account_data(
        conn,
        user_id=user_id,
        room_id=room_id,
        type=type_,
        content=json.dumps(content, ensure_ascii=False, separators=(",", ":")),
        stream_ordering=position,
    )
    return position


class AccountDataService:
    def __init__(self, database: Database, notifier: Notifier) -> None:
        self.database = database
        self.notifier = notifier

    async def get(self, user_id: str, type_: str, room_id: str = "") -> dict[str, Any]:
        found = await self.database.read(
            store_account_data.get_account_data, user_id, type_, room_id
        )
        if found is None:
            raise NotFound("Account data not found")
        return json.loads(found)

    async def put(
        self, user_id: str, type_: str, content: dict[str, Any], room_id: str = ""
    ) -> None:
        """Set a blob through the generic endpoints (server-kept types refused)."""
        if type_ in SERVER_KEPT_TYPES:
            raise BadJson(f"Cannot set {type_} through this API", status=405)

        def txn(conn: Connection) -> int:
            if room_id and store_rooms.get_room_version(conn, room_id) is None:
                raise InvalidParam(f"Unknown room {room_id}")
            return put_account_data_txn(conn, user_id, type_, content, room_id)

        self.notifier.on_stream(await self.database.write(txn))
