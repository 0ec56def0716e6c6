"""How a user's push rules set a room's notification level, for the unread counts /sync
gives (pure: the user's `m.push_rules` content in, a level out).

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#push-rules, the order
override, content, room, sender, underride; the first enabled matching rule decides):

- `.m.rule.master` enabled: nothing notifies anywhere (`SILENT`).
- An enabled user override rule whose conditions only match this room's id (what
  Element's "Mute" writes) decides for every event of the room, mentions included:
  `SILENT` when its actions hold no `notify`.
- Else an enabled room rule for the room without `notify` (Element's "Mentions and
  keywords") silences ordinary messages; mentions still notify and highlight, because
  the default override rules for mentions rank above room rules (`MENTIONS_ONLY`).
- Anything else is `ALL` (the default rules: messages notify).
"""

from __future__ import annotations

import enum
from typing import Any


class RoomLevel(enum.Enum):
    ALL = "all"
    MENTIONS_ONLY = "mentions_only"
    SILENT = "silent"


def _enabled_rules(ruleset: Any, kind: str) -> list[dict[str, Any]]:
    rules = ruleset.get(kind) if isinstance(ruleset, dict) else None
    if not isinstance(rules, list):
        return []
    return [r for r in rules if isinstance(r, dict) and r.get("enabled", True) is True]


def _notifies(rule: dict[str, Any]) -> bool:
    actions = rule.get("actions")
    return isinstance(actions, list) and "notify" in actions


def _only_room(rule: dict[str, Any], room_id: str) -> bool:
    """Whether every condition of an override rule is `room_id` equal to `room_id`."""
    conditions = rule.get("conditions")
    return (
        isinstance(conditions, list)
        and bool(conditions)
        and all(
            isinstance(c, dict)
            and c.get("kind") == "event_match"
            and c.get("key") == "room_id"
            and c.get("pattern") == room_id
            for c in conditions
        )
    )


def room_level(push_rules: Any, room_id: str) -> RoomLevel:
    """The notification level the `m.push_rules` content `{"global": {...}}` gives
    `room_id` (malformed parts ignored)."""
    ruleset = push_rules.get("global") if isinstance(push_rules, dict) else None
    for rule in _enabled_rules(ruleset, "override"):
        if rule.get("rule_id") == ".m.rule.master":
            return RoomLevel.SILENT
        if rule.get("default") is not True and _only_room(rule, room_id):
            return RoomLevel.ALL if _notifies(rule) else RoomLevel.SILENT
    for rule in _enabled_rules(ruleset, "room"):
        if rule.get("rule_id") == room_id:
            return RoomLevel.ALL if _notifies(rule) else RoomLevel.MENTIONS_ONLY
    return RoomLevel.ALL
