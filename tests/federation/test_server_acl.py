"""Server ACLs enforced on what other servers ask of us, through the real federation app in
process: in a room whose `m.room.server_acl` denies ELSEWHERE (Erin's server), ELSEWHERE's
requests about the room are 403 `M_FORBIDDEN`, its PDUs in /send are ignored with a
forbidden result, its typing and receipts are dropped; REMOTE (Carol's and Dave's server,
allowed) gets the same requests answered. An ACL change applies to the next request. Our
own sending still reaches a denied resident (the spec's "should still send")."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from relay.events.pdu import Pdu
from relay.runtime.clock import now_ms
from store import events as store_events
from store import outbox as store_outbox
from store import receipts as store_receipts
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import V1, V2, SignedPeer, federation_http, trust_key
from tests.rooms.remote_rooms import (
    ALICE,
    CAROL,
    ELSEWHERE,
    ELSEWHERE_KEY,
    ERIN,
    REMOTE,
    REMOTE_KEY,
    build,
    local_message,
    shared_room,
)

VERSION = "11"
FORBIDDEN = {"errcode": "M_FORBIDDEN", "error": "Server is banned from room"}
#: Denies ELSEWHERE, written in another case than its name (the match ignores case).
DENY_ELSEWHERE = {"allow": ["*"], "deny": [ELSEWHERE.upper(), f"*.{ELSEWHERE}"]}


@dataclass
class Setup:
    api: ClientApi
    room_id: str
    message: str
    #: REMOTE: allowed. ELSEWHERE: denied.
    remote: SignedPeer
    elsewhere: SignedPeer

    def peer(self, allowed: bool) -> SignedPeer:
        return self.remote if allowed else self.elsewhere


@pytest.fixture
async def fed(api: ClientApi) -> AsyncIterator[httpx.AsyncClient]:
    async with federation_http(api) as http:
        yield http


async def _set_acl(api: ClientApi, room_id: str, content: dict[str, Any]) -> None:
    await api.services.rooms.send_event(
        ALICE, None, room_id, "m.room.server_acl", content, state_key=""
    )


@pytest.fixture
async def setup(api: ClientApi, fed: httpx.AsyncClient) -> Setup:
    """Alice's room, joined by Carol and Dave (REMOTE) and Erin (ELSEWHERE); Alice's message;
    then an ACL denying ELSEWHERE."""
    for name, key in ((REMOTE, REMOTE_KEY), (ELSEWHERE, ELSEWHERE_KEY)):
        await trust_key(api, name, key)
    room_id = await shared_room(api, VERSION)
    message = await local_message(api, room_id, "hello")
    await _set_acl(api, room_id, DENY_ELSEWHERE)
    return Setup(
        api,
        room_id,
        message,
        SignedPeer(REMOTE, REMOTE_KEY, fed),
        SignedPeer(ELSEWHERE, ELSEWHERE_KEY, fed),
    )


def _user(allowed: bool, localpart: str) -> str:
    return f"@{localpart}:{REMOTE if allowed else ELSEWHERE}"


def _member(allowed: bool) -> str:
    """A user of the asking server who is in the room."""
    return CAROL if allowed else ERIN


def _forbidden(r: httpx.Response) -> None:
    assert (r.status_code, r.json()) == (403, FORBIDDEN), r.text


BOTH = pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "denied"])


# -- requests about the room's events -------------------------------------------------------


def _reads(s: Setup) -> dict[str, tuple[str, str, dict[str, Any], Any]]:
    room, event = quote(s.room_id), quote(s.message)
    return {
        "event": ("GET", f"{V1}/event/{event}", {}, None),
        "state": ("GET", f"{V1}/state/{room}", {"event_id": s.message}, None),
        "state_ids": ("GET", f"{V1}/state_ids/{room}", {"event_id": s.message}, None),
        "event_auth": ("GET", f"{V1}/event_auth/{room}/{event}", {}, None),
        "backfill": ("GET", f"{V1}/backfill/{room}", {"v": s.message, "limit": "5"}, None),
        "get_missing_events": (
            "POST",
            f"{V1}/get_missing_events/{room}",
            {},
            {"earliest_events": [], "latest_events": [s.message], "limit": 5},
        ),
        "timestamp_to_event": (
            "GET",
            f"{V1}/timestamp_to_event/{room}",
            {"ts": str(now_ms()), "dir": "b"},
            None,
        ),
    }


READS = [
    "event",
    "state",
    "state_ids",
    "event_auth",
    "backfill",
    "get_missing_events",
    "timestamp_to_event",
]


@BOTH
@pytest.mark.parametrize("endpoint", READS)
async def test_reads_of_the_room_are_forbidden_to_a_denied_server(
    setup: Setup, endpoint: str, allowed: bool
) -> None:
    method, path, query, body = _reads(setup)[endpoint]
    r = await setup.peer(allowed).request(method, path, query=query, json_body=body)
    if allowed:
        assert r.status_code == 200, r.text
    else:
        _forbidden(r)


async def test_an_acl_change_applies_to_the_next_request(setup: Setup) -> None:
    path = f"{V1}/state_ids/{quote(setup.room_id)}"
    query = {"event_id": setup.message}
    _forbidden(await setup.elsewhere.request("GET", path, query=query))
    await _set_acl(setup.api, setup.room_id, {"allow": ["*"]})
    r = await setup.elsewhere.request("GET", path, query=query)
    assert r.status_code == 200, r.text
    await _set_acl(setup.api, setup.room_id, {"allow": [REMOTE, SERVER_NAME]})  # allow-list
    _forbidden(await setup.elsewhere.request("GET", path, query=query))
    r = await setup.remote.request("GET", path, query=query)
    assert r.status_code == 200, r.text


# -- joining, knocking, leaving, inviting -----------------------------------------------------


@BOTH
async def test_make_join_is_forbidden_to_a_denied_server(setup: Setup, allowed: bool) -> None:
    user = _user(allowed, "newcomer")
    r = await setup.peer(allowed).request(
        "GET", f"{V1}/make_join/{quote(setup.room_id)}/{quote(user)}", query={"ver": [VERSION]}
    )
    if allowed:
        assert r.status_code == 200, r.text
        assert r.json()["event"]["state_key"] == user
    else:
        _forbidden(r)


@BOTH
async def test_make_leave_is_forbidden_to_a_denied_server(setup: Setup, allowed: bool) -> None:
    user = _member(allowed)
    r = await setup.peer(allowed).request(
        "GET", f"{V1}/make_leave/{quote(setup.room_id)}/{quote(user)}"
    )
    if allowed:
        assert r.status_code == 200, r.text
    else:
        _forbidden(r)


async def _signed_membership(s: Setup, user: str, membership: str) -> Pdu:
    """`user`'s own membership event, signed by their server."""
    return await build(
        s.api,
        s.room_id,
        sender=user,
        type_="m.room.member",
        content={"membership": membership},
        state_key=user,
    )


def _as_sent(pdu: Pdu) -> dict[str, Any]:
    return json.loads(pdu.raw)


async def _stored(s: Setup, event_id: str) -> bool:
    return await s.api.services.database.read(store_events.event_exists, event_id)


@BOTH
async def test_send_join_is_forbidden_to_a_denied_server(setup: Setup, allowed: bool) -> None:
    join = await _signed_membership(setup, _user(allowed, "newcomer"), "join")
    r = await setup.peer(allowed).request(
        "PUT",
        f"{V2}/send_join/{quote(setup.room_id)}/{quote(join.event_id)}",
        json_body=_as_sent(join),
    )
    if allowed:
        assert r.status_code == 200, r.text
        assert r.json()["state"]
    else:
        _forbidden(r)
    assert await _stored(setup, join.event_id) is allowed


@BOTH
async def test_send_leave_is_forbidden_to_a_denied_server(setup: Setup, allowed: bool) -> None:
    leave = await _signed_membership(setup, _member(allowed), "leave")
    r = await setup.peer(allowed).request(
        "PUT",
        f"{V2}/send_leave/{quote(setup.room_id)}/{quote(leave.event_id)}",
        json_body=_as_sent(leave),
    )
    if allowed:
        assert (r.status_code, r.json()) == (200, {}), r.text
    else:
        _forbidden(r)
    assert await _stored(setup, leave.event_id) is allowed


async def _knock_room(s: Setup) -> None:
    await s.api.services.rooms.send_event(
        ALICE, None, s.room_id, "m.room.join_rules", {"join_rule": "knock"}, state_key=""
    )


@BOTH
async def test_make_knock_is_forbidden_to_a_denied_server(setup: Setup, allowed: bool) -> None:
    await _knock_room(setup)
    user = _user(allowed, "knocker")
    r = await setup.peer(allowed).request(
        "GET", f"{V1}/make_knock/{quote(setup.room_id)}/{quote(user)}", query={"ver": [VERSION]}
    )
    if allowed:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["room_version"] == VERSION
        assert body["event"]["content"] == {"membership": "knock"}
    else:
        _forbidden(r)


@BOTH
async def test_send_knock_is_forbidden_to_a_denied_server(setup: Setup, allowed: bool) -> None:
    await _knock_room(setup)
    knock = await _signed_membership(setup, _user(allowed, "knocker"), "knock")
    r = await setup.peer(allowed).request(
        "PUT",
        f"{V1}/send_knock/{quote(setup.room_id)}/{quote(knock.event_id)}",
        json_body=_as_sent(knock),
    )
    if allowed:
        assert r.status_code == 200, r.text
        types = {e["type"] for e in r.json()["knock_room_state"]}
        assert {"m.room.create", "m.room.join_rules"} <= types
    else:
        _forbidden(r)
    assert await _stored(setup, knock.event_id) is allowed


@BOTH
async def test_invite_is_forbidden_to_a_denied_server(setup: Setup, allowed: bool) -> None:
    bob = await setup.api.add_user("bob")
    invite = await build(
        setup.api,
        setup.room_id,
        sender=_member(allowed),
        type_="m.room.member",
        content={"membership": "invite"},
        state_key=bob,
    )
    r = await setup.peer(allowed).request(
        "PUT",
        f"{V2}/invite/{quote(setup.room_id)}/{quote(invite.event_id)}",
        json_body={"room_version": VERSION, "event": _as_sent(invite), "invite_room_state": []},
    )
    if allowed:
        assert r.status_code == 200, r.text
        assert SERVER_NAME in r.json()["event"]["signatures"]
    else:
        _forbidden(r)


# -- /send: PDUs and room EDUs ---------------------------------------------------------------


async def _send(peer: SignedPeer, pdus: list[Pdu], edus: list[dict[str, Any]]) -> httpx.Response:
    return await peer.request(
        "PUT",
        f"{V1}/send/{time.monotonic_ns()}",
        json_body={
            "origin": peer.name,
            "origin_server_ts": now_ms(),
            "pdus": [_as_sent(p) for p in pdus],
            "edus": edus,
        },
    )


@BOTH
async def test_send_ignores_a_denied_origins_pdus_with_a_forbidden_result(
    setup: Setup, allowed: bool
) -> None:
    message = await build(
        setup.api,
        setup.room_id,
        sender=_member(allowed),
        type_="m.room.message",
        content={"msgtype": "m.text", "body": "hi"},
    )
    r = await _send(setup.peer(allowed), [message], [])
    assert r.status_code == 200, r.text
    expected = {} if allowed else FORBIDDEN
    assert r.json() == {"pdus": {message.event_id: expected}}
    assert await _stored(setup, message.event_id) is allowed


async def test_the_acl_applies_to_the_origin_not_the_sender(setup: Setup) -> None:
    """REMOTE carries Erin's (ELSEWHERE's) event: the carrier is asked, and allowed; and
    ELSEWHERE carrying Carol's event is refused."""
    erins = await build(
        setup.api, setup.room_id, sender=ERIN, type_="m.room.message", content={"body": "e"}
    )
    r = await _send(setup.remote, [erins], [])
    assert r.json() == {"pdus": {erins.event_id: {}}}
    carols = await build(
        setup.api, setup.room_id, sender=CAROL, type_="m.room.message", content={"body": "c"}
    )
    r = await _send(setup.elsewhere, [carols], [])
    assert r.json() == {"pdus": {carols.event_id: FORBIDDEN}}
    assert not await _stored(setup, carols.event_id)


@BOTH
async def test_typing_from_a_denied_origin_is_ignored(setup: Setup, allowed: bool) -> None:
    user = _member(allowed)
    edu = {
        "edu_type": "m.typing",
        "content": {"room_id": setup.room_id, "user_id": user, "typing": True},
    }
    r = await _send(setup.peer(allowed), [], [edu])
    assert (r.status_code, r.json()) == (200, {"pdus": {}})
    typing = setup.api.services.typing.typing_in(setup.room_id)
    assert (user in typing) is allowed


@BOTH
async def test_receipts_from_a_denied_origin_are_ignored_for_that_room(
    setup: Setup, allowed: bool
) -> None:
    """The EDU names two rooms; only the one whose ACL denies the origin loses its share."""
    other = await shared_room(setup.api, VERSION)
    other_message = await local_message(setup.api, other, "elsewhere")
    user = _member(allowed)

    def receipt(event_id: str) -> dict[str, Any]:
        return {"m.read": {user: {"event_ids": [event_id], "data": {"ts": now_ms()}}}}

    edu = {
        "edu_type": "m.receipt",
        "content": {setup.room_id: receipt(setup.message), other: receipt(other_message)},
    }
    r = await _send(setup.peer(allowed), [], [edu])
    assert (r.status_code, r.json()) == (200, {"pdus": {}})

    async def readers(room_id: str) -> set[str]:
        rows = await setup.api.services.database.read(store_receipts.get_receipts, room_id)
        return {row["user_id"] for row in rows}

    assert (user in await readers(setup.room_id)) is allowed
    assert user in await readers(other)


# -- our own sending ---------------------------------------------------------------------------


async def test_a_denied_resident_server_still_gets_our_new_events(setup: Setup) -> None:
    """The spec: servers "should still send events to denied servers if they are still
    residents of the room"; Synapse's sender does not filter by ACL either."""
    event_id = await local_message(setup.api, setup.room_id, "still sent")

    def queued(conn: Any, destination: str) -> set[str]:
        return {row["event_id"] for row in store_outbox.peek(conn, destination, max_pdus=1000)}

    for destination in (REMOTE, ELSEWHERE):
        assert event_id in await setup.api.services.database.read(queued, destination)
