"""relay/runtime/clock.py: one calendar clock that every module reads and a test can fake."""

from __future__ import annotations

import time

from relay.federation import server_keys
from relay.runtime import clock
from relay.sync import presence


def test_now_ms_is_the_epoch_in_milliseconds() -> None:
    before = int(time.time() * 1000)
    now = clock.now_ms()
    assert before <= now <= int(time.time() * 1000)


def test_faked_reaches_modules_that_imported_now_ms_by_name() -> None:
    with clock.faked(lambda: 1_000.5):
        assert clock.now_ms() == 1_000_500
        assert presence.now_ms() == 1_000_500
        assert server_keys.now_ms() == 1_000_500
    assert clock.now_ms() > 1_000_500


def test_faked_restores_the_clock_after_an_error() -> None:
    try:
        with clock.faked(lambda: 0.0):
            raise ValueError
    except ValueError:
        pass
    assert clock.now_ms() > 0
