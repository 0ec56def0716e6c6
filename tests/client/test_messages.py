"""GET /rooms/{roomId}/messages through the real app: paging the whole history,
directions, filters and who may read what."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import create_room, send

V3 = "/_matrix/client/v3"


async def _messages(api: ClientApi, headers: dict[str, str], room_id: str, **params: Any):
    if "filter" in params:
        params["filter"] = json.dumps(params["filter"])
    return await api.http.get(f"{V3}/rooms/{room_id}/messages", headers=headers, params=params)


async def _page_all(
    api: ClientApi, headers: dict[str, str], room_id: str, direction: str, limit: int
) -> tuple[list[dict[str, Any]], int]:
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"dir": direction, "limit": limit}
    pages = 0
    while True:
        r = await _messages(api, headers, room_id, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        events.extend(body["chunk"])
        if "end" not in body:
            return events, pages
        assert pages < 100
        params["from"] = body["end"]


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
async def test_back_pagination_reaches_create_event_with_every_message_once(
    api: ClientApi, version: str
) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, room_version=version, name="history")
    sent = [await send(api, alice, room_id, f"m{i}") for i in range(23)]
    events, pages = await _page_all(api, alice, room_id, "b", 5)
    ids = [e["event_id"] for e in events]
    assert pages > 4
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i in sent] == list(reversed(sent))
    assert events[-1]["type"] == "m.room.create"
    assert all(e["room_id"] == room_id for e in events)


async def test_forward_pagination_from_the_start_is_oldest_first(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    sent = [await send(api, alice, room_id, f"m{i}") for i in range(7)]
    events, _ = await _page_all(api, alice, room_id, "f", 4)
    assert events[0]["type"] == "m.room.create"
    assert [e["event_id"] for e in events if e["event_id"] in sent] == sent
    backwards, _ = await _page_all(api, alice, room_id, "b", 4)
    assert [e["event_id"] for e in events] == [e["event_id"] for e in reversed(backwards)]


async def test_forward_from_a_back_token_returns_the_newer_events(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    first = await send(api, alice, room_id, "first")
    r = await _messages(api, alice, room_id, dir="b", limit=1)
    token = r.json()["start"]
    later = [await send(api, alice, room_id, f"later{i}") for i in range(3)]
    r = await _messages(api, alice, room_id, dir="f", **{"from": token})
    body = r.json()
    assert [e["event_id"] for e in body["chunk"]] == later
    assert body["start"] == token
    r = await _messages(api, alice, room_id, dir="b", **{"from": token, "limit": 1})
    assert [e["event_id"] for e in r.json()["chunk"]] == [first]


async def test_to_token_bounds_a_page(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    await send(api, alice, room_id, "old")
    r = await _messages(api, alice, room_id, dir="b", limit=1)
    boundary = r.json()["start"]
    new = [await send(api, alice, room_id, f"new{i}") for i in range(3)]
    r = await _messages(api, alice, room_id, dir="b", to=boundary, limit=50)
    body = r.json()
    assert [e["event_id"] for e in body["chunk"]] == list(reversed(new))
    assert "end" not in body


async def test_sync_style_token_is_accepted(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    r = await _messages(api, alice, room_id, dir="b", limit=1)
    position = r.json()["start"]
    r = await _messages(api, alice, room_id, dir="b", limit=1, **{"from": position + "_0"})
    assert r.status_code == 200
    assert r.json()["start"] == position + "_0"
    for bad in ("t12", "t12-x", "t-", "t1-2u", "t1-2x3", "t" + "9" * 30 + "-1"):
        r = await _messages(api, alice, room_id, dir="b", **{"from": bad})
        assert r.json()["errcode"] == "M_INVALID_PARAM", bad


async def test_filter_types_senders_and_not_types(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    a = await send(api, alice, room_id, "from-alice")
    b = await send(api, bob, room_id, "from-bob")
    c = await send(api, alice, room_id, "custom", type="org.example.custom")

    async def ids(event_filter: dict[str, Any]) -> list[str]:
        r = await _messages(api, alice, room_id, dir="b", limit=100, filter=event_filter)
        assert r.status_code == 200, r.text
        return [e["event_id"] for e in r.json()["chunk"]]

    assert await ids({"types": ["m.room.message"]}) == [b, a]
    assert await ids({"types": ["m.room.message"], "senders": [f"@bob:{SERVER_NAME}"]}) == [b]
    wildcard = await ids(
        {
            "types": ["m.room.*", "org.example.*"],
            "not_types": ["m.room.member", "m.room.message"],
            "not_senders": [f"@bob:{SERVER_NAME}"],
        }
    )
    assert wildcard[0] == c
    assert a not in wildcard and b not in wildcard
    assert a not in await ids({"not_types": ["m.room.message"]})
    r = await _messages(api, alice, room_id, dir="b", filter="{not json")
    assert r.json()["errcode"] == "M_BAD_JSON"


async def test_lazy_load_members_returns_member_events_of_senders(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    await send(api, bob, room_id, "hello")
    r = await _messages(api, alice, room_id, dir="b", limit=1, filter={"lazy_load_members": True})
    body = r.json()
    assert [e["sender"] for e in body["chunk"]] == [f"@bob:{SERVER_NAME}"]
    assert [(e["type"], e["state_key"]) for e in body["state"]] == [
        ("m.room.member", f"@bob:{SERVER_NAME}")
    ]


async def test_user_who_left_cannot_read_later_events(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    before = await send(api, alice, room_id, "before")
    await api.http.post(f"{V3}/rooms/{room_id}/leave", headers=bob, json={})
    after = await send(api, alice, room_id, "after")
    events, _ = await _page_all(api, bob, room_id, "b", 3)
    ids = [e["event_id"] for e in events]
    assert before in ids
    assert after not in ids
    assert events[0]["type"] == "m.room.member"
    assert events[0]["content"]["membership"] == "leave"
    forwards, _ = await _page_all(api, bob, room_id, "f", 3)
    assert after not in [e["event_id"] for e in forwards]
    r = await api.http.get(f"{V3}/rooms/{room_id}/event/{after}", headers=bob)
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_stranger_gets_forbidden(api: ClientApi) -> None:
    alice = await api.login("alice")
    eve = await api.login("eve")
    room_id = await create_room(api, alice)
    r = await _messages(api, eve, room_id, dir="b")
    assert r.status_code == 403
    assert r.json()["errcode"] == "M_FORBIDDEN"
    r = await _messages(api, eve, f"!nowhere:{SERVER_NAME}", dir="b")
    assert r.json()["errcode"] == "M_FORBIDDEN"


async def test_world_readable_room_is_readable_by_a_stranger(api: ClientApi) -> None:
    alice = await api.login("alice")
    eve = await api.login("eve")
    room_id = await create_room(
        api,
        alice,
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    hidden = await send(api, alice, room_id, "hidden")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/state/m.room.history_visibility",
        headers=alice,
        json={"history_visibility": "world_readable"},
    )
    assert r.status_code == 200, r.text
    shown = await send(api, alice, room_id, "shown")
    events, _ = await _page_all(api, eve, room_id, "b", 10)
    ids = [e["event_id"] for e in events]
    assert shown in ids
    assert hidden not in ids


async def test_joined_history_visibility_hides_events_before_the_join(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(
        api,
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    early = await send(api, alice, room_id, "early")
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    late = await send(api, alice, room_id, "late")
    events, _ = await _page_all(api, bob, room_id, "b", 2)
    ids = [e["event_id"] for e in events]
    assert late in ids
    assert early not in ids


async def test_redacted_event_is_served_redacted(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    target = await send(api, alice, room_id, "secret")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/redact/{target}/r1", headers=alice, json={"reason": "oops"}
    )
    redaction = r.json()["event_id"]
    r = await _messages(api, alice, room_id, dir="b", limit=2)
    chunk = r.json()["chunk"]
    assert chunk[0]["event_id"] == redaction
    assert chunk[1]["event_id"] == target
    assert chunk[1]["content"] == {}
    assert chunk[1]["unsigned"]["redacted_because"]["event_id"] == redaction
    r = await api.http.get(f"{V3}/rooms/{room_id}/event/{target}", headers=alice)
    assert r.json()["content"] == {}
    assert r.json()["unsigned"]["redacted_because"]["content"]["reason"] == "oops"


async def test_own_events_carry_the_transaction_id(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    event_id = await send(api, alice, room_id, "hello", txn="txn42")
    r = await _messages(api, alice, room_id, dir="b", limit=1)
    event = r.json()["chunk"][0]
    assert event["event_id"] == event_id
    assert event["unsigned"]["transaction_id"] == "txn42"


async def test_limit_and_dir_are_checked(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    r = await _messages(api, alice, room_id, dir="x")
    assert r.json()["errcode"] == "M_INVALID_PARAM"
    r = await _messages(api, alice, room_id, dir="b", limit=-1)
    assert r.json()["errcode"] == "M_INVALID_PARAM"
    r = await _messages(api, alice, room_id, dir="b")
    assert len(r.json()["chunk"]) <= 10


async def test_timestamp_to_event_finds_the_nearest_event(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    last = await send(api, alice, room_id, "last")
    path = f"/_matrix/client/v1/rooms/{room_id}/timestamp_to_event"
    r = await api.http.get(path, headers=alice, params={"ts": 2**53, "dir": "b"})
    assert r.status_code == 200, r.text
    assert r.json()["event_id"] == last
    r = await api.http.get(path, headers=alice, params={"ts": 0, "dir": "f"})
    event_id = r.json()["event_id"]
    r = await api.http.get(f"{V3}/rooms/{room_id}/event/{event_id}", headers=alice)
    assert r.json()["type"] == "m.room.create"
    r = await api.http.get(path, headers=alice, params={"ts": 2**53, "dir": "f"})
    assert r.status_code == 404
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_state_changes_carry_prev_content_and_every_event_an_age(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat", name="one")
    assert (await api.http.post(f"{V3}/join/{room_id}", headers=bob, json={})).status_code == 200
    for name in ("two", "three"):
        r = await api.http.put(
            f"{V3}/rooms/{room_id}/state/m.room.name/", headers=alice, json={"name": name}
        )
        assert r.status_code == 200, r.text
    r = await api.http.put(
        f"{V3}/profile/@bob:{SERVER_NAME}/displayname", headers=bob, json={"displayname": "Bob"}
    )
    assert r.status_code == 200, r.text
    await send(api, alice, room_id, "hello")
    for reader in (alice, bob):
        r = await _messages(api, reader, room_id, dir="b", limit=100)
        chunk = r.json()["chunk"]
        for event in chunk:
            age = event["unsigned"]["age"]
            assert isinstance(age, int) and 0 <= age < 60_000, event
        names = [e for e in chunk if e["type"] == "m.room.name"]
        assert [e["content"]["name"] for e in names] == ["three", "two", "one"]
        assert [e["unsigned"].get("prev_content") for e in names] == [
            {"name": "two"},
            {"name": "one"},
            None,  # the first name replaced nothing
        ]
        # As Synapse (and /sync), the id of the replaced state comes with its content.
        assert [e["unsigned"].get("replaces_state") for e in names] == [
            names[1]["event_id"],
            names[2]["event_id"],
            None,
        ]
        bob_members = [e for e in chunk if e.get("state_key") == f"@bob:{SERVER_NAME}"]
        assert bob_members[0]["content"]["displayname"] == "Bob"
        assert bob_members[0]["unsigned"]["prev_content"]["membership"] == "join"
        assert "displayname" not in bob_members[0]["unsigned"]["prev_content"]
        assert "prev_content" not in bob_members[-1]["unsigned"]  # bob's first join
        # The forward direction renders the same.
        r = await _messages(api, reader, room_id, dir="f", limit=100)
        forward = {e["event_id"]: e["unsigned"].get("prev_content") for e in r.json()["chunk"]}
        assert forward == {e["event_id"]: e["unsigned"].get("prev_content") for e in chunk}
