"""relay/sync/typing_notices.py: typing state, serials and timeouts (on trio's fake clock)."""

from __future__ import annotations

import trio

from relay.runtime.notifier import Notifier
from relay.sync.typing_notices import MAX_TIMEOUT_S, TypingService


async def test_typing_changes_bump_the_serial_and_mark_the_room() -> None:
    typing = TypingService(Notifier())
    typing.set_typing("!r:x", "@a:x", True, 10)
    snapshot = typing.snapshot(0)
    assert snapshot.typing == {"!r:x": ("@a:x",)}
    assert snapshot.changed == {"!r:x"}
    # Refreshing a typing user changes nothing a client can see.
    typing.set_typing("!r:x", "@a:x", True, 10)
    assert typing.snapshot(snapshot.serial).changed == frozenset()
    typing.set_typing("!r:x", "@a:x", False)
    after = typing.snapshot(snapshot.serial)
    assert after.changed == {"!r:x"}
    assert after.typing == {}


async def test_typing_expires_and_timeout_is_capped(autojump_clock: trio.abc.Clock) -> None:
    typing = TypingService(Notifier())
    typing.set_typing("!r:x", "@a:x", True, 5)
    typing.set_typing("!r:x", "@b:x", True, 10_000)
    assert typing.next_expiry() == trio.current_time() + 5
    await trio.sleep(6)
    assert typing.snapshot(0).typing == {"!r:x": ("@b:x",)}
    await trio.sleep(MAX_TIMEOUT_S)
    assert typing.typing_in("!r:x") == []
    typing.expire_due()
    assert typing.next_expiry() is None


async def test_token_from_before_a_restart_still_sees_typing() -> None:
    typing = TypingService(Notifier())
    typing.set_typing("!r:x", "@a:x", True, 10)
    assert typing.snapshot(since_serial=999).changed == {"!r:x"}
