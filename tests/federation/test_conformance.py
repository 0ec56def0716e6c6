"""Answers an outside federation conformance run checks, through the real federation app in
process: the status code and the errcode/shape of each, as the spec (v1.16) writes them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from relay.rooms.service import RoomConfig
from store import accounts as store_accounts
from store import events as store_events
from store import rooms as store_rooms
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import V1, V2, SignedPeer, federation_http, trust_key
from tests.rooms.remote_rooms import (
    ALICE,
    CAROL,
    REMOTE,
    REMOTE_KEY,
    build,
    local_message,
    shared_room,
)


@pytest.fixture
async def fed(api: ClientApi) -> AsyncIterator[httpx.AsyncClient]:
    async with federation_http(api) as http:
        yield http


@pytest.fixture
async def remote(api: ClientApi, fed: httpx.AsyncClient) -> SignedPeer:
    await trust_key(api, REMOTE, REMOTE_KEY)
    return SignedPeer(REMOTE, REMOTE_KEY, fed)


async def _room(api: ClientApi, version: str = "10", preset: str = "public_chat") -> str:
    if await api.services.database.read(store_accounts.get_user, ALICE) is None:
        await api.add_user("alice")
    return await api.services.rooms.create_room(
        RoomConfig(creator=ALICE, room_version=version, preset=preset)
    )


# -- GET /_matrix/key/v2/server/{keyId} -------------------------------------------------------


@pytest.mark.parametrize("key_id", ["own", "ed25519:nosuchkey"])
async def test_server_keys_by_key_id_is_the_answer_without_it(
    api: ClientApi, fed: httpx.AsyncClient, key_id: str
) -> None:
    """The deprecated key id path, as Synapse serves it: every key, whatever the id."""
    if key_id == "own":
        key_id = api.services.signing_key.key_id
    plain = await fed.get("/_matrix/key/v2/server")
    r = await fed.get(f"/_matrix/key/v2/server/{quote(key_id)}")
    assert (r.status_code, plain.status_code) == (200, 200), r.text
    assert r.json() == plain.json()
    assert r.json()["server_name"] == SERVER_NAME
    assert api.services.signing_key.key_id in r.json()["verify_keys"]


# -- room versions the asking server lacks: 400 M_INCOMPATIBLE_ROOM_VERSION --------------------


def _incompatible(r: httpx.Response, version: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["errcode"], body["room_version"]) == ("M_INCOMPATIBLE_ROOM_VERSION", version)
    assert isinstance(body["error"], str)


@pytest.mark.parametrize("ver", [["1", "2"], ["9", "12"], None], ids=["v1v2", "v9v12", "none"])
async def test_make_join_in_a_version_the_server_lacks_is_incompatible(
    api: ClientApi, remote: SignedPeer, ver: list[str] | None
) -> None:
    """`ver` absent means ["1"], as the spec says."""
    room = await _room(api, "11")
    r = await remote.request(
        "GET", f"{V1}/make_join/{room}/{quote(CAROL)}", query={"ver": ver} if ver else None
    )
    _incompatible(r, "11")


async def test_make_join_in_a_version_the_server_has_is_a_template(
    api: ClientApi, remote: SignedPeer
) -> None:
    room = await _room(api, "11")
    r = await remote.request(
        "GET", f"{V1}/make_join/{room}/{quote(CAROL)}", query={"ver": ["10", "11"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["room_version"] == "11"
    assert r.json()["event"]["content"] == {"membership": "join"}


async def _knock_room(api: ClientApi, version: str) -> str:
    room = await _room(api, version, preset="private_chat")
    await api.services.rooms.send_event(
        ALICE, None, room, "m.room.join_rules", {"join_rule": "knock"}, state_key=""
    )
    return room


async def test_make_knock_in_a_version_the_server_lacks_is_incompatible(
    api: ClientApi, remote: SignedPeer
) -> None:
    room = await _knock_room(api, "11")
    r = await remote.request(
        "GET", f"{V1}/make_knock/{room}/{quote(CAROL)}", query={"ver": ["1", "7", "10"]}
    )
    _incompatible(r, "11")


async def test_make_knock_without_ver_is_missing_param(api: ClientApi, remote: SignedPeer) -> None:
    """`ver` is required for make_knock (no default, unlike make_join)."""
    room = await _knock_room(api, "11")
    r = await remote.request("GET", f"{V1}/make_knock/{room}/{quote(CAROL)}")
    assert (r.status_code, r.json()["errcode"]) == (400, "M_MISSING_PARAM"), r.text


async def test_make_knock_in_a_knock_room_is_a_template(api: ClientApi, remote: SignedPeer) -> None:
    room = await _knock_room(api, "11")
    r = await remote.request("GET", f"{V1}/make_knock/{room}/{quote(CAROL)}", query={"ver": ["11"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["room_version"] == "11"
    assert (body["event"]["state_key"], body["event"]["content"]) == (
        CAROL,
        {"membership": "knock"},
    )


async def test_make_knock_where_the_join_rule_forbids_knocking_is_forbidden(
    api: ClientApi, remote: SignedPeer
) -> None:
    room = await _room(api, "11", preset="private_chat")  # join rule "invite"
    r = await remote.request("GET", f"{V1}/make_knock/{room}/{quote(CAROL)}", query={"ver": ["11"]})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN"), r.text


@pytest.mark.parametrize("version", ["999", "13", ""])
async def test_invite_in_a_version_we_lack_is_incompatible(
    api: ClientApi, remote: SignedPeer, version: str
) -> None:
    """Invite v2: the spec's 400 is `M_INCOMPATIBLE_ROOM_VERSION` with `room_version`
    (Synapse answers `M_UNSUPPORTED_ROOM_VERSION` here; the spec is the contract)."""
    bob = await api.add_user("bob")
    room = "!somewhere:" + REMOTE
    event = {
        "type": "m.room.member",
        "room_id": room,
        "sender": CAROL,
        "state_key": bob,
        "content": {"membership": "invite"},
    }
    r = await remote.request(
        "PUT",
        f"{V2}/invite/{quote(room)}/{quote('$invite')}",
        json_body={"room_version": version, "event": event, "invite_room_state": []},
    )
    _incompatible(r, version)


async def test_send_knock_stores_the_knock_and_answers_the_rooms_knock_state(
    api: ClientApi, remote: SignedPeer
) -> None:
    """v1.16: `knock_room_state` holds the room's create event and other identifying state,
    as full events of the room's version."""
    room = await _knock_room(api, "11")
    knock = await build(
        api,
        room,
        sender=CAROL,
        type_="m.room.member",
        content={"membership": "knock"},
        state_key=CAROL,
    )
    r = await remote.request(
        "PUT",
        f"{V1}/send_knock/{quote(room)}/{quote(knock.event_id)}",
        json_body=json.loads(knock.raw),
    )
    assert r.status_code == 200, r.text
    state = r.json()["knock_room_state"]
    by_type = {e["type"]: e for e in state}
    assert {"m.room.create", "m.room.join_rules"} <= set(by_type)
    assert by_type["m.room.join_rules"]["content"] == {"join_rule": "knock"}
    assert all("signatures" in e and "hashes" in e for e in state)
    membership = await api.services.database.read(store_rooms.get_membership, room, CAROL)
    assert membership == "knock"


# -- /send limits; /state_ids and /event_auth errors ---------------------------------------------


def _error(r: httpx.Response, status: int, errcode: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["errcode"] == errcode and isinstance(body["error"], str), body


def _txn(origin: str, pdus: int, edus: int) -> dict[str, Any]:
    return {
        "origin": origin,
        "origin_server_ts": 1,
        "pdus": [{"room_id": "!nowhere:" + REMOTE} for _ in range(pdus)],
        "edus": [{"edu_type": "org.example.nothing", "content": {}} for _ in range(edus)],
    }


@pytest.mark.parametrize(("pdus", "edus"), [(51, 0), (0, 101), (51, 101)])
async def test_send_over_the_limits_is_400(remote: SignedPeer, pdus: int, edus: int) -> None:
    """At most 50 PDUs and 100 EDUs a transaction: Synapse answers 400 (with `{}`; ours
    carries M_BAD_JSON, which the spec leaves open)."""
    r = await remote.request("PUT", f"{V1}/send/over", json_body=_txn(REMOTE, pdus, edus))
    _error(r, 400, "M_BAD_JSON")


async def test_send_at_the_limits_is_processed(remote: SignedPeer) -> None:
    """PDUs of a room we do not know are dropped, without a result (as Synapse does)."""
    r = await remote.request("PUT", f"{V1}/send/at", json_body=_txn(REMOTE, 50, 100))
    assert (r.status_code, r.json()) == (200, {"pdus": {}}), r.text


async def test_send_whose_origin_is_not_the_signer_is_forbidden(remote: SignedPeer) -> None:
    r = await remote.request("PUT", f"{V1}/send/x", json_body=_txn("someone.else", 1, 0))
    _error(r, 403, "M_FORBIDDEN")


async def test_send_with_pdus_not_a_list_is_bad_json(remote: SignedPeer) -> None:
    r = await remote.request("PUT", f"{V1}/send/y", json_body={"origin": REMOTE, "pdus": {}})
    _error(r, 400, "M_BAD_JSON")


@pytest.fixture
async def joined(api: ClientApi, remote: SignedPeer) -> tuple[str, str, str]:
    """A room REMOTE's Carol joined, its newest event; and a room REMOTE was never in, with
    its newest event."""
    room = await shared_room(api, "11")
    message = await local_message(api, room, "seen")
    private = await _room(api, "11", preset="private_chat")
    secret = await local_message(api, private, "unseen")
    return room, message, secret


async def test_state_ids_errors(remote: SignedPeer, joined: tuple[str, str, str]) -> None:
    """Spec: 403 for a host not in the room, 404 for an unknown event; the query parameter
    is required (Synapse: 400 M_MISSING_PARAM)."""
    room, message, secret = joined
    path = f"{V1}/state_ids/{quote(room)}"
    _error(await remote.request("GET", path), 400, "M_MISSING_PARAM")
    _error(await remote.request("GET", path, query={"event_id": "$nope"}), 404, "M_NOT_FOUND")
    # An event of another room (one REMOTE is not in: still 403, the event's room decides).
    _error(await remote.request("GET", path, query={"event_id": secret}), 403, "M_FORBIDDEN")
    r = await remote.request("GET", path, query={"event_id": message})
    assert r.status_code == 200 and set(r.json()) == {"pdu_ids", "auth_chain_ids"}, r.text


async def test_state_ids_of_a_room_the_server_never_joined_is_403(
    api: ClientApi, remote: SignedPeer, joined: tuple[str, str, str]
) -> None:
    _room_id, _message, secret = joined
    private = await api.services.database.read(
        lambda conn: store_events.get_event_row(conn, secret)["room_id"]
    )
    for query in ({"event_id": secret}, {"event_id": "$nope"}):
        r = await remote.request("GET", f"{V1}/state_ids/{quote(private)}", query=query)
        _error(r, 403, "M_FORBIDDEN")


async def test_event_auth_errors(
    api: ClientApi, remote: SignedPeer, joined: tuple[str, str, str]
) -> None:
    room, message, secret = joined
    private = await api.services.database.read(
        lambda conn: store_events.get_event_row(conn, secret)["room_id"]
    )
    _error(await remote.request("GET", f"{V1}/event_auth/{quote(room)}/$nope"), 404, "M_NOT_FOUND")
    r = await remote.request("GET", f"{V1}/event_auth/{quote(private)}/{quote(secret)}")
    _error(r, 403, "M_FORBIDDEN")
    r = await remote.request("GET", f"{V1}/event_auth/{quote(room)}/{quote(message)}")
    assert r.status_code == 200 and set(r.json()) == {"auth_chain"}, r.text
