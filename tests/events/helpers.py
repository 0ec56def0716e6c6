"""Shared test data for the event core: vector loading and hypothesis strategies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from relay.events.canonical import MAX_INT, MIN_INT
from relay.events.room_versions import KNOWN_ROOM_VERSIONS

VECTORS = Path(__file__).parent / "vectors"
#: Every version the relay supports (1-12): property tests run over each.
ROOM_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())


def load_vector(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def vector_names(pattern: str) -> list[str]:
    return sorted(p.name for p in VECTORS.glob(pattern))


#: Strict canonical JSON values: no floats, integers in range.
json_scalars = st.none() | st.booleans() | st.integers(MIN_INT, MAX_INT) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)

SPECIAL_TYPES = [
    "m.room.member",
    "m.room.create",
    "m.room.join_rules",
    "m.room.power_levels",
    "m.room.history_visibility",
    "m.room.redaction",
    "m.room.aliases",
    "m.room.message",
]
SPECIAL_CONTENT_KEYS = [
    "membership",
    "join_authorised_via_users_server",
    "third_party_invite",
    "creator",
    "room_version",
    "join_rule",
    "allow",
    "ban",
    "events",
    "invite",
    "users",
    "history_visibility",
    "redacts",
    "aliases",
    "body",
]
TOP_LEVEL_KEYS = [
    "event_id",
    "room_id",
    "sender",
    "state_key",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
    "origin",
    "membership",
    "prev_state",
    "unsigned",
    "redacts",
    "age_ts",
    "custom",
]

third_party_invites = st.fixed_dictionaries(
    {}, optional={"signed": json_objects, "display_name": st.text(max_size=5)}
)
contents = st.dictionaries(
    st.sampled_from(SPECIAL_CONTENT_KEYS) | st.text(max_size=6),
    json_values | third_party_invites,
    max_size=6,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """Event-shaped dicts: special types and keys, plus arbitrary extras."""
    event = draw(st.dictionaries(st.sampled_from(TOP_LEVEL_KEYS), json_values, max_size=10))
    event["type"] = draw(st.sampled_from(SPECIAL_TYPES) | st.text(max_size=8))
    event["content"] = draw(contents)
    return event


@st.composite
def pdu_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Well-shaped PDU dicts that ``Pdu`` accepts in every room version."""
    ids = st.lists(st.text(min_size=1, max_size=8).map(lambda s: "$" + s), max_size=3)
    event: dict[str, Any] = {
        "type": draw(st.sampled_from([*SPECIAL_TYPES[:-2], "m.room.message"])),
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": draw(contents),
        "depth": draw(st.integers(1, 2**40)),
        "origin_server_ts": draw(st.integers(0, 2**45)),
        "prev_events": draw(ids),
        "auth_events": draw(ids),
    }
    if draw(st.booleans()):
        event["state_key"] = draw(st.text(max_size=10))
    return event
