"""The sync builder: what changed for a user between two stream positions.

Rules kept:

- One answer is read in ONE store snapshot (`database.read`); its upper bound `to` is
  the stream position of that snapshot, so the next sync's `since` misses nothing
  and repeats nothing. Typing comes from an in-memory snapshot taken just before.
- A room is "new to the client" (initial sync, newly joined, or `full_state`) and
  gets its full state; otherwise only what changed after `since` (relay/sync/rooms.py).
  Newly joined, as Synapse: not joined at `since` and joined since, or joined now after
  any other membership in the gap (left and came back); such a room's timeline is
  `limited` (the client has none of its history). A room joined and left inside the
  gap comes in `leave` the same way: whole, `limited`.
  An incremental sync leaves out rooms where nothing changed.
- Long-poll: an incremental sync with nothing to say waits on the notifier until the
  stream or typing moves past what it read (or a typing notice times out), then
  reads again; it answers when it has something or at `timeout`. A write always
  commits before it wakes the notifier, so no change falls between read and wait.
- Invites and typing from users in `m.ignored_user_list` are left out (the timeline's
  part: relay/sync/rooms.py).
- A room the user knocked on is in `rooms.knock` (its stripped state and the knock) when
  the knock is new, as an invite is in `rooms.invite`; once invited, joined, refused or
  rescinded, it moves to that section.
- Rooms the user forgot are never in `rooms.leave`; left rooms appear in an
  incremental sync once (when the leave is new) and in an initial sync only with
  `include_leave`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#syncing
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import trio

from relay.errors import BadJson, NotFound
from relay.events.canonical import parse_json_strict
from relay.rooms.filters import DEFAULT_FILTER, Filter, parse_filter
from relay.rooms.service import RoomService
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from relay.sync.devices import DeviceSection, DeviceSync
from relay.sync.lazy_members import SentMembers
from relay.sync.presence import PresenceService, presence_content
from relay.sync.rooms import RoomReader, RoomSync, allowed_ephemeral
from relay.sync.shared import SharedReads
from relay.sync.typing_notices import TypingService, TypingSnapshot
from store import Connection
from store import account_data as store_account_data
from store import events as store_events
from store import presence as store_presence
from store import rooms as store_rooms

MAX_TIMEOUT_MS = 600_000


@dataclass(frozen=True, slots=True)
class SyncParams:
    user_id: str
    device_id: str
    since: int | None = None
    since_typing: int = 0
    filter: Filter = DEFAULT_FILTER
    full_state: bool = False
    timeout_ms: int = 0
    set_presence: str | None = None


@dataclass(slots=True)
class SyncResult:
    stream: int
    typing: int
    join: dict[str, RoomSync] = field(default_factory=dict)
    #: The stripped state of each invite (`RoomReader.invite_state`).
    invite: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    leave: dict[str, RoomSync] = field(default_factory=dict)
    #: The stripped state of each knock (`RoomReader.knock_state`).
    knock: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    account_data: list[dict[str, Any]] = field(default_factory=list)
    presence: list[dict[str, Any]] = field(default_factory=list)
    #: To-device messages, device lists and key counts (relay/sync/devices.py).
    devices: DeviceSection | None = None

    def is_empty(self) -> bool:
        return not (
            self.join
            or self.invite
            or self.leave
            or self.knock
            or self.account_data
            or self.presence
            or (self.devices is not None and self.devices.has_news())
        )


class SyncService:
    def __init__(
        self,
        database: Database,
        rooms: RoomService,
        notifier: Notifier,
        typing: TypingService,
        presence: PresenceService,
        devices: DeviceSync | None = None,
        shared: SharedReads | None = None,
        sent_members: SentMembers | None = None,
    ) -> None:
        self.database = database
        self.rooms = rooms
        self.notifier = notifier
        self.typing = typing
        self.presence = presence
        #: The device part of sync (set by node.py; None: sections stay empty).
        #: The device section (to-device, device lists, key counts); None: no E2EE.
        self.devices = devices
        #: What the builds of one snapshot read alike, read once (relay/sync/shared.py);
        #: None: each build reads everything itself.
        self.shared = shared
        #: The member events each device has, for lazy loading (relay/sync/lazy_members.py);
        #: None: lazy-loading syncs send the members every time.
        self.sent_members = sent_members

    # -- filters ----------------------------------------------------------------------------

    async def create_filter(self, user_id: str, body: dict[str, Any]) -> str:
        parse_filter(body)
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return await self.database.write(store_account_data.put_filter, user_id, text)

    async def get_filter_json(self, user_id: str, filter_id: str) -> dict[str, Any]:
        text = await self.database.read(store_account_data.get_filter, user_id, filter_id)
        if text is None:
            raise NotFound("No such filter")
        return json.loads(text)

    async def resolve_filter(self, user_id: str, param: str | None) -> Filter:
        """`/sync?filter=`: a stored filter id, or a filter object inline (`{...}`)."""
        if not param:
            return DEFAULT_FILTER
        if param.lstrip().startswith("{"):
            try:
                body = parse_json_strict(param.encode("utf-8"))
            except ValueError:
                raise BadJson("filter is not valid JSON") from None
            return parse_filter(body)
        return parse_filter(await self.get_filter_json(user_id, param))

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, params: SyncParams) -> SyncResult:
        """One answer. Each build is one read in a reader thread; the first also reads,
        in the same snapshot, the user's stored presence when this process does not know
        it yet (a client that syncs goes online), and whether the device holds to-device
        messages its `since` acknowledges. The writes those call for come after that
        read: a presence change, and then a build again, so the answer carries it as it
        did when the write came first; the acknowledged messages are left out of every
        answer by position, deleted after.

        A long-poll whose `since` is at the notifier's position, with no typing news and
        no presence to read, waits before it builds at all: everything a sync reports
        but typing takes a stream position, so a build then would be empty."""
        read_presence = False
        if self.presence.touch(params.user_id, params.set_presence):
            known, state = self.presence.known_state(params.user_id)
            if not known:
                read_presence = True
            else:
                await self.presence.store_sync_state(params.user_id, params.set_presence, state)
        timeout_s = min(max(params.timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
        deadline = trio.current_time() + timeout_s
        acknowledged = False
        while True:
            typing = self.typing.snapshot(params.since_typing)
            now = trio.current_time()
            if (
                not read_presence
                and params.since is not None
                and not params.full_state
                and params.since >= self.notifier.stream_position
                and not typing.changed
                and now < deadline
            ):
                await self.notifier.wait_for_change(
                    params.since, typing.serial, self._wait_s(deadline, now)
                )
                continue
            last_active = dict(self.presence.last_active)
            result, stored_presence = await self.database.read(
                self._build_txn, params, typing, last_active, now_ms(), read_presence
            )
            if read_presence:
                read_presence = False
                if await self.presence.store_sync_state(
                    params.user_id, params.set_presence, stored_presence
                ):
                    continue
            if self.devices is not None and result.devices is not None and not acknowledged:
                acknowledged = True
                await self.devices.after(
                    params.user_id, params.device_id, params.since, result.devices
                )
            if params.since is None or params.full_state or not result.is_empty():
                return result
            now = trio.current_time()
            if now >= deadline:
                return result
            await self.notifier.wait_for_change(
                result.stream, result.typing, self._wait_s(deadline, now)
            )

    def _wait_s(self, deadline: float, now: float) -> float:
        """How long a long-poll may wait: to its deadline or the next typing expiry."""
        wake = deadline
        expiry = self.typing.next_expiry()
        if expiry is not None:
            wake = min(wake, expiry)
        return max(0.0, wake - now)

    def _build_txn(
        self,
        conn: Connection,
        params: SyncParams,
        typing: TypingSnapshot,
        last_active: dict[str, int],
        now: int,
        read_presence: bool = False,
    ) -> tuple[SyncResult, str | None]:
        """The answer at the snapshot's position, and the user's stored presence state if
        `read_presence` (else None)."""
        stored_presence = (
            self.presence.stored_state_txn(conn, params.user_id) if read_presence else None
        )
        to = store_events.max_stream_ordering(conn)
        result = SyncResult(stream=max(to, params.since or 0), typing=typing.serial)
        reader = RoomReader(
            conn,
            self.rooms,
            params.user_id,
            params.device_id,
            params.filter,
            self.shared,
            to,
            self.sent_members,
        )
        room_filter = params.filter.room
        since = params.since
        if since is None and self.sent_members is not None:
            self.sent_members.forget_device(params.user_id, params.device_id)
        forgotten = store_rooms.forgotten_rooms(conn, params.user_id)
        for row in store_rooms.memberships_of_user(conn, params.user_id):
            room_id, membership = row["room_id"], row["membership"]
            if not room_filter.allows_room(room_id):
                continue
            changed = since is None or row["stream_ordering"] > since
            if membership == "join":
                newly = since is None or (changed and self.joined_in_gap(reader, row, since, to))
                room = self._joined(reader, params, row, to, typing, newly)
                if room is not None:
                    result.join[room_id] = room
            elif membership == "invite" and changed:
                if reader.invite_is_ignored(row["event_id"]):
                    continue
                result.invite[room_id] = reader.invite_state(room_id, row["event_id"])
            elif membership == "knock" and changed:
                result.knock[room_id] = reader.knock_state(room_id, row["event_id"])
            elif membership in ("leave", "ban") and room_id not in forgotten:
                wanted = row["stream_ordering"] > since if since is not None else False
                if wanted or (room_filter.include_leave and (since is None or params.full_state)):
                    joined_in_gap = wanted and self.joined_in_gap(reader, row, since, to)
                    result.leave[room_id] = self._left(reader, params, row, to, joined_in_gap)
        result.account_data = self._global_account_data(conn, params)
        result.presence = self._presence(conn, params, last_active, now)
        if self.devices is not None:
            result.devices = self.devices.section_txn(
                conn, params.user_id, params.device_id, since, result.stream
            )
        return result, stored_presence

    def joined_in_gap(
        self, reader: RoomReader, row: dict[str, Any], since: int | None, to: int
    ) -> bool:
        """Did the user join the room between `since` and `to`, so the client must get
        it as new (full state)? As Synapse: when they were not joined at `since` and
        joined in the gap, or are joined now after any other membership in the gap
        (left and joined again)."""
        if since is None:
            return False
        room_id = row["room_id"]
        ids = store_events.member_event_ids_of(reader.conn, room_id, reader.user_id, since, to)
        if row["stream_ordering"] > since and row["event_id"] not in ids:
            ids.append(row["event_id"])  # e.g. a join that came through another server
        kinds = [reader.content(eid).get("membership") for eid in ids]
        if "join" not in kinds:
            return False
        if row["membership"] == "join" and any(kind != "join" for kind in kinds):
            return True
        at_since = reader.state_at(room_id, since).get(("m.room.member", reader.user_id))
        return reader.content(at_since).get("membership") != "join"

    def was_joined(self, reader: RoomReader, row: dict[str, Any]) -> bool:
        before = reader.state_before(row["event_id"]) or {}
        event_id = before.get(("m.room.member", reader.user_id))
        pdu = reader.pdu(event_id) if event_id else None
        return pdu is not None and pdu.content.get("membership") == "join"

    def _joined(
        self,
        reader: RoomReader,
        params: SyncParams,
        row: dict[str, Any],
        to: int,
        typing: TypingSnapshot,
        newly: bool,
    ) -> RoomSync | None:
        room_id = row["room_id"]
        since = None if newly else params.since
        full = since is None or params.full_state
        if (
            not full
            and since is not None
            and room_id not in typing.changed
            and not reader.changed(room_id, since, to)
        ):
            return None
        timeline, limited, prev_batch = reader.timeline(room_id, since, to, joined_now=True)
        joined_now = newly and params.since is not None
        chosen = reader.state_ids(
            room_id,
            timeline,
            lambda: reader.current_state(room_id),
            since,
            full,
            limited=limited,
            end=to,
        )
        reader.drop_members_had(room_id, chosen, params.since)
        # As Synapse: aggregations only when the client lacks part of the story (a
        # limited timeline, or a room it just joined); else it has every relation.
        bundle = limited or joined_now
        room = RoomSync(
            timeline=reader.timeline_views(room_id, timeline, None, bundle=bundle),
            # As Synapse, a room joined since the last sync is `limited`: the client
            # has none of its history and must page back for it.
            limited=limited or joined_now,
            prev_batch=prev_batch,
            state=[],
            account_data=reader.room_account_data(room_id, since),
        )
        ephemeral = params.filter.room.ephemeral
        typers = typing.typers(room_id, reader.ignored)
        if allowed_ephemeral(ephemeral, room_id, "m.typing") and (
            room_id in typing.changed or (since is None and typers)
        ):
            room.ephemeral.append({"type": "m.typing", "content": {"user_ids": list(typers)}})
        if allowed_ephemeral(ephemeral, room_id, "m.receipt"):
            receipt = reader.receipts(room_id, since)
            if receipt is not None:
                room.ephemeral.append(receipt)
        if not (full or chosen or room.has_news()):
            return None
        room.summary = reader.sync_summary(
            room_id, chosen, timeline, fresh=since is None, limited=limited, since=params.since
        )
        reader.note_members_sent(room_id, chosen, timeline, to)
        room.state = reader.state_views(chosen)
        if params.filter.room.timeline.unread_thread_notifications:
            room.unread, room.unread_threads = reader.unread_by_thread(
                room_id, to, row["stream_ordering"]
            )
        else:
            room.unread = reader.unread(room_id, to, row["stream_ordering"])
        return room

    def _left(
        self,
        reader: RoomReader,
        params: SyncParams,
        row: dict[str, Any],
        to: int,
        joined_in_gap: bool,
    ) -> RoomSync:
        """A left room's entry. Joined and left inside the gap: the room is new to the
        client, so it comes whole (full state, `limited`), as Synapse sends it."""
        room_id, since = row["room_id"], params.since
        end = row["stream_ordering"]
        if since is not None and since >= end:
            since = None  # include_leave on a full_state sync: the room as it was left
        if joined_in_gap:
            since = None
        timeline, limited, prev_batch = reader.timeline(room_id, since, end, joined_now=False)
        full = since is None or params.full_state
        chosen = reader.state_ids(
            room_id,
            timeline,
            lambda: reader.state_after(row["event_id"]) or {},
            since,
            full,
            limited=limited,
            end=end,
        )
        reader.drop_members_had(room_id, chosen, params.since)
        reader.note_members_sent(room_id, chosen, timeline, to)
        return RoomSync(
            timeline=reader.timeline_views(room_id, timeline, end, bundle=limited or joined_in_gap),
            limited=limited or joined_in_gap,
            prev_batch=prev_batch,
            state=reader.state_views(chosen),
            account_data=reader.room_account_data(room_id, since),
        )

    def _global_account_data(self, conn: Connection, params: SyncParams) -> list[dict[str, Any]]:
        filt = params.filter.account_data
        rows = store_account_data.account_data_since(
            conn, params.user_id, -1 if params.since is None else params.since
        )
        return [
            {"type": row["type"], "content": json.loads(row["content"])}
            for row in rows
            if row["room_id"] == "" and filt.allows(row["type"], params.user_id)
        ]

    def _presence(
        self,
        conn: Connection,
        params: SyncParams,
        last_active: dict[str, int],
        now: int,
    ) -> list[dict[str, Any]]:
        filt = params.filter.presence
        if filt.is_empty_allow_list() or not filt.allows_type("m.presence"):
            return []
        since = -1 if params.since is None else params.since
        if params.since is not None and not store_presence.presence_since(conn, None, since):
            return []  # nobody's presence moved: no need to ask who shares a room
        users = {params.user_id, *store_rooms.users_sharing_rooms(conn, params.user_id)}
        events = [
            {
                "type": "m.presence",
                "sender": row["user_id"],
                "content": presence_content(row, now, last_active.get(row["user_id"])),
            }
            for row in store_presence.presence_since(conn, users, since)
            if filt.allows("m.presence", row["user_id"])
        ]
        return events[: filt.limit] if filt.limit is not None else events
