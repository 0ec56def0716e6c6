"""The room versions the relay supports (every stable one, 1 to 12), as a table of frozen
flag sets.

Each flag names the spec change that introduced it, so a rule is switched by reading the
table, never by comparing version strings. A flag that is True from some version on is
True for every later version, except where the spec replaced the rule (noted).

Spec: https://spec.matrix.org/v1.16/rooms/ (v1 ... v12).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    #: "v1" (room 1), "v2" (rooms 2-11) or "v2.1" (room 12, MSC4297).
    state_res: str
    #: v1/v2 event format: the event carries its own ``event_id`` (``$opaque:domain``) and
    #: ``prev_events``/``auth_events`` are ``[event_id, {hashes}]`` pairs. From v3 the id is
    #: the reference hash and the references are plain ids.
    event_id_in_event: bool
    #: v4+: event ids use URL-safe base64 (v3 used the standard alphabet, ``+`` and ``/``).
    urlsafe_event_ids: bool
    #: v1/v2: the redact level is an auth rule (rule 11, with the event id domain check);
    #: v3+ moved it to *handling redactions*.
    redaction_in_auth_rules: bool
    #: v5+: a signing key must be valid at the event's ``origin_server_ts``.
    enforce_key_validity: bool
    #: v1-v5: the ``m.room.aliases`` auth rule (state key = sender's domain) and its
    #: ``aliases`` content surviving redaction.
    special_case_aliases: bool
    #: v6+: power levels changes are checked for ``notifications`` too.
    limit_notifications_power_levels: bool
    #: v6+: floats and integers outside the canonical range are refused.
    strict_canonical_json: bool
    #: v7+: the ``knock`` join rule and membership.
    knock_join_rule: bool
    #: v8+: the ``restricted`` join rule (``allow`` kept by redaction).
    restricted_join_rule: bool
    #: v9+: ``join_authorised_via_users_server`` survives redaction of a member event.
    restricted_join_redaction_fix: bool
    #: v10+: the ``knock_restricted`` join rule.
    knock_restricted_join_rule: bool
    #: v10+: power levels must be integers (no strings).
    enforce_int_power_levels: bool
    #: Redaction algorithm of v11 (MSC2176/MSC3821/MSC3989): keep all of the
    #: create event's content, `invite` in power levels, drop `origin`,
    #: `membership`, `prev_state` from the top level.
    updated_redaction_rules: bool
    #: v11 (MSC2175): the create event has no `creator`; the sender is.
    implicit_room_creator: bool
    #: v12 (MSC4291): the room id is `!` + the create event's reference hash;
    #: the create event has no room_id and is never listed in auth_events.
    room_id_is_create_event_hash: bool
    #: v12 (MSC4289): the create event's sender and `additional_creators`
    #: have infinite power and are not listed in m.room.power_levels.
    privileged_creators: bool


V1 = RoomVersion(
    identifier="1",
    state_res="v1",
    event_id_in_event=True,
    urlsafe_event_ids=False,
    redaction_in_auth_rules=True,
    enforce_key_validity=False,
    special_case_aliases=True,
    limit_notifications_power_levels=False,
    strict_canonical_json=False,
    knock_join_rule=False,
    restricted_join_rule=False,
    restricted_join_redaction_fix=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    updated_redaction_rules=False,
    implicit_room_creator=False,
    room_id_is_create_event_hash=False,
    privileged_creators=False,
)
V2 = replace(V1, identifier="2", state_res="v2")
V3 = replace(V2, identifier="3", event_id_in_event=False, redaction_in_auth_rules=False)
V4 = replace(V3, identifier="4", urlsafe_event_ids=True)
V5 = replace(V4, identifier="5", enforce_key_validity=True)
V6 = replace(
    V5,
    identifier="6",
    special_case_aliases=False,
    limit_notifications_power_levels=True,
    strict_canonical_json=True,
)
V7 = replace(V6, identifier="7", knock_join_rule=True)
V8 = replace(V7, identifier="8", restricted_join_rule=True)
V9 = replace(V8, identifier="9", restricted_join_redaction_fix=True)
V10 = replace(V9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True)
V11 = replace(V10, identifier="11", updated_redaction_rules=True, implicit_room_creator=True)
V12 = replace(
    V11,
    identifier="12",
    state_res="v2.1",
    room_id_is_create_event_hash=True,
    privileged_creators=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}
DEFAULT_ROOM_VERSION = V12


def room_version(identifier: str) -> RoomVersion | None:
    """The rules for `identifier`, or None when the relay does not support it."""
    return KNOWN_ROOM_VERSIONS.get(identifier)
