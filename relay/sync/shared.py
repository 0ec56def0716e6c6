"""What every long-poller of a room reads alike, read once and shared across sync builds.

When a message lands in a room that 50 people long-poll, 50 sync builds wake and each
asks the same questions of the same snapshot: the state before the event (a state
group: also what the state section compares), who was a member then and the history
visibility (to decide who sees it), and the room's members (the summary).
`SharedReads` answers each once; the per-user parts (the user's own membership,
receipts, account data) stay in the builder, but for the unread counts, which it keeps
per user and room and brings up to date with what came since.

Rules kept (a cache here must never answer what a fresh read would not):

- A state group is immutable once committed (groups are only ever inserted, and a
  reader never sees an uncommitted one), and so are the `membership` and
  `history_visibility` of an event's content (redaction keeps both keys): entries keyed
  by group id alone are never stale.
- What a write can change is keyed by the snapshot's stream position `to`
  (`store.events.max_stream_ordering`): every write that changes memberships or moves an
  event's stream position to where a sync looks (a new event, a promoted outlier) takes
  a new position, so an entry of an older snapshot is never asked for again.
- Bounded: least recently used entries go once their weight (state entries, members)
  passes a fixed budget, so big rooms cannot hold more memory than small ones. Builds run in worker
  threads at once: one lock guards the dictionaries (the reads happen outside it; two
  builds may compute the same entry, both right).

tests/client/test_sync_shared_reads.py compares builds with and without this cache on random
room histories.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from relay.rooms.service import RoomService
from store import Connection
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state

StateMap = Mapping[tuple[str, str], str]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VisibilityInputs:
    """What deciding visibility needs from the state before an event: the raw
    `history_visibility` ("shared" when unset) and each user's raw `membership`."""

    history_visibility: Any
    memberships: Mapping[str, Any]


class _Lru:
    """Least recently used entries go once the entries' total weight passes `budget`
    (a state map weighs its number of entries: a 500-member room's group is worth 500
    of a 5-member room's, so the memory held stays bounded whatever the rooms' sizes)."""

    def __init__(self, budget: int, weigh: Callable[[Any], int] = lambda value: 1) -> None:
        self.budget = budget
        self.weigh = weigh
        self.weight = 0
        self.entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def peek(self, key: Hashable) -> Any:
        with self.lock:
            found = self.entries.get(key)
            return None if found is None else found[0]

    def put(self, key: Hashable, value: Any) -> None:
        weight = self.weigh(value)
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self.entries[key] = (value, weight)
            self.weight += weight
            while self.weight > self.budget and len(self.entries) > 1:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.weight -= dropped

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found[0]
        value = make()
        self.put(key, value)
        return value


def _entries(value: Any) -> int:
    return len(value) + 1


def _visibility_entries(value: VisibilityInputs) -> int:
    return len(value.memberships) + 1


class SharedReads:
    """One per relay (node.py gives it to SyncService)."""

    def __init__(
        self,
        *,
        groups: int = 64_000,
        members: int = 32_000,
        unread: int = 4096,
    ) -> None:
        """Budgets in state entries (memberships for `members`; entries for `unread`):
        ~300 bytes each, so the state maps stay within ~20 MiB and the rest far below."""
        self._groups = _Lru(groups, _entries)
        self._visibility = _Lru(groups, _visibility_entries)
        self._members = _Lru(members, _entries)
        self._unread = _Lru(unread)

    def state_group(self, conn: Connection, group: int) -> StateMap:
        """The state map of `group` (read-only: shared by every build)."""
        return self._groups.get_or_make(group, lambda: store_state.load_state_group(conn, group))

    def visibility_inputs(
        self, conn: Connection, rooms: RoomService, group: int
    ) -> VisibilityInputs:
        def make() -> VisibilityInputs:
            state = self.state_group(conn, group)

            def content(event_id: str | None) -> Mapping[str, Any]:
                pdu = rooms.get_pdu_txn(conn, event_id) if event_id else None
                return pdu.content if pdu is not None else {}

            return VisibilityInputs(
                content(state.get(("m.room.history_visibility", ""))).get(
                    "history_visibility", "shared"
                ),
                {
                    key: content(event_id).get("membership")
                    for (type_, key), event_id in state.items()
                    if type_ == "m.room.member"
                },
            )

        return self._visibility.get_or_make(group, make)

    def members(self, conn: Connection, room_id: str, to: int) -> Mapping[str, str]:
        """`{user_id: membership}` of the room at position `to`."""
        return self._members.get_or_make((room_id, to), lambda: store_rooms.members(conn, room_id))

    def count_unread(
        self,
        conn: Connection,
        room_id: str,
        user_id: str,
        after: int,
        to: int,
        types: tuple[str, ...],
    ) -> tuple[int, int]:
        """`store.events.count_unread` over `(after, to]`, counted incrementally: the
        counts a previous build took up to `to0 <= to` plus those of `(to0, to]`. Exact
        because an event that counts is stored at a position above every snapshot's
        before it, and nothing that decides whether it counts changes afterwards (a
        promoted outlier takes a new position; backfill goes below every `after`)."""
        key = (room_id, user_id, after, types)
        known = self._unread.peek(key)
        if known is not None and known[0] <= to:
            upto, counts = known
            if upto < to:
                more = store_events.count_unread(conn, room_id, user_id, upto, to, types)
                counts = (counts[0] + more[0], counts[1] + more[1])
        else:
            counts = store_events.count_unread(conn, room_id, user_id, after, to, types)
        if known is None or known[0] < to:
            self._unread.put(key, (to, counts))
        return counts
