"""One room's part of a `/sync` answer, read in the sync's one store snapshot.

Rules kept (see relay/sync/builder.py for the whole):

- The timeline is the newest `limit` events the filter allows in `(since, to]`, oldest
  first; `limited` says allowed events were left out before them; `prev_batch` is the
  position just before the first one (where `/messages` continues backwards).
- `state` brings the client from the state it had at `since` to the state at the
  start of the timeline, never repeating a timeline event: when the room is new to the
  client (initial sync, joined since, `full_state`) the whole state at the start and
  at the end of the timeline; otherwise what of those two differs from the state at
  `since` (Synapse's `_calculate_state`): every change of a gap, a member who came and
  went inside it included, and state the timeline filter left out. The end counts
  too, so a fork merged in the gap or a state event after the last allowed timeline
  event is not lost. A timeline that is the whole of `(since, to]`, each event on the
  one before, changed nothing else: no state is read (Synapse's shortcut).
- With `lazy_load_members` the members are those of the timeline's senders (whose
  membership the timeline does not set first), the user's own on a full state, and,
  in a gap (`limited`), every membership that changed; without
  `include_redundant_members`, those the device already has are left out
  (relay/sync/lazy_members.py). An unnamed room's heroes come with their members.
- The `summary` (counts, heroes when the room has no name nor canonical alias) comes
  when Synapse computes it: the room is new to the client, a membership is in the
  timeline, or a gap changed memberships; else it is `{}`.
- A redaction that does not apply (yet) is left out of the timeline, as a filter
  would leave it (`RoomService.held_redaction_txn`): when its target arrives later,
  the target comes redacted, and later reads carry the redaction.
- Non-state events sent by users in the reader's `m.ignored_user_list` are left out of
  the timeline (as a filter would leave them); their state events stay.
- History visibility is relay/rooms/visibility.py's one rule, checked per event against
  the state before it (`sees`: under `shared`, a user sees while joined now), and an
  erased sender's event comes pruned to a user who was not joined then (`as_seen`).

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3sync,
https://spec.matrix.org/v1.16/client-server-api/#history-visibility
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from relay.events.pdu import Pdu, strip_state_event
from relay.events.push_rules import (
    RoomLevel,
    has_own_message_rules,
    highlights,
    notifies,
    room_level,
)
from relay.rooms.filters import EventFilter, Filter
from relay.rooms.reads import EventView, view_txn
from relay.rooms.relations import aggregations_txn
from relay.rooms.service import RoomService
from relay.rooms.visibility import Viewer, as_seen, erased_senders_txn, known_visibility, sees
from relay.sync.account_data import ignored_users_txn
from relay.sync.lazy_members import SentMembers
from relay.sync.push_actions import PushEvaluator
from relay.sync.shared import SharedReads
from store import Connection
from store import account_data as store_account_data
from store import events as store_events
from store import receipts as store_receipts
from store import relations as store_relations
from store import remote_memberships as store_remote_memberships
from store import rooms as store_rooms
from store import state as store_state

PAGE = 50
#: The most events evaluated one by one for one room's counts (keyword and sender rules):
#: older unread events are counted by the room's level, as everyone's are.
MAX_EVALUATED = 200
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


def _thread_root(pdu: Pdu) -> str:
    """The root of the thread `pdu` is in ("" for the main timeline)."""
    relates = pdu.content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.thread":
        root = relates.get("event_id")
        if isinstance(root, str):
            return root
    return ""


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
        sent_members: SentMembers | None = None,
    ) -> None:
        """`shared`: what other builds already read (relay/sync/shared.py), for the
        snapshot at stream position `at`; None: everything read here. `sent_members`:
        the member events each device has (lazy loading); None: all are sent."""
        self.sent_members = sent_members
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
        self._push_evaluator: PushEvaluator | None = None
        self._evaluates: bool | None = None
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

    def seen(self, pdu: Pdu, joined_now: bool, erased: set[str]) -> Pdu | None:
        """`pdu` as the user may see it (pruned for an erased sender, `as_seen`), or None
        when hidden: the one rule of relay/rooms/visibility.py on the state before it."""
        own = pdu.type == "m.room.member" and pdu.state_key == self.user_id
        groups = store_state.get_event_state_groups(self.conn, pdu.event_id)
        visibility: Any
        membership: Any
        if groups is None:
            # No recorded state (should not happen for timeline events).
            visibility, membership = "shared", None
        elif self.shared is not None:
            inputs = self.shared.visibility_inputs(self.conn, self.rooms, groups[0])
            visibility = inputs.history_visibility
            membership = inputs.memberships.get(self.user_id)
        else:
            state = self._group(groups[0])
            visibility = self.content(state.get(("m.room.history_visibility", ""))).get(
                "history_visibility"
            )
            membership = self.content(state.get(("m.room.member", self.user_id))).get("membership")
        membership = membership if isinstance(membership, str) else None
        if own or sees(known_visibility(visibility), membership, peeking=not joined_now):
            return as_seen(pdu, membership, erased)
        return None

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
            pdus = {row["event_id"]: self.pdu(row["event_id"]) for row in page}
            erased = erased_senders_txn(self.conn, [p for p in pdus.values() if p is not None])
            for row in page:
                pdu = pdus[row["event_id"]]
                if pdu is None or not filt.allows(pdu.type, pdu.sender, pdu.content):
                    continue
                if pdu.sender in self.ignored and not pdu.is_state:
                    continue
                if self.rooms.held_redaction_txn(self.conn, pdu):
                    continue  # a redaction reaches clients only once it applies
                seen = self.seen(pdu, joined_now, erased)
                if seen is not None:
                    found.append(seen)
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

    def last_event_at(self, room_id: str, position: int) -> str | None:
        """The room's last timeline event at or before stream `position` (one row)."""
        rows = store_events.events_in_room_by_stream(
            self.conn, room_id, position, None, limit=1, direction="b"
        )
        return rows[0]["event_id"] if rows else None

    def state_at(self, room_id: str, position: int) -> Mapping[tuple[str, str], str]:
        """The room's state at stream `position`: after its last event there (as
        Synapse reads the state at a sync token)."""
        event_id = self.last_event_at(room_id, position)
        return (self.state_after(event_id) or {}) if event_id is not None else {}

    def _whole_gap_in_line(self, room_id: str, timeline: list[Pdu], since: int, to: int) -> bool:
        """Is the timeline every event of `(since, to]`, each on the one before it
        (no fork, nothing filtered or hidden)? Then the state did not change but by the
        timeline's own events (Synapse's "linear timeline" shortcut, which also
        demands that nothing follows the timeline)."""
        before = self.last_event_at(room_id, since)
        last = self.last_event_at(room_id, to)
        if not timeline:
            return last == before
        if timeline[-1].event_id != last:
            return False
        previous = before
        for pdu in timeline:
            if previous is None or pdu.prev_event_ids != (previous,):
                return False
            previous = pdu.event_id
        return True

    def state_ids(
        self,
        room_id: str,
        timeline: list[Pdu],
        end_state: Callable[[], Mapping[tuple[str, str], str]],
        since: int | None,
        full: bool,
        *,
        limited: bool,
        end: int,
    ) -> dict[tuple[str, str], str]:
        """The state section's entries (see the module docstring): `end_state` reads
        the state at the end of the timeline (`end`: its stream position)."""
        filt = self.filter.room.state
        if not filt.allows_room(room_id) or filt.is_empty_allow_list():
            return {}
        lazy = filt.lazy_load_members
        in_timeline = {pdu.event_id for pdu in timeline}
        # The timeline's senders whose membership the client needs (not already set by
        # an earlier event of the timeline), as Synapse's `members_to_fetch`.
        senders: set[str] = set()
        set_in_timeline: set[str] = set()
        for pdu in timeline:
            if pdu.sender not in set_in_timeline:
                senders.add(pdu.sender)
            if pdu.type == "m.room.member" and pdu.state_key is not None:
                set_in_timeline.add(pdu.state_key)
        wanted = senders | {self.user_id} if (full or since is None) else senders

        def lazy_filtered(state: Mapping[tuple[str, str], str]) -> dict[tuple[str, str], str]:
            return {k: v for k, v in state.items() if k[0] != "m.room.member" or k[1] in wanted}

        start: Mapping[tuple[str, str], str] | None = None
        if timeline:
            start = self.state_before(timeline[0].event_id)
        if not full and since is not None and not limited:
            if self._whole_gap_in_line(room_id, timeline, since, end):
                if not lazy or start is None:
                    return {}
                return {
                    ("m.room.member", user): eid
                    for user in senders
                    if (eid := start.get(("m.room.member", user))) is not None
                }
        end_map = end_state()
        if start is None:
            start = {key: eid for key, eid in end_map.items() if eid not in in_timeline}
        if full or since is None:
            start_ids = lazy_filtered(start) if lazy else dict(start)
            end_ids = lazy_filtered(end_map) if lazy else dict(end_map)
            previous: set[str] = set()
        else:
            start_ids = lazy_filtered(start) if lazy else dict(start)
            # As Synapse: a gap (limited) keeps every membership change in it, lazy or not.
            end_ids = lazy_filtered(end_map) if lazy and not limited else dict(end_map)
            prev = self.state_at(room_id, since)
            previous = set((lazy_filtered(prev) if lazy and not limited else prev).values())
            if lazy:
                # The senders' members come even when unchanged: the client may never
                # have had them (the sent-members record drops what it has).
                previous -= {eid for key, eid in start_ids.items() if key[0] == "m.room.member"}
        chosen: dict[tuple[str, str], str] = {}
        for key, eid in (*start_ids.items(), *end_ids.items()):
            if eid not in previous and eid not in in_timeline:
                chosen[key] = eid
        return chosen

    def _dedupes_members(self) -> bool:
        filt = self.filter.room.state
        return (
            self.sent_members is not None
            and filt.lazy_load_members
            and not filt.include_redundant_members
        )

    def _members_had(self, room_id: str, members: Mapping[str, str], since: int | None) -> set[str]:
        if since is None or self.sent_members is None or not self._dedupes_members():
            return set()
        return self.sent_members.had(self.user_id, self.device_id, room_id, members, since)

    def drop_members_had(
        self, room_id: str, chosen: dict[tuple[str, str], str], since: int | None
    ) -> None:
        """Lazy loading without `include_redundant_members`: leave out of `chosen` the
        member events the device had at `since` (relay/sync/lazy_members.py)."""
        members = {key[1]: eid for key, eid in chosen.items() if key[0] == "m.room.member"}
        for member in self._members_had(room_id, members, since):
            del chosen[("m.room.member", member)]

    def note_members_sent(
        self, room_id: str, chosen: Mapping[tuple[str, str], str], timeline: list[Pdu], at: int
    ) -> None:
        """Note the member events this answer (up to stream position `at`) carries."""
        if self.sent_members is None or not self._dedupes_members():
            return
        members = {key[1]: eid for key, eid in chosen.items() if key[0] == "m.room.member"}
        for pdu in timeline:
            if pdu.type == "m.room.member" and pdu.state_key is not None:
                members[pdu.state_key] = pdu.event_id
        self.sent_members.note_sent(self.user_id, self.device_id, room_id, members.items(), at)

    def state_views(self, chosen: Mapping[tuple[str, str], str]) -> list[EventView]:
        """The state section's events, as the state filter allows them."""
        filt = self.filter.room.state
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
        if self.evaluates_each_event():
            return self._evaluated_counts(room_id, read_up_to, to)
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

    def evaluates_each_event(self) -> bool:
        """Whether the user's keyword (content) or sender rules must be evaluated on each
        event: the room level cannot say what they match."""
        if self._evaluates is None:
            self._evaluates = has_own_message_rules(self.push_evaluator().ruleset)
        return self._evaluates

    def push_evaluator(self) -> PushEvaluator:
        if self._push_evaluator is None:
            self._push_evaluator = PushEvaluator(self.conn, self.rooms, self.user_id)
        return self._push_evaluator

    def evaluated_notifications(
        self, room_id: str, after: int, to: int
    ) -> list[tuple[str, int, bool, str]]:
        """`(event_id, stream_ordering, highlight, thread root or "")` of the events in
        `(after, to]` the user's rules say notify for, newest first; only the newest
        `MAX_EVALUATED` candidates are evaluated."""
        return self._evaluated(room_id, after, to)[0]

    def _evaluated(
        self, room_id: str, after: int, to: int
    ) -> tuple[list[tuple[str, int, bool, str]], int]:
        """`evaluated_notifications`, and the position below which nothing was evaluated
        (`after` when every candidate was)."""
        evaluator = self.push_evaluator()
        found = []
        candidates = store_events.notifying_events(
            self.conn, room_id, self.user_id, after, to, NOTIFYING_TYPES, MAX_EVALUATED
        )
        for event_id, stream, _mentioned in candidates:
            pdu = self.rooms.get_pdu_txn(self.conn, event_id)
            if pdu is None:
                continue
            actions = evaluator.actions(pdu)
            if notifies(actions):
                found.append((event_id, stream, highlights(actions), _thread_root(pdu)))
        floor = candidates[-1][1] - 1 if len(candidates) == MAX_EVALUATED else after
        return found, floor

    def _evaluated_counts(self, room_id: str, after: int, to: int) -> tuple[int, int]:
        """The counts by evaluation of the newest events; older ones (a long-unread room)
        by the room's level, bounding the work."""
        found, floor = self._evaluated(room_id, after, to)
        count, highlight = len(found), sum(1 for _, _, marked, _ in found if marked)
        if floor > after:
            older = store_events.count_unread(
                self.conn, room_id, self.user_id, after, floor, NOTIFYING_TYPES
            )
            more, more_highlights = self._as_level(room_id, older)
            count, highlight = count + more, highlight + more_highlights
        return count, highlight

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
        if self.evaluates_each_event():
            return self._evaluated_by_thread(room_id, read, floor, to)
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

    def _evaluated_by_thread(
        self, room_id: str, read: dict[str, int], floor: int, to: int
    ) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        """`unread_by_thread` for a user whose events are evaluated one by one."""
        counts: dict[str, tuple[int, int]] = {}
        for _, stream, highlight, root in self.evaluated_notifications(room_id, floor, to):
            if stream <= read.get(root or "main", floor):
                continue  # that thread's receipt reads it
            count, highlights_ = counts.get(root, (0, 0))
            counts[root] = (count + 1, highlights_ + int(highlight))
        main = counts.pop("", (0, 0))
        return main, counts

    def member_counts(self, room_id: str) -> tuple[int, int]:
        """(joined, invited) members of the room now."""
        if self.shared is not None and self.at is not None:
            members = self.shared.members(self.conn, room_id, self.at)
        else:
            members = store_rooms.members(self.conn, room_id)
        joined = sum(1 for m in members.values() if m == "join")
        return joined, sum(1 for m in members.values() if m == "invite")

    def heroes(self, room_id: str) -> list[str]:
        """The room's heroes for this user (spec "room summary"): the first members to
        have joined or been invited, in stream order, else those who left or were
        banned; never the user, at most `HEROES`."""
        rows = [
            (user, m)
            for user, m in store_rooms.first_members(self.conn, room_id, HEROES + 1)
            if user != self.user_id
        ]
        present = [user for user, m in rows if m in ("join", "invite")]
        gone = [user for user, m in rows if m in ("leave", "ban")]
        return (present or gone)[:HEROES]

    def summary(self, room_id: str) -> dict[str, Any]:
        """Counts and heroes, always all three (sliding sync picks from them)."""
        joined, invited = self.member_counts(room_id)
        return {
            "m.heroes": self.heroes(room_id),
            "m.joined_member_count": joined,
            "m.invited_member_count": invited,
        }

    def _named(self, room_id: str) -> bool:
        """Has the room a non-empty name or canonical alias (then no heroes)?"""
        for type_, key in (("m.room.name", "name"), ("m.room.canonical_alias", "alias")):
            eid = store_state.get_current_state_event_id(self.conn, room_id, type_, "")
            if eid is not None and self.content(eid).get(key):
                return True
        return False

    def sync_summary(
        self,
        room_id: str,
        chosen: dict[tuple[str, str], str],
        timeline: list[Pdu],
        *,
        fresh: bool,
        limited: bool,
        since: int | None,
    ) -> dict[str, Any]:
        """A joined room's `summary` in `/sync`, when Synapse computes it: the room is new
        to the client (`fresh`), a membership is in the timeline, or (a gap) in the state
        section; else `{}`. Without lazy loading too (the spec requires the counts
        whenever they changed; Synapse sends `{}` there). Heroes only for a room with
        no name nor canonical alias; with lazy loading their member events join the
        state section when the client lacks them (as Synapse's `compute_summary`)."""
        lazy = self.filter.room.state.lazy_load_members
        in_timeline = {p.state_key for p in timeline if p.type == "m.room.member"}
        in_state = any(key[0] == "m.room.member" for key in chosen)
        if not (fresh or in_timeline or (in_state and (limited or not lazy))):
            return {}
        joined, invited = self.member_counts(room_id)
        summary: dict[str, Any] = {
            "m.joined_member_count": joined,
            "m.invited_member_count": invited,
        }
        if self._named(room_id):
            return summary
        heroes = self.heroes(room_id)
        summary["m.heroes"] = heroes
        if lazy:
            missing: dict[str, str] = {}
            for hero in heroes:
                if hero in in_timeline or ("m.room.member", hero) in chosen:
                    continue
                eid = store_state.get_current_state_event_id(
                    self.conn, room_id, "m.room.member", hero
                )
                if eid is not None:
                    missing[hero] = eid
            had = self._members_had(room_id, missing, since)
            for hero, eid in missing.items():
                if hero not in had:
                    chosen[("m.room.member", hero)] = eid
        return summary

    def knock_state(self, room_id: str, knock_event_id: str) -> list[dict[str, Any]]:
        """The stripped state a client shows for a knock (plus the knock itself): a room
        of ours, from its current state; another server's, what it answered the knock."""
        knock = self.pdu(knock_event_id)
        state = store_state.get_current_state(self.conn, room_id)
        if state:
            ids = [state[(t, "")] for t in INVITE_STATE_TYPES if (t, "") in state]
            stripped = [strip_state_event(p) for p in map(self.pdu, ids) if p is not None]
        else:
            stripped = self._remote_stripped_state(room_id, "knock")
        if knock is not None:
            stripped.append(strip_state_event(knock))
        return stripped

    def _remote_stripped_state(self, room_id: str, membership: str) -> list[dict[str, Any]]:
        """The stripped state stored with the user's invite to (or knock on) a room of another
        server, without any member event of the user's own (the client is given the invite
        or knock itself); [] when the user's stored membership there is not this one."""
        stored = store_remote_memberships.get_remote_membership(self.conn, room_id, self.user_id)
        if stored is None or stored.membership != membership:
            return []
        stripped = [e for e in stored.stripped_state if isinstance(e, dict)]
        return [e for e in stripped if e.get("state_key") != self.user_id]

    def invite_is_ignored(self, invite_event_id: str) -> bool:
        """Was this invite sent by a user this user ignores? Such invites are left out of
        /sync and of sliding sync's lists, as Synapse leaves them out."""
        if not self.ignored:
            return False
        invite = self.pdu(invite_event_id)
        return invite is not None and invite.sender in self.ignored

    def invite_state(self, room_id: str, invite_event_id: str) -> list[dict[str, Any]]:
        """The stripped state a client shows for an invite (plus the invite itself)."""
        invite = self.pdu(invite_event_id)
        state = store_state.get_current_state(self.conn, room_id)
        if not state:
            # A room on another server: the stripped state its server sent with the invite.
            stripped = self._remote_stripped_state(room_id, "invite")
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


def allowed_ephemeral(filt: EventFilter, room_id: str, type_: str) -> bool:
    return filt.allows_room(room_id) and filt.allows_type(type_)
