"""Which member events each device already has, for lazy-loading sync.

With `lazy_load_members` (and not `include_redundant_members`) a sync sends a member
event only when the device does not have it yet (spec "Lazy-loading room members";
Synapse keeps the same record, `lazy_loaded_members_cache`). Here each record also
keeps the stream position of the answer that carried it: an event counts as had only
once the device synced from a token at or after that position, i.e. it took that
answer. A lost answer retried from the same token carries the members again (Synapse
would leave them out for good).

Rules kept:

- Memory only and bounded: at most `per_device` records per device (least recently
  sent go first) and `devices` devices (least recently syncing go first). Forgetting
  only makes a member event come again, which is harmless (a redundant member).
- An initial sync (no `since`) starts the device's record afresh: the client has no
  state, as Synapse assumes.
- Builds run in worker threads at once: one lock guards the dictionaries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

#: (room_id, member user_id) -> (event_id, stream position of the answer that carried it)
_Records = OrderedDict[tuple[str, str], tuple[str, int]]


class SentMembers:
    """One per relay (node.py gives it to SyncService)."""

    def __init__(self, *, per_device: int = 1000, devices: int = 1024) -> None:
        self.per_device = per_device
        self.devices = devices
        self._records: OrderedDict[tuple[str, str], _Records] = OrderedDict()
        self._lock = threading.Lock()

    def _device(self, user_id: str, device_id: str) -> _Records:
        key = (user_id, device_id)
        records = self._records.get(key)
        if records is None:
            records = self._records[key] = OrderedDict()
            while len(self._records) > self.devices:
                self._records.popitem(last=False)
        self._records.move_to_end(key)
        return records

    def forget_device(self, user_id: str, device_id: str) -> None:
        """An initial sync: the device starts with nothing."""
        with self._lock:
            self._records.pop((user_id, device_id), None)

    def had(
        self,
        user_id: str,
        device_id: str,
        room_id: str,
        candidates: Mapping[str, str],
        since: int,
    ) -> set[str]:
        """Which of `candidates` (`{member: event_id}` of the room) the device had at
        stream position `since`."""
        with self._lock:
            records = self._records.get((user_id, device_id))
            if records is None:
                return set()
            found = set()
            for member, event_id in candidates.items():
                known = records.get((room_id, member))
                if known is not None and known[0] == event_id and known[1] <= since:
                    found.add(member)
            return found

    def note_sent(
        self,
        user_id: str,
        device_id: str,
        room_id: str,
        members: Iterable[tuple[str, str]],
        at: int,
    ) -> None:
        """The answer ending at stream position `at` carries these `(member, event_id)`."""
        with self._lock:
            records = self._device(user_id, device_id)
            for member, event_id in members:
                key = (room_id, member)
                known = records.get(key)
                if known is not None and known[0] == event_id and known[1] <= at:
                    records.move_to_end(key)
                    continue  # had already (or sent earlier): keep the earlier position
                records[key] = (event_id, at)
                records.move_to_end(key)
            while len(records) > self.per_device:
                records.popitem(last=False)
