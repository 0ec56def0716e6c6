"""Answers an outside federation conformance run checks, through the real federation app in
process: the status code and the errcode/shape of each, as the spec (v1.16) writes them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from relay.rooms import RoomConfig
from store import rooms as store_rooms
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import V1, V2, SignedPeer, federation_http, trust_key
from tests.rooms.remote_rooms import ALICE, CAROL, build
from tests.rooms.test_remote_pdus import REMOTE, REMOTE_KEY


@pytest.fixture
async def fed(api: ClientApi) -> AsyncIterator[httpx.AsyncClient]:
    async with federation_http(api) as http:
        yield http


@pytest.fixture
async def remote(api: ClientApi, fed: httpx.AsyncClient) -> SignedPeer:
    await trust_key(api, REMOTE, REMOTE_KEY)
    return SignedPeer(REMOTE, REMOTE_KEY, fed)


async def _room(api: ClientApi, version: str = "10", preset: str = "public_chat") -> str:
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


@pytest.mark.parametrize("version", ["999", "1", ""])
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
