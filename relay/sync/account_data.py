"""Account data: per-user JSON blobs, global or per room, that clients store on the
server and get back in `/sync`.

Rules kept:

- A write replaces the blob and takes a new position on the shared stream, then wakes
  the user's sync.
- Room tags (`m.tag`) are per-room account data `{"tags": {tag: {order?}}}`; the tags API
  edits that blob, so /sync and the account data API show what the tags API wrote. A tag
  is at most 255 bytes (as Synapse); tagging needs some membership in the room.
- `m.ignored_user_list` (`{"ignored_users": {user_id: {}}}`) is read by `ignored_users_txn`,
  the one place that parses it: /sync leaves out ignored users' non-state events,
  invites and typing (Synapse hides state events from no one).
- `m.fully_read` and `m.push_rules` are kept by the server: clients set them through
  `/read_markers` and the push rules API, never through the generic endpoints (405
  `M_BAD_JSON`, as the spec says).

Spec: https://spec.matrix.org/v1.16/client-server-api/#client-config
"""

from __future__ import annotations

import json
from typing import Any

from relay.errors import BadJson, Forbidden, InvalidParam, NotFound
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from store import Connection
from store import account_data as store_account_data
from store import events as store_events
from store import rooms as store_rooms

SERVER_KEPT_TYPES = ("m.fully_read", "m.push_rules")
TAG_TYPE = "m.tag"
IGNORED_USERS_TYPE = "m.ignored_user_list"
MAX_TAG_BYTES = 255


def tags_of(content: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The tags in an `m.tag` blob; malformed entries (set through the generic API) are
    left out."""
    tags = (content or {}).get("tags")
    if not isinstance(tags, dict):
        return {}
    return {k: v for k, v in tags.items() if isinstance(k, str) and isinstance(v, dict)}


def ignored_users_txn(conn: Connection, user_id: str) -> frozenset[str]:
    """The users `user_id` ignores (empty when the blob is missing or malformed)."""
    found = store_account_data.get_account_data(conn, user_id, IGNORED_USERS_TYPE)
    ignored = json.loads(found).get("ignored_users") if found is not None else None
    if not isinstance(ignored, dict):
        return frozenset()
    return frozenset(u for u in ignored if isinstance(u, str) and u != user_id)


def read_tags_txn(conn: Connection, user_id: str, room_id: str) -> dict[str, Any]:
    found = store_account_data.get_account_data(conn, user_id, TAG_TYPE, room_id)
    return tags_of(json.loads(found) if found is not None else None)


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

    # Room tags -------------------------------------------------------------------------

    async def tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        """`{tag: {order?}}` of the user's tags on the room (empty when none)."""
        return await self.database.read(read_tags_txn, user_id, room_id)

    async def add_tag(self, user_id: str, room_id: str, tag: str, body: dict[str, Any]) -> None:
        """Tag the room (replacing that tag's content); 400 for a tag over 255 bytes or an
        `order` that is not a number, 403 without any membership in the room."""
        if not tag or len(tag.encode()) > MAX_TAG_BYTES:
            raise InvalidParam(f"A tag is 1 to {MAX_TAG_BYTES} bytes")
        order = body.get("order")
        if order is not None and (isinstance(order, bool) or not isinstance(order, int | float)):
            raise InvalidParam("order must be a number")

        def txn(conn: Connection) -> int:
            if store_rooms.get_membership(conn, room_id, user_id) is None:
                raise Forbidden(f"{user_id} has no membership in {room_id}")
            tags = read_tags_txn(conn, user_id, room_id)
            tags[tag] = body
            return put_account_data_txn(conn, user_id, TAG_TYPE, {"tags": tags}, room_id)

        self.notifier.on_stream(await self.database.write(txn))

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> None:
        """Untag the room; removing a tag it doesn't have is not an error (as Synapse)."""

        def txn(conn: Connection) -> int | None:
            tags = read_tags_txn(conn, user_id, room_id)
            if tags.pop(tag, None) is None:
                return None
            return put_account_data_txn(conn, user_id, TAG_TYPE, {"tags": tags}, room_id)

        position = await self.database.write(txn)
        if position is not None:
            self.notifier.on_stream(position)
