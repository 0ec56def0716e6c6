"""relay/events/push_rules.py: a room's notification level from the user's push rules."""

from __future__ import annotations

from typing import Any

from relay.events.push_rules import RoomLevel, room_level

ROOM = "!room:relay.test"
MASTER = {"rule_id": ".m.rule.master", "default": True, "enabled": False, "actions": []}
MENTION = {
    "rule_id": ".m.rule.is_user_mention",
    "default": True,
    "enabled": True,
    "conditions": [{"kind": "event_property_contains", "key": "x", "value": "y"}],
    "actions": ["notify"],
}


def _rules(override: list[Any] = (), room: list[Any] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"global": {"override": [MASTER, *override, MENTION], "room": list(room)}}


def _mute(room_id: str = ROOM, actions: list[Any] = [], **extra: Any) -> dict[str, Any]:  # noqa: B006
    cond = {"kind": "event_match", "key": "room_id", "pattern": room_id}
    return {
        "rule_id": room_id,
        "default": False,
        "enabled": True,
        "conditions": [cond],
        "actions": actions,
        **extra,
    }


def test_defaults_notify_for_everything() -> None:
    assert room_level(_rules(), ROOM) is RoomLevel.ALL
    assert room_level({}, ROOM) is RoomLevel.ALL
    assert room_level(None, ROOM) is RoomLevel.ALL
    assert room_level({"global": {"override": "junk", "room": [1, None]}}, ROOM) is RoomLevel.ALL


def test_an_override_on_the_room_id_without_notify_silences_it() -> None:
    assert room_level(_rules([_mute()]), ROOM) is RoomLevel.SILENT
    assert room_level(_rules([_mute(actions=["dont_notify"])]), ROOM) is RoomLevel.SILENT
    assert room_level(_rules([_mute(actions=["notify"])]), ROOM) is RoomLevel.ALL
    assert room_level(_rules([_mute(enabled=False)]), ROOM) is RoomLevel.ALL
    assert room_level(_rules([_mute("!other:relay.test")]), ROOM) is RoomLevel.ALL


def test_an_override_with_more_conditions_is_not_a_mute() -> None:
    rule = _mute()
    rule["conditions"] = [
        *rule["conditions"],
        {"kind": "event_match", "key": "type", "pattern": "m.x"},
    ]
    assert room_level(_rules([rule]), ROOM) is RoomLevel.ALL


def test_a_room_rule_without_notify_leaves_only_mentions() -> None:
    rule = {"rule_id": ROOM, "default": False, "enabled": True, "actions": []}
    assert room_level(_rules(room=[rule]), ROOM) is RoomLevel.MENTIONS_ONLY
    assert room_level(_rules(room=[{**rule, "actions": ["notify"]}]), ROOM) is RoomLevel.ALL
    assert room_level(_rules(room=[{**rule, "enabled": False}]), ROOM) is RoomLevel.ALL
    # A mute override ranks above the room rule.
    assert room_level(_rules([_mute()], room=[rule]), ROOM) is RoomLevel.SILENT


def test_an_enabled_master_rule_silences_every_room() -> None:
    rules = _rules()
    rules["global"]["override"][0] = {**MASTER, "enabled": True}
    assert room_level(rules, ROOM) is RoomLevel.SILENT
