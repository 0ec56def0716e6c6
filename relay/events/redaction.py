"""The redaction algorithm: what survives of an event when it is redacted.

The redacted form is also what event signatures and reference hashes (event
ids) cover, so it must match the spec to the key. Rules, from a table:

- rooms v1-v10: top-level keys plus ``prev_state``, ``origin``, ``membership``
  (``event_id`` is a real key in v1/v2 events); content kept per type
  (``m.room.create`` keeps ``creator``). v1-v5 keep ``m.room.aliases``' ``aliases``
  (``special_case_aliases``), v8+ keep the join rules' ``allow``, v9+ the member's
  ``join_authorised_via_users_server``.
- room v11/v12 (``updated_redaction_rules``): no ``origin``/``membership``/
  ``prev_state``; ``m.room.create`` keeps all content, power levels keep
  ``invite``, ``m.room.redaction`` keeps ``redacts``, ``m.room.member`` keeps
  ``third_party_invite.signed``.

``unsigned`` (and so ``age_ts``) never survives. Malformed content (not an
object) redacts to ``{}``. The result is a deep copy: the input is never shared.

Spec: https://spec.matrix.org/v1.16/rooms/v1/#redactions (v1 fragment, to v5),
https://spec.matrix.org/v1.16/rooms/v6/#redactions (v6 fragment, v6-v7),
https://spec.matrix.org/v1.16/rooms/v8/#redactions (v8),
https://spec.matrix.org/v1.16/rooms/v10/#redactions (v9 fragment, v9-v10),
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
_CONTENT_KEYS_V1: dict[str, frozenset[str] | None] = {
    "m.room.member": frozenset({"membership"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule"}),
    "m.room.power_levels": _POWER_LEVEL_KEYS_V9,
    "m.room.aliases": frozenset({"aliases"}),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}
_CONTENT_KEYS_V6 = {k: v for k, v in _CONTENT_KEYS_V1.items() if k != "m.room.aliases"}
_CONTENT_KEYS_V8 = {**_CONTENT_KEYS_V6, "m.room.join_rules": frozenset({"join_rule", "allow"})}
_CONTENT_KEYS_V9: dict[str, frozenset[str] | None] = {
    **_CONTENT_KEYS_V8,
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
}
_CONTENT_KEYS_V11: dict[str, frozenset[str] | None] = {
    **_CONTENT_KEYS_V9,
    "m.room.create": None,
    "m.room.power_levels": _POWER_LEVEL_KEYS_V9 | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}


def _content_rules(room_version: RoomVersion) -> dict[str, frozenset[str] | None]:
    if room_version.updated_redaction_rules:
        return _CONTENT_KEYS_V11
    if room_version.restricted_join_redaction_fix:
        return _CONTENT_KEYS_V9
    if room_version.restricted_join_rule:
        return _CONTENT_KEYS_V8
    if room_version.special_case_aliases:
        return _CONTENT_KEYS_V1
    return _CONTENT_KEYS_V6


def redact(event: dict[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The redacted form of ``event`` under ``room_version``'s rules (a new dict)."""
    top_level = _TOP_LEVEL_KEYS_V11 if room_version.updated_redaction_rules else _TOP_LEVEL_KEYS_V9
    content_rules = _content_rules(room_version)

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
