"""Presence: online / unavailable / offline and a status message, per local user.

Rules kept:

- A state change (`PUT /presence/{userId}/status`, or a client starting to sync while
  offline) is written on the shared stream, so syncing users sharing a room with the
  user see it in their next `/sync`. Refreshing "last active" while a client keeps
  syncing stays in memory: no write per sync.
- `set_presence` of `/sync`: absent or "online" marks an offline user online,
  "unavailable" marks them unavailable, "offline" leaves presence alone.
- Presence is visible to users who share a joined room with the user (and the user);
  anyone else gets 403 M_FORBIDDEN, whether or not the user exists, so presence doesn't
  reveal who has an account. A visible user who never set presence is `offline` (as
  Synapse); a string that is not a user id is 400 M_INVALID_PARAM.
- No idle timer yet: an online user stays online until a client says otherwise.

Spec: https://spec.matrix.org/v1.16/client-server-api/#presence
"""

from __future__ import annotations

import threading
from typing import Any

from relay.errors import Forbidden, InvalidParam
from relay.events.ids import parse_user_id
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from store import Connection
from store import events as store_events
from store import presence as store_presence
from store import rooms as store_rooms

STATES = ("online", "unavailable", "offline")
#: A user active within this long is `currently_active`.
CURRENTLY_ACTIVE_MS = 60_000


def presence_content(row: dict[str, Any], now: int, last_active: int | None) -> dict[str, Any]:
    """The `m.presence` content for a stored row (`last_active` from memory, if newer)."""
    active = max(row["last_active_ts"], last_active or 0)
    content: dict[str, Any] = {
        "presence": row["state"],
        "last_active_ago": max(0, now - active),
        "currently_active": row["state"] == "online" and now - active < CURRENTLY_ACTIVE_MS,
    }
    if row.get("status_msg") is not None:
        content["status_msg"] = row["status_msg"]
    return content


class PresenceService:
    def __init__(self, database: Database, notifier: Notifier) -> None:
        self.database = database
        self.notifier = notifier
        #: user_id -> last time a client of theirs synced or set presence (ms)
        self.last_active: dict[str, int] = {}
        #: user_id -> (stream position, state) of the newest stored row this process
        #: wrote or read (-1, None: no row). Only `set_status` writes presence rows and
        #: none is ever deleted, so the entry with the highest position is the stored
        #: row, whatever order writes and reads report in (`known_state`).
        self._stored: dict[str, tuple[int, str | None]] = {}
        #: Builds note what they read from worker threads.
        self._stored_lock = threading.Lock()

    async def set_status(
        self, user_id: str, state: str, status_msg: str | None, *, keep_msg: bool = False
    ) -> None:
        """Store the user's presence (keeping the old message if `keep_msg`)."""
        if state not in STATES:
            raise InvalidParam(f"presence must be one of {', '.join(STATES)}")
        now = now_ms()
        self.last_active[user_id] = now

        def txn(conn: Connection) -> int:
            message = status_msg
            if keep_msg:
                old = store_presence.get_presence(conn, user_id)
                message = old["status_msg"] if old else None
            position = store_events.next_stream_ordering(conn)
            store_presence.set_presence(
                conn,
                user_id=user_id,
                state=state,
                status_msg=message,
                last_active_ts=now,
                stream_ordering=position,
            )
            return position

        position = await self.database.write(txn)
        self._note_stored(user_id, position, state)
        self.notifier.on_stream(position)

    def _note_stored(self, user_id: str, position: int, state: str | None) -> None:
        with self._stored_lock:
            known = self._stored.get(user_id)
            if known is None or known[0] < position:
                self._stored[user_id] = (position, state)

    def known_state(self, user_id: str) -> tuple[bool, str | None]:
        """(known, state): the user's stored state if this process has seen it."""
        known = self._stored.get(user_id)
        return (False, None) if known is None else (True, known[1])

    async def get_status(self, requester: str, user_id: str) -> dict[str, Any]:
        try:
            parse_user_id(user_id)
        except ValueError:
            raise InvalidParam(f"{user_id!r} is not a user id") from None

        def txn(conn: Connection) -> dict[str, Any] | None:
            if requester != user_id and user_id not in store_rooms.users_sharing_rooms(
                conn, requester
            ):
                raise Forbidden("You are not allowed to see this user's presence")
            return store_presence.get_presence(conn, user_id)

        row = await self.database.read(txn)
        if row is None:
            return {"presence": "offline"}
        return presence_content(row, now_ms(), self.last_active.get(user_id))

    def touch(self, user_id: str, set_presence: str | None) -> bool:
        """A client of `user_id` is syncing with `set_presence`: refresh "last active" (in
        memory). False when `set_presence` is "offline" (the sync leaves presence alone)."""
        if set_presence == "offline":
            return False
        self.last_active[user_id] = now_ms()
        return True

    @staticmethod
    def state_to_write(set_presence: str | None, stored: str | None) -> str | None:
        """The state a sync with `set_presence` must store, given the `stored` one (None:
        never set, i.e. offline); None when it stays as it is."""
        if set_presence == "offline":
            return None
        wanted = set_presence or "online"
        current = stored or "offline"
        if current == wanted or (set_presence is None and current == "unavailable"):
            return None
        return wanted

    def stored_state_txn(self, conn: Connection, user_id: str) -> str | None:
        """The user's stored state, read in the caller's snapshot (sync's build)."""
        row = store_presence.get_presence(conn, user_id)
        if row is None:
            self._note_stored(user_id, -1, None)
            return None
        self._note_stored(user_id, row["stream_ordering"], row["state"])
        return str(row["state"])

    async def note_syncing(self, user_id: str, set_presence: str | None) -> None:
        """A client of `user_id` is syncing with `set_presence` (read and write apart from
        any sync build; `/sync` does the read in its build's snapshot instead)."""
        if not self.touch(user_id, set_presence):
            return
        stored = await self.database.read(self.stored_state_txn, user_id)
        await self.store_sync_state(user_id, set_presence, stored)

    async def store_sync_state(
        self, user_id: str, set_presence: str | None, stored: str | None
    ) -> bool:
        """Store what `state_to_write` says, keeping the status message; True if it wrote."""
        wanted = self.state_to_write(set_presence, stored)
        if wanted is None:
            return False
        await self.set_status(user_id, wanted, None, keep_msg=True)
        return True
