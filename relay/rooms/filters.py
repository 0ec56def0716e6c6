"""Sync filters: parse and check a client's filter JSON into frozen values, and match
events against them.

Rules kept:

- A filter is checked once, when it arrives (`POST /user/{userId}/filter`, or inline
  in `/sync?filter={...}`); a malformed one is `M_BAD_JSON`. Unknown keys are kept in
  the stored JSON but ignored, as the spec asks of servers.
- `types` / `not_types` may use `*` as a wildcard (`m.room.*`); `not_*` wins over the
  allow-list; an absent allow-list allows everything, an empty one nothing.
- Pure functions over plain JSON; no I/O.

Spec: https://spec.matrix.org/v1.16/client-server-api/#filtering (filter.yaml,
definitions/sync_filter.yaml, room_event_filter.yaml, event_filter.yaml)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from relay.errors import BadJson

DEFAULT_TIMELINE_LIMIT = 10
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class EventFilter:
    """An EventFilter or RoomEventFilter (the room fields are unused where not allowed)."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    #: /sync: count notifications per thread (`unread_thread_notifications`).
    unread_thread_notifications: bool = False

    def allows_type(self, type_: str) -> bool:
        if any(_type_matches(pattern, type_) for pattern in self.not_types):
            return False
        return self.types is None or any(_type_matches(p, type_) for p in self.types)

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def allows(self, type_: str, sender: str, content: dict[str, Any] | None = None) -> bool:
        """Does an event of this type, sender (and content) pass the filter?"""
        if not self.allows_type(type_):
            return False
        if sender in self.not_senders:
            return False
        if self.senders is not None and sender not in self.senders:
            return False
        if self.contains_url is not None and content is not None:
            has_url = isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True

    def is_empty_allow_list(self) -> bool:
        """True if nothing can pass (e.g. `{"types": []}`): skip the section's reads."""
        return self.types == () or self.limit == 0


@dataclass(frozen=True, slots=True)
class RoomFilter:
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    timeline: EventFilter = field(default_factory=EventFilter)
    state: EventFilter = field(default_factory=EventFilter)
    ephemeral: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


@dataclass(frozen=True, slots=True)
class Filter:
    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    room: RoomFilter = field(default_factory=RoomFilter)

    @property
    def timeline_limit(self) -> int:
        limit = self.room.timeline.limit
        return DEFAULT_TIMELINE_LIMIT if limit is None else limit


DEFAULT_FILTER = Filter()


def _type_matches(pattern: str, type_: str) -> bool:
    if "*" not in pattern:
        return pattern == type_
    return fnmatch.fnmatchcase(type_, pattern.replace("[", "[[]").replace("?", "[?]"))


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadJson(f"{where} must be an object")
    return value


def _strings(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadJson(f"{where}.{key} must be a list of strings")
    return tuple(value)


def _bool(obj: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise BadJson(f"{where}.{key} must be a boolean")
    return value


def parse_event_filter(value: Any, where: str) -> EventFilter:
    """An EventFilter / RoomEventFilter object -> EventFilter; M_BAD_JSON if malformed."""
    obj = _object(value, where)
    limit = obj.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadJson(f"{where}.limit must be a non-negative integer")
        limit = min(limit, MAX_LIMIT)
    contains_url = obj.get("contains_url")
    if contains_url is not None and not isinstance(contains_url, bool):
        raise BadJson(f"{where}.contains_url must be a boolean")
    return EventFilter(
        limit=limit,
        types=_strings(obj, "types", where),
        not_types=_strings(obj, "not_types", where) or (),
        senders=_strings(obj, "senders", where),
        not_senders=_strings(obj, "not_senders", where) or (),
        rooms=_strings(obj, "rooms", where),
        not_rooms=_strings(obj, "not_rooms", where) or (),
        contains_url=contains_url,
        lazy_load_members=_bool(obj, "lazy_load_members", where, False),
        include_redundant_members=_bool(obj, "include_redundant_members", where, False),
        unread_thread_notifications=_bool(obj, "unread_thread_notifications", where, False),
    )


def parse_filter(value: Any) -> Filter:
    """A Filter JSON object (as POSTed to /filter or inline in /sync) -> Filter.

    Raises:
        BadJson: it is not an object, or a field has the wrong shape.
    """
    if not isinstance(value, dict):
        raise BadJson("A filter must be a JSON object")
    event_format = value.get("event_format", "client")
    if event_format not in ("client", "federation"):
        raise BadJson("event_format must be 'client' or 'federation'")
    room = _object(value.get("room"), "room")
    return Filter(
        event_fields=_strings(value, "event_fields", "filter"),
        event_format=event_format,
        presence=parse_event_filter(value.get("presence"), "presence"),
        account_data=parse_event_filter(value.get("account_data"), "account_data"),
        room=RoomFilter(
            rooms=_strings(room, "rooms", "room"),
            not_rooms=_strings(room, "not_rooms", "room") or (),
            include_leave=_bool(room, "include_leave", "room", False),
            timeline=parse_event_filter(room.get("timeline"), "room.timeline"),
            state=parse_event_filter(room.get("state"), "room.state"),
            ephemeral=parse_event_filter(room.get("ephemeral"), "room.ephemeral"),
            account_data=parse_event_filter(room.get("account_data"), "room.account_data"),
        ),
    )


def select_fields(event: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Keep only the dotted `event_fields` of a client event (`content.body`); a `\\.`
    escapes a literal dot in a key, as in `content.m\\.relates_to`."""
    out: dict[str, Any] = {}
    for dotted in fields:
        path = [part.replace("\0", ".") for part in dotted.replace("\\.", "\0").split(".")]
        source: Any = event
        for key in path:
            if not isinstance(source, dict) or key not in source:
                break
            source = source[key]
        else:
            target = out
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = source
    return out
