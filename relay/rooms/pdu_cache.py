"""The rooms core's cache of stored events: events never change once stored."""

from __future__ import annotations

import threading
from collections import OrderedDict

from relay.events.pdu import Pdu
from relay.runtime.database import after_commit

#: A stored event takes ~4.4 kB here (its raw bytes and the parsed dict beside them):
#: 20,000 of them were ~85 MiB, most of the relay's growth over a long history. 4,096
#: (~18 MiB) hold what is read often: the newest events of each room, the state and
#: auth events every send checks against, and the ~3,500 state and timeline events of
#: an initial sync in 500 rooms (at 2,048 that sync re-read and re-checked most of
#: them: 113 -> 401 ms of CPU per build). An old event read again (a deep /messages
#: page) is parsed again from the store.
PDU_CACHE_SIZE = 4_096


class PduCache:
    """A bounded, thread-safe event_id -> Pdu cache (events never change once stored).

    Only committed events enter it: `put` inside a write transaction takes effect once
    that write has committed, and never if it rolls back (`after_commit`), so a failed
    write leaves no event behind that the database does not hold.
    """

    def __init__(self, size: int = PDU_CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[str, Pdu] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, event_id: str) -> Pdu | None:
        with self._lock:
            pdu = self._items.get(event_id)
            if pdu is not None:
                self._items.move_to_end(event_id)
            return pdu

    def __len__(self) -> int:
        return len(self._items)

    def put(self, pdu: Pdu) -> None:
        after_commit(lambda: self._put_now(pdu))

    def _put_now(self, pdu: Pdu) -> None:
        with self._lock:
            self._items[pdu.event_id] = pdu
            self._items.move_to_end(pdu.event_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
