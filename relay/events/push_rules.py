"""A user's push rules, pure: the ruleset (the server defaults merged with the user's
changes), the per-event evaluation (`evaluate`: which actions an event gets) that pushers
and the counts of users with keyword or sender rules use, and the room notification level
(`room_level`) the fast counts of everyone else use.

Evaluation (https://spec.matrix.org/v1.16/client-server-api/#push-rules): the kinds in the
order override, content, room, sender, underride; the first enabled rule that matches
decides, its actions are the event's; none matches: no actions. Conditions: `event_match`
(a case-insensitive glob over the whole value; on `content.body` over any run of words),
`event_property_is`, `event_property_contains`, `contains_display_name`,
`room_member_count`, `sender_notification_permission`; an unknown kind never matches.
Content rules match their `pattern` against `content.body` at word boundaries; room rules
match the room whose id is the rule id, sender rules the sender whose id is the rule id.

Room levels (https://spec.matrix.org/v1.16/client-server-api/#push-rules, the order
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
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from relay.events.default_push_rules import KINDS, default_ruleset

Ruleset = dict[str, list[dict[str, Any]]]


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


def merge_rules(user_id: str, stored: Any) -> Ruleset:
    """The defaults for `user_id` overlaid with a stored ruleset (malformed parts ignored)."""
    ruleset = default_ruleset(user_id)
    if not isinstance(stored, dict):
        return ruleset
    for kind in KINDS:
        rules = stored.get(kind)
        if not isinstance(rules, list):
            continue
        rules = [r for r in rules if isinstance(r, dict) and isinstance(r.get("rule_id"), str)]
        by_id = {r["rule_id"]: r for r in rules}
        for rule in ruleset[kind]:
            saved = by_id.get(rule["rule_id"], {})
            if isinstance(saved.get("enabled"), bool):
                rule["enabled"] = saved["enabled"]
            if isinstance(saved.get("actions"), list):
                rule["actions"] = saved["actions"]
        own = [dict(r, default=False) for r in rules if not r["rule_id"].startswith(".")]
        defaults = ruleset[kind]
        if kind == "override" and defaults and defaults[0]["rule_id"] == ".m.rule.master":
            ruleset[kind] = [defaults[0], *own, *defaults[1:]]
        else:
            ruleset[kind] = [*own, *defaults]
    return ruleset


# -- evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventContext:
    """What evaluating one event for one user needs beyond the event itself."""

    user_id: str
    #: The user's display name in the room (None: none set).
    display_name: str | None
    #: How many users are joined to the room.
    member_count: int
    #: The sender's power level (infinite for a v12 creator), and the levels
    #: `notifications` requires (by key).
    sender_power: int | float
    notification_levels: dict[str, int]


def _path_parts(key: str) -> list[str]:
    """`content.m\\.mentions.user_ids` -> ["content", "m.mentions", "user_ids"]."""
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


_MISSING = object()


def _value_at(event: dict[str, Any], key: str) -> Any:
    value: Any = event
    for part in _path_parts(key):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


@lru_cache(maxsize=1024)
def _glob(pattern: str, words: bool) -> re.Pattern[str]:
    """A glob (`*`, `?`) as a case-insensitive regex: the whole value, or (`words`) any
    run of it that starts and ends at word boundaries."""
    # Runs of `*` are one `*`: a pattern of many cannot make the match backtrack more.
    pattern = re.sub(r"\*+", "*", pattern)
    body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if words:
        return re.compile(rf"(?:^|\W){body}(?:\W|$)", re.IGNORECASE | re.DOTALL)
    return re.compile(rf"\A{body}\Z", re.IGNORECASE | re.DOTALL)


def _event_match(event: dict[str, Any], key: Any, pattern: Any) -> bool:
    if not isinstance(key, str) or not isinstance(pattern, str):
        return False
    value = _value_at(event, key)
    if not isinstance(value, str):
        return False
    return _glob(pattern, key == "content.body").search(value) is not None


def _member_count_matches(spec: Any, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    match = re.fullmatch(r"(==|<=|>=|<|>)?([0-9]+)", spec)
    if match is None:
        return False
    op, number = match.group(1) or "==", int(match.group(2))
    return {
        "==": count == number,
        "<": count < number,
        ">": count > number,
        "<=": count <= number,
        ">=": count >= number,
    }[op]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int))


def _same(a: Any, b: Any) -> bool:
    # JSON's true is not 1: compare the types too.
    return type(a) is type(b) and a == b


def _condition(condition: Any, event: dict[str, Any], ctx: EventContext) -> bool:
    if not isinstance(condition, dict):
        return False
    kind = condition.get("kind")
    if kind == "event_match":
        return _event_match(event, condition.get("key"), condition.get("pattern"))
    if kind == "event_property_is":
        key, wanted = condition.get("key"), condition.get("value")
        if not isinstance(key, str) or not _scalar(wanted):
            return False
        return _same(_value_at(event, key), wanted)
    if kind == "event_property_contains":
        key, wanted = condition.get("key"), condition.get("value")
        if not isinstance(key, str) or not _scalar(wanted):
            return False
        values = _value_at(event, key)
        return isinstance(values, list) and any(_same(v, wanted) for v in values)
    if kind == "contains_display_name":
        body = _value_at(event, "content.body")
        name = ctx.display_name
        if not isinstance(body, str) or not name:
            return False
        return re.search(rf"(?:^|\W){re.escape(name)}(?:\W|$)", body, re.IGNORECASE) is not None
    if kind == "room_member_count":
        return _member_count_matches(condition.get("is"), ctx.member_count)
    if kind == "sender_notification_permission":
        key = condition.get("key")
        if not isinstance(key, str):
            return False
        return ctx.sender_power >= ctx.notification_levels.get(key, 50)
    return False


def _rule_matches(
    kind: str, rule: dict[str, Any], event: dict[str, Any], ctx: EventContext
) -> bool:
    if kind in ("override", "underride"):
        conditions = rule.get("conditions", [])
        return isinstance(conditions, list) and all(_condition(c, event, ctx) for c in conditions)
    if kind == "content":
        return _event_match(event, "content.body", rule.get("pattern"))
    if kind == "room":
        return rule.get("rule_id") == event.get("room_id")
    if kind == "sender":
        return rule.get("rule_id") == event.get("sender")
    return False


def evaluate(ruleset: Ruleset, event: dict[str, Any], ctx: EventContext) -> list[Any]:
    """The actions the user's merged `ruleset` gives `event` (the client format of it:
    type, content, sender, room_id, state_key): the first enabled matching rule's, or
    none."""
    for kind in KINDS:
        for rule in _enabled_rules(ruleset, kind):
            if _rule_matches(kind, rule, event, ctx):
                actions = rule.get("actions")
                return list(actions) if isinstance(actions, list) else []
    return []


def notifies(actions: list[Any]) -> bool:
    return "notify" in actions


def tweaks_of(actions: list[Any]) -> dict[str, Any]:
    """The `set_tweak` actions as a dict (`highlight` without a value is true)."""
    tweaks: dict[str, Any] = {}
    for action in actions:
        if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            tweaks[action["set_tweak"]] = action.get("value", True)
    return tweaks


def highlights(actions: list[Any]) -> bool:
    return notifies(actions) and tweaks_of(actions).get("highlight") is True


def has_own_message_rules(ruleset: Ruleset) -> bool:
    """Whether the user has enabled rules of their own that the room level cannot say
    (keyword and sender rules; override rules other than a room's mute, underride rules):
    then the counts need `evaluate` per event."""
    for kind in KINDS:
        for rule in _enabled_rules(ruleset, kind):
            if rule.get("default") is True or kind == "room":
                continue
            if kind == "override" and _only_room_rule(rule):
                continue
            return True
    return False


def _only_room_rule(rule: dict[str, Any]) -> bool:
    """An override rule on one room id (what "Mute" writes)."""
    conditions = rule.get("conditions")
    if not isinstance(conditions, list) or len(conditions) != 1:
        return False
    pattern = conditions[0].get("pattern") if isinstance(conditions[0], dict) else None
    return isinstance(pattern, str) and _only_room(rule, pattern)
