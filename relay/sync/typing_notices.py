"""Typing notifications: who is typing in which room, in memory only.

Rules kept:

- A user types in a room until they say they stopped or their timeout (capped at
  `MAX_TIMEOUT_S`) runs out; nothing is written to disk.
- Every change bumps the notifier's typing serial, and each room remembers the
  serial of its last change, so a sync whose token carries serial N reports the
  rooms whose typing changed after N.
- Expiry is lazy: `expire_due()` drops what timed out (bumping the serial when it
  did); a waiting sync never sleeps past `next_expiry()` so a stop is seen on time.
  Time is trio's clock, so tests can use `autojump_clock`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#typing-notifications
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from relay.runtime.notifier import Notifier

MAX_TIMEOUT_S = 120.0
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class TypingSnapshot:
    """Typing as a sync sees it, copied on the trio thread before the store read."""

    serial: int
    #: room_id -> users typing now
    typing: dict[str, tuple[str, ...]]
    #: rooms whose typing changed after the sync's `since` serial
    changed: frozenset[str]

    def typers(self, room_id: str, ignored: frozenset[str]) -> list[str]:
        """Who is typing in the room, as a user who ignores `ignored` is told."""
        return [u for u in self.typing.get(room_id, ()) if u not in ignored]


class TypingService:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        #: room_id -> {user_id: deadline (trio time)}
        self._typing: dict[str, dict[str, float]] = {}
        #: room_id -> typing serial of its last change
        self._changed_at: dict[str, int] = {}

    def set_typing(
        self, room_id: str, user_id: str, typing: bool, timeout_s: float | None = None
    ) -> None:
        self.expire_due()
        users = self._typing.setdefault(room_id, {})
        if typing:
            timeout = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
            changed = user_id not in users
            users[user_id] = trio.current_time() + max(0.0, min(timeout, MAX_TIMEOUT_S))
        else:
            changed = users.pop(user_id, None) is not None
        if not users:
            del self._typing[room_id]
        if changed:
            self._bump([room_id])

    def typing_in(self, room_id: str) -> list[str]:
        """Users typing in the room now, sorted."""
        self.expire_due()
        return sorted(self._typing.get(room_id, ()))

    def changed_since(self, room_id: str, serial: int) -> bool:
        """Did the room's typing change after typing serial `serial`?"""
        if serial > self.notifier.typing_serial:
            # A token from before a restart: the serial started again from 0.
            return room_id in self._changed_at or room_id in self._typing
        return self._changed_at.get(room_id, 0) > serial

    def snapshot(self, since_serial: int) -> TypingSnapshot:
        self.expire_due()
        return TypingSnapshot(
            serial=self.notifier.typing_serial,
            typing={room: tuple(sorted(users)) for room, users in self._typing.items()},
            changed=frozenset(
                room
                for room in {*self._changed_at, *self._typing}
                if self.changed_since(room, since_serial)
            ),
        )

    def next_expiry(self) -> float | None:
        """The trio time at which the next typing notification runs out, if any."""
        deadlines = [d for users in self._typing.values() for d in users.values()]
        return min(deadlines, default=None)

    def expire_due(self) -> None:
        now = trio.current_time()
        expired: list[str] = []
        for room_id, users in list(self._typing.items()):
            for user_id, deadline in list(users.items()):
                if deadline <= now:
                    del users[user_id]
                    expired.append(room_id)
            if not users:
                del self._typing[room_id]
        if expired:
            self._bump(expired)

    def _bump(self, room_ids: list[str]) -> None:
        self.notifier.on_typing()
        for room_id in room_ids:
            self._changed_at[room_id] = self.notifier.typing_serial
