"""A PDU whose signing key cannot be found yet is kept, not dropped, and accepted once the
key is there: through the real federation app in process. REMOTE (whose key we hold) pushes
a message Erin of ELSEWHERE wrote; ELSEWHERE's key is nowhere to be fetched (the KeyRing has
no client), as an upstream's key is for a kit behind the one with the uplink."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import trio

from relay.events.pdu import Pdu
from relay.federation import ingest as ingest_module
from relay.rooms.remote_pdus import is_promotable_outlier
from relay.runtime.clock import now_ms
from store import events as store_events
from store import pending_pdus as store_pending
from tests.client.conftest import ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import V1, SignedPeer, federation_http, trust_key
from tests.rooms.remote_rooms import ELSEWHERE, ELSEWHERE_KEY, ERIN, build, shared_room
from tests.rooms.test_remote_pdus import REMOTE, REMOTE_KEY


async def _send(peer: SignedPeer, pdu: Pdu) -> httpx.Response:
    return await peer.request(
        "PUT",
        f"{V1}/send/{time.monotonic_ns()}",
        json_body={
            "origin": peer.name,
            "origin_server_ts": now_ms(),
            "pdus": [json.loads(pdu.raw)],
            "edus": [],
        },
    )


async def _in_room(api: ClientApi, event_id: str) -> bool:
    row = await api.services.database.read(store_events.get_event_row, event_id)
    return row is not None and not is_promotable_outlier(row) and not row.get("rejected")


async def _pending(api: ClientApi) -> list[dict[str, Any]]:
    return await api.services.database.read(lambda conn: store_pending.get_pending_pdus(conn))


async def _erins_message_pushed_without_her_key(api: ClientApi) -> str:
    await trust_key(api, REMOTE, REMOTE_KEY)
    room_id = await shared_room(api, "11")
    api.services.keyring.client = None  # ELSEWHERE's key cannot be fetched from anywhere
    message = await build(
        api,
        room_id,
        sender=ERIN,
        type_="m.room.message",
        content={"msgtype": "m.text", "body": "carried"},
    )
    async with federation_http(api) as http:
        r = await _send(SignedPeer(REMOTE, REMOTE_KEY, http), message)
    assert r.status_code == 200, r.text
    assert r.json()["pdus"] == {message.event_id: {}}
    return message.event_id


async def test_a_pdu_whose_key_is_missing_is_kept_then_accepted_when_retried(
    api: ClientApi,
) -> None:
    event_id = await _erins_message_pushed_without_her_key(api)
    assert not await _in_room(api, event_id)
    [kept] = await _pending(api)
    assert (kept["event_id"], kept["origin"], kept["key_server"]) == (event_id, REMOTE, ELSEWHERE)
    ingest = api.services.ingest
    assert await ingest.retry_pending() == 0  # still no key: still kept
    assert [r["event_id"] for r in await _pending(api)] == [event_id]

    await trust_key(api, ELSEWHERE, ELSEWHERE_KEY)
    assert await ingest.retry_pending() == 1
    assert await _in_room(api, event_id)
    assert await _pending(api) == []


async def test_a_kept_pdu_is_accepted_as_soon_as_its_servers_key_is_cached(
    api: ClientApi,
) -> None:
    event_id = await _erins_message_pushed_without_her_key(api)
    ingest = api.services.ingest
    assert api.services.keyring.on_keys_cached == ingest.keys_cached
    async with trio.open_nursery() as nursery:
        await nursery.start(ingest.serve_pending)
        await trust_key(api, ELSEWHERE, ELSEWHERE_KEY)
        api.services.keyring.on_keys_cached(ELSEWHERE)  # as a fetch or a notary answer does
        with trio.fail_after(60):  # a hang guard, not a timing assertion
            while not await _in_room(api, event_id):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert await _pending(api) == []


async def test_kept_pdus_are_bounded(api: ClientApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "MAX_PENDING", 0)
    await trust_key(api, REMOTE, REMOTE_KEY)
    room_id = await shared_room(api, "11")
    api.services.keyring.client = None
    message = await build(api, room_id, sender=ERIN, type_="m.room.message", content={"body": "x"})
    async with federation_http(api) as http:
        r = await _send(SignedPeer(REMOTE, REMOTE_KEY, http), message)
    assert r.status_code == 200 and r.json()["pdus"] == {}
    assert await _pending(api) == []
