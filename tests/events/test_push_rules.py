"""relay/events/push_rules.py: a room's notification level and the per-event evaluation of
a user's push rules (every condition kind, keyword, room and sender rules, their order)."""

from __future__ import annotations

from typing import Any

from relay.events.push_rules import (
    EventContext,
    RoomLevel,
    evaluate,
    highlights,
    merge_rules,
    notifies,
    room_level,
    tweaks_of,
)

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


# -- evaluate: one event through the whole ruleset -------------------------------------------


ME = "@alice:relay.test"


def _ctx(**changes: object) -> EventContext:
    values: dict[str, object] = {
        "user_id": ME,
        "display_name": "Alice",
        "member_count": 3,
        "sender_power": 0,
        "notification_levels": {"room": 50},
    }
    values.update(changes)
    return EventContext(**values)  # type: ignore[arg-type]


def _message(body: str, **content: object) -> dict[str, object]:
    return {
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": "@bob:relay.test",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def test_default_rules_notify_messages_and_highlight_mentions() -> None:
    rules = merge_rules(ME, None)
    assert evaluate(rules, _message("hello"), _ctx()) == ["notify"]
    assert tweaks_of(evaluate(rules, _message("hello"), _ctx(member_count=2))) == {
        "sound": "default"
    }
    mention = _message("hi", **{"m.mentions": {"user_ids": [ME]}})
    assert highlights(evaluate(rules, mention, _ctx()))
    assert highlights(evaluate(rules, _message("ping alice!"), _ctx()))  # the display name
    assert not highlights(evaluate(rules, _message("alicefoo"), _ctx()))
    edit = _message("x", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}})
    assert not notifies(evaluate(rules, edit, _ctx()))
    notice = _message("bot", msgtype="m.notice")
    assert not notifies(evaluate(rules, notice, _ctx()))


def test_room_mentions_need_the_senders_notification_power() -> None:
    rules = merge_rules(ME, None)
    everyone = _message("hey all", **{"m.mentions": {"room": True}})
    assert not highlights(evaluate(rules, everyone, _ctx(sender_power=0)))
    assert highlights(evaluate(rules, everyone, _ctx(sender_power=50)))
    assert highlights(evaluate(rules, everyone, _ctx(sender_power=float("inf"))))
    assert not highlights(
        evaluate(rules, everyone, _ctx(sender_power=99, notification_levels={"room": 100}))
    )


def test_keyword_rules_match_whole_words_case_insensitively() -> None:
    keyword = {"rule_id": "k", "pattern": "ca?e", "actions": ["notify", {"set_tweak": "highlight"}]}
    rules = merge_rules(ME, {"content": [keyword]})
    for body in ("CAKE", "cake!", "more cake please", "a cave"):
        assert highlights(evaluate(rules, _message(body), _ctx())), body
    for body in ("pancake", "cakes", "ce"):
        assert not highlights(evaluate(rules, _message(body), _ctx())), body
    star = merge_rules(ME, {"content": [{**keyword, "pattern": "lunch*"}]})
    assert highlights(evaluate(star, _message("lunchtime soon"), _ctx()))
    many = merge_rules(ME, {"content": [{**keyword, "pattern": "a" + "*" * 500 + "b"}]})
    assert not highlights(evaluate(many, _message("a" * 5000), _ctx()))


def test_sender_and_room_rules_and_their_order() -> None:
    rules = merge_rules(
        ME,
        {
            "sender": [{"rule_id": "@bob:relay.test", "actions": []}],
            "room": [{"rule_id": ROOM, "actions": ["notify"]}],
        },
    )
    # The room rule comes before the sender rule.
    assert evaluate(rules, _message("hello"), _ctx()) == ["notify"]
    only_sender = merge_rules(ME, {"sender": [{"rule_id": "@bob:relay.test", "actions": []}]})
    assert evaluate(only_sender, _message("hello"), _ctx()) == []
    # Mentions are override rules: above the sender rule.
    assert highlights(evaluate(only_sender, _message("hi alice"), _ctx()))


def test_conditions_of_every_kind() -> None:
    def rule(*conditions: dict[str, object]) -> dict[str, object]:
        return {
            "rule_id": "o",
            "conditions": list(conditions),
            "actions": ["notify", {"set_tweak": "x"}],
        }

    event = _message("hi", **{"a.b": {"c": [1, "two", True]}, "n": 5})
    cases = [
        ({"kind": "event_match", "key": "content.msgtype", "pattern": "M.TEXT"}, True),
        ({"kind": "event_match", "key": "content.msgtype", "pattern": "m.te"}, False),
        ({"kind": "event_match", "key": "content.n", "pattern": "5"}, False),
        ({"kind": "event_property_is", "key": "content.n", "value": 5}, True),
        ({"kind": "event_property_is", "key": "content.n", "value": "5"}, False),
        ({"kind": "event_property_contains", "key": "content.a\\.b.c", "value": "two"}, True),
        ({"kind": "event_property_contains", "key": "content.a\\.b.c", "value": 1}, True),
        ({"kind": "event_property_contains", "key": "content.a\\.b.c", "value": False}, False),
        ({"kind": "room_member_count", "is": ">2"}, True),
        ({"kind": "room_member_count", "is": "<=2"}, False),
        ({"kind": "room_member_count", "is": "3"}, True),
        ({"kind": "room_member_count", "is": "x3"}, False),
        ({"kind": "something_new"}, False),
    ]
    for condition, expected in cases:
        rules = merge_rules(ME, {"override": [rule(condition)]})
        assert ({"set_tweak": "x"} in evaluate(rules, event, _ctx())) is expected, condition
    disabled = merge_rules(ME, {"override": [{**rule(), "enabled": False}]})
    assert {"set_tweak": "x"} not in evaluate(disabled, event, _ctx())
