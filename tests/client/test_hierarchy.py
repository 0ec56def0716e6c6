"""`GET /_matrix/client/v1/rooms/{roomId}/hierarchy`: a space's tree as Element's space
home and "Explore rooms" read it, from rooms this server holds (across federation:
tests/synapse/test_hierarchy_with_synapse.py)."""

from __future__ import annotations

from typing import Any

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import create_room, join, uid

H = "/_matrix/client/v1/rooms/{}/hierarchy"


async def hierarchy(
    api: ClientApi, headers: dict[str, str], room_id: str, status: int = 200, **params: Any
) -> dict[str, Any]:
    r = await api.http.get(H.format(room_id), headers=headers, params=params)
    assert r.status_code == status, r.text
    return r.json()


async def add_child(
    api: ClientApi, headers: dict[str, str], space: str, child: str, **content: Any
) -> None:
    body = {"via": [SERVER_NAME], **content}
    r = await api.http.put(
        f"/_matrix/client/v3/rooms/{space}/state/m.space.child/{child}", headers=headers, json=body
    )
    assert r.status_code == 200, r.text


def names(answer: dict[str, Any]) -> list[str | None]:
    return [room.get("name") for room in answer["rooms"]]


async def space_tree(api: ClientApi, alice: dict[str, str]) -> dict[str, str]:
    """space ─ lobby (public), ops (invite only, alice alone), sub (space) ─ deep."""
    ids = {
        "space": await create_room(
            api, alice, name="space", preset="public_chat", creation_content={"type": "m.space"}
        ),
        "lobby": await create_room(api, alice, name="lobby", preset="public_chat"),
        "ops": await create_room(api, alice, name="ops", preset="private_chat"),
        "sub": await create_room(
            api, alice, name="sub", preset="public_chat", creation_content={"type": "m.space"}
        ),
        "deep": await create_room(api, alice, name="deep", preset="public_chat"),
    }
    await add_child(api, alice, ids["space"], ids["ops"], order="b")
    await add_child(api, alice, ids["space"], ids["lobby"], order="a", suggested=True)
    await add_child(api, alice, ids["space"], ids["sub"])  # no order: last
    await add_child(api, alice, ids["sub"], ids["deep"])
    return ids


async def test_the_tree_depth_first_in_order_with_entries_as_the_spec_has_them(
    api: ClientApi,
) -> None:
    alice = await api.login("alice")
    ids = await space_tree(api, alice)
    answer = await hierarchy(api, alice, ids["space"])
    assert names(answer) == ["space", "lobby", "ops", "sub", "deep"]
    assert "next_batch" not in answer
    space = answer["rooms"][0]
    assert space["room_type"] == "m.space"
    assert space["join_rule"] == "public" and space["num_joined_members"] == 1
    assert space["room_version"] and space["world_readable"] is False
    assert [c["state_key"] for c in space["children_state"]] == [
        ids["lobby"],
        ids["ops"],
        ids["sub"],
    ]
    child = space["children_state"][0]
    assert set(child) == {"type", "state_key", "content", "sender", "origin_server_ts"}
    assert child["sender"] == uid("alice") and child["content"]["suggested"] is True
    lobby = answer["rooms"][1]
    assert lobby["children_state"] == [] and "room_type" not in lobby


async def test_rooms_a_user_may_not_see_are_left_out_with_their_subtree(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    ids = await space_tree(api, alice)
    await join(api, bob, ids["space"])
    # Bob sees the public rooms, not alice's invite-only room.
    assert names(await hierarchy(api, bob, ids["space"])) == ["space", "lobby", "sub", "deep"]
    # Invited, he sees it too.
    r = await api.http.post(
        f"/_matrix/client/v3/rooms/{ids['ops']}/invite", headers=alice, json={"user_id": uid("bob")}
    )
    assert r.status_code == 200, r.text
    assert "ops" in names(await hierarchy(api, bob, ids["space"]))
    # A private room he is not in is refused as a whole.
    secret = await create_room(api, alice, name="secret", preset="private_chat")
    assert (await hierarchy(api, bob, secret, status=403))["errcode"] == "M_FORBIDDEN"
    r = await api.http.get(H.format("!unknown:relay.test"), headers=bob)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_restricted_room_shows_to_members_of_the_space_that_lets_them_in(
    api: ClientApi,
) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    space = await create_room(
        api, alice, name="space", preset="private_chat", creation_content={"type": "m.space"}
    )
    restricted = await create_room(
        api,
        alice,
        name="members only",
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )
    await add_child(api, alice, space, restricted)
    for user in ("bob", "carol"):
        r = await api.http.post(
            f"/_matrix/client/v3/rooms/{space}/invite", headers=alice, json={"user_id": uid(user)}
        )
        assert r.status_code == 200
    await join(api, bob, space)
    answer = await hierarchy(api, bob, space)
    assert names(answer) == ["space", "members only"]
    assert answer["rooms"][1]["allowed_room_ids"] == [space]
    assert answer["rooms"][1]["join_rule"] == "restricted"
    # Carol, only invited to the space, sees the space but not the restricted room.
    assert names(await hierarchy(api, carol, space)) == ["space"]


async def test_suggested_only_max_depth_and_removed_children(api: ClientApi) -> None:
    alice = await api.login("alice")
    ids = await space_tree(api, alice)
    assert names(await hierarchy(api, alice, ids["space"], suggested_only="true")) == [
        "space",
        "lobby",
    ]
    assert names(await hierarchy(api, alice, ids["space"], max_depth=0)) == ["space"]
    assert names(await hierarchy(api, alice, ids["space"], max_depth=1)) == [
        "space",
        "lobby",
        "ops",
        "sub",
    ]
    # A child whose event was emptied (no `via`) is no child.
    r = await api.http.put(
        f"/_matrix/client/v3/rooms/{ids['space']}/state/m.space.child/{ids['ops']}",
        headers=alice,
        json={},
    )
    assert r.status_code == 200
    assert names(await hierarchy(api, alice, ids["space"])) == [
        "space",
        "lobby",
        "sub",
        "deep",
    ]


async def test_pages_follow_next_batch_and_refuse_changed_parameters(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    ids = await space_tree(api, alice)
    seen: list[str | None] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if token:
            params["from"] = token
        answer = await hierarchy(api, alice, ids["space"], **params)
        assert len(answer["rooms"]) <= 2
        seen += names(answer)
        pages += 1
        token = answer.get("next_batch")
        if token is None:
            break
    assert seen == ["space", "lobby", "ops", "sub", "deep"] and pages == 3

    first = await hierarchy(api, alice, ids["space"], limit=1)
    token = first["next_batch"]
    for params, who in (
        ({"from": token, "max_depth": 3}, alice),
        ({"from": token, "suggested_only": "true"}, alice),
        ({"from": token}, bob),
        ({"from": "nonsense"}, alice),
    ):
        answer = await hierarchy(api, who, ids["space"], status=400, **params)
        assert answer["errcode"] == "M_INVALID_PARAM"


async def test_bad_parameters_are_invalid_params(api: ClientApi) -> None:
    alice = await api.login("alice")
    space = await create_room(api, alice, creation_content={"type": "m.space"})
    for params in (
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "x"},
        {"max_depth": "-1"},
        {"suggested_only": "yes"},
    ):
        answer = await hierarchy(api, alice, space, status=400, **params)
        assert answer["errcode"] == "M_INVALID_PARAM", params


async def test_room_summary_by_id_or_alias_with_or_without_a_token(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    lobby = await create_room(
        api, alice, name="lobby", preset="public_chat", room_alias_name="lobby"
    )
    secret = await create_room(api, alice, name="secret", preset="private_chat")
    summary = "/_matrix/client/v1/room_summary/{}"

    r = await api.http.get(summary.format(lobby), headers=bob)
    entry = r.json()
    assert r.status_code == 200 and entry["name"] == "lobby" and entry["membership"] == "leave"
    assert (
        entry["room_version"] and entry["join_rule"] == "public" and "children_state" not in entry
    )
    r = await api.http.get(summary.format("%23lobby:relay.test"), headers=alice)
    assert r.json()["room_id"] == lobby and r.json()["membership"] == "join"
    r = await api.http.get(summary.format(lobby))  # no token: no membership
    assert r.status_code == 200 and "membership" not in r.json()
    r = await api.http.get(f"/_matrix/client/unstable/im.nheko.summary/summary/{lobby}")
    assert r.status_code == 200 and r.json()["room_id"] == lobby
    for who in (bob, None):
        r = await api.http.get(summary.format(secret), headers=who or {})
        assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    r = await api.http.get(summary.format("!unknown:elsewhere.example"), headers=bob)
    assert (r.status_code, r.json()["errcode"]) == (400, "M_UNKNOWN")
