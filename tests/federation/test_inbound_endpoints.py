"""Every inbound federation endpoint of a running relay (B), called with signed requests
as another running relay (A), on a room B's user created and A's user joined through the
real client API."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio

from relay.events.pdu import Pdu, finalize_event
from relay.events.room_versions import room_version
from relay.federation.errors import RemoteError
from store import device_inbox as store_inbox
from store import events as store_events
from store import state as store_state
from tests.federation.conftest import Side, open_side
from tests.federation.peers import (
    V1,
    V2,
    build_event,
    membership_of,
    new_txn_id,
    send_many,
    signing_key_of,
    transaction,
)
from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser
from tests.support import wait_until

pytestmark = pytest.mark.integration


@dataclass
class Shared:
    a: RelayProcess
    b: RelayProcess
    alice: MatrixUser  # on A, joined
    bob: MatrixUser  # on B, created the room
    room_id: str
    alias: str
    #: Bob's messages, sent after Alice joined, oldest first.
    messages: list[str]
    alice_invite: str
    alice_join: str
    #: B's /rooms/{id}/state right after the messages (no state changes since the join).
    state: list[dict[str, Any]]
    #: A room on B that no user of A was ever in.
    private_room: str
    private_message: str


@pytest.fixture(scope="module")
def shared(relay_pair: tuple[RelayProcess, RelayProcess]) -> Shared:
    a, b = relay_pair
    a.cli("user", "add", "alice", "--password", "pw")
    b.cli("user", "add", "bob", "--password", "pw")
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    bob.call("PUT", f"/profile/{bob.user_id}/displayname", json={"displayname": "Bob of B"})
    room_id = bob.create_room(
        name="inbound checks", visibility="public", room_alias_name="inbound", topic="t"
    )
    bob.invite(room_id, alice.user_id)
    alice.wait_for_invite(room_id)
    alice.join(room_id)
    wait_until(lambda: membership_of(bob, room_id, alice.user_id) == "join", what="join on B")
    state = bob.call("GET", f"/rooms/{room_id}/state")
    member = {e["state_key"]: e["event_id"] for e in state if e["type"] == "m.room.member"}
    alice_join = member[alice.user_id]
    messages = [bob.send(room_id, f"bob {i}") for i in range(5)]
    private_room = bob.create_room(name="no A here")
    private_message = bob.send(private_room, "secret")
    # The invite is Alice's membership in the state before her join, as B stored it.
    alice_invite = trio.run(_membership_before, b, alice_join, alice.user_id)
    return Shared(
        a=a,
        b=b,
        alice=alice,
        bob=bob,
        room_id=room_id,
        alias=f"#inbound:{b.server_name}",
        messages=messages,
        alice_invite=alice_invite,
        alice_join=alice_join,
        state=state,
        private_room=private_room,
        private_message=private_message,
    )


async def _membership_before(b: RelayProcess, event_id: str, user_id: str) -> str:
    async with open_side(b) as side:
        state = await side.database.read(store_state.get_state_before, event_id)
    return state[("m.room.member", user_id)]


@asynccontextmanager
async def as_a(shared: Shared) -> AsyncIterator[Side]:
    # Straight to B (no static map), not verifying B's self-signed certificate.
    async with open_side(shared.a, verify_tls=False, federation_map={}) as side:
        yield side


async def _get(shared: Shared, path: str, **query: Any) -> Any:
    async with as_a(shared) as side:
        return await side.client.get_json(shared.b.server_name, path, query=query or None)


async def _error(shared: Shared, method: str, path: str, body: Any = None, **query: Any):
    async with as_a(shared) as side:
        with pytest.raises(RemoteError) as exc:
            await side.client.request_json(
                method,
                shared.b.server_name,
                path,
                query=query or None,
                body=body,
                has_body=body is not None,
            )
    return exc.value


def _ids(events: list[dict[str, Any]], shared: Shared) -> list[str]:
    """Event ids of PDUs served over federation (computed: PDUs carry no event_id)."""
    rv = _rv(shared)
    return [Pdu.from_dict(e, rv).event_id for e in events]


def _rv(shared: Shared):
    rv = room_version(
        shared.bob.call("GET", f"/rooms/{shared.room_id}/state/m.room.create")["room_version"]
    )
    assert rv is not None
    return rv


def _pdu(shared: Shared, event: dict[str, Any]) -> Pdu:
    return Pdu.from_dict({k: v for k, v in event.items() if k != "unsigned"}, _rv(shared))


async def _b_read(shared: Shared, fn: Any, *args: Any) -> Any:
    async with open_side(shared.b) as side:
        return await side.database.read(fn, *args)


# -- /event ------------------------------------------------------------------------------


async def test_event_is_served(shared: Shared) -> None:
    body = await _get(shared, f"{V1}/event/{shared.messages[0]}")
    assert body["origin"] == shared.b.server_name
    assert isinstance(body["origin_server_ts"], int)
    [event] = body["pdus"]
    assert _ids([event], shared) == [shared.messages[0]]
    assert event["content"] == {"msgtype": "m.text", "body": "bob 0"}
    assert shared.b.server_name in event["signatures"]


async def test_event_of_a_room_we_are_not_in_is_403(shared: Shared) -> None:
    err = await _error(shared, "GET", f"{V1}/event/{shared.private_message}")
    assert (err.status, err.errcode) == (403, "M_FORBIDDEN")


async def test_unknown_event_is_404(shared: Shared) -> None:
    err = await _error(shared, "GET", f"{V1}/event/$nosuchevent")
    assert (err.status, err.errcode) == (404, "M_NOT_FOUND")


# -- /state, /state_ids, /event_auth ---------------------------------------------------------


def _closed_under_auth(events: dict[str, Pdu], chain: dict[str, Pdu], rv: Any) -> None:
    """Every auth event of every state/chain event is in the chain; nothing extra."""
    needed: set[str] = set()
    for pdu in [*events.values(), *chain.values()]:
        needed |= set(pdu.auth_event_ids)
        if rv.room_id_is_create_event_hash and pdu.type != "m.room.create":
            needed.add("$" + pdu.room_id[1:])
    assert needed <= set(chain) | set(events)


async def test_state_at_an_event_is_the_state_before_it(shared: Shared) -> None:
    rv = _rv(shared)
    current = {e["event_id"] for e in shared.state}
    # At a message: the room's state then, which is B's current state from the fixture.
    body = await _get(shared, f"{V1}/state/{shared.room_id}", event_id=shared.messages[-1])
    state = {p.event_id: p for p in (_pdu(shared, e) for e in body["pdus"])}
    chain = {p.event_id: p for p in (_pdu(shared, e) for e in body["auth_chain"])}
    assert set(state) == current
    _closed_under_auth(state, chain, rv)
    ids = await _get(shared, f"{V1}/state_ids/{shared.room_id}", event_id=shared.messages[-1])
    assert set(ids["pdu_ids"]) == current
    assert set(ids["auth_chain_ids"]) == set(chain)

    # At Alice's join: before it, she was invited, not joined.
    before_join = (current - {shared.alice_join}) | {shared.alice_invite}
    ids = await _get(shared, f"{V1}/state_ids/{shared.room_id}", event_id=shared.alice_join)
    assert set(ids["pdu_ids"]) == before_join
    body = await _get(shared, f"{V1}/state/{shared.room_id}", event_id=shared.alice_join)
    assert set(_ids(body["pdus"], shared)) == before_join
    assert set(_ids(body["auth_chain"], shared)) == set(ids["auth_chain_ids"])


async def test_state_errors(shared: Shared) -> None:
    for path in ("state", "state_ids"):
        err = await _error(shared, "GET", f"{V1}/{path}/{shared.room_id}")
        assert err.status == 400, path
        err = await _error(
            shared, "GET", f"{V1}/{path}/{shared.private_room}", event_id=shared.private_message
        )
        assert err.status == 403, path
        err = await _error(shared, "GET", f"{V1}/{path}/{shared.room_id}", event_id="$nope")
        assert err.status == 404, path


async def test_event_auth(shared: Shared) -> None:
    rv = _rv(shared)
    message = shared.messages[0]
    body = await _get(shared, f"{V1}/event_auth/{shared.room_id}/{message}")
    chain = {p.event_id: p for p in (_pdu(shared, e) for e in body["auth_chain"])}
    event = _pdu(shared, (await _get(shared, f"{V1}/event/{message}"))["pdus"][0])
    assert message not in chain
    assert set(event.auth_event_ids) <= set(chain)
    _closed_under_auth({}, chain, rv)
    types = sorted(p.type for p in chain.values())
    assert "m.room.create" in types and "m.room.power_levels" in types
    err = await _error(
        shared, "GET", f"{V1}/event_auth/{shared.private_room}/{shared.private_message}"
    )
    assert err.status == 403


# -- /backfill --------------------------------------------------------------------------------


async def test_backfill_newest_first_with_limit(shared: Shared) -> None:
    body = await _get(shared, f"{V1}/backfill/{shared.room_id}", v=shared.messages[-1], limit="3")
    assert body["origin"] == shared.b.server_name
    assert _ids(body["pdus"], shared) == shared.messages[-1:-4:-1]


async def test_backfill_stops_at_the_create_event(shared: Shared) -> None:
    body = await _get(shared, f"{V1}/backfill/{shared.room_id}", v=shared.messages[-1], limit="100")
    pdus = [_pdu(shared, e) for e in body["pdus"]]
    assert pdus[-1].type == "m.room.create"
    assert [p.type for p in pdus].count("m.room.create") == 1
    depths = [p.depth for p in pdus]
    assert depths == sorted(depths, reverse=True)
    ids = [p.event_id for p in pdus]
    assert len(ids) == len(set(ids))
    assert {shared.alice_invite, shared.alice_join, *shared.messages} <= set(ids)


async def test_backfill_limit_is_capped_at_100(shared: Shared) -> None:
    room_id = shared.bob.create_room(name="long history")
    shared.bob.invite(room_id, shared.alice.user_id)
    ids = send_many(shared.bob, room_id, [f"long {i}" for i in range(110)])
    body = await _get(shared, f"{V1}/backfill/{room_id}", v=ids[-1], limit="1000")
    served = _ids(body["pdus"], shared)
    assert len(served) == 100
    assert served == list(reversed(ids))[:100]


async def test_backfill_errors(shared: Shared) -> None:
    err = await _error(shared, "GET", f"{V1}/backfill/{shared.room_id}", limit="3")
    assert err.status == 400
    err = await _error(
        shared, "GET", f"{V1}/backfill/{shared.private_room}", v=shared.private_message, limit="3"
    )
    assert err.status == 403


# -- /get_missing_events ----------------------------------------------------------------------


async def _missing(shared: Shared, room_id: str | None = None, **body: Any) -> Any:
    async with as_a(shared) as side:
        return await side.client.post_json(
            shared.b.server_name, f"{V1}/get_missing_events/{room_id or shared.room_id}", body
        )


async def test_get_missing_events_returns_exactly_the_events_between(shared: Shared) -> None:
    m = shared.messages
    body = await _missing(shared, earliest_events=[m[0]], latest_events=[m[4]], limit=10)
    assert _ids(body["events"], shared) == m[1:4]
    # limit: the ones closest to `latest`, still oldest first.
    body = await _missing(shared, earliest_events=[m[0]], latest_events=[m[4]], limit=2)
    assert _ids(body["events"], shared) == m[2:4]
    # min_depth: nothing shallower.
    depth = _pdu(shared, (await _get(shared, f"{V1}/event/{m[2]}"))["pdus"][0]).depth
    body = await _missing(
        shared, earliest_events=[m[0]], latest_events=[m[4]], limit=10, min_depth=depth
    )
    assert _ids(body["events"], shared) == m[2:4]
    # Adjacent events: nothing between.
    body = await _missing(shared, earliest_events=[m[3]], latest_events=[m[4]], limit=10)
    assert body["events"] == []


async def test_get_missing_events_errors(shared: Shared) -> None:
    async with as_a(shared) as side:
        with pytest.raises(RemoteError) as exc:
            await side.client.post_json(
                shared.b.server_name,
                f"{V1}/get_missing_events/{shared.private_room}",
                {"earliest_events": [], "latest_events": [shared.private_message]},
            )
        assert exc.value.status == 403
        with pytest.raises(RemoteError) as exc:
            await side.client.post_json(
                shared.b.server_name,
                f"{V1}/get_missing_events/{shared.room_id}",
                {"earliest_events": "x", "latest_events": []},
            )
        assert exc.value.status == 400


# -- /timestamp_to_event ----------------------------------------------------------------------


async def test_timestamp_to_event(shared: Shared) -> None:
    m = shared.messages
    ts = {}
    for event_id in m:
        ts[event_id] = (await _get(shared, f"{V1}/event/{event_id}"))["pdus"][0]["origin_server_ts"]
    assert len(set(ts.values())) == len(m), "messages need distinct timestamps"
    path = f"{V1}/timestamp_to_event/{shared.room_id}"
    body = await _get(shared, path, ts=str(ts[m[2]]), dir="f")
    assert body == {"event_id": m[2], "origin_server_ts": ts[m[2]]}
    body = await _get(shared, path, ts=str(ts[m[2]] + 1), dir="f")
    assert body["event_id"] == m[3]
    body = await _get(shared, path, ts=str(ts[m[2]] - 1), dir="b")
    assert body["event_id"] == m[1]
    body = await _get(shared, path, ts=str(ts[m[2]]), dir="b")
    assert body["event_id"] == m[2]
    err = await _error(shared, "GET", path, ts="1", dir="b")
    assert err.status == 404
    err = await _error(shared, "GET", path, ts="1", dir="x")
    assert err.status == 400
    err = await _error(
        shared, "GET", f"{V1}/timestamp_to_event/{shared.private_room}", ts="1", dir="f"
    )
    assert err.status == 403


# -- /make_join, /send_join, /make_leave, /send_leave -------------------------------------------


async def _make(
    shared: Shared, kind: str, user_id: str, *, room_id: str | None = None, **query: Any
) -> Any:
    """A's `make_{kind}` on B for `user_id` in `room_id` (the shared room by default)."""
    room_id = room_id or shared.room_id
    return await _get(shared, f"{V1}/make_{kind}/{room_id}/{quote(user_id)}", **query)


async def _sign_and_send(
    shared: Shared, kind: str, template: dict[str, Any], *, room_id: str | None = None
) -> tuple[Pdu, Any]:
    """A signs a make_{kind} template and sends it to B in `room_id` (the shared room by
    default); the PDU and B's answer."""
    rv = room_version(template["room_version"])
    assert rv is not None
    key = signing_key_of(shared.a)
    pdu = finalize_event(template["event"], rv, shared.a.server_name, key.key_id, key.key)
    async with as_a(shared) as side:
        body = await side.client.put_json(
            shared.b.server_name,
            f"{V2}/send_{kind}/{room_id or shared.room_id}/{quote(pdu.event_id)}",
            pdu.as_dict(),
        )
    return pdu, body


async def test_make_join_template(shared: Shared) -> None:
    user = f"@carla:{shared.a.server_name}"
    rv = _rv(shared)
    template = await _make(shared, "join", user, ver=["10", rv.identifier])
    assert template["room_version"] == rv.identifier
    event = template["event"]
    assert event["type"] == "m.room.member"
    assert (event["sender"], event["state_key"]) == (user, user)
    assert event["content"] == {"membership": "join"}
    assert event["room_id"] == shared.room_id
    assert event["prev_events"] and event["auth_events"]
    assert isinstance(event["depth"], int)


async def test_make_join_refuses_unsupported_versions_and_other_servers_users(
    shared: Shared,
) -> None:
    path = f"{V1}/make_join/{shared.room_id}/{quote('@carla:' + shared.a.server_name)}"
    err = await _error(shared, "GET", path, ver=["1", "2"])
    assert (err.status, err.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    err = await _error(shared, "GET", path)  # no ver at all means only version 1
    assert (err.status, err.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    other = f"{V1}/make_join/{shared.room_id}/{quote('@carla:' + shared.b.server_name)}"
    err = await _error(shared, "GET", other, ver=_rv(shared).identifier)
    assert (err.status, err.errcode) == (403, "M_FORBIDDEN")
    unknown = (
        f"{V1}/make_join/!nosuchroom:{shared.b.server_name}/{quote('@c:' + shared.a.server_name)}"
    )
    err = await _error(shared, "GET", unknown, ver=_rv(shared).identifier)
    assert err.status == 404


async def test_send_join_and_leave_round_trip(shared: Shared) -> None:
    user = f"@dora:{shared.a.server_name}"
    rv = _rv(shared)
    template = await _make(shared, "join", user, ver=rv.identifier)
    pdu, body = await _sign_and_send(shared, "join", template)
    assert body["origin"] == shared.b.server_name
    # A full join: the members are in the state, so no servers_in_room (Synapse's answer).
    assert body["members_omitted"] is False and "servers_in_room" not in body
    state = {p.event_id: p for p in (_pdu(shared, e) for e in body["state"])}
    chain = {p.event_id: p for p in (_pdu(shared, e) for e in body["auth_chain"])}
    keys = {(p.type, p.state_key) for p in state.values()}
    assert {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", "")} <= keys
    assert ("m.room.member", shared.alice.user_id) in keys
    assert pdu.event_id not in state
    assert set(pdu.auth_event_ids) <= set(state) | set(chain)
    _closed_under_auth(state, chain, rv)
    assert _pdu(shared, body["event"]).event_id == pdu.event_id
    members = shared.bob.call("GET", f"/rooms/{shared.room_id}/joined_members")["joined"]
    assert user in members

    # And out again.
    template = await _make(shared, "leave", user)
    assert template["event"]["content"] == {"membership": "leave"}
    _leave, body = await _sign_and_send(shared, "leave", template)
    assert body == {}
    assert membership_of(shared.bob, shared.room_id, user) == "leave"
    members = shared.bob.call("GET", f"/rooms/{shared.room_id}/joined_members")["joined"]
    assert user not in members


async def test_make_leave_for_a_user_of_another_server_is_403(shared: Shared) -> None:
    path = f"{V1}/make_leave/{shared.room_id}/{quote(shared.bob.user_id)}"
    err = await _error(shared, "GET", path)
    assert err.status == 403


async def test_send_join_refuses_a_mismatched_event(shared: Shared) -> None:
    rv = _rv(shared)
    template = await _make(shared, "join", f"@erin:{shared.a.server_name}", ver=rv.identifier)
    key = signing_key_of(shared.a)
    pdu = finalize_event(template["event"], rv, shared.a.server_name, key.key_id, key.key)
    # Path names another event id.
    err = await _error(shared, "PUT", f"{V2}/send_join/{shared.room_id}/$other", body=pdu.as_dict())
    assert err.status == 400
    # A leave sent to send_join.
    leave = {**template["event"], "content": {"membership": "leave"}}
    pdu = finalize_event(leave, rv, shared.a.server_name, key.key_id, key.key)
    err = await _error(
        shared,
        "PUT",
        f"{V2}/send_join/{shared.room_id}/{quote(pdu.event_id)}",
        body=pdu.as_dict(),
    )
    assert err.status == 400
    assert membership_of(shared.bob, shared.room_id, f"@erin:{shared.a.server_name}") is None


# -- /invite (v2) -----------------------------------------------------------------------------


async def _invite_event(shared: Shared, invitee: str) -> tuple[str, Pdu, list[dict[str, Any]]]:
    """An invite of `invitee` into a fresh room of Alice's on A, built on A's view of it."""
    room_id = shared.alice.create_room(name="alice's den", room_version="11")
    key = signing_key_of(shared.a)
    async with open_side(shared.a) as side:
        pdu = await side.database.read(
            lambda conn: build_event(
                conn,
                room_id,
                server=shared.a.server_name,
                key=key,
                sender=shared.alice.user_id,
                type_="m.room.member",
                state_key=invitee,
                content={"membership": "invite"},
            )
        )
    stripped = [
        {
            "type": "m.room.name",
            "state_key": "",
            "sender": shared.alice.user_id,
            "content": {"name": "alice's den"},
        },
    ]
    return room_id, pdu, stripped


async def test_invite_v2_is_countersigned_and_reaches_sync(shared: Shared) -> None:
    shared.b.cli("user", "add", "ivy", "--password", "pw")
    ivy = MatrixUser.login(shared.b.client_url, "ivy")
    room_id, pdu, stripped = await _invite_event(shared, ivy.user_id)
    async with as_a(shared) as side:
        body = await side.client.put_json(
            shared.b.server_name,
            f"{V2}/invite/{room_id}/{quote(pdu.event_id)}",
            {"room_version": "11", "event": pdu.as_dict(), "invite_room_state": stripped},
        )
        signed = body["event"]
        assert set(signed["signatures"]) == {shared.a.server_name, shared.b.server_name}
        # B's signature verifies (over the redacted event) with B's published key.
        await side.keyring.verify_event_signatures(signed, room_version("11"))
    assert Pdu.from_dict(signed, room_version("11")).event_id == pdu.event_id
    sync = ivy.wait_for(lambda b: room_id in b.get("rooms", {}).get("invite", {}))
    invite_state = sync["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert {"type": "m.room.name", "content": {"name": "alice's den"}}.items() <= {
        k: v for e in invite_state if e["type"] == "m.room.name" for k, v in e.items()
    }.items()
    assert any(e["type"] == "m.room.member" and e["state_key"] == ivy.user_id for e in invite_state)


async def test_invite_errors(shared: Shared) -> None:
    # An invitee on another server than B.
    room_id, pdu, stripped = await _invite_event(shared, f"@zed:{shared.a.server_name}")
    path = f"{V2}/invite/{room_id}/{quote(pdu.event_id)}"
    body = {"room_version": "11", "event": pdu.as_dict(), "invite_room_state": stripped}
    err = await _error(shared, "PUT", path, body=body)
    assert (err.status, err.errcode) == (400, "M_UNKNOWN")  # as Synapse: not for this server
    # A room version B does not know: 400 M_INCOMPATIBLE_ROOM_VERSION, the spec's invite v2
    # answer (Synapse answers M_UNSUPPORTED_ROOM_VERSION; a client of ours still sees that,
    # through client_error).
    err = await _error(shared, "PUT", path, body={**body, "room_version": "999"})
    assert (err.status, err.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    # A user of B that does not exist.
    room_id, pdu, stripped = await _invite_event(shared, f"@ghost:{shared.b.server_name}")
    err = await _error(
        shared,
        "PUT",
        f"{V2}/invite/{room_id}/{quote(pdu.event_id)}",
        body={"room_version": "11", "event": pdu.as_dict()},
    )
    assert err.status == 404


# -- /send ------------------------------------------------------------------------------------


async def _message(shared: Shared, body: str, sender: str | None = None, **kw: Any) -> Pdu:
    key = signing_key_of(shared.a)

    def txn(conn: Any) -> Pdu:
        return build_event(
            conn,
            shared.room_id,
            server=shared.a.server_name,
            key=key,
            sender=sender or shared.alice.user_id,
            type_="m.room.message",
            content={"msgtype": "m.text", "body": body},
            **kw,
        )

    return await _b_read(shared, txn)


async def _send(shared: Shared, pdus: list[dict[str, Any]], txn_id: str | None = None, **kw):
    async with as_a(shared) as side:
        return await side.client.put_json(
            shared.b.server_name,
            f"{V1}/send/{txn_id or new_txn_id()}",
            transaction(shared.a.server_name, pdus, **kw),
        )


async def _stored(shared: Shared, event_id: str) -> dict[str, Any] | None:
    return await _b_read(shared, store_events.get_event_row, event_id)


async def test_send_accepts_a_good_pdu(shared: Shared) -> None:
    pdu = await _message(shared, "over federation")
    body = await _send(shared, [pdu.as_dict()])
    assert body == {"pdus": {pdu.event_id: {}}}
    assert "over federation" in shared.bob.bodies(shared.room_id)


async def test_send_drops_a_pdu_with_a_bad_signature(shared: Shared) -> None:
    pdu = await _message(shared, "forged")
    event = pdu.as_dict()
    key_id = next(iter(event["signatures"][shared.a.server_name]))
    event["signatures"][shared.a.server_name][key_id] = (
        base64.b64encode(bytes(64)).decode().rstrip("=")
    )
    body = await _send(shared, [event])
    assert body["pdus"].get(pdu.event_id, {"error": "dropped"}).get("error")
    assert await _stored(shared, pdu.event_id) is None
    assert "forged" not in shared.bob.bodies(shared.room_id)


async def test_send_redacts_a_pdu_failing_its_content_hash(shared: Shared) -> None:
    pdu = await _message(shared, "original")
    event = pdu.as_dict()
    event["content"]["body"] = "tampered"  # signatures cover only the redacted form
    body = await _send(shared, [event])
    assert body["pdus"] == {pdu.event_id: {}}
    row = await _stored(shared, pdu.event_id)
    assert row is not None and row["rejected_reason"] is None
    served = (await _get(shared, f"{V1}/event/{pdu.event_id}"))["pdus"][0]
    assert served["content"] == {}
    assert served["hashes"] == event["hashes"]
    bodies = shared.bob.bodies(shared.room_id)
    assert "tampered" not in bodies and "original" not in bodies


async def test_send_rejects_a_sender_not_in_the_room(shared: Shared) -> None:
    pdu = await _message(shared, "gatecrasher", sender=f"@mallory:{shared.a.server_name}")
    body = await _send(shared, [pdu.as_dict()])
    assert set(body["pdus"]) == {pdu.event_id}
    assert body["pdus"][pdu.event_id].get("error")
    assert "gatecrasher" not in shared.bob.bodies(shared.room_id)
    row = await _stored(shared, pdu.event_id)
    assert row is None or row["rejected_reason"] is not None
    # A rejected event is never served as part of the room.
    err = await _error(shared, "GET", f"{V1}/event/{pdu.event_id}")
    assert err.status == 404


async def test_send_rejects_an_auth_rule_violation(shared: Shared) -> None:
    # Alice (power 0) may not change the power levels.
    key = signing_key_of(shared.a)
    levels = shared.bob.call("GET", f"/rooms/{shared.room_id}/state/m.room.power_levels")
    levels["users"][shared.alice.user_id] = 100

    def txn(conn: Any) -> Pdu:
        return build_event(
            conn,
            shared.room_id,
            server=shared.a.server_name,
            key=key,
            sender=shared.alice.user_id,
            type_="m.room.power_levels",
            state_key="",
            content=levels,
        )

    pdu = await _b_read(shared, txn)
    body = await _send(shared, [pdu.as_dict()])
    assert body["pdus"][pdu.event_id].get("error")
    after = shared.bob.call("GET", f"/rooms/{shared.room_id}/state/m.room.power_levels")
    assert shared.alice.user_id not in after["users"]


async def test_send_replayed_transaction_is_answered_once(shared: Shared) -> None:
    first = await _message(shared, "once only")
    txn_id = new_txn_id()
    response = await _send(shared, [first.as_dict()], txn_id=txn_id)
    assert response == {"pdus": {first.event_id: {}}}
    # The same transaction id again, now carrying another PDU: the first answer, and the
    # new PDU is not processed.
    second = await _message(shared, "smuggled in a replay")
    again = await _send(shared, [first.as_dict(), second.as_dict()], txn_id=txn_id)
    assert again == response
    assert await _stored(shared, second.event_id) is None
    assert shared.bob.bodies(shared.room_id).count("once only") == 1


async def test_send_to_device_edu_retried_in_a_new_transaction_is_delivered_once(
    shared: Shared,
) -> None:
    bob = shared.bob
    device = bob.call("GET", "/account/whoami")["device_id"]
    bob.sync(timeout_ms=0)
    edu = {
        "edu_type": "m.direct_to_device",
        "content": {
            "sender": shared.alice.user_id,
            "type": "m.test.retried",
            "message_id": new_txn_id(),
            "messages": {bob.user_id: {device: {"n": 1}}},
        },
    }
    # The same EDU as A would resend it after losing the first answer: a new transaction.
    for _ in range(2):
        assert await _send(shared, [], edus=[edu]) == {"pdus": {}}
    events = bob.sync(timeout_ms=0).get("to_device", {}).get("events", [])
    assert [e for e in events if e["type"] == "m.test.retried"] == [
        {"sender": shared.alice.user_id, "type": "m.test.retried", "content": {"n": 1}}
    ]


async def test_send_to_device_edu_is_delivered_before_the_pdus_of_its_transaction(
    shared: Shared,
) -> None:
    """A sender shares a room key (to-device) before the event it encrypts; an upstream
    that was busy sending to us puts both in one transaction. The key must take a
    stream position before the event's: a /sync hands out everything up to its token, so
    then no answer can carry the event without the key (nio never decrypts it later)."""
    bob = shared.bob
    device = bob.call("GET", "/account/whoami")["device_id"]
    pdu = await _message(shared, "encrypted with the key beside it")
    edu = {
        "edu_type": "m.direct_to_device",
        "content": {
            "sender": shared.alice.user_id,
            "type": "m.test.room_key",
            "message_id": new_txn_id(),
            "messages": {bob.user_id: {device: {"session_id": pdu.event_id}}},
        },
    }
    assert await _send(shared, [pdu.as_dict()], edus=[edu]) == {"pdus": {pdu.event_id: {}}}
    row = await _stored(shared, pdu.event_id)
    assert row is not None

    async def keys_up_to(position: int) -> list[Any]:
        rows = await _b_read(
            shared, store_inbox.messages_up_to, bob.user_id, device, position, 1000
        )
        return [m["content"] for m in map(json.loads, rows) if m["type"] == "m.test.room_key"]

    key = {"session_id": pdu.event_id}
    assert key in await keys_up_to(2**62)  # delivered
    # ... and in what a /sync whose token is the event's own position hands the device.
    assert key in await keys_up_to(row["stream_ordering"])


async def test_send_more_than_50_pdus_is_400(shared: Shared) -> None:
    pdu = await _message(shared, "one of many")
    async with as_a(shared) as side:
        with pytest.raises(RemoteError) as exc:
            await side.client.put_json(
                shared.b.server_name,
                f"{V1}/send/{new_txn_id()}",
                transaction(shared.a.server_name, [pdu.as_dict()] * 51),
            )
    assert exc.value.status == 400
    assert await _stored(shared, pdu.event_id) is None


async def test_send_origin_mismatch_is_403(shared: Shared) -> None:
    pdu = await _message(shared, "who sent this")
    async with as_a(shared) as side:
        with pytest.raises(RemoteError) as exc:
            await side.client.put_json(
                shared.b.server_name,
                f"{V1}/send/{new_txn_id()}",
                transaction("someone.else.example", [pdu.as_dict()]),
            )
    assert exc.value.status == 403
    assert await _stored(shared, pdu.event_id) is None


# -- queries ----------------------------------------------------------------------------------


async def test_query_directory(shared: Shared) -> None:
    body = await _get(shared, f"{V1}/query/directory", room_alias=shared.alias)
    assert body["room_id"] == shared.room_id
    assert shared.b.server_name in body["servers"]
    err = await _error(
        shared, "GET", f"{V1}/query/directory", room_alias=f"#nope:{shared.b.server_name}"
    )
    assert (err.status, err.errcode) == (404, "M_NOT_FOUND")
    err = await _error(shared, "GET", f"{V1}/query/directory")
    assert err.status == 400


async def test_query_profile(shared: Shared) -> None:
    body = await _get(shared, f"{V1}/query/profile", user_id=shared.bob.user_id)
    assert body["displayname"] == "Bob of B"
    body = await _get(
        shared, f"{V1}/query/profile", user_id=shared.bob.user_id, field="displayname"
    )
    assert body == {"displayname": "Bob of B"}


async def test_user_devices(shared: Shared) -> None:
    own = shared.bob.call("GET", "/devices")["devices"]
    body = await _get(shared, f"{V1}/user/devices/{quote(shared.bob.user_id)}")
    assert body["user_id"] == shared.bob.user_id
    assert isinstance(body["stream_id"], int)
    # Only devices with keys are listed (each entry's `keys` is required, Synapse lists the
    # same): Bob's client never uploaded any. tests/federation/differential compares this.
    assert own and body["devices"] == []
    err = await _error(shared, "GET", f"{V1}/user/devices/{quote(shared.alice.user_id)}")
    assert err.status == 400


async def test_public_rooms_get_and_post(shared: Shared) -> None:
    body = await _get(shared, f"{V1}/publicRooms")
    rooms = {r["room_id"]: r for r in body["chunk"]}
    assert shared.room_id in rooms
    assert shared.private_room not in rooms
    assert rooms[shared.room_id]["name"] == "inbound checks"
    assert rooms[shared.room_id]["num_joined_members"] >= 2
    async with as_a(shared) as side:
        found = await side.client.post_json(
            shared.b.server_name,
            f"{V1}/publicRooms",
            {"filter": {"generic_search_term": "inbound"}, "limit": 5},
        )
        none = await side.client.post_json(
            shared.b.server_name,
            f"{V1}/publicRooms",
            {"filter": {"generic_search_term": "no room is called this"}},
        )
    assert [r["room_id"] for r in found["chunk"]] == [shared.room_id]
    assert none["chunk"] == []
    paged = await _get(shared, f"{V1}/publicRooms", limit="1")
    assert len(paged["chunk"]) <= 1


# -- authentication ---------------------------------------------------------------------------


def _signed_route_examples(shared: Shared) -> list[tuple[str, str]]:
    from relay.federation.routes import SIGNED_ROUTES

    values = {
        "txn_id": "t1",
        "event_id": shared.messages[0],
        "room_id": shared.room_id,
        "user_id": f"@x:{shared.a.server_name}",
        "media_id": "nothing",
    }
    examples = []
    for path, _handler, method in SIGNED_ROUTES:
        filled = path
        for name, value in values.items():
            filled = filled.replace("{" + name + "}", quote(value))
        examples.append((method, filled))
    return examples


def test_every_signed_endpoint_refuses_unsigned_requests(shared: Shared) -> None:
    examples = _signed_route_examples(shared)
    assert len(examples) >= 18
    with httpx.Client(verify=False, timeout=30) as http:
        for method, path in examples:
            kw: dict[str, Any] = {"json": {}} if method in ("PUT", "POST") else {}
            r = http.request(method, f"{shared.b.federation_url}{path}", **kw)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json()["errcode"] == "M_UNAUTHORIZED", (method, path)
            # A forged X-Matrix header (right shape, wrong signature) is 401 too.
            forged = (
                f'X-Matrix origin="{shared.a.server_name}",'
                f'destination="{shared.b.server_name}",key="ed25519:a",'
                f'sig="{base64.b64encode(bytes(64)).decode().rstrip("=")}"'
            )
            r = http.request(
                method, f"{shared.b.federation_url}{path}", headers={"Authorization": forged}, **kw
            )
            assert r.status_code == 401, (method, path, r.status_code, r.text)


def test_fixture_sanity(shared: Shared) -> None:
    # The fixture's room: both servers' users joined, B's messages in order.
    assert shared.bob.bodies(shared.room_id)[:5] == [f"bob {i}" for i in range(5)]
    wait_until(
        lambda: (
            [b for b in shared.alice.bodies(shared.room_id) if b.startswith("bob ")][:5]
            == [f"bob {i}" for i in range(5)]
        ),
        what="B's messages on A",
    )


async def test_restricted_join_is_vouched_for_only_while_the_joiner_is_in_the_space(
    shared: Shared,
) -> None:
    """make_join names one of B's users as the voucher of a restricted join; send_join
    countersigns it, and refuses it once the joiner has left the allowed space."""
    space = shared.bob.create_room(preset="public_chat", room_version="10")
    allow = [{"type": "m.room_membership", "room_id": space}]
    room = shared.bob.create_room(
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {"join_rule": "restricted", "allow": allow},
            }
        ],
    )

    async def make(kind: str, room_id: str, user: str) -> Any:
        return await _make(shared, kind, user, room_id=room_id, ver="10")

    async def send(kind: str, room_id: str, template: dict[str, Any]) -> tuple[Pdu, Any]:
        return await _sign_and_send(shared, kind, template, room_id=room_id)

    for user, stays in (
        (f"@gina:{shared.a.server_name}", True),
        (f"@hal:{shared.a.server_name}", False),
    ):
        err = await _error(shared, "GET", f"{V1}/make_join/{room}/{quote(user)}", ver="10")
        assert (err.status, err.errcode) == (403, "M_FORBIDDEN")  # not in the space yet
        await send("join", space, await make("join", space, user))
        template = await make("join", room, user)
        assert (
            template["event"]["content"]["join_authorised_via_users_server"] == shared.bob.user_id
        )
        if not stays:
            await send("leave", space, await make("leave", space, user))
            v10 = room_version("10")
            assert v10 is not None
            pdu = finalize_event(template["event"], v10, shared.a.server_name, *_key_parts(shared))
            err = await _error(
                shared, "PUT", f"{V2}/send_join/{room}/{quote(pdu.event_id)}", body=pdu.as_dict()
            )
            assert (err.status, err.errcode) == (403, "M_FORBIDDEN")
            assert "required rooms" in str(err), err
            assert membership_of(shared.bob, room, user) != "join"
            continue
        _pdu_sent, body = await send("join", room, template)
        signatures = body["event"]["signatures"]
        assert shared.b.server_name in signatures and shared.a.server_name in signatures
        assert membership_of(shared.bob, room, user) == "join"


def _key_parts(shared: Shared) -> tuple[str, Any]:
    key = signing_key_of(shared.a)
    return key.key_id, key.key
