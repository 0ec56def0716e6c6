"""The room versions the relay claims, as a table of frozen flag sets.

Each flag names the spec change that introduced it, so a rule is switched by
reading the table, never by comparing version strings.

Spec: https://spec.matrix.org/v1.16/rooms/ (v10, v11, v12).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    #: "v2" (rooms 2-11) or "v2.1" (room 12, MSC4297).
    state_res: str
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
    #: Rules every version we claim shares; kept as flags so tests can read them.
    knock_join_rule: bool = True
    restricted_join_rule: bool = True
    knock_restricted_join_rule: bool = True
    enforce_int_power_levels: bool = True
    strict_canonical_json: bool = True


V10 = RoomVersion(
    identifier="10",
    state_res="v2",
    updated_redaction_rules=False,
    implicit_room_creator=False,
    room_id_is_create_event_hash=False,
    privileged_creators=False,
)
V11 = RoomVersion(
    identifier="11",
    state_res="v2",
    updated_redaction_rules=True,
    implicit_room_creator=True,
    room_id_is_create_event_hash=False,
    privileged_creators=False,
)
V12 = RoomVersion(
    identifier="12",
    state_res="v2.1",
    updated_redaction_rules=True,
    implicit_room_creator=True,
    room_id_is_create_event_hash=True,
    privileged_creators=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {v.identifier: v for v in (V10, V11, V12)}
DEFAULT_ROOM_VERSION = V12


def room_version(identifier: str) -> RoomVersion | None:
    """The rules for `identifier`, or None when the relay does not support it."""
    return KNOWN_ROOM_VERSIONS.get(identifier)
