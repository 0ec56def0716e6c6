"""Wakes `/sync` long-polls when something new is committed.

Every change a sync can report (events, account data, receipts) takes a
position on the store's one stream; typing is in memory and bumps its own
serial. Waiters sleep until either moves past what they have seen.
"""

from __future__ import annotations

import trio


class Notifier:
    def __init__(self, stream_position: int = 0) -> None:
        self.stream_position = stream_position
        self.typing_serial = 0
        self._changed = trio.Event()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def on_stream(self, position: int) -> None:
        """Something was committed at `position` on the store's stream."""
        if position > self.stream_position:
            self.stream_position = position
        self._wake()

    def on_typing(self) -> None:
        self.typing_serial += 1
        self._wake()

    async def wait_for_change(self, stream_since: int, typing_since: int, timeout_s: float) -> None:
        """Return once the stream or typing moved past the given positions, or on timeout."""
        with trio.move_on_after(timeout_s):
            while self.stream_position <= stream_since and self.typing_serial <= typing_since:
                await self._changed.wait()
