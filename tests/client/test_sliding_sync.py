"""Simplified Sliding Sync (MSC4186) through the real app: lists, windows and their
order, filters, subscriptions, required_state (wildcards, $LAZY, $ME), timelines and
`num_live`, `pos` tokens (incremental answers, unknown positions, a retried pos),
long-polling, and the extensions."""

from __future__ import annotations

import json
from typing import Any

import trio

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, send, uid

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def _ss(
    api: ClientApi,
    headers: dict[str, str],
    body: dict[str, Any],
    pos: str | None = None,
    timeout: int = 0,
    status: int = 200,
) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout": timeout}
    if pos is not None:
        params["pos"] = pos
    r = await api.http.post(SS, headers=headers, params=params, json=body)
    assert r.status_code == status, r.text
    return r.json()


def _list(ranges: list[list[int]], **extra: Any) -> dict[str, Any]:
    return {"ranges": ranges, "required_state": [], "timeline_limit": 0, **extra}


def _window(answer: dict[str, Any], name: str = "all") -> list[str]:
    return answer["lists"][name]["ops"][0]["room_ids"]


async def test_versions_advertises_simplified_sliding_sync(api: ClientApi) -> None:
    r = await api.http.get("/_matrix/client/versions")
    assert r.json()["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_lists_are_sorted_by_activity_and_windowed(api: ClientApi) -> None:
    alice = await api.login("alice")
    rooms = [await create_room(api, alice, name=f"room {i}") for i in range(4)]
    await send(api, alice, rooms[1], "bump")
    answer = await _ss(api, alice, {"lists": {"all": _list([[0, 1], [2, 3]])}})
    ops = answer["lists"]["all"]["ops"]
    assert answer["lists"]["all"]["count"] == 4
    assert ops[0] == {"op": "SYNC", "range": [0, 1], "room_ids": [rooms[1], rooms[3]]}
    assert ops[1]["room_ids"] == [rooms[2], rooms[0]]
    assert set(answer["rooms"]) == set(rooms)
    room = answer["rooms"][rooms[1]]
    assert room["initial"] is True and room["name"] == "room 1"
    assert room["joined_count"] == 1 and room["invited_count"] == 0
    assert room["bump_stamp"] > answer["rooms"][rooms[3]]["bump_stamp"]
    assert "timeline" not in room and "required_state" not in room


async def test_required_state_timeline_and_incremental_answers(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat", name="Chat")
    await join(api, bob, room)
    for i in range(5):
        await send(api, alice, room, f"m{i}")
    body = {
        "lists": {
            "all": _list(
                [[0, 10]],
                timeline_limit=3,
                required_state=[
                    ["m.room.name", ""],
                    ["m.room.member", "$LAZY"],
                    ["m.room.power_levels", "*"],
                ],
            )
        }
    }
    first = await _ss(api, bob, body)
    entry = first["rooms"][room]
    assert [e["content"]["body"] for e in entry["timeline"]] == ["m2", "m3", "m4"]
    assert entry["limited"] is True and entry["num_live"] == 0
    keys = {(e["type"], e["state_key"]) for e in entry["required_state"]}
    assert keys == {
        ("m.room.name", ""),
        ("m.room.power_levels", ""),
        ("m.room.member", uid("alice")),
    }
    # prev_batch continues with /messages.
    r = await api.http.get(
        f"{V3}/rooms/{room}/messages",
        headers=bob,
        params={"dir": "b", "from": entry["prev_batch"], "limit": 1},
    )
    assert [e["content"].get("body") for e in r.json()["chunk"]] == ["m1"]

    # Nothing new: the long-poll times out with no rooms.
    quiet = await _ss(api, bob, body, pos=first["pos"], timeout=50)
    assert quiet["rooms"] == {}

    # A new message: only it, live, and no state already sent.
    await send(api, bob, room, "from bob")
    later = await _ss(api, bob, body, pos=quiet["pos"])
    entry = later["rooms"][room]
    assert "initial" not in entry
    assert [e["content"]["body"] for e in entry["timeline"]] == ["from bob"]
    assert entry["num_live"] == 1 and entry["limited"] is False
    # Bob's own member event is new to the connection ($LAZY).
    assert [(e["type"], e["state_key"]) for e in entry["required_state"]] == [
        ("m.room.member", uid("bob"))
    ]
    # A retried pos gets the same answer; a made-up one is refused.
    again = await _ss(api, bob, body, pos=quiet["pos"])
    assert [e["event_id"] for e in again["rooms"][room]["timeline"]] == [
        e["event_id"] for e in entry["timeline"]
    ]
    bad = await _ss(api, bob, body, pos="99/s1_0", status=400)
    assert bad["errcode"] == "M_UNKNOWN_POS"


async def test_a_long_poll_wakes_on_a_new_message(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    body = {"lists": {"all": _list([[0, 0]], timeline_limit=1)}}
    first = await _ss(api, alice, body)
    answers: list[dict[str, Any]] = []

    async def poll() -> None:
        answers.append(await _ss(api, alice, body, pos=first["pos"], timeout=30_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(0.2)
        await send(api, alice, room, "wake up")
    assert [e["content"]["body"] for e in answers[0]["rooms"][room]["timeline"]] == ["wake up"]


async def test_filters_subscriptions_and_me(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    dm = await create_room(api, alice, is_direct=True, invite=[uid("bob")])
    encrypted = await create_room(
        api,
        alice,
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    space = await create_room(api, alice, creation_content={"type": "m.space"})
    plain = await create_room(api, alice)
    r = await api.http.put(
        f"{V3}/user/{uid('alice')}/account_data/m.direct",
        headers=alice,
        json={uid("bob"): [dm]},
    )
    assert r.status_code == 200
    lists = {
        "dms": _list([[0, 9]], filters={"is_dm": True}),
        "encrypted": _list([[0, 9]], filters={"is_encrypted": True}),
        "spaces": _list([[0, 9]], filters={"room_types": ["m.space"]}),
        "rooms": _list([[0, 9]], filters={"not_room_types": ["m.space"], "is_dm": False}),
    }
    answer = await _ss(api, alice, {"lists": lists})
    assert _window(answer, "dms") == [dm]
    assert _window(answer, "encrypted") == [encrypted]
    assert _window(answer, "spaces") == [space]
    assert set(_window(answer, "rooms")) == {encrypted, plain}
    assert answer["rooms"][dm]["is_dm"] is True

    # Bob's invite: in an is_invite list, with invite_state and no timeline.
    invites = await _ss(
        api, bob, {"lists": {"inv": _list([[0, 9]], timeline_limit=5, filters={"is_invite": True})}}
    )
    assert _window(invites, "inv") == [dm]
    entry = invites["rooms"][dm]
    assert "timeline" not in entry and any(
        e["type"] == "m.room.member" for e in entry["invite_state"]
    )

    # A subscription with $ME and a wildcard type.
    sub = await _ss(
        api,
        alice,
        {
            "room_subscriptions": {
                plain: {
                    "required_state": [["m.room.member", "$ME"], ["m.room.create", "*"]],
                    "timeline_limit": 1,
                }
            }
        },
    )
    got = {(e["type"], e["state_key"]) for e in sub["rooms"][plain]["required_state"]}
    assert got == {("m.room.member", uid("alice")), ("m.room.create", "")}
    assert "lists" not in sub


async def test_extensions(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    event_id = await send(api, alice, room, "read me")
    extensions = {
        "to_device": {"enabled": True},
        "e2ee": {"enabled": True},
        "account_data": {"enabled": True, "lists": ["*"], "rooms": ["*"]},
        "receipts": {"enabled": True, "lists": ["*"]},
        "typing": {"enabled": True, "lists": ["*"]},
    }
    body = {"lists": {"all": _list([[0, 0]], timeline_limit=1)}, "extensions": extensions}
    first = await _ss(api, alice, body)
    ext = first["extensions"]
    assert ext["to_device"]["events"] == []
    assert ext["e2ee"]["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert any(e["type"] == "m.push_rules" for e in ext["account_data"]["global"])
    # Bob reads, types, tags the room, and sends Alice's device a message.
    r = await api.http.post(f"{V3}/rooms/{room}/receipt/m.read/{event_id}", headers=bob, json={})
    assert r.status_code == 200, r.text
    r = await api.http.put(
        f"{V3}/rooms/{room}/typing/{uid('bob')}",
        headers=bob,
        json={"typing": True, "timeout": 30000},
    )
    assert r.status_code == 200, r.text
    r = await api.http.put(
        f"{V3}/user/{uid('alice')}/rooms/{room}/account_data/m.tag",
        headers=alice,
        json={"tags": {"u.work": {}}},
    )
    assert r.status_code == 200, r.text
    r = await api.http.get(f"{V3}/devices", headers=alice)
    device = r.json()["devices"][0]["device_id"]
    r = await api.http.put(
        f"{V3}/sendToDevice/m.test/t1",
        headers=bob,
        json={"messages": {uid("alice"): {device: {"hello": "alice"}}}},
    )
    assert r.status_code == 200, r.text
    later = await _ss(api, alice, body, pos=first["pos"])
    ext = later["extensions"]
    assert ext["receipts"]["rooms"][room]["content"][event_id]["m.read"][uid("bob")]
    assert ext["typing"]["rooms"][room]["content"]["user_ids"] == [uid("bob")]
    assert ext["account_data"]["rooms"][room] == [
        {"type": "m.tag", "content": {"tags": {"u.work": {}}}}
    ]
    assert [e["content"] for e in ext["to_device"]["events"]] == [{"hello": "alice"}]
    # Acknowledged with `since`, the message is not sent again.
    extensions["to_device"] = {"enabled": True, "since": ext["to_device"]["next_batch"]}
    last = await _ss(api, alice, body, pos=later["pos"])
    assert last["extensions"]["to_device"]["events"] == []


async def test_bad_bodies_are_refused(api: ClientApi) -> None:
    alice = await api.login("alice")
    for body in (
        {"lists": {"a": {"ranges": [[3, 1]]}}},
        {"lists": {"a": {"ranges": [[0, "x"]]}}},
        {"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": -1}}},
        {"lists": {"a": {"ranges": [[0, 1]], "required_state": [["only one"]]}}},
        {"lists": {"a": {"ranges": [[0, 1]], "filters": {"is_dm": "yes"}}}},
        {"room_subscriptions": {"!r:x": []}},
        {"lists": {str(i): {"ranges": [[0, 1]]} for i in range(100)}},
    ):
        r = await api.http.post(SS, headers=alice, json=body)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON"), json.dumps(body)[:80]


async def test_to_device_pages_never_skip_a_message(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    r = await api.http.get(f"{V3}/devices", headers=alice)
    device = r.json()["devices"][0]["device_id"]
    for i in range(5):
        r = await api.http.put(
            f"{V3}/sendToDevice/m.test/t{i}",
            headers=bob,
            json={"messages": {uid("alice"): {device: {"n": i}}}},
        )
        assert r.status_code == 200, r.text
    seen: list[int] = []
    since = None
    for _ in range(4):
        ext: dict[str, Any] = {"enabled": True, "limit": 2}
        if since is not None:
            ext["since"] = since
        answer = await _ss(api, alice, {"extensions": {"to_device": ext}})
        page = answer["extensions"]["to_device"]
        seen += [e["content"]["n"] for e in page["events"]]
        since = page["next_batch"]
    assert seen == [0, 1, 2, 3, 4]


async def test_space_and_tag_filters(api: ClientApi) -> None:
    alice = await api.login("alice")
    space = await create_room(api, alice, creation_content={"type": "m.space"})
    child, other = await create_room(api, alice), await create_room(api, alice)
    r = await api.http.put(
        f"{V3}/rooms/{space}/state/m.space.child/{child}",
        headers=alice,
        json={"via": ["relay.test"]},
    )
    assert r.status_code == 200, r.text
    r = await api.http.put(
        f"{V3}/user/{uid('alice')}/rooms/{other}/account_data/m.tag",
        headers=alice,
        json={"tags": {"m.favourite": {}}},
    )
    assert r.status_code == 200, r.text
    answer = await _ss(
        api,
        alice,
        {
            "lists": {
                "in space": _list([[0, 9]], filters={"spaces": [space]}),
                "favourites": _list([[0, 9]], filters={"tags": ["m.favourite"]}),
                "not favourites": _list([[0, 9]], filters={"not_tags": ["m.favourite"]}),
            }
        },
    )
    assert _window(answer, "in space") == [child]
    assert _window(answer, "favourites") == [other]
    assert other not in _window(answer, "not favourites")
