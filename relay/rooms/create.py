"""Creating a room: the create event, the creator's join, power levels, the preset's rules,
initial state, name, topic, local invites and the alias, in one write (`createRoom`).

Spec: https://spec.matrix.org/v1.16/client-server-api/#creation
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay.errors import RoomInUse
from relay.events.ids import server_of
from relay.events.pdu import Pdu
from relay.events.room_versions import RoomVersion
from relay.runtime.clock import now_ms
from store import Connection
from store import rooms as store_rooms

if TYPE_CHECKING:
    from relay.rooms.service import RoomService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What `createRoom` asked for, validated by the client layer."""

    creator: str
    room_version: str
    preset: str
    visibility: str = "private"
    name: str | None = None
    topic: str | None = None
    alias_localpart: str | None = None
    invite: tuple[str, ...] = ()
    is_direct: bool = False
    initial_state: tuple[dict[str, Any], ...] = ()
    power_level_content_override: dict[str, Any] | None = None
    creation_content: dict[str, Any] | None = None


PRESETS: dict[str, dict[str, str]] = {
    "private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "public_chat": {"join_rule": "public", "history": "shared", "guest": "forbidden"},
}


def _random_room_localpart() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(18))


def create_room_txn(
    rooms: RoomService,
    conn: Connection,
    rv: RoomVersion,
    config: RoomConfig,
    preset: dict[str, str],
) -> str:
    creator = config.creator
    alias = None
    if config.alias_localpart is not None:
        alias = f"#{config.alias_localpart}:{rooms.server_name}"
        if store_rooms.get_alias(conn, alias) is not None:
            raise RoomInUse("Room alias already taken")

    create_content = dict(config.creation_content or {})
    create_content["room_version"] = rv.identifier
    if not rv.implicit_room_creator:
        create_content["creator"] = creator
    if rv.room_id_is_create_event_hash:
        room_id = None
    else:
        room_id = f"!{_random_room_localpart()}:{rooms.server_name}"
    create = rooms.append_local_event_txn(
        conn,
        rv,
        room_id,
        sender=creator,
        type_="m.room.create",
        content=create_content,
        state_key="",
    )
    room_id = create.room_id
    store_rooms.create_room(
        conn,
        room_id=room_id,
        room_version=rv.identifier,
        creator=creator,
        is_public=config.visibility == "public",
        now_ms=now_ms(),
    )
    # The create event was stored before the room row existed; fine for SQL,
    # and the room version lookup below needs the row.

    def state(type_: str, content: dict[str, Any], state_key: str = "") -> Pdu:
        return rooms.append_local_event_txn(
            conn,
            rv,
            room_id,
            sender=creator,
            type_=type_,
            content=content,
            state_key=state_key,
        )

    state("m.room.member", rooms.member_content_txn(conn, creator, "join"), creator)

    users: dict[str, int] = {} if rv.privileged_creators else {creator: 100}
    if config.preset == "trusted_private_chat":
        for invitee in config.invite:
            users[invitee] = 100
    power_levels: dict[str, Any] = {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0 if config.preset != "public_chat" else 50,
    }
    if config.power_level_content_override:
        power_levels.update(config.power_level_content_override)
    state("m.room.power_levels", power_levels)
    if alias is not None:
        state("m.room.canonical_alias", {"alias": alias})
    initial = {(e["type"], e.get("state_key", "")): e for e in config.initial_state}
    if ("m.room.join_rules", "") not in initial:
        state("m.room.join_rules", {"join_rule": preset["join_rule"]})
    if ("m.room.history_visibility", "") not in initial:
        state("m.room.history_visibility", {"history_visibility": preset["history"]})
    if ("m.room.guest_access", "") not in initial:
        state("m.room.guest_access", {"guest_access": preset["guest"]})
    for (type_, state_key), event in initial.items():
        state(type_, event.get("content", {}), state_key)
    if config.name is not None:
        state("m.room.name", {"name": config.name})
    if config.topic is not None:
        state("m.room.topic", {"topic": config.topic})
    for invitee in config.invite:
        if server_of(invitee) != rooms.server_name:
            continue  # another server must countersign: the caller invites them after
        content: dict[str, Any] = {"membership": "invite"}
        if config.is_direct:
            content["is_direct"] = True
        state("m.room.member", content, invitee)
    if alias is not None:
        store_rooms.create_alias(
            conn, alias=alias, room_id=room_id, servers=[rooms.server_name], creator=creator
        )
    log.info("room %s (v%s) created by %s", room_id, rv.identifier, creator)
    return room_id
