"""End-to-end encryption between the relay and a real Synapse, through an outage.

matrix-nio clients with E2EE (vodozemac): `field` on the relay, `hq` on Synapse, in an
encrypted room. Proves, in order:

1. each decrypts the other's messages (keys queried and claimed over federation,
   room keys sent as to-device messages in `m.direct_to_device` EDUs);
2. the link is cut (both directions, fault proxies); both write; a new device is added
   on each side (`field2` on the relay, `hq2` on Synapse): their device list updates
   wait in the outboxes;
3. the link heals: every message written during the outage decrypts on both sides,
   each side sees the other's new device (EDU delivered, device list resynced), and
   messages sent after the heal decrypt on the new devices too.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.interop.nio_e2ee import E2eeClient, E2eeFailure, two_way_chat
from tests.synapse.test_outage import Link, start_link

pytestmark = pytest.mark.integration


async def _sees_device(client: E2eeClient, user_id: str, device_id: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if device_id in client.nio.device_store[user_id]:
            return
        await client.tick(500)
    known = list(client.nio.device_store[user_id].keys())
    raise E2eeFailure(f"{client.user_id} never saw {user_id}'s device {device_id}: {known}")


async def _scenario(link: Link, store: Path) -> None:
    log = print
    hq = E2eeClient(link.synapse.client_url, "hq", store / "hq", log)
    field = E2eeClient(link.relay.client_url, "field", store / "field", log)
    hq2 = E2eeClient(link.synapse.client_url, "hq", store / "hq2", log)
    field2 = E2eeClient(link.relay.client_url, "field", store / "field2", log)
    try:
        await hq.login("pw", "hq desk")
        await field.login("pw", "field phone")
        room_id = await hq.create_encrypted_room([field.user_id])
        await field.join(room_id)
        await hq.wait_for_members(room_id, [hq.user_id, field.user_id])
        await two_way_chat(hq, field, room_id, "before the cut")

        link.cut()
        offline_hq = [f"hq offline #{i}" for i in range(3)]
        offline_field = [f"field offline #{i}" for i in range(3)]
        for body in offline_hq:
            await hq.send(room_id, body)
        for body in offline_field:
            await field.send(room_id, body)
        await field2.login("pw", "field laptop (added offline)")
        await hq2.login("pw", "hq laptop (added offline)")
        await asyncio.sleep(2)

        link.heal()
        await field.wait_for_plaintexts(room_id, offline_hq, deadline_s=90)
        await hq.wait_for_plaintexts(room_id, offline_field, deadline_s=90)
        await _sees_device(hq, field.user_id, field2.nio.device_id, 90)
        await _sees_device(field, hq.user_id, hq2.nio.device_id, 90)

        after_hq = [f"hq after heal #{i}" for i in range(2)]
        after_field = [f"field after heal #{i}" for i in range(2)]
        for body in after_hq:
            await hq.send(room_id, body)
        for body in after_field:
            await field.send(room_id, body)
        for client in (field, field2):
            await client.wait_for_plaintexts(room_id, after_hq)
        for client in (hq, hq2):
            await client.wait_for_plaintexts(room_id, after_field)
        await field2.wait_for_plaintexts(room_id, after_hq)
    finally:
        for c in (hq, field, hq2, field2):
            await c.close()


def test_e2ee_across_an_outage_with_synapse(tmp_path: Path) -> None:
    link = start_link(tmp_path, fast_retry=True)
    try:
        link.synapse.register("hq")
        link.relay.cli("user", "add", "field", "--password", "pw")
        try:
            asyncio.run(asyncio.wait_for(_scenario(link, tmp_path / "nio"), 420))
        except AssertionError as exc:
            tail = "\n".join(link.relay.log().splitlines()[-60:])
            raise AssertionError(f"{exc}\n--- relay log ---\n{tail}") from None
    finally:
        link.relay.kill()
        link.synapse.kill()
        link.to_relay.stop()
        link.to_synapse.stop()
