"""End-to-end encryption between two relays: remote key query and claim, to-device
messages and device list updates over federation; then two matrix-nio E2EE clients,
one per relay, decrypting each other."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nacl.signing
import pytest

from tests.client.e2ee_helpers import device_keys, sign
from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser
from tests.interop.nio_e2ee import E2eeClient, two_way_chat
from tests.support import wait_until

pytestmark = pytest.mark.integration


def _shared_room(alice: MatrixUser, bob: MatrixUser) -> str:
    room_id = alice.create_room(name="keys")
    alice.invite(room_id, bob.user_id)
    bob.wait_for_invite(room_id)
    bob.join(room_id)
    alice.wait_for(
        lambda b: any(
            e.get("state_key") == bob.user_id
            for e in b.get("rooms", {})
            .get("join", {})
            .get(room_id, {})
            .get("timeline", {})
            .get("events", [])
        ),
        what="bob's join",
    )
    return room_id


def _upload(user: MatrixUser) -> tuple[str, dict]:
    """Upload a device's keys and one signed one-time key; the device id and that key."""
    device_id = user.call("GET", "/account/whoami")["device_id"]
    signing_key = nacl.signing.SigningKey.generate()
    keys = device_keys(user.user_id, device_id, signing_key)
    otk = sign({"key": "otk"}, user.user_id, f"ed25519:{device_id}", signing_key)
    user.call(
        "POST",
        "/keys/upload",
        json={"device_keys": keys, "one_time_keys": {"signed_curve25519:K1": otk}},
    )
    return device_id, otk


def test_keys_to_device_and_device_lists_cross_relays(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    _shared_room(alice, bob)
    bob_device, bob_otk = _upload(bob)

    got = alice.call("POST", "/keys/query", json={"device_keys": {bob.user_id: []}})
    assert list(got["device_keys"][bob.user_id]) == [bob_device], got
    claimed = alice.call(
        "POST",
        "/keys/claim",
        json={"one_time_keys": {bob.user_id: {bob_device: "signed_curve25519"}}},
    )
    assert claimed["one_time_keys"][bob.user_id][bob_device] == {"signed_curve25519:K1": bob_otk}, (
        claimed
    )

    alice.call(
        "PUT",
        "/sendToDevice/m.test/t1",
        json={"messages": {bob.user_id: {bob_device: {"secret": "hi"}}}},
    )
    body = bob.wait_for(lambda s: s["to_device"]["events"], what="the to-device message")
    assert body["to_device"]["events"] == [
        {"sender": alice.user_id, "type": "m.test", "content": {"secret": "hi"}}
    ]

    # Bob adds a device: alice hears of it (m.device_list_update) and sees it on query.
    alice.sync(0)
    bob2 = MatrixUser.login(b.client_url, "bob")
    second, _ = _upload(bob2)
    alice.wait_for(
        lambda s: bob.user_id in s["device_lists"]["changed"], what="bob in device_lists.changed"
    )

    # The login and the key upload each send an update: the first may be the one heard.
    def both_devices() -> bool:
        got = alice.call("POST", "/keys/query", json={"device_keys": {bob.user_id: []}})
        return sorted(got["device_keys"][bob.user_id]) == sorted([bob_device, second])

    wait_until(both_devices, 60, "both of bob's devices in alice's key query")


def test_nio_e2ee_across_two_relays(
    two_relays: tuple[RelayProcess, RelayProcess], tmp_path: Path
) -> None:
    a, b = two_relays

    async def scenario() -> None:
        alice = E2eeClient(a.client_url, "alice", tmp_path / "alice", print)
        bob = E2eeClient(b.client_url, "bob", tmp_path / "bob", print)
        try:
            await alice.login("pw", "alice phone")
            await bob.login("pw", "bob phone")
            room_id = await alice.create_encrypted_room([bob.user_id])
            await bob.join(room_id)
            await alice.wait_for_members(room_id, [alice.user_id, bob.user_id])
            await two_way_chat(alice, bob, room_id, "across relays", n=3)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(asyncio.wait_for(scenario(), 180))
