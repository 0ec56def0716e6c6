"""Space hierarchies beside a real Synapse.

- Differential: the same space tree built on each server by its own user; the same
  hierarchy requests must answer the same rooms in the same order, with the same entry
  fields and children, page the same way, and refuse the same bad parameters.
- Across federation: a relay user who joined only a Synapse space sees its rooms (the
  relay asks Synapse's /hierarchy), and a Synapse user who joined only a relay space
  sees the relay's rooms (Synapse asks ours)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.matrix_client import V3, MatrixUser
from tests.support import wait_until
from tests.synapse.conftest import Pair

H = "/_matrix/client/v1/rooms/{}/hierarchy"


def _hierarchy(user: MatrixUser, room: str, **params: Any) -> tuple[int, dict[str, Any]]:
    r = user.http.get(H.format(quote(room, safe="")), params=params)
    return r.status_code, r.json()


def _tree(user: MatrixUser, server: str) -> dict[str, str]:
    """space ─ lobby (public, suggested), ops (invite only), sub (space) ─ deep."""

    def room(name: str, preset: str, space: bool = False) -> str:
        extra: dict[str, Any] = {"creation_content": {"type": "m.space"}} if space else {}
        return user.create_room(name=name, preset=preset, room_version="10", **extra)

    ids = {
        "space": room("space", "public_chat", space=True),
        "lobby": room("lobby", "public_chat"),
        "ops": room("ops", "private_chat"),
        "sub": room("sub", "public_chat", space=True),
        "deep": room("deep", "public_chat"),
    }
    for parent, child, content in (
        ("space", "ops", {"order": "b"}),
        ("space", "lobby", {"order": "a", "suggested": True}),
        ("space", "sub", {}),
        ("sub", "deep", {}),
    ):
        user.call(
            "PUT",
            f"/rooms/{ids[parent]}/state/m.space.child/{ids[child]}",
            json={"via": [server], **content},
        )
    return ids


def _shape(answer: dict[str, Any], ids: dict[str, str]) -> list[dict[str, Any]]:
    """The rooms of an answer with ids replaced by names and the volatile parts dropped."""
    label = {v: k for k, v in ids.items()}
    shaped = []
    for room in answer["rooms"]:
        shaped.append(
            {
                "room": label.get(room["room_id"], "?"),
                "fields": sorted(k for k in room if k != "children_state"),
                "join_rule": room.get("join_rule"),
                "room_type": room.get("room_type"),
                "num_joined_members": room.get("num_joined_members"),
                "children": [
                    (label.get(c["state_key"], "?"), sorted(c), sorted(c["content"]))
                    for c in room["children_state"]
                ],
            }
        )
    return shaped


@pytest.fixture(scope="module")
def trees(module_pair: Pair) -> dict[str, tuple[MatrixUser, MatrixUser, dict[str, str]]]:
    """On each server: the tree's owner, a second user who joined the space, the ids."""
    out = {}
    for name, make, server in (
        ("relay", module_pair.relay_user, module_pair.relay.server_name),
        ("synapse", module_pair.synapse_user, module_pair.synapse.server_name),
    ):
        owner, other = make(f"h-owner-{name}"), make(f"h-other-{name}")
        ids = _tree(owner, server)
        other.join(ids["space"])
        out[name] = (owner, other, ids)
    return out


@pytest.mark.parametrize(
    "params",
    [{}, {"suggested_only": "true"}, {"max_depth": "1"}, {"max_depth": "0"}],
    ids=["all", "suggested", "depth1", "depth0"],
)
@pytest.mark.parametrize("who", ["owner", "other"])
def test_the_same_tree_answers_the_same(trees: Any, params: dict[str, str], who: str) -> None:
    shapes = []
    for name in ("relay", "synapse"):
        owner, other, ids = trees[name]
        status, answer = _hierarchy(owner if who == "owner" else other, ids["space"], **params)
        assert status == 200, answer
        shapes.append(_shape(answer, ids))
    assert shapes[0] == shapes[1]


def test_pages_and_bad_parameters_answer_the_same(trees: Any) -> None:
    outcomes = []
    for name in ("relay", "synapse"):
        owner, other, ids = trees[name]
        pages, token = [], None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"from": token} if token else {})}
            status, answer = _hierarchy(owner, ids["space"], **params)
            assert status == 200, answer
            pages.append([r["room_id"] for r in answer["rooms"]])
            token = answer.get("next_batch")
            if not token:
                break
        label = {v: k for k, v in ids.items()}
        errors = []
        for params in (
            {"limit": "x"},
            {"limit": "-1"},
            {"max_depth": "-1"},
            {"suggested_only": "yes"},
            {"from": "nonsense"},
        ):
            status, answer = _hierarchy(owner, ids["space"], **params)
            errors.append((status, answer.get("errcode")))
        status, answer = _hierarchy(other, ids["ops"])
        errors.append((status, answer.get("errcode")))
        outcomes.append(([[label[r] for r in page] for page in pages], errors))
    assert outcomes[0] == outcomes[1]


def _join_space_only(user: MatrixUser, space: str, via: str) -> None:
    def joined() -> bool:
        r = user.http.post(
            f"{V3}/join/{quote(space, safe='')}", params={"server_name": via}, json={}
        )
        return r.status_code == 200

    wait_until(joined, 60, "joining the space over federation")


def test_a_relay_user_sees_a_synapse_space_it_holds_only_the_top_of(
    module_pair: Pair, trees: Any
) -> None:
    _, _, ids = trees["synapse"]
    visitor = module_pair.relay_user("h-visitor")
    _join_space_only(visitor, ids["space"], module_pair.synapse.server_name)
    status, answer = _hierarchy(visitor, ids["space"])
    assert status == 200, answer
    label = {v: k for k, v in ids.items()}
    # ops is invite only: Synapse tells us it is there, not what it is.
    assert [label[r["room_id"]] for r in answer["rooms"]] == ["space", "lobby", "sub", "deep"]
    lobby = answer["rooms"][1]
    assert lobby["name"] == "lobby" and lobby["join_rule"] == "public"


def test_a_synapse_user_sees_a_relay_space_synapse_holds_only_the_top_of(
    module_pair: Pair, trees: Any
) -> None:
    _, _, ids = trees["relay"]
    visitor = module_pair.synapse_user("h-visitor")
    _join_space_only(visitor, ids["space"], module_pair.relay.server_name)
    status, answer = _hierarchy(visitor, ids["space"])
    assert status == 200, answer
    label = {v: k for k, v in ids.items()}
    assert [label[r["room_id"]] for r in answer["rooms"]] == ["space", "lobby", "sub", "deep"]


def test_room_summaries_answer_the_same(trees: Any) -> None:
    outcomes = []
    for name in ("relay", "synapse"):
        owner, other, ids = trees[name]
        rows = []
        for who in (owner, other):
            for room in ("space", "lobby", "ops"):
                r = who.http.get(f"/_matrix/client/v1/room_summary/{quote(ids[room], safe='')}")
                answer = r.json()
                rows.append(
                    (
                        r.status_code,
                        answer.get("errcode")
                        or (sorted(answer), answer.get("membership"), answer.get("join_rule")),
                    )
                )
        outcomes.append(rows)
    assert outcomes[0] == outcomes[1]
