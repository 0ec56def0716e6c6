"""The actions a user's push rules give stored events: relay/events/push_rules.py's
`evaluate` over what the store knows of the room (its joined members, the user's display
name, the power levels), read in one transaction.

Used where a room's notification level cannot say (relay/events/push_rules.py
`has_own_message_rules`): the counts of a user with keyword or sender rules, the
notifications they list, and every pusher delivery.

Rules kept: an event never notifies its own sender; only timeline events that are neither
outliers, soft-failed, rejected nor redacted are evaluated. The room's context is its
current state (as the counts read it), read once per room per evaluator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relay.events.auth import CREATE_KEY, POWER_LEVELS_KEY, user_power_level
from relay.events.pdu import Pdu
from relay.events.push_rules import EventContext, Ruleset, evaluate, merge_rules
from relay.rooms.service import RoomService
from store import Connection
from store import account_data as store_account_data
from store import rooms as store_rooms

PUSH_RULES = "m.push_rules"


def ruleset_txn(conn: Connection, user_id: str) -> Ruleset:
    """The user's merged ruleset: the defaults with what they changed."""
    text = store_account_data.get_account_data(conn, user_id, PUSH_RULES)
    stored = json.loads(text) if text else None
    return merge_rules(user_id, stored.get("global") if isinstance(stored, dict) else None)


@dataclass(frozen=True, slots=True)
class _Room:
    display_name: str | None
    member_count: int
    #: The create and power levels events, as the auth rules read them.
    auth_state: dict[tuple[str, str], dict[str, Any]]
    notification_levels: dict[str, int]


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)  # string levels of old room versions
    return default


class PushEvaluator:
    """Evaluates events for one user inside one transaction; reads each room's context
    once."""

    def __init__(
        self, conn: Connection, rooms: RoomService, user_id: str, ruleset: Ruleset | None = None
    ) -> None:
        self.conn = conn
        self.rooms = rooms
        self.user_id = user_id
        self.ruleset = ruleset if ruleset is not None else ruleset_txn(conn, user_id)
        self._rooms: dict[str, _Room] = {}

    def _room(self, room_id: str) -> _Room:
        room = self._rooms.get(room_id)
        if room is None:
            member = self.rooms.state_event_txn(self.conn, room_id, "m.room.member", self.user_id)
            name = member.content.get("displayname") if member is not None else None
            auth_state = {}
            for key in (CREATE_KEY, POWER_LEVELS_KEY):
                event = self.rooms.state_event_txn(self.conn, room_id, *key)
                if event is not None:
                    auth_state[key] = event.as_dict()
            levels = auth_state.get(POWER_LEVELS_KEY, {}).get("content")
            notifications = levels.get("notifications") if isinstance(levels, dict) else None
            if not isinstance(notifications, dict):
                notifications = {}
            room = _Room(
                display_name=name if isinstance(name, str) else None,
                member_count=len(store_rooms.members(self.conn, room_id, "join")),
                auth_state=auth_state,
                notification_levels={k: _int(v, 50) for k, v in notifications.items()},
            )
            self._rooms[room_id] = room
        return room

    def context(self, pdu: Pdu) -> EventContext:
        room = self._room(pdu.room_id)
        return EventContext(
            user_id=self.user_id,
            display_name=room.display_name,
            member_count=room.member_count,
            # The auth rules' power level: v12 creators outrank every number.
            sender_power=user_power_level(pdu.sender, room.auth_state, pdu.room_version),
            notification_levels=room.notification_levels,
        )

    def actions(self, pdu: Pdu) -> list[Any]:
        """The actions the user's rules give `pdu` ([] for the user's own events)."""
        if pdu.sender == self.user_id:
            return []
        event = pdu.as_dict()
        return evaluate(self.ruleset, event, self.context(pdu))
