"""`GET /notifications`: the events that notified a user, newest first, across the rooms
they are joined to.

Rules kept: an event is listed when it counts in the room's `unread_notifications`
(relay/sync/rooms.py: the notifying event types from other users since the join, edits
left out, then the user's push-rule level of the room, relay/events/push_rules.py); a
highlight is an event that mentions the user. A user with keyword or sender rules of their
own has each event evaluated by their rules instead (relay/sync/push_actions.py): its
actions say whether it notifies and highlights. `read` is whether the user's read receipt
covers it. The work is bounded: at most `limit` events read per room.

Spec: https://spec.matrix.org/v1.16/client-server-api/#listing-notifications
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.events.push_rules import RoomLevel
from relay.rooms.filters import parse_filter
from relay.rooms.reads import EventView, view_txn
from relay.rooms.service import RoomService
from relay.sync.rooms import NOTIFYING_TYPES, RoomReader
from store import Connection
from store import events as store_events
from store import rooms as store_rooms

NOTIFY = "notify"
HIGHLIGHT = {"set_tweak": "highlight"}


@dataclass(frozen=True, slots=True)
class Notification:
    view: EventView
    room_id: str
    stream: int
    read: bool
    highlight: bool

    @property
    def actions(self) -> list[object]:
        return [NOTIFY, HIGHLIGHT] if self.highlight else [NOTIFY]


def notifications_txn(
    conn: Connection,
    rooms: RoomService,
    user_id: str,
    device_id: str | None,
    *,
    before: int | None,
    limit: int,
    only_highlight: bool,
) -> tuple[list[Notification], int | None]:
    """The newest `limit` notifications below stream position `before` (None: the
    newest), and the `before` of the next page (None: no more)."""
    reader = RoomReader(conn, rooms, user_id, device_id or "", parse_filter({}))
    top = store_events.max_stream_ordering(conn) if before is None else before - 1
    found: list[tuple[int, str, str, bool, bool]] = []
    for row in store_rooms.memberships_of_user(conn, user_id):
        room_id = row["room_id"]
        if row["membership"] != "join":
            continue
        level = reader.level(room_id)
        if level is RoomLevel.SILENT:
            continue
        read_up_to = reader.read_up_to(room_id, 0)
        if reader.evaluates_each_event():
            # Keyword and sender rules: each event evaluated (the level cannot say).
            evaluated = reader.evaluated_notifications(room_id, row["stream_ordering"], top)
            for event_id, stream, highlight, _thread in evaluated:
                if highlight or not only_highlight:
                    found.append((stream, event_id, room_id, stream <= read_up_to, highlight))
            continue
        # One more than asked: a room may hold the page's last event and the next one.
        for event_id, stream, mentioned in store_events.notifying_events(
            conn,
            room_id,
            user_id,
            row["stream_ordering"],
            top,
            NOTIFYING_TYPES,
            limit + 1,
            mentions_only=only_highlight or level is RoomLevel.MENTIONS_ONLY,
        ):
            found.append((stream, event_id, room_id, stream <= read_up_to, mentioned))
    found.sort(reverse=True)
    page, rest = found[:limit], found[limit:]
    out = []
    for stream, event_id, room_id, read, mentioned in page:
        pdu = rooms.get_pdu_txn(conn, event_id)
        if pdu is not None:
            view = view_txn(conn, rooms, pdu, user_id, device_id)
            out.append(Notification(view, room_id, stream, read, mentioned))
    next_before = page[-1][0] if rest and page else None
    return out, next_before
