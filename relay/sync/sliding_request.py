"""A Simplified Sliding Sync (MSC4186) request body, checked and frozen.

Rules kept:

- Every field is checked for its type (400 M_BAD_JSON naming it, as Synapse's body
  model answers); `timeline_limit` (at most 1000) and `required_state` are required in
  every list and subscription, as Synapse's model has them. Lists, ranges,
  subscriptions and required_state entries are capped so one request can't ask for
  unbounded work.
- A range is `[start, end]`, both inclusive, `0 <= start <= end`.
- `required_state` is a list of `[type, state_key]` pairs; `*` is a wildcard, `$LAZY`
  (members only) and `$ME` are the special keys. Rooms asked for by several lists and
  subscriptions get the union of their `required_state` and the largest
  `timeline_limit` (`RoomConfig.combine`).
- Extensions: `enabled` (default false), `lists`/`rooms` (None: no rooms), and
  `to_device.since`/`limit`.

Spec: MSC4186 (matrix-org/matrix-spec-proposals, proposals/4186-simplified-sliding-sync.md)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.errors import BadJson

MAX_LISTS = 64
MAX_RANGES = 16
MAX_SUBSCRIPTIONS = 1_000
MAX_REQUIRED_STATE = 1_000
MAX_TIMELINE_LIMIT = 1_000
MAX_FILTER_ITEMS = 1_000
MAX_ROOM_INDEX = 2**31 - 1
MAX_TO_DEVICE_LIMIT = 1_000

LAZY = "$LAZY"
ME = "$ME"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Filters:
    is_dm: bool | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    #: Create-event `type`s to keep (None inside: rooms without a type); None: any.
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    spaces: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What to send of one room: which state, how much timeline."""

    required_state: frozenset[tuple[str, str]] = frozenset()
    timeline_limit: int = 0

    def combine(self, other: RoomConfig) -> RoomConfig:
        return RoomConfig(
            self.required_state | other.required_state,
            max(self.timeline_limit, other.timeline_limit),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "required_state": sorted(list(pair) for pair in self.required_state),
            "timeline_limit": self.timeline_limit,
        }

    @classmethod
    def from_json(cls, value: Any) -> RoomConfig:
        if not isinstance(value, dict):
            return cls()
        pairs = value.get("required_state") or []
        return cls(frozenset(tuple(p) for p in pairs), int(value.get("timeline_limit", 0)))


@dataclass(frozen=True, slots=True)
class ListRequest:
    ranges: tuple[tuple[int, int], ...]
    room: RoomConfig
    filters: Filters | None


@dataclass(frozen=True, slots=True)
class Extension:
    enabled: bool = False
    lists: tuple[str, ...] | None = None
    rooms: tuple[str, ...] | None = None
    since: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class SlidingRequest:
    conn_id: str = ""
    lists: dict[str, ListRequest] = field(default_factory=dict)
    subscriptions: dict[str, RoomConfig] = field(default_factory=dict)
    extensions: dict[str, Extension] = field(default_factory=dict)

    def extension(self, name: str) -> Extension:
        return self.extensions.get(name, Extension())


EXTENSIONS = ("to_device", "e2ee", "account_data", "receipts", "typing")


def _fail(where: str, what: str) -> BadJson:
    return BadJson(f"{where}: {what}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, "must be an object")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"must be an integer between {low} and {high}")
    return value


def _bool(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _fail(where, "must be a boolean")
    return value


def _strings(value: Any, where: str, *, nullable: bool = False) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_FILTER_ITEMS:
        raise _fail(where, f"must be a list of at most {MAX_FILTER_ITEMS} strings")
    for item in value:
        if not isinstance(item, str) and not (nullable and item is None):
            raise _fail(where, "must hold strings")
    return tuple(value)


def _room_config(body: Mapping[str, Any], where: str) -> RoomConfig:
    if "required_state" not in body or "timeline_limit" not in body:
        raise _fail(where, "required_state and timeline_limit are required")
    pairs = body["required_state"]
    if not isinstance(pairs, list) or len(pairs) > MAX_REQUIRED_STATE:
        raise _fail(f"{where}.required_state", f"must be a list of at most {MAX_REQUIRED_STATE}")
    required = set()
    for pair in pairs:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise _fail(f"{where}.required_state", "entries must be [type, state_key] strings")
        required.add((pair[0], pair[1]))
    limit = _int(body["timeline_limit"], f"{where}.timeline_limit", 0, MAX_TIMELINE_LIMIT)
    return RoomConfig(frozenset(required), limit)


def _filters(value: Any, where: str) -> Filters | None:
    if value is None:
        return None
    body = _object(value, where)
    room_types = _strings(body.get("room_types"), f"{where}.room_types", nullable=True)
    not_room_types = _strings(body.get("not_room_types"), f"{where}.not_room_types", nullable=True)
    return Filters(
        is_dm=_bool(body.get("is_dm"), f"{where}.is_dm"),
        is_encrypted=_bool(body.get("is_encrypted"), f"{where}.is_encrypted"),
        is_invite=_bool(body.get("is_invite"), f"{where}.is_invite"),
        room_types=room_types,
        not_room_types=not_room_types or (),
        spaces=_strings(body.get("spaces"), f"{where}.spaces"),
        tags=_strings(body.get("tags"), f"{where}.tags"),
        not_tags=_strings(body.get("not_tags"), f"{where}.not_tags") or (),
    )


def _list(body: Mapping[str, Any], where: str) -> ListRequest:
    raw_ranges = body.get("ranges", [])
    if not isinstance(raw_ranges, list) or len(raw_ranges) > MAX_RANGES:
        raise _fail(f"{where}.ranges", f"must be a list of at most {MAX_RANGES} ranges")
    ranges = []
    for item in raw_ranges:
        if not (isinstance(item, list) and len(item) == 2):
            raise _fail(f"{where}.ranges", "each range must be [start, end]")
        start = _int(item[0], f"{where}.ranges", 0, MAX_ROOM_INDEX)
        end = _int(item[1], f"{where}.ranges", 0, MAX_ROOM_INDEX)
        if start > end:
            raise _fail(f"{where}.ranges", "a range must not end before it starts")
        ranges.append((start, end))
    return ListRequest(
        tuple(ranges), _room_config(body, where), _filters(body.get("filters"), f"{where}.filters")
    )


def _extension(name: str, value: Any) -> Extension:
    where = f"extensions.{name}"
    body = _object(value, where)
    since = body.get("since")
    if since is not None and not isinstance(since, str):
        raise _fail(f"{where}.since", "must be a string")
    limit = body.get("limit", 100)
    return Extension(
        enabled=bool(_bool(body.get("enabled"), f"{where}.enabled")),
        lists=_strings(body.get("lists"), f"{where}.lists"),
        rooms=_strings(body.get("rooms"), f"{where}.rooms"),
        since=since,
        # At least one message a page: an empty page's next_batch would skip them all.
        limit=max(1, min(_int(limit, f"{where}.limit", 0, 2**31 - 1), MAX_TO_DEVICE_LIMIT)),
    )


def parse_request(body: Any) -> SlidingRequest:
    """The request body, checked (see the module docstring). Raises BadJson."""
    top = _object(body, "body")
    conn_id = top.get("conn_id") or ""
    if not isinstance(conn_id, str) or len(conn_id) > 255:
        raise _fail("conn_id", "must be a string of at most 255 characters")
    lists_body = _object(top.get("lists"), "lists")
    if len(lists_body) > MAX_LISTS:
        raise _fail("lists", f"at most {MAX_LISTS} lists")
    lists = {}
    for name, value in lists_body.items():
        if len(name) > 64:
            raise _fail("lists", "a list name is at most 64 characters")
        lists[name] = _list(_object(value, f"lists.{name}"), f"lists.{name}")
    subs_body = _object(top.get("room_subscriptions"), "room_subscriptions")
    if len(subs_body) > MAX_SUBSCRIPTIONS:
        raise _fail("room_subscriptions", f"at most {MAX_SUBSCRIPTIONS} rooms")
    subscriptions = {
        room_id: _room_config(_object(value, f"room_subscriptions.{room_id}"), "room_subscriptions")
        for room_id, value in subs_body.items()
    }
    ext_body = _object(top.get("extensions"), "extensions")
    extensions = {name: _extension(name, ext_body[name]) for name in EXTENSIONS if name in ext_body}
    return SlidingRequest(conn_id, lists, subscriptions, extensions)
