"""One room's part of a `/sync` answer, read in the sync's one store snapshot.

Rules kept (see relay/sync/builder.py for the whole):

- The timeline is the newest `limit` events the filter allows in `(since, to]`, oldest
  first; `limited` says allowed events were left out before them; `prev_batch` is the
  position just before the first one (where `/messages` continues backwards).
- `state` is the state at the start of the timeline: all of it when the room is new
  to the client (initial sync, newly joined, `full_state`), otherwise only entries
  that changed after `since` and are not in the timeline. With `lazy_load_members`
  only the members who sent timeline events (and, on a full state, the user) are
  kept, plus any membership that changed in a gap.
- A redaction that does not apply (yet) is left out of the timeline, as a filter
  would leave it (`RoomService.held_redaction_txn`): when its target arrives later,
  the target comes redacted, and later reads carry the redaction.
- Non-state events sent by users in the reader's `m.ignored_user_list` are left out of
  the timeline (as a filter would leave them); their state events stay.
- History visibility is checked per event against the state before it: a user sees
  an event when joined then, or invited then under `invited`, or always under
  `world_readable`, or under `shared` while joined now.

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3sync,
https://spec.matrix.org/v1.16/client-server-api/#history-visibility
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from relay.events.pdu import Pdu, strip_state_event
from relay.events.push_rules import RoomLevel, room_level
from relay.rooms.filters import EventFilter, Filter
from relay.rooms.reads import EventView, view_txn
from relay.rooms.relations import aggregations_txn
from relay.rooms.service import RoomService
from relay.rooms.visibility import Viewer
from relay.sync.account_data import ignored_users_txn
from relay.sync.shared import SharedReads
from store import Connection
from store import account_data as store_account_data
from store import events as store_events
from store import receipts as store_receipts
from store import relations as store_relations
from store import remote_invites as store_remote_invites
from store import rooms as store_rooms
from store import state as store_state

PAGE = 50
HEROES = 5
#: Event types counted in unread_notifications (what default push rules notify for).
NOTIFYING_TYPES = (
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.poll.start",
    "m.call.invite",
)
INVITE_STATE_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
)


@dataclass(slots=True)
class RoomSync:
    """A joined or left room's entry (`unread`/`summary` only for joined rooms)."""

    timeline: list[EventView]
    limited: bool
    prev_batch: int
    state: list[EventView]
    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    account_data: list[dict[str, Any]] = field(default_factory=list)
    unread: tuple[int, int] | None = None
    #: With `unread_thread_notifications`: (count, highlights) by thread root.
    unread_threads: dict[str, tuple[int, int]] | None = None
    summary: dict[str, Any] | None = None

    def has_news(self) -> bool:
        return bool(self.timeline or self.state or self.ephemeral or self.account_data)


class RoomReader:
    """Reads for one sync build; caches state groups and PDUs across its rooms."""

    def __init__(
        self,
        conn: Connection,
        rooms: RoomService,
        user_id: str,
        device_id: str,
        sync_filter: Filter,
        shared: SharedReads | None = None,
        at: int | None = None,
    ) -> None:
        """`shared`: what other builds already read (relay/sync/shared.py), for the
        snapshot at stream position `at`; None: everything read here."""
        self.conn = conn
        self.shared = shared
        self.at = at
        self.rooms = rooms
        self.user_id = user_id
        self.device_id = device_id
        self.filter = sync_filter
        self._groups: dict[int, dict[tuple[str, str], str]] = {}
        self._account_data: dict[int, list[dict[str, Any]]] = {}
        self._current: dict[str, dict[tuple[str, str], str]] = {}
        self._changed: dict[tuple[int, int], frozenset[str]] = {}
        self._push_rules: Any = None
        #: The users this user ignores, read once per sync build.
        self.ignored = ignored_users_txn(conn, user_id)

    # -- helpers --------------------------------------------------------------------------

    def pdu(self, event_id: str) -> Pdu | None:
        return self.rooms.get_pdu_txn(self.conn, event_id)

    def _group(self, group: int) -> Mapping[tuple[str, str], str]:
        if self.shared is not None:
            return self.shared.state_group(self.conn, group)
        if group not in self._groups:
            self._groups[group] = store_state.load_state_group(self.conn, group)
        return self._groups[group]

    def current_state(self, room_id: str) -> dict[tuple[str, str], str]:
        """The room's current state (read once per sync build)."""
        if room_id not in self._current:
            self._current[room_id] = store_state.get_current_state(self.conn, room_id)
        return self._current[room_id]

    def state_before(self, event_id: str) -> Mapping[tuple[str, str], str] | None:
        groups = store_state.get_event_state_groups(self.conn, event_id)
        return self._group(groups[0]) if groups is not None else None

    def state_after(self, event_id: str) -> Mapping[tuple[str, str], str] | None:
        groups = store_state.get_event_state_groups(self.conn, event_id)
        return self._group(groups[1]) if groups is not None else None

    def content(self, event_id: str | None) -> dict[str, Any]:
        pdu = self.pdu(event_id) if event_id else None
        return pdu.content if pdu is not None else {}

    def visible(self, pdu: Pdu, joined_now: bool) -> bool:
        if pdu.type == "m.room.member" and pdu.state_key == self.user_id:
            return True
        if self.shared is not None:
            groups = store_state.get_event_state_groups(self.conn, pdu.event_id)
            if groups is None:
                return joined_now
            inputs = self.shared.visibility_inputs(self.conn, self.rooms, groups[0])
            return _sees(
                inputs.history_visibility, inputs.memberships.get(self.user_id), joined_now
            )
        state = self.state_before(pdu.event_id)
        if state is None:
            return joined_now  # no recorded state (should not happen for timeline events)
        visibility = self.content(state.get(("m.room.history_visibility", ""))).get(
            "history_visibility", "shared"
        )
        membership = self.content(state.get(("m.room.member", self.user_id))).get("membership")
        return _sees(visibility, membership, joined_now)

    def view(self, pdu: Pdu, *, with_prev: bool = False) -> EventView:
        before = self.state_before if with_prev else None
        return view_txn(
            self.conn, self.rooms, pdu, self.user_id, self.device_id, state_before=before
        )

    def timeline_views(
        self, room_id: str, pdus: list[Pdu], until: int | None, *, bundle: bool
    ) -> list[EventView]:
        """The timeline's events as the client gets them, with (`bundle`) their bundled
        aggregations (relations up to `until`: the user's leave in a left room)."""
        viewer = Viewer(self.user_id, room_id, until)
        bundled = aggregations_txn(self.conn, self.rooms, viewer, pdus) if bundle else {}
        return [
            replace(self.view(pdu, with_prev=True), relations=bundled.get(pdu.event_id))
            for pdu in pdus
        ]

    # -- the sections ---------------------------------------------------------------------

    def timeline(
        self,
        room_id: str,
        since: int | None,
        to: int,
        joined_now: bool,
        limit: int | None = None,
    ) -> tuple[list[Pdu], bool, int]:
        """The newest allowed, visible events in `(since, to]` (oldest first; at most
        `limit`, the filter's by default), whether allowed events were left out before
        them, and the position before the first."""
        filt = self.filter.room.timeline
        limit = self.filter.timeline_limit if limit is None else limit
        if not filt.allows_room(room_id):
            return [], False, to
        found: list[Pdu] = []
        positions: list[int] = []
        cursor = to
        while len(found) <= limit:
            page = store_events.events_in_room_by_stream(
                self.conn, room_id, cursor, since, limit=max(PAGE, limit + 1), direction="b"
            )
            for row in page:
                pdu = self.pdu(row["event_id"])
                if pdu is None or not filt.allows(pdu.type, pdu.sender, pdu.content):
                    continue
                if pdu.sender in self.ignored and not pdu.is_state:
                    continue
                if self.rooms.held_redaction_txn(self.conn, pdu):
                    continue  # a redaction reaches clients only once it applies
                if self.visible(pdu, joined_now):
                    found.append(pdu)
                    positions.append(row["stream_ordering"])
                    if len(found) > limit:
                        break
            if len(page) < max(PAGE, limit + 1):
                break
            cursor = page[-1]["stream_ordering"] - 1
        limited = len(found) > limit
        kept = min(limit, len(found))
        prev_batch = positions[kept - 1] - 1 if kept else to
        return list(reversed(found[:limit])), limited, prev_batch

    def state(
        self,
        room_id: str,
        timeline: list[Pdu],
        current: Callable[[], Mapping[tuple[str, str], str]],
        since: int | None,
        full: bool,
    ) -> list[EventView]:
        """The state section (see the module docstring); `current` reads the state at
        the end of the timeline, only needed when the timeline is empty."""
        filt = self.filter.room.state
        if not filt.allows_room(room_id) or filt.is_empty_allow_list():
            return []
        in_timeline = {pdu.event_id for pdu in timeline}
        groups = (
            store_state.get_event_state_groups(self.conn, timeline[0].event_id)
            if timeline
            else None
        )
        start = self._group(groups[0]) if groups is not None else None
        if start is None:
            start = {key: eid for key, eid in current().items() if eid not in in_timeline}
        if full or since is None:
            chosen = dict(start)
        else:
            if self.shared is not None and self.at is not None and groups is not None:
                positions = self.shared.positions(self.conn, groups[0], self.at)
            else:
                positions = store_events.get_stream_orderings(self.conn, start.values())
            chosen = {
                key: eid
                for key, eid in start.items()
                if positions.get(eid, 0) > since and eid not in in_timeline
            }
        if filt.lazy_load_members:
            wanted = {pdu.sender for pdu in timeline}
            if full or since is None:
                wanted.add(self.user_id)
                chosen = {k: v for k, v in chosen.items() if k[0] != "m.room.member"}
            for user in wanted:
                eid = start.get(("m.room.member", user))
                if eid is not None and eid not in in_timeline:
                    chosen[("m.room.member", user)] = eid
        views = []
        for _key, eid in sorted(chosen.items()):
            pdu = self.pdu(eid)
            if pdu is not None and filt.allows(pdu.type, pdu.sender, pdu.content):
                views.append(self.view(pdu))
        return views

    def changed(self, room_id: str, since: int, to: int) -> bool:
        """Did anything reach the room's timeline, receipts or the user's room account
        data in `(since, to]`? (A cheap test before building an incremental entry.)

        With `shared` reads, from the stream indexes across every room at once, read once
        per build (what moved since `since`: an incremental sync in 500 rooms costs what
        changed, not 500 lookups); without, room by room, the reference the shared build
        is compared with (tests/client/test_sync_shared_reads.py)."""
        if self.shared is not None:
            key = (since, to)
            if key not in self._changed:
                self._changed[key] = self._rooms_changed(since, to)
            return room_id in self._changed[key]
        if store_events.events_in_room_by_stream(
            self.conn, room_id, to, since, limit=1, direction="b", include_hidden=True
        ):
            return True
        if store_receipts.receipts_since(self.conn, [room_id], since):
            return True
        return any(row["room_id"] == room_id for row in self.account_data_since(since))

    def _rooms_changed(self, since: int, to: int) -> frozenset[str]:
        rooms = store_events.rooms_with_events_between(self.conn, since, to)
        rooms |= store_receipts.rooms_with_receipts_since(self.conn, since)
        rooms.update(row["room_id"] for row in self.account_data_since(since) if row["room_id"])
        return frozenset(rooms)

    def account_data_since(self, since: int) -> list[dict[str, Any]]:
        if since not in self._account_data:
            self._account_data[since] = store_account_data.account_data_since(
                self.conn, self.user_id, since
            )
        return self._account_data[since]

    def receipts(self, room_id: str, since: int | None) -> dict[str, Any] | None:
        """The room's `m.receipt` event (receipts after `since`), or None."""
        if since is None:
            rows = store_receipts.get_receipts(self.conn, room_id)
        else:
            rows = store_receipts.receipts_since(self.conn, [room_id], since)
        content: dict[str, Any] = {}
        for row in rows:
            if row["receipt_type"] == "m.read.private" and row["user_id"] != self.user_id:
                continue
            by_type = content.setdefault(row["event_id"], {})
            by_type.setdefault(row["receipt_type"], {})[row["user_id"]] = json.loads(row["data"])
        return {"type": "m.receipt", "content": content} if content else None

    def room_account_data(self, room_id: str, since: int | None) -> list[dict[str, Any]]:
        filt = self.filter.room.account_data
        if not filt.allows_room(room_id):
            return []
        rows = self.account_data_since(-1 if since is None else since)
        return [
            {"type": row["type"], "content": json.loads(row["content"])}
            for row in rows
            if row["room_id"] == room_id and filt.allows(row["type"], self.user_id)
        ]

    def _read_receipts(self, room_id: str) -> dict[str, int]:
        """`{thread_id: stream position}` of the user's read receipts in the room
        (`""` the unthreaded one, `"main"` the main timeline's)."""
        rows = [
            row
            for row in store_receipts.get_receipts(self.conn, room_id)
            if row["user_id"] == self.user_id
            and row["receipt_type"] in ("m.read", "m.read.private")
        ]
        positions = store_events.get_stream_orderings(self.conn, [r["event_id"] for r in rows])
        read: dict[str, int] = {}
        for row in rows:
            position = positions.get(row["event_id"])
            if position is not None:
                read[row["thread_id"]] = max(read.get(row["thread_id"], position), position)
        return read

    def unread(self, room_id: str, to: int, joined_at: int) -> tuple[int, int]:
        """(notification_count, highlight_count) after the user's unthreaded or main read
        receipt, every thread included."""
        read_up_to = self.read_up_to(room_id, joined_at)
        if self.shared is not None:
            counts = self.shared.count_unread(
                self.conn, room_id, self.user_id, read_up_to, to, NOTIFYING_TYPES
            )
        else:
            counts = store_events.count_unread(
                self.conn, room_id, self.user_id, read_up_to, to, NOTIFYING_TYPES
            )
        return self._as_level(
            room_id,
            counts,
        )

    def read_up_to(self, room_id: str, joined_at: int) -> int:
        """The position the user's unthreaded or main read receipt (or the join) reads
        the room's main timeline up to."""
        read = self._read_receipts(room_id)
        return max(joined_at, read.get("", joined_at), read.get("main", joined_at))

    def level(self, room_id: str) -> RoomLevel:
        """The room's notification level by the user's push rules."""
        if self._push_rules is None:
            text = store_account_data.get_account_data(self.conn, self.user_id, "m.push_rules")
            self._push_rules = json.loads(text) if text else {}
        return room_level(self._push_rules, room_id)

    def _as_level(self, room_id: str, counts: tuple[int, int]) -> tuple[int, int]:
        """`counts` as the user's push rules have the room notify: none when muted, only
        the mentions when set to mentions only (relay/events/push_rules.py)."""
        level = self.level(room_id)
        if level is RoomLevel.SILENT:
            return 0, 0
        if level is RoomLevel.MENTIONS_ONLY:
            return counts[1], counts[1]
        return counts

    def unread_by_thread(
        self, room_id: str, to: int, joined_at: int
    ) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        """With `unread_thread_notifications`: the main timeline's (count, highlights)
        and each thread's, by root (threads with none left out). An unthreaded receipt
        reads everything before it; a `main` one the main timeline (thread roots
        included); a threaded one its thread (spec "threaded read receipts")."""
        read = self._read_receipts(room_id)
        floor = max(joined_at, read.get("", joined_at))
        counts = store_relations.count_unread_by_thread(
            self.conn, room_id, self.user_id, floor, to, NOTIFYING_TYPES
        )
        for thread, position in read.items():
            if thread == "" or position <= floor:
                continue
            key = "" if thread == "main" else thread
            again = store_relations.count_unread_by_thread(
                self.conn, room_id, self.user_id, position, to, NOTIFYING_TYPES, thread=key
            )
            counts.pop(key, None)
            counts.update(again)
        counts = {key: self._as_level(room_id, c) for key, c in counts.items()}
        main = counts.pop("", (0, 0))
        return main, {root: c for root, c in counts.items() if c[0] > 0}

    def summary(self, room_id: str) -> dict[str, Any]:
        if self.shared is not None and self.at is not None:
            members = self.shared.members(self.conn, room_id, self.at)
        else:
            members = store_rooms.members(self.conn, room_id)
        joined = sorted(u for u, m in members.items() if m == "join")
        invited = sorted(u for u, m in members.items() if m == "invite")
        heroes = [u for u in joined + invited if u != self.user_id]
        if not heroes:
            heroes = sorted(u for u, m in members.items() if m in ("leave", "ban"))
            heroes = [u for u in heroes if u != self.user_id]
        return {
            "m.heroes": heroes[:HEROES],
            "m.joined_member_count": len(joined),
            "m.invited_member_count": len(invited),
        }

    def invite_state(self, room_id: str, invite_event_id: str) -> list[dict[str, Any]]:
        """The stripped state a client shows for an invite (plus the invite itself)."""
        invite = self.pdu(invite_event_id)
        state = store_state.get_current_state(self.conn, room_id)
        if not state:
            # A room on another server: the stripped state its server sent with the invite.
            stored = store_remote_invites.invite_state(self.conn, room_id, self.user_id)
            stripped = [e for e in stored if isinstance(e, dict)]
            stripped = [e for e in stripped if e.get("state_key") != self.user_id]
            if invite is not None:
                stripped.append(strip_state_event(invite))
            return stripped
        ids = [state[(t, "")] for t in INVITE_STATE_TYPES if (t, "") in state]
        if invite is not None:
            inviter = state.get(("m.room.member", invite.sender))
            if inviter is not None and invite.sender != self.user_id:
                ids.append(inviter)
        ids.append(invite_event_id)
        return [strip_state_event(p) for p in (self.pdu(eid) for eid in ids) if p is not None]


def _sees(visibility: Any, membership: Any, joined_now: bool) -> bool:
    """May a user see an event, from the history_visibility and their membership in the
    state before it (`joined_now`: they are joined, for `shared`)?"""
    return (
        visibility == "world_readable"
        or membership == "join"
        or (visibility == "invited" and membership == "invite")
        or (visibility == "shared" and joined_now)
    )


def allowed_ephemeral(filt: EventFilter, room_id: str, type_: str) -> bool:
    return filt.allows_room(room_id) and filt.allows_type(type_)
