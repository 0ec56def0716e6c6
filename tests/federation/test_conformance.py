"""Answers an outside federation conformance run checks, through the real federation app in
process: the status code and the errcode/shape of each, as the spec (v1.16) writes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from relay.rooms import RoomConfig
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import SignedPeer, federation_http, trust_key
from tests.rooms.remote_rooms import ALICE
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
