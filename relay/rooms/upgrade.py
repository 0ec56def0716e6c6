"""Room upgrades: `POST /rooms/{roomId}/upgrade` replaces a room with a new one of another
version.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#room-upgrades), Synapse's
`RoomCreationHandler.upgrade_room` where the spec leaves it open:

- One write transaction does it all, so a refused step leaves no half-upgraded room:
  the upgrader must be allowed to send `m.room.tombstone` in the old room (403), checked
  before anything is built; an unknown room is 404, an unknown version 400
  M_UNSUPPORTED_ROOM_VERSION (checked by the caller).
- The new room's create event names `predecessor: {room_id}` and keeps the old `type`
  and `m.federate`; it gets the old room's join rules, name, topic, history visibility,
  guest access, avatar, encryption, server ACL, power levels, a space's children, and its bans.
- Power levels: in a v12 room the upgrader is a creator and may not be listed in
  `users`; from a v12 room to an older version the old creators are listed at 100.
- Aliases: every local alias of the old room moves to the new room, the canonical alias
  event is copied to the new room and emptied of aliases in the old one.
- The old room gets the tombstone (`replacement_room`), then power levels that keep
  ordinary members from talking or inviting (`events_default` and `invite` at least
  max(50, users_default + 1)); a published old room is unpublished and the new one
  published.
- Local members' tags of the old room (`m.tag`) are copied to the new room, so Element's
  Favourites and Low priority survive the upgrade, and so are their own push rules for
  the old room (a `room` rule named by its id; an override/underride rule named after the
  room and matching its `room_id`: Element's mute), renamed and matching the new room,
  each placed right after the old one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from relay.errors import Forbidden, NotFound
from relay.events.auth import room_creators
from relay.events.pdu import Pdu
from relay.events.room_versions import RoomVersion
from relay.rooms.canonical_alias import CANONICAL_ALIAS
from relay.rooms.create import PRESETS, RoomConfig, create_room_txn
from store import Connection
from store import account_data as store_account_data
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state

if TYPE_CHECKING:
    from relay.rooms.service import RoomService

TOMBSTONE = "m.room.tombstone"
TOMBSTONE_BODY = "This room has been replaced"
#: State copied as is from the old room (power levels are adapted; see below).
COPIED_STATE = (
    "m.room.join_rules",
    "m.room.name",
    "m.room.topic",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
)
SPACE_CHILD = "m.space.child"
#: The account data holding a user's push rules (relay/client/push_rules.py).
PUSH_RULES = "m.push_rules"


def upgrade_room_txn(
    conn: Connection,
    rooms: RoomService,
    user_id: str,
    old_room_id: str,
    new_rv: RoomVersion,
    additional_creators: list[str] | None = None,
) -> str:
    """Upgrade `old_room_id` to `new_rv` for `user_id`; the new room's id.
    `additional_creators` (v12+) join the upgrader as creators of the new room."""
    if store_rooms.get_room_version(conn, old_room_id) is None:
        raise NotFound(f"Unknown room {old_room_id}")
    old_rv = rooms.room_version_txn(conn, old_room_id)
    if store_rooms.get_membership(conn, old_room_id, user_id) != "join":
        raise Forbidden("You are not in this room")
    # May the user send the tombstone? Built and checked, not stored.
    rooms.build_local_event_txn(
        conn,
        old_rv,
        old_room_id,
        sender=user_id,
        type_=TOMBSTONE,
        content={"body": TOMBSTONE_BODY, "replacement_room": old_room_id},
        state_key="",
    )
    state = store_state.get_current_state(conn, old_room_id)

    def content(type_: str, key: str = "") -> dict[str, Any] | None:
        event_id = state.get((type_, key))
        pdu = rooms.get_pdu_txn(conn, event_id) if event_id else None
        return dict(pdu.content) if pdu is not None else None

    create = rooms.state_event_txn(conn, old_room_id, "m.room.create", "")
    old_create = create.content if create is not None else {}
    creation: dict[str, Any] = {"predecessor": {"room_id": old_room_id}}
    for key in ("type", "m.federate"):
        if key in old_create:
            creation[key] = old_create[key]
    if additional_creators is not None and new_rv.privileged_creators:
        creation["additional_creators"] = additional_creators
    initial = []
    for type_ in COPIED_STATE:
        found = content(type_)
        if found is not None:
            initial.append({"type": type_, "state_key": "", "content": found})
    if old_create.get("type") == "m.space":
        for (type_, key), _event_id in sorted(state.items()):
            child = content(type_, key) if type_ == SPACE_CHILD else None
            if child:
                initial.append({"type": type_, "state_key": key, "content": child})
    power_levels = _new_power_levels(
        content("m.room.power_levels") or {},
        [user_id, *(creation.get("additional_creators") or [])],
        old_rv,
        new_rv,
        create,
    )
    room = store_rooms.get_room(conn, old_room_id) or {}
    config = RoomConfig(
        creator=user_id,
        room_version=new_rv.identifier,
        preset="private_chat",
        visibility="public" if room.get("is_public") else "private",
        initial_state=tuple(initial),
        power_level_content_override=power_levels,
        creation_content=creation,
    )
    new_room_id = create_room_txn(rooms, conn, new_rv, config, PRESETS[config.preset])

    def send(room_id: str, rv: RoomVersion, type_: str, body: dict[str, Any], key: str) -> Pdu:
        return rooms.append_local_event_txn(
            conn, rv, room_id, sender=user_id, type_=type_, content=body, state_key=key
        )

    for (type_, key), _event_id in sorted(state.items()):
        member = content(type_, key) if type_ == "m.room.member" else None
        if member and member.get("membership") == "ban":
            ban = {"membership": "ban"}
            if isinstance(member.get("reason"), str):
                ban["reason"] = member["reason"]
            _if_allowed(lambda b=ban, k=key: send(new_room_id, new_rv, "m.room.member", b, k))
    store_rooms.move_aliases(conn, old_room_id, new_room_id)
    canonical = content(CANONICAL_ALIAS)
    if canonical:
        _if_allowed(lambda: send(new_room_id, new_rv, CANONICAL_ALIAS, canonical, ""))
    send(old_room_id, old_rv, TOMBSTONE, _tombstone(new_room_id), "")
    if canonical and ("alias" in canonical or "alt_aliases" in canonical):
        emptied = {k: v for k, v in canonical.items() if k not in ("alias", "alt_aliases")}
        _if_allowed(lambda: send(old_room_id, old_rv, CANONICAL_ALIAS, emptied, ""))
    restricted = _restricted_power_levels(content("m.room.power_levels"))
    if restricted is not None:
        _if_allowed(lambda: send(old_room_id, old_rv, "m.room.power_levels", restricted, ""))
    if room.get("is_public"):
        store_rooms.set_room_public(conn, old_room_id, False)
    _copy_tags_txn(conn, rooms.server_name, old_room_id, new_room_id)
    _copy_push_rules_txn(conn, rooms.server_name, old_room_id, new_room_id)
    return new_room_id


def _tombstone(new_room_id: str) -> dict[str, Any]:
    return {"body": TOMBSTONE_BODY, "replacement_room": new_room_id}


def _if_allowed(step: Any) -> None:
    """A step the upgrader may lack the power for: skipped then, as Synapse does."""
    try:
        step()
    except Forbidden:
        pass


def _new_power_levels(
    old: dict[str, Any],
    new_creators: list[str],
    old_rv: RoomVersion,
    new_rv: RoomVersion,
    create: Pdu | None,
) -> dict[str, Any]:
    levels = dict(old)
    given = old.get("users")
    users: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    if new_rv.privileged_creators:
        # A creator's power is implied and may not be listed.
        for creator in new_creators:
            users.pop(creator, None)
    elif old_rv.privileged_creators and create is not None:
        for creator in room_creators(create.as_dict(), old_rv):
            users[creator] = 100
    levels["users"] = users
    return levels


def _restricted_power_levels(levels: dict[str, Any] | None) -> dict[str, Any] | None:
    """The old room's power levels once tombstoned, or None when nothing changes."""
    if levels is None:
        return None
    users_default = levels.get("users_default", 0)
    if not isinstance(users_default, int) or isinstance(users_default, bool):
        users_default = 0
    restricted = max(50, users_default + 1)
    changed = dict(levels)
    for key in ("events_default", "invite"):
        current = levels.get(key, 0)
        if not isinstance(current, int) or isinstance(current, bool) or current < restricted:
            changed[key] = restricted
    return changed if changed != levels else None


def _copy_tags_txn(conn: Connection, server_name: str, old_room_id: str, new_room_id: str) -> None:
    for user_id in store_rooms.joined_users(conn, old_room_id):
        if not user_id.endswith(":" + server_name):
            continue
        tags = store_account_data.get_account_data(conn, user_id, "m.tag", old_room_id)
        if tags is not None:
            store_account_data.set_account_data(
                conn,
                user_id=user_id,
                room_id=new_room_id,
                type="m.tag",
                content=tags,
                stream_ordering=store_events.next_stream_ordering(conn),
            )


def _copy_push_rules_txn(
    conn: Connection, server_name: str, old_room_id: str, new_room_id: str
) -> None:
    for user_id in store_rooms.joined_users(conn, old_room_id):
        if not user_id.endswith(":" + server_name):
            continue
        text = store_account_data.get_account_data(conn, user_id, PUSH_RULES)
        stored = json.loads(text) if text else None
        ruleset = stored.get("global") if isinstance(stored, dict) else None
        if not isinstance(ruleset, dict):
            continue
        changed = False
        for kind, rules in ruleset.items():
            if not isinstance(rules, list):
                continue
            copied: list[Any] = []
            for rule in rules:
                copied.append(rule)
                copy = _rule_for_new_room(kind, rule, old_room_id, new_room_id)
                if copy is not None and not any(
                    isinstance(r, dict) and r.get("rule_id") == copy["rule_id"] for r in rules
                ):
                    copied.append(copy)
                    changed = True
            ruleset[kind] = copied
        if changed:
            store_account_data.set_account_data(
                conn,
                user_id=user_id,
                type=PUSH_RULES,
                content=json.dumps(stored, ensure_ascii=False, separators=(",", ":")),
                stream_ordering=store_events.next_stream_ordering(conn),
            )


def _rule_for_new_room(
    kind: str, rule: Any, old_room_id: str, new_room_id: str
) -> dict[str, Any] | None:
    """The user's rule for the old room, made for the new one; None for other rules."""
    if not isinstance(rule, dict) or rule.get("rule_id") != old_room_id:
        return None
    if kind == "room":
        return {**rule, "rule_id": new_room_id}
    conditions = rule.get("conditions")
    if kind not in ("override", "underride") or not isinstance(conditions, list):
        return None
    matches_room = [
        isinstance(c, dict)
        and c.get("kind") == "event_match"
        and c.get("key") == "room_id"
        and c.get("pattern") == old_room_id
        for c in conditions
    ]
    if not any(matches_room):
        return None
    return {
        **rule,
        "rule_id": new_room_id,
        "conditions": [
            {**c, "pattern": new_room_id} if hit else c
            for c, hit in zip(conditions, matches_room, strict=True)
        ],
    }
