"""Knocking on a room of ours: `POST /knock/{roomIdOrAlias}` (spec knocking.yaml; errors
as Synapse 1.163.2 answers them), the knock in `/sync` `rooms.knock` with its stripped
`knock_state`, and the room moving to `invite`/`join` when the knock is accepted and to
`leave` when it is refused or rescinded."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import V3, create_room, sync, uid

KNOCK_RULES = [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]


async def _knock_room(api: ClientApi, headers: dict[str, str], **body: Any) -> str:
    return await create_room(
        api, headers, preset="private_chat", name="Knock here", initial_state=KNOCK_RULES, **body
    )


async def _knock(
    api: ClientApi, headers: dict[str, str], target: str, body: Any = None, **params: Any
) -> Any:
    return await api.http.post(
        f"{V3}/knock/{quote(target, safe='')}",
        headers=headers,
        json={} if body is None else body,
        params=params,
    )


def _member_of(events: list[dict[str, Any]], user: str) -> dict[str, Any]:
    [event] = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == user]
    return event


async def test_knock_shows_in_sync_and_moves_to_invite_then_join(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await _knock_room(api, alice)
    since = (await sync(api, bob))["next_batch"]

    r = await _knock(api, bob, room_id, {"reason": "let me in"})
    assert (r.status_code, r.json()) == (200, {"room_id": room_id})

    body = await sync(api, bob, since)
    assert room_id not in body["rooms"]["join"] and room_id not in body["rooms"]["invite"]
    events = body["rooms"]["knock"][room_id]["knock_state"]["events"]
    knock = _member_of(events, uid("bob"))
    assert knock["content"]["membership"] == "knock"
    assert knock["content"]["reason"] == "let me in"
    assert knock["sender"] == uid("bob")
    by_type = {e["type"]: e for e in events}
    assert by_type["m.room.join_rules"]["content"] == {"join_rule": "knock"}
    assert by_type["m.room.name"]["content"] == {"name": "Knock here"}
    # Stripped state: no event ids, signatures or timestamps of the room's events.
    assert all(set(e) == {"type", "state_key", "content", "sender"} for e in events)
    # The room's members see the knock in their timeline.
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.member/{uid('bob')}", headers=alice)
    assert r.json()["membership"] == "knock"
    since = body["next_batch"]

    r = await api.http.post(
        f"{V3}/rooms/{room_id}/invite", headers=alice, json={"user_id": uid("bob")}
    )
    assert r.status_code == 200, r.text
    body = await sync(api, bob, since)
    assert room_id in body["rooms"]["invite"] and room_id not in body["rooms"]["knock"]
    since = body["next_batch"]

    r = await api.http.post(f"{V3}/join/{room_id}", headers=bob, json={})
    assert r.status_code == 200, r.text
    body = await sync(api, bob, since)
    assert room_id in body["rooms"]["join"] and not body["rooms"]["knock"]


@pytest.mark.parametrize("how", ["refused", "rescinded"])
async def test_a_refused_or_rescinded_knock_moves_to_leave(api: ClientApi, how: str) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await _knock_room(api, alice)
    assert (await _knock(api, bob, room_id)).status_code == 200
    since = (await sync(api, bob))["next_batch"]
    if how == "refused":
        r = await api.http.post(
            f"{V3}/rooms/{room_id}/kick", headers=alice, json={"user_id": uid("bob")}
        )
    else:
        r = await api.http.post(f"{V3}/rooms/{room_id}/leave", headers=bob, json={})
    assert r.status_code == 200, r.text
    body = await sync(api, bob, since)
    assert room_id in body["rooms"]["leave"] and not body["rooms"]["knock"]
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.member/{uid('bob')}", headers=alice)
    assert r.json()["membership"] == "leave"


async def test_knock_through_an_alias_and_with_knock_restricted(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(
        api,
        alice,
        preset="private_chat",
        room_alias_name="door",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {"join_rule": "knock_restricted", "allow": []},
            }
        ],
    )
    r = await _knock(api, bob, f"#door:{SERVER_NAME}")
    assert (r.status_code, r.json()) == (200, {"room_id": room_id})
    assert room_id in (await sync(api, bob))["rooms"]["knock"]


async def test_knock_errors_as_synapse(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    knock_room = await _knock_room(api, alice)
    public = await create_room(api, alice, preset="public_chat")
    # A room version without knocking: the join rule means nothing there.
    old = await _knock_room(api, alice, room_version="6")
    invite_only = await create_room(api, alice, preset="private_chat")

    for room_id in (public, old, invite_only):
        r = await _knock(api, bob, room_id)
        assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN"), room_id
    # Already joined (Alice), banned (Carol), already invited (Bob): refused.
    r = await _knock(api, alice, knock_room)
    assert r.status_code == 403
    r = await api.http.post(
        f"{V3}/rooms/{knock_room}/ban", headers=alice, json={"user_id": uid("carol")}
    )
    assert r.status_code == 200
    r = await _knock(api, carol, knock_room)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_BAD_STATE")  # as Synapse
    r = await api.http.post(
        f"{V3}/rooms/{knock_room}/invite", headers=alice, json={"user_id": uid("bob")}
    )
    assert r.status_code == 200
    r = await _knock(api, bob, knock_room)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    # Bad input changes nothing.
    dave = await api.login("dave")
    r = await _knock(api, dave, knock_room, {"reason": 5})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")
    r = await _knock(api, dave, "not-a-room")
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    r = await _knock(api, dave, knock_room, via="not a server")
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    r = await _knock(api, dave, f"#nowhere:{SERVER_NAME}")
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    r = await api.http.post(f"{V3}/knock/{knock_room}", json={})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    assert not (await sync(api, dave))["rooms"]["knock"]


async def test_sliding_sync_carries_a_knock_with_its_stripped_state(api: ClientApi) -> None:
    """As Synapse's simplified sliding sync: a knocked room's stripped state (and the knock)
    in `invite_state`, with no timeline."""
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await _knock_room(api, alice)
    assert (await _knock(api, bob, room_id)).status_code == 200
    r = await api.http.post(
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        headers=bob,
        params={"timeout": 0},
        json={"lists": {"all": {"ranges": [[0, 9]], "required_state": [], "timeline_limit": 5}}},
    )
    assert r.status_code == 200, r.text
    entry = r.json()["rooms"][room_id]
    assert not entry.get("timeline")
    events = entry["invite_state"]
    assert _member_of(events, uid("bob"))["content"]["membership"] == "knock"
    assert {"type": "m.room.join_rules", "state_key": "", "sender": uid("alice")} | {
        "content": {"join_rule": "knock"}
    } in events
