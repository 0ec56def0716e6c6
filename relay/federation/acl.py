"""Server ACLs on what other servers ask of us: the room's current `m.room.server_acl`,
read at each request (a change applies to the next request), judged by the one rule
(`relay.events.server_acl.server_allowed`) against the request's origin.

Every inbound path that concerns a room calls `require_allowed_txn` (a 403 `M_FORBIDDEN`
for a denied origin) or `origin_allowed_txn` (where a denial drops something instead:
a PDU of a /send gets an error result, a typing or receipt EDU is ignored).

Our own sending is not filtered: the spec says servers "should still send events to
denied servers if they are still residents of the room", and Synapse does.

Spec: https://spec.matrix.org/v1.16/server-server-api/#server-access-control-lists-acls
"""

from __future__ import annotations

from relay.errors import Forbidden
from relay.events.server_acl import SERVER_ACL, server_allowed
from relay.rooms.service import RoomService
from store import Connection

DENIED = "Server is banned from room"


def origin_allowed_txn(rooms: RoomService, conn: Connection, room_id: str, origin: str) -> bool:
    """Whether the room's current server ACL lets `origin` take part (no ACL: yes)."""
    acl = rooms.state_event_txn(conn, room_id, SERVER_ACL, "")
    return server_allowed(acl.content if acl is not None else None, origin)


def require_allowed_txn(rooms: RoomService, conn: Connection, room_id: str, origin: str) -> None:
    """Raises:
    Forbidden: the room's server ACL denies `origin`."""
    if not origin_allowed_txn(rooms, conn, room_id, origin):
        raise Forbidden(DENIED)
