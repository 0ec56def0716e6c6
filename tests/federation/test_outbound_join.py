"""A local user joins a room another server hosts (the differential harness's fake remote,
over TLS on loopback), against the in-process relay, so the tests can read what it stored.
Each malformed answer beside its well-formed twin; the same scenarios against a real Synapse
are rows of tests/federation/differential/test_outbound_differential.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from store import events as store_events
from store import rooms as store_rooms
from tests.client.conftest import ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.differential.fake_remote import FakeRemote
from tests.federation.differential.hosted_room import HostedRoom, event_id_of

VERSION = "10"
V3 = "/_matrix/client/v3"
#: The relay reaches the fake remotes on loopback, whose self-signed certificates it accepts.
REACH_LOOPBACK = pytest.mark.config(
    {"federation.verify_tls": False, "federation.ip_range_allowlist": ["127.0.0.0/8"]}
)
pytestmark = REACH_LOOPBACK


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[FakeRemote]:
    server = FakeRemote(tmp_path / "remote")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[FakeRemote]:
    """A second server, in no room: it answers make_join as a test scripts it."""
    server = FakeRemote(tmp_path / "other")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def room_on(remote: FakeRemote, name: str) -> HostedRoom:
    room = HostedRoom.create(remote, VERSION, name)
    room.add("m.room.name", {"name": "A room elsewhere"}, "")
    return room


async def join(api: ClientApi, room: HostedRoom, *via: str) -> httpx.Response:
    alice = await api.login("alice")
    return await api.http.post(
        f"{V3}/join/{quote(room.room_id, safe='')}",
        params=[("via", s) for s in via or (room.remote.name,)],
        headers=alice,
        json={},
    )


async def stored(api: ClientApi, event_ids: Any) -> set[str]:
    return await api.services.database.read(store_events.have_events, list(event_ids))


async def state_types(api: ClientApi, room: HostedRoom) -> set[tuple[str, str]]:
    r = await api.http.get(
        f"{V3}/rooms/{quote(room.room_id, safe='')}/state",
        headers={"Authorization": f"Bearer {api.tokens['alice']}"},
    )
    assert r.status_code == 200, r.text
    return {(e["type"], e["state_key"]) for e in r.json()}


async def test_well_formed_answer_joins_and_stores_the_state(
    api: ClientApi, remote: FakeRemote
) -> None:
    room = room_on(remote, "well-formed").host()
    r = await join(api, room)
    assert r.status_code == 200, r.text
    assert await stored(api, room.state.values()) == set(room.state.values())
    assert ("m.room.name", "") in await state_types(api, room)
    [sent] = room.joins
    assert sent["sender"] == "@alice:relay.test"


async def test_event_with_a_forged_signature_is_skipped_and_the_join_stands(
    api: ClientApi, remote: FakeRemote
) -> None:
    room = HostedRoom.create(remote, VERSION, "forged")
    forged = event_id_of(room.add("m.room.name", {"name": "forged"}, ""), VERSION)
    room.forge_signature(forged)
    r = await join(api, room.host())
    assert r.status_code == 200, r.text
    assert await stored(api, [forged]) == set()
    types = await state_types(api, room)
    assert ("m.room.name", "") not in types
    assert ("m.room.member", "@alice:relay.test") in types


async def test_state_event_citing_a_forged_event_is_no_state(
    api: ClientApi, remote: FakeRemote
) -> None:
    """Complement's unverifiable auth events: dave's leave cites his badly signed join; both
    go, the rest of the state stands."""
    room = HostedRoom.create(remote, VERSION, "unverifiable")
    dave = remote.user("dave")
    bad_join = event_id_of(
        room.add("m.room.member", {"membership": "join"}, dave, sender=dave), VERSION
    )
    leave = event_id_of(
        room.add("m.room.member", {"membership": "leave"}, dave, sender=dave), VERSION
    )
    room.forge_signature(bad_join)
    r = await join(api, room.host())
    assert r.status_code == 200, r.text
    assert await stored(api, [bad_join, leave]) == set()
    assert ("m.room.member", dave) not in await state_types(api, room)


async def test_member_with_non_string_displayname_joins_and_syncs(
    api: ClientApi, remote: FakeRemote
) -> None:
    """sytest: a membership event with an invalid displayname in the send_join answer does
    not make the join fail, and the room then comes down /sync."""
    room = room_on(remote, "displayname")
    room.add(
        "m.room.member", {"membership": "join", "displayname": [], "avatar_url": []}, room.creator
    )
    r = await join(api, room.host())
    assert r.status_code == 200, r.text
    headers = {"Authorization": f"Bearer {api.tokens['alice']}"}
    synced = await api.http.get(f"{V3}/sync", headers=headers)
    assert synced.status_code == 200, synced.text
    assert room.room_id in synced.json()["rooms"]["join"]
    members = await api.http.get(
        f"{V3}/rooms/{quote(room.room_id, safe='')}/joined_members", headers=headers
    )
    assert members.status_code == 200, members.text
    assert room.creator in members.json()["joined"]


@pytest.mark.parametrize("where", ["state", "state and auth chain"])
async def test_answer_without_create_event_is_refused_and_nothing_is_stored(
    api: ClientApi, remote: FakeRemote, where: str
) -> None:
    room = room_on(remote, "no-create")

    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        parts = ["state"] if where == "state" else ["state", "auth_chain"]
        for part in parts:
            body[part] = [e for e in body[part] if e["type"] != "m.room.create"]
        return 200, body

    room.answer_send_join = answer
    r = await join(api, room.host())
    assert (r.status_code, r.json()["errcode"]) == (502, "M_UNKNOWN"), r.text
    assert "no create event in its state" in r.json()["error"]
    assert await api.services.database.read(store_rooms.get_room_version, room.room_id) is None
    assert await stored(api, room.state.values()) == set()
    assert await api.services.rooms.membership_of(room.room_id, "@alice:relay.test") is None


async def test_create_event_of_another_room_version_is_refused(
    api: ClientApi, remote: FakeRemote
) -> None:
    room = HostedRoom.create(remote, VERSION, "other-version", create_version="9")
    r = await join(api, room.host())
    assert (r.status_code, r.json()["errcode"]) == (502, "M_UNKNOWN"), r.text
    assert await api.services.database.read(store_rooms.get_room_version, room.room_id) is None


async def test_make_join_refusal_reaches_the_client_as_the_remote_said_it(
    api: ClientApi, remote: FakeRemote
) -> None:
    room = room_on(remote, "refused")
    room.make_join_refusal = (403, {"errcode": "M_FORBIDDEN", "error": "You are not invited"})
    r = await join(api, room.host())
    assert (r.status_code, r.json()) == (
        403,
        {"errcode": "M_FORBIDDEN", "error": "You are not invited"},
    )
    room.make_join_refusal = (400, {"errcode": "M_TEST_ERROR_CODE", "error": "denied!"})
    r = await join(api, room)
    assert (r.status_code, r.json()["errcode"]) == (400, "M_TEST_ERROR_CODE")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"errcode": "M_UNAUTHORIZED", "error": "Failed to find any key"}),
        (400, {"errcode": "not an errcode", "error": "x" * 10_000}),
    ],
)
async def test_refusals_a_client_must_not_get_as_is(
    api: ClientApi, remote: FakeRemote, status: int, body: dict[str, Any]
) -> None:
    """A 401 is the remote failing to authenticate us (a client would take it for its own
    token): the next server, then 502. A malformed errcode becomes M_UNKNOWN and the message
    is bounded."""
    room = room_on(remote, "odd-refusal")
    room.make_join_refusal = (status, body)
    r = await join(api, room.host())
    if status == 401:
        assert (r.status_code, r.json()["errcode"]) == (502, "M_UNKNOWN"), r.text
    else:
        assert (r.status_code, r.json()["errcode"]) == (400, "M_UNKNOWN"), r.text
        assert len(r.json()["error"]) <= 500


def refuse_make_join(server: FakeRemote, room: HostedRoom, status: int, body: Any) -> None:
    server.scripts.append(
        (
            "GET",
            f"/_matrix/federation/v1/make_join/{re.escape(room.room_id)}/[^/]+",
            lambda m, b: (status, body),
        )
    )


def asked_make_join(server: FakeRemote, room: HostedRoom) -> bool:
    return any(
        m == "GET" and "/make_join/" in p and room.room_id in unquote(p) for m, p in server.received
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"errcode": "M_UNKNOWN", "error": "oops"}),
        (404, {"errcode": "M_NOT_FOUND", "error": "Unknown room"}),
        (400, {"errcode": "M_UNABLE_TO_AUTHORISE_JOIN", "error": "ask someone else"}),
    ],
)
async def test_next_via_server_is_tried_when_one_fails(
    api: ClientApi, remote: FakeRemote, other: FakeRemote, status: int, body: Any
) -> None:
    room = room_on(remote, "failover").host()
    refuse_make_join(other, room, status, body)
    r = await join(api, room, other.name, remote.name)
    assert r.status_code == 200, r.text
    assert asked_make_join(other, room)
    assert asked_make_join(remote, room)


async def test_answer_without_create_event_moves_on_to_the_next_server(
    api: ClientApi, remote: FakeRemote, other: FakeRemote
) -> None:
    """The first server (`other`, also hosting the room's copy) answers without a create
    event: the join goes through the next one."""
    room = room_on(remote, "bad-first")
    room.host()
    other.scripts.append(
        (
            "GET",
            f"/_matrix/federation/v1/make_join/{re.escape(room.room_id)}/([^/]+)",
            lambda m, b: (200, {"room_version": VERSION, "event": room.template(m[1])}),
        )
    )
    other.scripts.append(
        (
            "PUT",
            f"/_matrix/federation/v2/send_join/{re.escape(room.room_id)}/[^/]+",
            lambda m, b: (200, {"state": [], "auth_chain": []}),
        )
    )
    r = await join(api, room, other.name, remote.name)
    assert r.status_code == 200, r.text
    assert len(room.joins) == 1


async def test_refusal_of_the_first_server_is_final(
    api: ClientApi, remote: FakeRemote, other: FakeRemote
) -> None:
    """Synapse does not ask the next server once one refused (403): neither do we."""
    room = room_on(remote, "refused-first").host()
    refuse_make_join(other, room, 403, {"errcode": "M_FORBIDDEN", "error": "You are banned"})
    r = await join(api, room, other.name, remote.name)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN"), r.text
    assert not asked_make_join(remote, room)
