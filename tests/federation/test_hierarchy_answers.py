"""Another server's `/hierarchy` answer is hostile input: `parse_answer` keeps only what is
well formed (the room's own entry, children events with a usable `via`, typed entry
fields), drops the rest, and never raises."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from relay.federation.hierarchy import MAX_CHILDREN, parse_answer, parse_entry

ROOM = "!space:remote.example"


def _child(room_id: str, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "content": {"via": ["remote.example"], **content},
        "sender": "@a:remote.example",
        "origin_server_ts": 5,
    }


def test_a_well_formed_answer_is_kept_in_order() -> None:
    answer = {
        "room": {
            "room_id": ROOM,
            "name": "space",
            "num_joined_members": 3,
            "world_readable": False,
            "guest_can_join": False,
            "room_type": "m.space",
            "children_state": [_child("!b:r", order="b"), _child("!a:r", order="a")],
        },
        "children": [{"room_id": "!a:r", "name": "a", "num_joined_members": 1}],
        "inaccessible_children": ["!c:r"],
    }
    parsed = parse_answer(answer, ROOM)
    assert parsed is not None
    assert parsed.room["name"] == "space" and "children_state" not in parsed.room
    assert [c["state_key"] for c in parsed.children_state] == ["!a:r", "!b:r"]
    assert parsed.children["!a:r"]["name"] == "a"
    assert parsed.children["!a:r"]["world_readable"] is False  # required fields defaulted
    assert parsed.inaccessible == frozenset({"!c:r"})


def test_malformed_parts_are_dropped_and_a_wrong_room_is_refused() -> None:
    answer = {
        "room": {
            "room_id": ROOM,
            "name": 7,  # not a string: dropped
            "num_joined_members": True,  # a bool is no count: defaulted
            "allowed_room_ids": ["!x:r", 5],
            "children_state": [
                _child("!ok:r"),
                {**_child("!novia:r"), "content": {"via": []}},
                {**_child("!badvia:r"), "content": {"via": [1]}},
                {**_child("!ts:r"), "origin_server_ts": "yesterday"},
                {**_child("!type:r"), "type": "m.space.parent"},
                {**_child("notaroom"), "state_key": "notaroom"},
                "not even an object",
            ],
        },
        "children": [{"name": "no id"}, {"room_id": "!ok:r", "topic": ["x"]}, 3],
        "inaccessible_children": "!all:r",
    }
    parsed = parse_answer(answer, ROOM)
    assert parsed is not None
    assert "name" not in parsed.room and parsed.room["num_joined_members"] == 0
    assert parsed.room["allowed_room_ids"] == ["!x:r"]
    assert [c["state_key"] for c in parsed.children_state] == ["!ok:r"]
    assert parsed.children == {
        "!ok:r": {
            "room_id": "!ok:r",
            "num_joined_members": 0,
            "world_readable": False,
            "guest_can_join": False,
        }
    }
    assert parsed.inaccessible == frozenset()
    assert parse_answer({**answer, "room": {**answer["room"], "room_id": "!other:r"}}, ROOM) is None
    assert parse_answer([answer], ROOM) is None
    assert parse_entry({"room_id": "no bang"}) is None


def test_children_are_capped() -> None:
    many = [_child(f"!r{n:03}:r") for n in range(MAX_CHILDREN * 3)]
    parsed = parse_answer({"room": {"room_id": ROOM, "children_state": many}}, ROOM)
    assert parsed is not None and len(parsed.children_state) == MAX_CHILDREN


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["room", "children", "inaccessible_children", "room_id", "children_state", "via", "type"]
)
ANSWERS = st.recursive(
    JSON,
    lambda inner: st.dictionaries(KEYS, inner, max_size=5) | st.lists(inner, max_size=3),
    max_leaves=30,
)


@given(ANSWERS)
def test_any_answer_parses_or_is_refused_without_raising(answer: Any) -> None:
    parsed = parse_answer(answer, ROOM)
    if parsed is None:
        return
    assert parsed.room["room_id"] == ROOM
    for child in parsed.children_state:
        assert child["type"] == "m.space.child" and isinstance(child["state_key"], str)
        assert all(isinstance(v, str) for v in child["content"]["via"])
    assert all(isinstance(r, str) for r in parsed.inaccessible)
