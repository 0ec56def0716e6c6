"""relay/rooms/filters.py: parsing sync filters and matching events, without I/O."""

from __future__ import annotations

import pytest

from relay.errors import BadJson
from relay.rooms.filters import DEFAULT_TIMELINE_LIMIT, EventFilter, parse_filter, select_fields


def test_empty_filter_allows_everything_with_default_limit() -> None:
    flt = parse_filter({})
    assert flt.timeline_limit == DEFAULT_TIMELINE_LIMIT
    assert flt.room.timeline.allows("m.room.message", "@a:x")
    assert flt.room.allows_room("!r:x")


def test_wildcard_types_and_not_types_win() -> None:
    flt = EventFilter(types=("m.room.*",), not_types=("m.room.member",))
    assert flt.allows_type("m.room.name")
    assert not flt.allows_type("m.room.member")
    assert not flt.allows_type("m.roomy")
    assert not flt.allows_type("org.example")


def test_empty_allow_list_allows_nothing() -> None:
    flt = parse_filter({"presence": {"types": []}})
    assert flt.presence.is_empty_allow_list()
    assert not flt.presence.allows_type("m.presence")


def test_senders_and_contains_url() -> None:
    flt = EventFilter(senders=("@a:x",), not_senders=("@b:x",), contains_url=True)
    assert flt.allows("m.room.message", "@a:x", {"url": "mxc://x/y"})
    assert not flt.allows("m.room.message", "@a:x", {"body": "no url"})
    assert not flt.allows("m.room.message", "@c:x", {"url": "mxc://x/y"})


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"room": []},
        {"room": {"timeline": {"limit": -1}}},
        {"room": {"timeline": {"limit": True}}},
        {"room": {"rooms": "!r:x"}},
        {"event_fields": [1]},
        {"room": {"include_leave": "yes"}},
    ],
)
def test_malformed_filters_are_bad_json(bad: object) -> None:
    with pytest.raises(BadJson):
        parse_filter(bad)


def test_select_fields_keeps_dotted_paths_and_escaped_dots() -> None:
    event = {
        "type": "m.room.message",
        "sender": "@a:x",
        "content": {"body": "hi", "m.relates_to": {"rel_type": "m.thread"}},
    }
    assert select_fields(event, ("type", "content.body")) == {
        "type": "m.room.message",
        "content": {"body": "hi"},
    }
    assert select_fields(event, ("content.m\\.relates_to.rel_type", "unsigned.age")) == {
        "content": {"m.relates_to": {"rel_type": "m.thread"}}
    }
