"""Interop: two matrix-nio clients with end-to-end encryption (vodozemac) on one relay.

What it proves: keys upload/query/claim, to-device olm messages carrying the megolm
room key, device lists in /sync, all as a stock E2EE client uses them: each side
decrypts every message of the other; a second device of B, logged in later, gets the
room key for what is sent after it appeared and decrypts it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.conftest import RelayProcess
from tests.interop.conftest import ChatPair, relay_log_tail
from tests.interop.nio_e2ee import E2eeClient, two_way_chat

pytestmark = pytest.mark.integration


async def _scenario(pair: ChatPair, store: Path) -> None:
    a = E2eeClient(pair.base_url, pair.user_a, store / "a", print)
    b = E2eeClient(pair.base_url, pair.user_b, store / "b", print)
    b2 = E2eeClient(pair.base_url, pair.user_b, store / "b2", print)
    try:
        await a.login(pair.password_a, "A phone")
        await b.login(pair.password_b, "B phone")
        room_id = await a.create_encrypted_room([b.user_id])
        await b.join(room_id)
        await a.wait_for_members(room_id, [a.user_id, b.user_id])
        await two_way_chat(a, b, room_id, "hello")
        # B adds a device: A's next messages reach it too.
        await b2.login(pair.password_b, "B laptop")
        await b2.tick(0)
        later = ["after the new device #0", "after the new device #1"]
        await a.tick(0)  # sees B's device list change, queries keys
        for body in later:
            await a.send(room_id, body)
        await b2.wait_for_plaintexts(room_id, later)
        await b.wait_for_plaintexts(room_id, later)
    finally:
        for c in (a, b, b2):
            await c.close()


def test_nio_e2ee_on_one_relay(chat_pair: ChatPair, relay: RelayProcess, tmp_path: Path) -> None:
    try:
        asyncio.run(asyncio.wait_for(_scenario(chat_pair, tmp_path / "nio"), 180))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- relay log ---\n{relay_log_tail(relay)}") from None
