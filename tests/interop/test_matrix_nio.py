"""Interop: a stock matrix-nio AsyncClient talks to the relay.

What it proves: two users of an unmodified matrix-nio (the Python client
library), against a real relay subprocess, can do what Element does for a
two-person chat, and nio parses every response into its typed models:

1. both log in with m.login.password;
2. A creates a room and invites B; B sees the invite in /sync and joins;
   A sees the join in /sync;
3. A and B exchange N messages each, interleaved (A0 B0 A1 B1 ...);
   B's /sync delivers them in order, each exactly once;
4. B paginates the whole history back with /messages (dir=b, limit 5, so
   several pages) from the end of the room to m.room.create, and finds every
   message exactly once, in send order;
5. A sets a display name; B sees A's updated m.room.member in /sync, in nio's
   own room state and in A's profile;
6. A starts typing; B sees m.typing naming A in /sync (ephemeral);
7. B sends a read receipt for A's last message; A sees m.receipt in /sync;
8. B leaves; A sees B's membership become "leave" in /sync.

nio is asyncio; the project's pytest runs async tests under trio, so the test
is a plain sync function that runs the scenario with asyncio.run.
`run_scenario` takes only a base URL and two accounts, so it can be pointed at
any homeserver (it passes against Synapse 1.163.2).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from nio import (
    AsyncClient,
    InviteMemberEvent,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    ReceiptEvent,
    RoomCreateEvent,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomLeaveResponse,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    RoomTypingResponse,
    SyncResponse,
    UpdateReceiptMarkerResponse,
)

from tests.integration.conftest import RelayProcess
from tests.interop.conftest import ChatPair, relay_log_tail

pytestmark = pytest.mark.integration

SYNC_DEADLINE_S = 20.0
PAGE_LIMIT = 5
SCENARIO_TIMEOUT_S = 180.0


class ScenarioFailure(AssertionError):
    def __init__(self, step: str, expected: str, seen: Any) -> None:
        text = seen if isinstance(seen, str) else json.dumps(seen, indent=1, default=repr)
        if len(text) > 6000:
            text = f"{text[:6000]}\n... ({len(text)} chars)"
        super().__init__(f"step: {step}\nexpected: {expected}\nseen:\n{text}")


class Scenario:
    """Step bookkeeping: the current step's name goes into every failure."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.current = "start"

    def step(self, name: str) -> None:
        self.current = name
        self.log(f"[nio] {name}")

    def fail(self, expected: str, seen: Any) -> ScenarioFailure:
        return ScenarioFailure(self.current, expected, seen)

    def expect(self, response: Any, kind: type, what: str) -> Any:
        """The response must be `kind`, else fail showing nio's error response."""
        if not isinstance(response, kind):
            raise self.fail(f"{what} ({kind.__name__})", repr(response))
        return response

    async def sync_until(
        self, client: AsyncClient, what: str, check: Callable[[SyncResponse], Any], room_id: str
    ) -> Any:
        """Sync `client` (from its next_batch) until `check` returns something truthy."""
        deadline = time.monotonic() + SYNC_DEADLINE_S
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            resp = self.expect(await client.sync(timeout=1000), SyncResponse, "a /sync response")
            found = check(resp)
            if found:
                return found
            part = _room_summary(resp, room_id)
            if part:
                seen.append(part)
        raise self.fail(
            f"{client.user_id} to see {what} in /sync within {SYNC_DEADLINE_S} s",
            {"syncs_with_room_data": seen[-5:]},
        )


def _source(event: Any) -> Any:
    return getattr(event, "source", None) or repr(event)


def _room_summary(resp: SyncResponse, room_id: str) -> dict[str, Any]:
    part: dict[str, Any] = {}
    if room_id in resp.rooms.invite:
        part["invite_state"] = [_source(e) for e in resp.rooms.invite[room_id].invite_state]
    for kind in ("join", "leave"):
        info = getattr(resp.rooms, kind).get(room_id)
        if info is not None:
            part[kind] = {
                "state": [_source(e) for e in info.state],
                "timeline": [_source(e) for e in info.timeline.events],
                "ephemeral": [repr(e) for e in getattr(info, "ephemeral", [])],
            }
    return part


def _joined_events(resp: SyncResponse, room_id: str) -> list[Any]:
    info = resp.rooms.join.get(room_id)
    return [] if info is None else [*info.state, *info.timeline.events]


def _ephemeral(resp: SyncResponse, room_id: str) -> list[Any]:
    info = resp.rooms.join.get(room_id)
    return [] if info is None else list(info.ephemeral)


def _member(events: Sequence[Any], user_id: str, membership: str, **content: Any) -> Any:
    for e in events:
        if (
            isinstance(e, RoomMemberEvent | InviteMemberEvent)
            and e.state_key == user_id
            and e.membership == membership
            and all(e.content.get(k) == v for k, v in content.items())
        ):
            return e
    return None


async def _login(sc: Scenario, client: AsyncClient, password: str) -> None:
    resp = await client.login(password, device_name="edge-relay interop (matrix-nio)")
    sc.expect(resp, LoginResponse, f"{client.user} to log in")


async def run_scenario(
    base_url: str,
    user_a: str,
    password_a: str,
    user_b: str,
    password_b: str,
    n: int = 20,
    log: Callable[[str], None] = print,
) -> None:
    """The whole scenario against `base_url`; raises ScenarioFailure on any deviation."""
    sc = Scenario(log)
    sc.step(f"log in {user_a} and {user_b} at {base_url}")
    a = AsyncClient(base_url, user_a)
    b = AsyncClient(base_url, user_b)
    try:
        await _login(sc, a, password_a)
        await _login(sc, b, password_b)
        await _chat(sc, a, b, n)
    finally:
        await a.close()
        await b.close()


async def _chat(sc: Scenario, a: AsyncClient, b: AsyncClient, n: int) -> None:
    if a.user_id == b.user_id:
        raise sc.fail("two different users", [a.user_id, b.user_id])

    sc.step("initial /sync for both")
    sc.expect(await a.sync(timeout=0), SyncResponse, "A's initial /sync")
    sc.expect(await b.sync(timeout=0), SyncResponse, "B's initial /sync")

    sc.step("A creates a room and invites B")
    created = sc.expect(
        await a.room_create(name="interop nio"), RoomCreateResponse, "the room to be created"
    )
    room_id = created.room_id
    sc.expect(await a.room_invite(room_id, b.user_id), RoomInviteResponse, "B to be invited")

    sc.step("B sees the invite in /sync")
    await sc.sync_until(
        b,
        f"an invite to {room_id}",
        lambda r: (
            room_id in r.rooms.invite
            and _member(r.rooms.invite[room_id].invite_state, b.user_id, "invite")
        ),
        room_id,
    )

    sc.step("B joins; A sees the join")
    sc.expect(await b.join(room_id), JoinResponse, "B to join")
    await sc.sync_until(
        a,
        f"{b.user_id} joined",
        lambda r: _member(_joined_events(r, room_id), b.user_id, "join"),
        room_id,
    )

    sc.step(f"A and B exchange {n} messages each, interleaved")
    sent: list[tuple[str, str]] = []  # (event_id, body) in send order
    for i in range(n):
        for client, tag in ((a, "A"), (b, "B")):
            body = f"{tag} message {i}"
            resp = sc.expect(
                await client.room_send(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": body}
                ),
                RoomSendResponse,
                f'"{body}" to be sent',
            )
            sent.append((resp.event_id, body))
    sent_ids = [event_id for event_id, _ in sent]
    if len(set(sent_ids)) != len(sent_ids):
        raise sc.fail("distinct event ids for every send", sent_ids)

    sc.step("B's /sync delivers the messages in order, each once")
    synced: list[str] = []

    def collect(resp: SyncResponse) -> bool:
        info = resp.rooms.join.get(room_id)
        events = [] if info is None else info.timeline.events
        synced.extend(e.event_id for e in events if isinstance(e, RoomMessageText))
        return sent_ids[-1] in synced

    await sc.sync_until(b, f"the last message {sent_ids[-1]}", collect, room_id)
    # A limited sync may skip older messages, but what arrives must be in order, once each.
    ours = [event_id for event_id in synced if event_id in sent_ids]
    if ours != sent_ids[len(sent_ids) - len(ours) :]:
        raise sc.fail(
            "synced messages to be a suffix of the sent ones, in order, no duplicates",
            {"sent": sent_ids, "synced": ours},
        )

    sc.step(f"B paginates the whole history back with /messages (limit {PAGE_LIMIT})")
    pages: list[dict[str, Any]] = []
    history: list[tuple[str, str]] = []  # newest first
    token = b.next_batch
    saw_create = False
    for _ in range(200):
        page = sc.expect(
            await b.room_messages(
                room_id, start=token, limit=PAGE_LIMIT, direction=MessageDirection.back
            ),
            RoomMessagesResponse,
            "a page of /messages",
        )
        pages.append(
            {"start": page.start, "end": page.end, "events": [type(e).__name__ for e in page.chunk]}
        )
        if len(page.chunk) > PAGE_LIMIT:
            raise sc.fail(f"at most {PAGE_LIMIT} events per page", pages)
        for e in page.chunk:
            if isinstance(e, RoomMessageText):
                history.append((e.event_id, e.body))
            saw_create = saw_create or isinstance(e, RoomCreateEvent)
        if not page.end or not page.chunk:
            break
        if page.end == token:
            raise sc.fail("the end token to move on between pages", pages)
        token = page.end
    history.reverse()
    if not saw_create:
        raise sc.fail("pagination to reach m.room.create", pages)
    if len(pages) < 3:
        raise sc.fail("several pages of history", pages)
    if history != sent:
        raise sc.fail(
            "every message exactly once, in send order",
            {"sent": sent, "paginated": history, "pages": pages},
        )
    sc.log(f"[nio]   {len(history)} messages over {len(pages)} pages")

    sc.step("A sets a display name; B sees the updated member event")
    # Unique per run: setting the same name again need not produce a new member event.
    name = f"A (nio {time.time_ns() % 10**9:x})"
    sc.expect(await a.set_displayname(name), ProfileSetDisplayNameResponse, "the name to be set")
    await sc.sync_until(
        b,
        f'{a.user_id}\'s m.room.member with displayname "{name}"',
        lambda r: _member(_joined_events(r, room_id), a.user_id, "join", displayname=name),
        room_id,
    )
    if b.rooms[room_id].user_name(a.user_id) != name:
        raise sc.fail(
            f'nio\'s room state to name A "{name}"', b.rooms[room_id].user_name(a.user_id)
        )
    profile = sc.expect(
        await b.get_displayname(a.user_id), ProfileGetDisplayNameResponse, "A's display name"
    )
    if profile.displayname != name:
        raise sc.fail(f'profile displayname "{name}"', repr(profile))

    sc.step("A starts typing; B sees m.typing")
    sc.expect(await a.room_typing(room_id, True, 20000), RoomTypingResponse, "typing to be sent")
    await sc.sync_until(
        b,
        f"m.typing with {a.user_id}",
        lambda r: any(a.user_id in getattr(e, "users", ()) for e in _ephemeral(r, room_id)),
        room_id,
    )
    sc.expect(await a.room_typing(room_id, False), RoomTypingResponse, "typing to stop")

    sc.step("B sends a read receipt; A sees m.receipt")
    last_from_a = next(event_id for event_id, body in reversed(sent) if body.startswith("A "))
    sc.expect(
        await b.update_receipt_marker(room_id, last_from_a),
        UpdateReceiptMarkerResponse,
        "the receipt to be sent",
    )
    await sc.sync_until(
        a,
        f"m.receipt m.read by {b.user_id} on {last_from_a}",
        lambda r: any(
            rc.event_id == last_from_a and rc.receipt_type == "m.read" and rc.user_id == b.user_id
            for e in _ephemeral(r, room_id)
            if isinstance(e, ReceiptEvent)
            for rc in e.receipts
        ),
        room_id,
    )

    sc.step("B leaves; A sees the leave")
    sc.expect(await b.room_leave(room_id), RoomLeaveResponse, "B to leave")
    await sc.sync_until(
        a,
        f'{b.user_id}\'s membership "leave"',
        lambda r: _member(_joined_events(r, room_id), b.user_id, "leave"),
        room_id,
    )
    sc.log("[nio] scenario passed")


def test_matrix_nio_two_person_chat(relay: RelayProcess, chat_pair: ChatPair) -> None:
    p = chat_pair
    try:
        asyncio.run(
            asyncio.wait_for(
                run_scenario(p.base_url, p.user_a, p.password_a, p.user_b, p.password_b),
                SCENARIO_TIMEOUT_S,
            )
        )
    except BaseException:
        print(f"--- relay log (tail) ---\n{relay_log_tail(relay)}")
        raise
