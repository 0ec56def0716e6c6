"""The redaction algorithm: what survives of an event when it is redacted.

The redacted form is also what event signatures and reference hashes (event
ids) cover, so it must match the spec to the key. Rules, from a table:

- room v10 (v9 rules): top-level keys plus ``prev_state``, ``origin``,
  ``membership``; content kept per type (``m.room.create`` keeps ``creator``).
- room v11/v12 (``updated_redaction_rules``): no ``origin``/``membership``/
  ``prev_state``; ``m.room.create`` keeps all content, power levels keep
  ``invite``, ``m.room.redaction`` keeps ``redacts``, ``m.room.member`` keeps
  ``third_party_invite.signed``.

``unsigned`` (and so ``age_ts``) never survives. Malformed content (not an
object) redacts to ``{}``. The result is a deep copy: the input is never shared.

Spec: https://spec.matrix.org/v1.16/rooms/v10/#redactions (v9 fragment),
https://spec.matrix.org/v1.16/rooms/v11/#redactions (v11 fragment, also v12)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from relay.events.room_versions import RoomVersion

_TOP_LEVEL_KEYS_V11 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)
_TOP_LEVEL_KEYS_V9 = _TOP_LEVEL_KEYS_V11 | {"prev_state", "origin", "membership"}

_POWER_LEVEL_KEYS_V9 = frozenset(
    {
        "ban",
        "events",
        "events_default",
        "kick",
        "redact",
        "state_default",
        "users",
        "users_default",
    }
)

_NONE: frozenset[str] = frozenset()

#: Content keys kept per event type (other types keep none); ``None`` means "keep all content".
_CONTENT_KEYS_V9: dict[str, frozenset[str] | None] = {
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
    "m.room.power_levels": _POWER_LEVEL_KEYS_V9,
    "m.room.history_visibility": frozenset({"history_visibility"}),
}
_CONTENT_KEYS_V11: dict[str, frozenset[str] | None] = {
    **_CONTENT_KEYS_V9,
    "m.room.create": None,
    "m.room.power_levels": _POWER_LEVEL_KEYS_V9 | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}


def redact(event: dict[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The redacted form of ``event`` under ``room_version``'s rules (a new dict)."""
    if room_version.updated_redaction_rules:
        top_level, content_rules = _TOP_LEVEL_KEYS_V11, _CONTENT_KEYS_V11
    else:
        top_level, content_rules = _TOP_LEVEL_KEYS_V9, _CONTENT_KEYS_V9

    redacted = {key: value for key, value in event.items() if key in top_level}
    content = event.get("content")
    if not isinstance(content, dict):
        content = {}
    event_type = event.get("type")
    kept = content_rules.get(event_type, _NONE) if isinstance(event_type, str) else _NONE
    if kept is None:
        new_content = dict(content)
    else:
        new_content = {key: value for key, value in content.items() if key in kept}
    if room_version.updated_redaction_rules and event_type == "m.room.member":
        invite = content.get("third_party_invite")
        if isinstance(invite, dict) and "signed" in invite:
            new_content["third_party_invite"] = {"signed": invite["signed"]}
    redacted["content"] = new_content
    return copy.deepcopy(redacted)


def redacts_of(event: Mapping[str, Any], room_version: RoomVersion) -> str | None:
    """The event id a redaction names: `content.redacts` in v11+, top-level before."""
    if room_version.updated_redaction_rules:
        content = event.get("content")
        redacts = content.get("redacts") if isinstance(content, Mapping) else None
    else:
        redacts = event.get("redacts")
    return redacts if isinstance(redacts, str) else None
