"""Simplified Sliding Sync (MSC4186): room lists sorted by activity, windows onto them,
room subscriptions, and the extensions, for one connection of one device.

Rules kept (the MSC; Synapse's `SlidingSyncHandler` for what the MSC leaves open):

- One answer is read in ONE store snapshot up to its stream position `to`; what the
  connection was sent is recorded afterwards (store/sliding_sync.py) under a new
  connection position, which the `pos` token names with the stream position:
  `<connection position>/s<stream>_<typing>`. A `pos` whose connection position is not
  recorded (any more) is 400 M_UNKNOWN_POS: the client starts over.
- Rooms in the lists: every room with a membership of the user (forgotten ones and
  invites from ignored users aside), except rooms they left themselves, which stay only
  while the leave is new (after `pos`); kicks and bans stay. A list keeps the rooms its
  `filters` allow and sorts them by their last activity, newest first (the stream
  position of the room's newest event; for rooms not joined, of the user's membership
  event). Synapse leaves a list unsorted when one range covers it all; we always sort,
  so windows are stable.
- A room is sent when new to the connection (`initial`, all of it), and otherwise only
  when something happened in it after what the connection has (its timeline since then,
  changed state among `required_state`, newly requested state). A room that left every
  window is "previously sent" and, when it comes back, continues from where it left.
- `required_state`: `[type, key]` pairs; `*` for any type or key, `$ME` for the user,
  `["m.room.member", "$LAZY"]` for the senders of the timeline (each sent once per
  connection unless it changes). Invites get `invite_state` instead, and no timeline.
- `timeline_limit`: the newest events after what the connection has (all history for an
  initial room), in stream order (Synapse pages an initial room in topological order;
  the two differ only for history that arrived late), `limited` when more were left
  out, `num_live` the ones after `pos`; aggregations are bundled only on a limited
  timeline. A raised limit sends a full
  page again (`unstable_expanded_timeline`), as Synapse does for Element X.
- `bump_stamp`: the stream position of the newest event of `BUMP_TYPES`; sent when the
  room is initial or limited, or when the timeline holds such an event.
- `name`/`avatar` and, without a name, `heroes` on initial or when they changed;
  `joined_count`/`invited_count` on initial or a membership change, joined rooms only.
- Long-poll: an answer to a `pos` with no rooms and no extension news waits on the
  notifier up to `timeout`. The extensions are relay/sync/sliding_extensions.py's.

Spec: MSC4186 (proposals/4186-simplified-sliding-sync.md), extensions MSC3884 (e2ee),
MSC3885 (to-device), MSC3959 (account data), MSC3960 (receipts), MSC3961 (typing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from relay.errors import InvalidParam, UnknownPos
from relay.events.pdu import Pdu
from relay.rooms.filters import DEFAULT_FILTER
from relay.rooms.reads import EventView
from relay.runtime.clock import now_ms
from relay.sync.builder import MAX_TIMEOUT_MS, SyncService
from relay.sync.rooms import RoomReader
from relay.sync.sliding_extensions import extensions_txn
from relay.sync.sliding_request import (
    LAZY,
    ME,
    WILDCARD,
    Filters,
    ListRequest,
    RoomConfig,
    SlidingRequest,
)
from relay.sync.typing_notices import TypingSnapshot
from store import Connection
from store import account_data as store_account_data
from store import events as store_events
from store import rooms as store_rooms
from store import sliding_sync as store_sliding

#: Events that move a room up the list (Synapse's SLIDING_SYNC_DEFAULT_BUMP_EVENT_TYPES).
BUMP_TYPES = (
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
)
HEROES = 5
LIVE, PREVIOUSLY = "live", "previously"


@dataclass(slots=True)
class SlidingRoom:
    """One room's entry in the answer (what its client form needs)."""

    initial: bool
    membership: str
    notification_count: int = 0
    highlight_count: int = 0
    name: str | None = None
    avatar: str | None = None
    heroes: list[dict[str, Any]] = field(default_factory=list)
    joined_count: int | None = None
    invited_count: int | None = None
    bump_stamp: int | None = None
    required_state: list[EventView] = field(default_factory=list)
    timeline: list[EventView] = field(default_factory=list)
    limited: bool | None = None
    prev_batch: int | None = None
    num_live: int | None = None
    is_dm: bool = False
    invite_state: list[dict[str, Any]] | None = None
    expanded_timeline: bool = False


@dataclass(slots=True)
class SlidingResult:
    stream: int
    typing: int
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    rooms: dict[str, SlidingRoom] = field(default_factory=dict)
    #: Rendered extension answers (plain JSON) by extension name.
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Whether the extensions hold anything new (key counts alone are not news).
    extension_news: bool = False
    #: What the connection will have been sent after this answer.
    state: dict[str, Any] = field(default_factory=dict)
    connection_position: int = 0

    def has_news(self) -> bool:
        return bool(self.rooms) or self.extension_news


@dataclass(frozen=True, slots=True)
class Since:
    """Where the connection is: a parsed `pos` (None for a new connection)."""

    connection_position: int
    stream: int
    typing: int


class SlidingSyncService:
    def __init__(self, sync: SyncService) -> None:
        self.sync_service = sync
        self.database = sync.database
        self.rooms = sync.rooms

    async def sync(
        self,
        user_id: str,
        device_id: str,
        request: SlidingRequest,
        since: Since | None,
        timeout_ms: int,
    ) -> SlidingResult:
        """One answer (see the module docstring). Raises UnknownPos, InvalidParam."""
        previous: dict[str, Any] = {"rooms": {}}
        if since is not None and since.connection_position > 0:
            text = await self.database.read(
                store_sliding.connection_state,
                user_id,
                device_id,
                request.conn_id,
                since.connection_position,
            )
            if text is None:
                raise UnknownPos("Unknown position")
            previous = json.loads(text)
        to_device = request.extension("to_device")
        devices = self.sync_service.devices
        if to_device.enabled and to_device.since is not None and devices is not None:
            await devices.to_device.acknowledge(user_id, device_id, _since_int(to_device.since))
        await self.sync_service.presence.note_syncing(user_id, None)
        deadline = trio.current_time() + min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
        typing_service = self.sync_service.typing
        while True:
            typing = typing_service.snapshot(since.typing if since is not None else 0)
            result = await self.database.read(
                self._build_txn, user_id, device_id, request, previous, since, typing
            )
            if since is None or result.has_news():
                break
            now = trio.current_time()
            if now >= deadline:
                break
            wake = deadline
            expiry = typing_service.next_expiry()
            if expiry is not None:
                wake = min(wake, expiry)
            await self.sync_service.notifier.wait_for_change(
                result.stream, result.typing, max(0.0, wake - now)
            )
        position = since.connection_position if since is not None else 0
        if result.state != previous or since is None:
            text = json.dumps(result.state, sort_keys=True, separators=(",", ":"))
            position = await self.database.write(
                store_sliding.record_connection_state,
                user_id,
                device_id,
                request.conn_id,
                text,
                now_ms(),
            )
        result.connection_position = position
        return result

    # -- one answer, in one snapshot ------------------------------------------------------

    def _build_txn(
        self,
        conn: Connection,
        user_id: str,
        device_id: str,
        request: SlidingRequest,
        previous: dict[str, Any],
        since: Since | None,
        typing: TypingSnapshot,
    ) -> SlidingResult:
        to = store_events.max_stream_ordering(conn)
        stream = max(to, since.stream if since is not None else 0)
        result = SlidingResult(stream=stream, typing=typing.serial)
        reader = RoomReader(conn, self.rooms, user_id, device_id, DEFAULT_FILTER)
        since_stream = since.stream if since is not None else None
        memberships = self._memberships_txn(reader, since_stream)
        direct = _direct_rooms(conn, user_id)
        configs: dict[str, RoomConfig] = {}
        spaces_cache: dict[tuple[str, ...], set[str]] = {}
        for name, wanted in request.lists.items():
            rooms = [
                room_id
                for room_id, row in memberships.items()
                if wanted.filters is None
                or self._passes(
                    reader, room_id, row, wanted.filters, direct, memberships, spaces_cache
                )
            ]
            ordered = self._by_activity(reader, rooms, memberships, to)
            result.lists[name] = _window(ordered, wanted, configs)
        all_subscribed = {}
        for room_id, config in request.subscriptions.items():
            row = memberships.get(room_id) or self._any_membership_txn(reader, room_id)
            if row is None:
                continue
            memberships.setdefault(room_id, row)
            all_subscribed[room_id] = row
            configs[room_id] = configs[room_id].combine(config) if room_id in configs else config
        rooms_state: dict[str, Any] = {}
        old_rooms: dict[str, Any] = previous.get("rooms", {})
        for room_id, config in configs.items():
            sent_before = old_rooms.get(room_id) if since is not None else None
            room, room_state = self._room_txn(
                reader,
                room_id,
                memberships[room_id],
                config,
                sent_before,
                since_stream,
                to,
                room_id in direct,
            )
            if room is not None:
                result.rooms[room_id] = room
            rooms_state[room_id] = room_state
        for room_id, old in old_rooms.items():
            if room_id in rooms_state:
                continue
            # Out of every window: what it was last sent up to is kept for its return.
            if old.get("status") == LIVE and since_stream is not None:
                old = {**old, "status": PREVIOUSLY, "last": since_stream}
            rooms_state[room_id] = old
        result.state = {"rooms": rooms_state}
        result.extensions, result.extension_news = extensions_txn(
            reader,
            self.sync_service.devices,
            request,
            lists=result.lists,
            rooms=result.rooms,
            since_stream=since_stream,
            to=to,
            typing=typing,
            subscribed=set(all_subscribed),
        )
        return result

    def _memberships_txn(self, reader: RoomReader, since: int | None) -> dict[str, dict[str, Any]]:
        """The rooms the lists may show (see the module docstring), by room id."""
        forgotten = store_rooms.forgotten_rooms(reader.conn, reader.user_id)
        out = {}
        for row in store_rooms.memberships_of_user(reader.conn, reader.user_id):
            if row["room_id"] in forgotten:
                continue
            if row["membership"] == "invite" and reader.invite_is_ignored(row["event_id"]):
                continue
            if row["membership"] == "leave":
                newly_left = since is not None and row["stream_ordering"] > since
                event = reader.pdu(row["event_id"])
                kicked = event is not None and event.sender != reader.user_id
                if not (newly_left or kicked):
                    continue
            out[row["room_id"]] = row
        return out

    def _any_membership_txn(self, reader: RoomReader, room_id: str) -> dict[str, Any] | None:
        found = store_rooms.get_membership_event(reader.conn, room_id, reader.user_id)
        if found is None:
            return None
        membership, event_id, stream = found
        return {
            "room_id": room_id,
            "membership": membership,
            "event_id": event_id,
            "stream_ordering": stream,
        }

    def _passes(
        self,
        reader: RoomReader,
        room_id: str,
        row: Mapping[str, Any],
        filters: Filters,
        direct: set[str],
        memberships: Mapping[str, Mapping[str, Any]],
        spaces_cache: dict[tuple[str, ...], set[str]],
    ) -> bool:
        membership = row["membership"]
        state = self._state_map(reader, room_id, row)
        if filters.is_invite is not None and (membership == "invite") != filters.is_invite:
            return False
        if filters.is_dm is not None:
            is_dm = room_id in direct or (
                membership == "invite" and reader.content(row["event_id"]).get("is_direct") is True
            )
            if is_dm != filters.is_dm:
                return False
        if filters.is_encrypted is not None:
            encrypted = ("m.room.encryption", "") in state or (
                membership == "invite" and _stripped_has(reader, room_id, row, "m.room.encryption")
            )
            if encrypted != filters.is_encrypted:
                return False
        if filters.room_types is not None or filters.not_room_types:
            room_type = reader.content(state.get(("m.room.create", ""))).get("type")
            room_type = room_type if isinstance(room_type, str) else None
            if filters.room_types is not None and room_type not in filters.room_types:
                return False
            if room_type in filters.not_room_types:
                return False
        if filters.spaces is not None:
            children = self._space_children(reader, filters.spaces, memberships, spaces_cache)
            if room_id not in children:
                return False
        if filters.tags is not None or filters.not_tags:
            text = store_account_data.get_account_data(
                reader.conn, reader.user_id, "m.tag", room_id
            )
            tags = json.loads(text).get("tags", {}) if text else {}
            tags = set(tags) if isinstance(tags, dict) else set()
            if filters.tags is not None and not tags & set(filters.tags):
                return False
            if tags & set(filters.not_tags):
                return False
        return True

    def _space_children(
        self,
        reader: RoomReader,
        spaces: tuple[str, ...],
        memberships: Mapping[str, Mapping[str, Any]],
        cache: dict[tuple[str, ...], set[str]],
    ) -> set[str]:
        """The rooms the joined ones of `spaces` list as children (`m.space.child` with a
        non-empty `via`); worked out once per answer and list."""
        if spaces in cache:
            return cache[spaces]
        children: set[str] = set()
        for space in spaces:
            if space not in memberships or memberships[space]["membership"] != "join":
                continue
            for (type_, key), event_id in reader.current_state(space).items():
                if type_ != "m.space.child":
                    continue
                via = reader.content(event_id).get("via")
                if isinstance(via, list) and via:
                    children.add(key)
        cache[spaces] = children
        return children

    def _state_map(
        self, reader: RoomReader, room_id: str, row: Mapping[str, Any]
    ) -> Mapping[tuple[str, str], str]:
        """The room's state as the user may see it: current, or as they left it."""
        if row["membership"] in ("leave", "ban"):
            return reader.state_after(row["event_id"]) or {}
        if row["membership"] in ("invite", "knock"):
            return {}
        return reader.current_state(room_id)

    def _by_activity(
        self,
        reader: RoomReader,
        room_ids: Iterable[str],
        memberships: Mapping[str, Mapping[str, Any]],
        to: int,
    ) -> list[str]:
        activity = {}
        for room_id in room_ids:
            row = memberships[room_id]
            position = row["stream_ordering"]
            if row["membership"] == "join":
                last = store_events.events_in_room_by_stream(reader.conn, room_id, to, None, 1, "b")
                if last:
                    position = last[0]["stream_ordering"]
            activity[room_id] = position
        return sorted(activity, key=lambda r: (-activity[r], r))

    # -- one room -------------------------------------------------------------------------

    def _room_txn(
        self,
        reader: RoomReader,
        room_id: str,
        row: Mapping[str, Any],
        config: RoomConfig,
        sent_before: Mapping[str, Any] | None,
        since: int | None,
        to: int,
        is_dm: bool,
    ) -> tuple[SlidingRoom | None, dict[str, Any]]:
        """The room's entry (None: nothing new for this connection) and what the
        connection will have of it."""
        membership = row["membership"]
        newly_joined = (
            since is not None
            and membership == "join"
            and row["stream_ordering"] > since
            and not self.sync_service.was_joined(reader, dict(row))
        )
        from_bound: int | None = None
        initial = True
        previous_config = RoomConfig.from_json(sent_before.get("config")) if sent_before else None
        lazy_sent: set[str] = set(sent_before.get("lazy", [])) if sent_before else set()
        if since is not None and not newly_joined and sent_before is not None:
            initial = False
            from_bound = since if sent_before.get("status") == LIVE else sent_before.get("last")
        if initial:
            lazy_sent = set()
        expanded = (
            not initial
            and previous_config is not None
            and previous_config.timeline_limit < config.timeline_limit
        )
        to_bound = row["stream_ordering"] if membership in ("leave", "ban") else to
        state = self._state_map(reader, room_id, row)
        changed_state = self._changed_state(reader, state, from_bound)
        old_pairs = previous_config.required_state if previous_config else frozenset()
        new_pairs = config.required_state - old_pairs
        if ("m.room.member", LAZY) in new_pairs:
            # As Synapse: once members are lazy-loaded, they come with the timeline's
            # senders, not as newly requested keys.
            new_pairs = frozenset(p for p in new_pairs if p[0] != "m.room.member")
        room = SlidingRoom(initial=initial, membership=membership, is_dm=is_dm)
        room.expanded_timeline = expanded

        pdus: list[Pdu] = []
        if config.timeline_limit > 0 and membership not in ("invite", "knock"):
            timeline_since = None if expanded else from_bound
            pdus, limited, prev_batch = reader.timeline(
                room_id, timeline_since, to_bound, membership == "join", config.timeline_limit
            )
            room.limited, room.prev_batch = limited, prev_batch
            until = to_bound if membership in ("leave", "ban") else None
            room.timeline = reader.timeline_views(room_id, pdus, until, bundle=limited)
            room.num_live = 0
            if since is not None and pdus:
                positions = store_events.get_stream_orderings(
                    reader.conn, [p.event_id for p in pdus]
                )
                room.num_live = sum(1 for p in pdus if positions.get(p.event_id, 0) > since)
        if membership in ("invite", "knock"):
            room.invite_state = reader.invite_state(room_id, row["event_id"])
        else:
            wanted = self._required_state(
                reader, state, config, changed_state, new_pairs, initial, pdus, lazy_sent
            )
            room.required_state = [
                reader.view(p) for p in (reader.pdu(eid) for eid in wanted) if p is not None
            ]
            for view in room.required_state:
                if view.pdu.type == "m.room.member" and view.pdu.state_key is not None:
                    lazy_sent.add(view.pdu.state_key)

        membership_changed = any(key[0] == "m.room.member" for key in changed_state)
        name_changed = ("m.room.name", "") in changed_state
        avatar_changed = ("m.room.avatar", "") in changed_state
        if initial or name_changed:
            name = reader.content(state.get(("m.room.name", ""))).get("name")
            room.name = name if isinstance(name, str) and name else None
        if initial or avatar_changed:
            url = reader.content(state.get(("m.room.avatar", ""))).get("url")
            room.avatar = url if isinstance(url, str) and url else None
        no_name = not reader.content(state.get(("m.room.name", ""))).get("name")
        if membership == "join" and (initial or membership_changed):
            summary = reader.summary(room_id)
            room.joined_count = summary["m.joined_member_count"]
            room.invited_count = summary["m.invited_member_count"]
            if no_name:
                room.heroes = self._heroes(reader, state, summary["m.heroes"])
        if membership == "join":
            room.notification_count, room.highlight_count = reader.unread(
                room_id, to, row["stream_ordering"]
            )
        room.bump_stamp = self._bump_stamp(reader, room_id, row, room, pdus, to_bound)

        sends = (
            initial
            or bool(room.timeline)
            or bool(room.required_state)
            or expanded
            or (membership == "invite" and row["stream_ordering"] > (from_bound or 0))
        )
        if not initial and from_bound is not None and row["stream_ordering"] > from_bound:
            sends = True
        room_state = {"status": LIVE, "config": config.as_json(), "lazy": sorted(lazy_sent)}
        if not sends:
            room_state = dict(sent_before or room_state)
            return None, room_state
        return room, room_state

    def _changed_state(
        self, reader: RoomReader, state: Mapping[tuple[str, str], str], from_bound: int | None
    ) -> set[tuple[str, str]]:
        if from_bound is None:
            return set(state)
        positions = store_events.get_stream_orderings(reader.conn, state.values())
        return {key for key, eid in state.items() if positions.get(eid, 0) > from_bound}

    def _required_state(
        self,
        reader: RoomReader,
        state: Mapping[tuple[str, str], str],
        config: RoomConfig,
        changed: set[tuple[str, str]],
        new_pairs: frozenset[tuple[str, str]],
        initial: bool,
        timeline: list[Pdu],
        lazy_sent: set[str],
    ) -> list[str]:
        """The event ids of `required_state` to send, sorted by (type, state_key)."""
        user_id = reader.user_id

        def matches(pairs: Iterable[tuple[str, str]], key: tuple[str, str]) -> bool:
            for type_, state_key in pairs:
                if type_ not in (WILDCARD, key[0]):
                    continue
                wanted = user_id if state_key == ME else state_key
                if wanted in (WILDCARD, key[1]):
                    return True
            return False

        chosen = {}
        for key, event_id in state.items():
            if matches(new_pairs, key) or (
                (initial or key in changed) and matches(config.required_state, key)
            ):
                chosen[key] = event_id
        lazy = ("m.room.member", LAZY) in config.required_state
        if lazy:
            in_timeline = {p.event_id for p in timeline}
            for sender in {p.sender for p in timeline}:
                key = ("m.room.member", sender)
                if key not in state:
                    continue
                if state[key] in in_timeline and not initial:
                    lazy_sent.add(sender)  # the timeline carries it
                    continue
                if sender not in lazy_sent or key in changed or initial:
                    chosen[key] = state[key]
        # As Synapse: the state as of the timeline's end, whether or not the timeline
        # holds the same event.
        return [eid for _key, eid in sorted(chosen.items())]

    def _heroes(
        self, reader: RoomReader, state: Mapping[tuple[str, str], str], user_ids: list[str]
    ) -> list[dict[str, Any]]:
        heroes = []
        for user_id in user_ids[:HEROES]:
            content = reader.content(state.get(("m.room.member", user_id)))
            hero: dict[str, Any] = {"user_id": user_id}
            if isinstance(content.get("displayname"), str):
                hero["displayname"] = content["displayname"]
            if isinstance(content.get("avatar_url"), str):
                hero["avatar_url"] = content["avatar_url"]
            heroes.append(hero)
        return heroes

    def _bump_stamp(
        self,
        reader: RoomReader,
        room_id: str,
        row: Mapping[str, Any],
        room: SlidingRoom,
        timeline: list[Pdu],
        to_bound: int,
    ) -> int | None:
        always = room.initial or room.limited is None or room.limited
        if not always and not any(p.type in BUMP_TYPES for p in timeline):
            return None
        stamp = None
        if row["membership"] not in ("invite", "knock"):
            stamp = store_events.last_event_of_types(reader.conn, room_id, BUMP_TYPES, to_bound)
        if stamp is None:
            stamp = row["stream_ordering"]
        return max(stamp, 0)  # backfilled history counts below zero


def _window(
    ordered: list[str], wanted: ListRequest, configs: dict[str, RoomConfig]
) -> dict[str, Any]:
    ops = []
    for start, end in wanted.ranges:
        room_ids = ordered[start : end + 1]
        for room_id in room_ids:
            configs[room_id] = (
                configs[room_id].combine(wanted.room) if room_id in configs else wanted.room
            )
        ops.append({"op": "SYNC", "range": [start, end], "room_ids": room_ids})
    return {"count": len(ordered), "ops": ops}


def _direct_rooms(conn: Connection, user_id: str) -> set[str]:
    text = store_account_data.get_account_data(conn, user_id, "m.direct")
    content = json.loads(text) if text else {}
    rooms: set[str] = set()
    if isinstance(content, dict):
        for value in content.values():
            if isinstance(value, list):
                rooms.update(r for r in value if isinstance(r, str))
    return rooms


def _stripped_has(reader: RoomReader, room_id: str, row: Mapping[str, Any], type_: str) -> bool:
    return any(e.get("type") == type_ for e in reader.invite_state(room_id, row["event_id"]))


def _since_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidParam("to_device since must be a stream position")
    return int(text)
