"""Wall-clock time for the whole relay: `now_ms()`, and a way for tests to fake it.

Every module that needs "now" as the spec's milliseconds since the epoch (origin_server_ts,
valid_until_ts, presence, receipts, expiry) calls `now_ms()` here, so a test can move
time for all of them at once with `faked(...)`. Durations and deadlines use trio's clock
(`trio.current_time()`), which tests fake with `autojump_clock`; this one is the calendar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_source: Callable[[], float] = time.time


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as the Matrix spec counts timestamps."""
    return int(_source() * 1000)


@contextmanager
def faked(source: Callable[[], float]) -> Iterator[None]:
    """Within the block, `now_ms()` reads `source()` (seconds since the epoch)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
