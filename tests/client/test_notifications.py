"""`GET /notifications` (issue 14 item 3): the events that notified the user, newest
first, with actions, read flags, `only=highlight`, paging with `next_token`, the user's
push-rule levels of rooms, and errors."""

from __future__ import annotations

from typing import Any

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, send, uid

N = f"{V3}/notifications"


async def _setup(api: ClientApi) -> tuple[dict[str, str], dict[str, str], str, list[str]]:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    ids = [
        await send(api, bob, room_id, "one"),
        await send(api, bob, room_id, "two", **{"m.mentions": {"user_ids": [uid("alice")]}}),
        await send(api, alice, room_id, "mine"),  # one's own events never notify
        await send(api, bob, room_id, "three"),
    ]
    return alice, bob, room_id, [ids[3], ids[1], ids[0]]


async def _get(api: ClientApi, h: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await api.http.get(N, params=params, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


async def test_notifications_newest_first_with_shape(api: ClientApi) -> None:
    alice, _, room_id, newest_first = await _setup(api)
    body = await _get(api, alice)
    assert [n["event"]["event_id"] for n in body["notifications"]] == newest_first
    assert "next_token" not in body
    for n in body["notifications"]:
        assert set(n) == {"actions", "event", "read", "room_id", "ts"}
        assert n["room_id"] == room_id and n["read"] is False
        assert n["ts"] == n["event"]["origin_server_ts"]
        assert n["event"]["sender"] == uid("bob")
    assert body["notifications"][1]["actions"] == ["notify", {"set_tweak": "highlight"}]
    assert body["notifications"][0]["actions"] == ["notify"]


async def test_only_highlight_and_paging(api: ClientApi) -> None:
    alice, _, _, newest_first = await _setup(api)
    body = await _get(api, alice, only="highlight")
    assert [n["event"]["event_id"] for n in body["notifications"]] == [newest_first[1]]
    seen = []
    token = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 1}
        if token is not None:
            params["from"] = token
        body = await _get(api, alice, **params)
        seen += [n["event"]["event_id"] for n in body["notifications"]]
        token = body.get("next_token")
        if token is None:
            break
    assert seen == newest_first


async def test_a_read_receipt_marks_them_read(api: ClientApi) -> None:
    alice, _, room_id, newest_first = await _setup(api)
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/receipt/m.read/{newest_first[1]}", json={}, headers=alice
    )
    assert r.status_code == 200, r.text
    body = await _get(api, alice)
    assert [n["read"] for n in body["notifications"]] == [False, True, True]


async def test_push_rule_levels_apply(api: ClientApi) -> None:
    alice, _, room_id, newest_first = await _setup(api)
    rules = f"{V3}/pushrules/global"
    r = await api.http.put(f"{rules}/room/{room_id}", json={"actions": []}, headers=alice)
    assert r.status_code == 200
    body = await _get(api, alice)
    assert [n["event"]["event_id"] for n in body["notifications"]] == [newest_first[1]]
    mute = {
        "actions": [],
        "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
    }
    r = await api.http.put(f"{rules}/override/{room_id}", json=mute, headers=alice)
    assert r.status_code == 200
    assert (await _get(api, alice))["notifications"] == []


async def test_others_notifications_and_bad_parameters(api: ClientApi) -> None:
    alice, bob, _, _ = await _setup(api)
    # Bob is notified of Alice's one message, never of his own.
    bodies = [n["event"]["content"]["body"] for n in (await _get(api, bob))["notifications"]]
    assert bodies == ["mine"]
    for params in ({"from": "x"}, {"from": "-1"}, {"limit": "x"}, {"only": "everything"}):
        r = await api.http.get(N, params=params, headers=alice)
        assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM", params
    r = await api.http.get(N)
    assert r.status_code == 401 and r.json()["errcode"] == "M_MISSING_TOKEN"
