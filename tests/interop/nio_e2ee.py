"""An end-to-end encrypted chat between matrix-nio clients (vodozemac crypto), pointable
at any homeservers: the relay alone, or the relay and a real Synapse.

`E2eeClient` wraps one logged-in nio client with its own crypto store and does what
nio's `sync_forever` does each round (sync, send queued to-device messages, upload,
query and claim keys). `wait_for_plaintexts` syncs until every expected message has
been decrypted; an undecryptable one is reported with the session it needed, and
whether that session's key came later (nio does not decrypt an event again when its
key arrives: a server must hand out a room key no later than the events it unlocks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomKeyEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


class E2eeFailure(AssertionError):
    pass


class E2eeClient:
    def __init__(self, base_url: str, user: str, store: Path, log: Callable[[str], None]) -> None:
        store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
        self.nio = AsyncClient(base_url, user, store_path=str(store), config=config)
        self.log = log
        #: room_id -> plaintext bodies decrypted so far, and bodies that failed.
        self.plain: dict[str, list[str]] = {}
        self.undecrypted: dict[str, list[str]] = {}
        #: Megolm sessions whose key came in a later /sync than an event needing it.
        self.late_keys: set[str] = set()

    @property
    def user_id(self) -> str:
        return self.nio.user_id

    async def login(self, password: str, device_name: str) -> None:
        resp = await self.nio.login(password, device_name=device_name)
        if not isinstance(resp, LoginResponse):
            raise E2eeFailure(f"{self.nio.user} could not log in: {resp!r}")
        await self.tick(0)

    async def tick(self, timeout_ms: int = 500) -> SyncResponse:
        resp = await self.nio.sync(timeout=timeout_ms, full_state=False)
        if not isinstance(resp, SyncResponse):
            raise E2eeFailure(f"{self.user_id} sync failed: {resp!r}")
        waiting = {s for sessions in self.undecrypted.values() for s in sessions}
        for event in resp.to_device_events:
            if isinstance(event, RoomKeyEvent) and event.session_id in waiting:
                self.late_keys.add(event.session_id)
        for room_id, info in resp.rooms.join.items():
            for event in info.timeline.events:
                if isinstance(event, RoomMessageText):
                    self.plain.setdefault(room_id, []).append(event.body)
                elif isinstance(event, MegolmEvent):
                    self.undecrypted.setdefault(room_id, []).append(event.session_id)
        await self.nio.send_to_device_messages()
        if self.nio.should_upload_keys:
            await self.nio.keys_upload()
        if self.nio.should_query_keys:
            await self.nio.keys_query()
        if self.nio.should_claim_keys:
            await self.nio.keys_claim(self.nio.get_users_for_key_claiming())
        return resp

    async def create_encrypted_room(self, invite: list[str]) -> str:
        resp = await self.nio.room_create(name="e2ee", initial_state=[ENCRYPTION])
        if not isinstance(resp, RoomCreateResponse):
            raise E2eeFailure(f"room create failed: {resp!r}")
        for user_id in invite:
            await self.invite(resp.room_id, user_id)
        return resp.room_id

    async def invite(self, room_id: str, user_id: str) -> None:
        resp = await self.nio.room_invite(room_id, user_id)
        if not isinstance(resp, RoomInviteResponse):
            raise E2eeFailure(f"invite failed: {resp!r}")

    async def join(self, room_id: str, deadline_s: float = 60) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            resp = await self.nio.join(room_id)
            if isinstance(resp, JoinResponse):
                await self.tick(0)
                return
            await self.tick(500)
        raise E2eeFailure(f"{self.user_id} could not join {room_id}: {resp!r}")

    async def send(self, room_id: str, body: str) -> None:
        """Send an encrypted text message (nio shares the room key first if needed)."""
        await self.tick(0)
        resp = await self.nio.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        )
        if not isinstance(resp, RoomSendResponse):
            raise E2eeFailure(f"{self.user_id} could not send {body!r}: {resp!r}")
        self.log(f"[e2ee] {self.user_id} sent {body!r}")

    async def wait_for_members(self, room_id: str, users: list[str], deadline_s: float = 60):
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            room = self.nio.rooms.get(room_id)
            if room is not None and all(u in room.users for u in users):
                return
            await self.tick(500)
        room = self.nio.rooms.get(room_id)
        raise E2eeFailure(f"{self.user_id} never saw {users} in {room_id}: {room and room.users}")

    async def wait_for_plaintexts(
        self, room_id: str, bodies: list[str], deadline_s: float = 60
    ) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if set(bodies) <= set(self.plain.get(room_id, [])):
                return
            await self.tick(500)
        raise E2eeFailure(
            f"{self.user_id} decrypted {self.plain.get(room_id)}, expected {bodies};"
            f" undecryptable sessions: {self.undecrypted.get(room_id)};"
            f" of those, keys that came after their events: {sorted(self.late_keys)}"
        )

    async def close(self) -> None:
        await self.nio.close()


async def two_way_chat(
    a: E2eeClient, b: E2eeClient, room_id: str, tag: str, n: int = 2
) -> list[str]:
    """A and B each send `n` messages; each decrypts all of the other's. Returns them."""
    a_msgs = [f"{tag} from A #{i}" for i in range(n)]
    b_msgs = [f"{tag} from B #{i}" for i in range(n)]
    for body in a_msgs:
        await a.send(room_id, body)
    await b.wait_for_plaintexts(room_id, a_msgs)
    for body in b_msgs:
        await b.send(room_id, body)
    await a.wait_for_plaintexts(room_id, b_msgs)
    return a_msgs + b_msgs


def summary(client: E2eeClient, room_id: str) -> dict[str, Any]:
    return {
        "user": client.user_id,
        "device": client.nio.device_id,
        "plain": client.plain.get(room_id),
        "undecrypted": client.undecrypted.get(room_id),
    }
