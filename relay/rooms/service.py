"""The rooms core: build local events, check them, store them, wake sync, queue them for peers.

The one rule of this module: a local event is built, auth-checked, hashed,
signed and stored (with its DAG edges, state, membership and outbox rows) in
ONE write transaction on the writer connection, so two concurrent sends can
never build on the same forward extremities and an acknowledged event is on
disk with everything that depends on it.

Setting a state event its sender already set with the same content (joining twice
included) makes no new event: the current one's id is the answer, as Synapse does.

Spec: https://spec.matrix.org/v1.16/server-server-api/#pdus (building events),
https://spec.matrix.org/v1.16/rooms/ (auth rules per version).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from relay.errors import (
    BadJson,
    BadState,
    DuplicateAnnotation,
    Forbidden,
    InvalidParam,
    NotFound,
    TooLarge,
    Unknown,
    UnsupportedRoomVersion,
)
from relay.events.auth import (
    AUTHORISING_USER,
    AuthError,
    auth_types_for_event,
    check_auth,
    check_auth_events,
    client_redaction_refusal,
    redaction_allowed,
)
from relay.events.canonical import (
    CanonicalJsonError,
    canonical_json,
    check_canonical_json_values,
)
from relay.events.ids import (
    create_event_id_of,
    has_control_character,
    is_valid_user_id,
    referenced_ids,
    server_of,
)
from relay.events.limits import MAX_PREV_EVENTS, check_size_limits, pdu_too_large
from relay.events.pdu import MalformedPdu, Pdu, finalize_event, reference_pairs
from relay.events.redaction import redact
from relay.events.relations import ANNOTATION, THREAD, relation_of
from relay.events.room_versions import RoomVersion, room_version
from relay.events.server_acl import SERVER_ACL, server_allowed
from relay.rooms.canonical_alias import CANONICAL_ALIAS, check_canonical_alias_txn
from relay.rooms.create import PRESETS, RoomConfig, create_room_txn
from relay.rooms.pdu_cache import PduCache
from relay.rooms.restricted_joins import authoriser_for_join_txn
from relay.rooms.search_index import forget_redacted_txn, index_pdu_txn
from relay.rooms.upgrade import upgrade_room_txn
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from relay.runtime.identity import SigningKey
from relay.runtime.notifier import Notifier
from store import Connection
from store import accounts as store_accounts
from store import events as store_events
from store import outbox as store_outbox
from store import redactions as store_redactions
from store import relations as store_relations
from store import remote_memberships as store_remote_memberships
from store import rooms as store_rooms
from store import state as store_state
from store import txn_ids as store_txn_ids

log = logging.getLogger(__name__)

MAX_DEPTH = 2**63 - 1
#: Longest annotation key a local user may send (Synapse's limit).
MAX_AGGREGATION_KEY = 500


def insert_pdu_txn(
    conn: Connection,
    pdu: Pdu,
    *,
    outlier: bool = False,
    soft_failed: bool = False,
    rejected_reason: str | None = None,
    received_ts: int | None = None,
    backfilled: bool = False,
) -> int:
    """Store one PDU's row and DAG edges at the next stream position (returned; for
    `backfilled` history, the next one below all others), the relation it declares, and
    which event it names if it is a redaction (applied or not when read:
    `RoomService.redacted_by_txn`), and its text for search (relay/rooms/search_index.py).
    State, extremities and memberships are the caller's."""
    if backfilled:
        stream = store_events.next_backfill_stream_ordering(conn)
    else:
        stream = store_events.next_stream_ordering(conn)
    store_events.insert_event(
        conn,
        event_id=pdu.event_id,
        room_id=pdu.room_id,
        type=pdu.type,
        state_key=pdu.state_key,
        sender=pdu.sender,
        origin_server_ts=pdu.origin_server_ts,
        depth=pdu.depth,
        raw=pdu.raw,
        stream_ordering=stream,
        prev_event_ids=pdu.prev_event_ids,
        auth_event_ids=pdu.auth_event_ids,
        rejected_reason=rejected_reason,
        outlier=outlier,
        soft_failed=soft_failed,
        received_ts=now_ms() if received_ts is None else received_ts,
    )
    if pdu.type == "m.room.redaction" and pdu.redacts:
        # Every redaction is indexed, whatever its fate: `redacted_by_txn` asks the rule.
        store_redactions.insert_redaction(conn, event_id=pdu.event_id, redacts=pdu.redacts)
    if rejected_reason is None:
        index_pdu_txn(conn, pdu)
    relation = relation_of(pdu.as_dict())
    if relation is not None:
        # Every relation is indexed too; the readers leave hidden and redacted ones out.
        store_relations.insert_relation(
            conn,
            event_id=pdu.event_id,
            room_id=pdu.room_id,
            relates_to_id=relation.parent_id,
            rel_type=relation.rel_type,
            aggregation_key=relation.key,
        )
    return stream


def remember_remote_membership_txn(
    conn: Connection,
    pdu: Pdu,
    user_id: str,
    membership: store_remote_memberships.Membership,
    *,
    stripped_state: list[Any],
    server: str | None = None,
) -> None:
    """Our user's membership in a room we are not in (an invite another server sent, a
    knock we sent through `server`): the event stored once as an outlier, with the user's
    membership taken from it, and the row /sync shows it by, with the room's
    `stripped_state` (replacing what was stored)."""
    if not store_events.event_exists(conn, pdu.event_id):
        stream = insert_pdu_txn(conn, pdu, outlier=True)
        store_rooms.set_membership(
            conn,
            room_id=pdu.room_id,
            user_id=user_id,
            membership=membership,
            event_id=pdu.event_id,
            stream_ordering=stream,
        )
    store_remote_memberships.put_remote_membership(
        conn,
        room_id=pdu.room_id,
        user_id=user_id,
        membership=membership,
        event_id=pdu.event_id,
        room_version=pdu.room_version.identifier,
        stripped_state=stripped_state,
        server=server,
    )


_POWER_LEVEL_INTS = "ban events_default invite kick redact state_default users_default".split()
_STATE_ONLY = ("m.room.member", "m.room.name", "m.room.topic", "m.room.power_levels")


def check_local_content(
    type_: str, content: dict[str, Any], state_key: str | None, server_name: str
) -> None:
    """Reject a malformed local event with M_BAD_JSON (400) before the auth rules would
    reject it with M_FORBIDDEN (or store it): what Synapse's event validator checks;
    a type or state key with a control character (M_INVALID_PARAM); and, as Synapse, a
    server ACL that would deny this server (400 M_UNKNOWN): the room would be cut off."""
    acl = type_ == SERVER_ACL and state_key == ""
    if acl and not server_allowed(content, server_name):
        raise Unknown("Can't create an ACL event that denies the local server", status=400)
    if has_control_character(type_):
        raise InvalidParam("event type must not contain control characters")
    if state_key is not None and has_control_character(state_key):
        raise InvalidParam("state_key must not contain control characters")
    if type_ in _STATE_ONLY and state_key is None:
        raise BadJson(f"{type_} must be a state event")
    strings = {
        "m.room.message": ("body", "msgtype"),
        "m.room.name": ("name",),
        "m.room.topic": ("topic",),
    }.get(type_, ())
    for key in strings:
        if key in content and not isinstance(content[key], str):
            raise BadJson(f"{type_} {key} must be a string")
    if type_ == "m.room.power_levels":

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        for key in _POWER_LEVEL_INTS:
            if key in content and not is_int(content[key]):
                raise BadJson(f"power levels {key} must be an integer")
        for key in ("events", "notifications", "users"):
            value = content.get(key, {})
            if not isinstance(value, dict) or not all(is_int(v) for v in value.values()):
                raise BadJson(f"power levels {key} must be an object of integers")
        if not all(is_valid_user_id(u) for u in content.get("users", {})):
            raise BadJson("power levels users must be keyed by user ids")


def _event_dict(pdu: Pdu) -> dict[str, Any]:
    event = pdu.as_dict()
    event["event_id"] = pdu.event_id
    return event


class RoomService:
    def __init__(
        self,
        database: Database,
        server_name: str,
        signing_key: SigningKey,
        notifier: Notifier,
    ) -> None:
        self.database = database
        self.server_name = server_name
        self.signing_key = signing_key
        self.notifier = notifier
        self.pdus = PduCache()
        #: Called after a write that may have queued PDUs for other servers (the
        #: federation sender installs it; the rooms core does not know the sender).
        self.outbox_listener: Callable[[], Awaitable[None]] | None = None

    # -- reading (any connection) ---------------------------------------------------

    def room_version_txn(self, conn: Connection, room_id: str) -> RoomVersion:
        identifier = store_rooms.get_room_version(conn, room_id)
        if identifier is None:
            raise NotFound(f"Unknown room {room_id}")
        rv = room_version(identifier)
        if rv is None:
            raise UnsupportedRoomVersion(f"Room version {identifier} is not supported")
        return rv

    def get_pdu_txn(self, conn: Connection, event_id: str) -> Pdu | None:
        pdu = self.pdus.get(event_id)
        if pdu is not None:
            return pdu
        row = store_events.get_event_row(conn, event_id)
        if row is None:
            return None
        identifier = store_rooms.get_room_version(conn, row["room_id"])
        if identifier is None:
            # An invite to (or a knock on) a room on another server that we are not in.
            identifier = store_remote_memberships.remote_room_version(conn, row["room_id"])
        rv = room_version(identifier or "")
        raw = store_events.get_event_raw(conn, event_id)
        if rv is None or raw is None:
            return None
        pdu = Pdu(raw, rv)
        self.pdus.put(pdu)
        return pdu

    def get_pdus_txn(self, conn: Connection, event_ids: Iterable[str]) -> dict[str, Pdu]:
        found: dict[str, Pdu] = {}
        for event_id in event_ids:
            pdu = self.get_pdu_txn(conn, event_id)
            if pdu is not None:
                found[event_id] = pdu
        return found

    def current_state_txn(self, conn: Connection, room_id: str) -> dict[tuple[str, str], Pdu]:
        ids = store_state.get_current_state(conn, room_id)
        pdus = self.get_pdus_txn(conn, ids.values())
        return {key: pdus[eid] for key, eid in ids.items() if eid in pdus}

    def state_event_txn(
        self, conn: Connection, room_id: str, type_: str, state_key: str
    ) -> Pdu | None:
        event_id = store_state.get_current_state_event_id(conn, room_id, type_, state_key)
        return self.get_pdu_txn(conn, event_id) if event_id else None

    # -- building local events (writer connection, inside one transaction) ------------

    def append_local_event_txn(
        self,
        conn: Connection,
        rv: RoomVersion,
        room_id: str | None,
        **fields: Any,
    ) -> Pdu:
        """Build, check, sign and store one local event on the room's current tips."""
        pdu, state_before = self.build_local_event_txn(conn, rv, room_id, **fields)
        self._store_local_pdu_txn(conn, pdu, state_before)
        return pdu

    def build_local_event_txn(
        self,
        conn: Connection,
        rv: RoomVersion,
        room_id: str | None,
        *,
        sender: str,
        type_: str,
        content: dict[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        extra_fields: dict[str, Any] | None = None,
    ) -> tuple[Pdu, dict[tuple[str, str], str]]:
        """Build, check and sign one local event on the room's current tips, without
        storing it; returns it with the state before it.

        `room_id` is None only for a v12 create event (its id derives from it).
        Raises Forbidden (auth), TooLarge, BadJson.
        """
        # Rooms v6+ forbid floats and out-of-range integers; v1-v5 take them, as Synapse does.
        if rv.strict_canonical_json:
            try:
                check_canonical_json_values(content)
            except CanonicalJsonError as exc:
                raise BadJson(f"Invalid content: {exc}") from None
        check_local_content(type_, content, state_key, self.server_name)
        now = now_ms()
        partial: dict[str, Any] = {
            "type": type_,
            "sender": sender,
            "content": content,
            "origin_server_ts": now,
        }
        if room_id is not None:
            partial["room_id"] = room_id
        if state_key is not None:
            partial["state_key"] = state_key
        if extra_fields:
            partial.update(extra_fields)
        if redacts is not None:
            if rv.updated_redaction_rules:
                partial["content"] = {**content, "redacts": redacts}
            else:
                partial["redacts"] = redacts

        state = self.place_on_tips_txn(conn, rv, partial)

        reason = check_size_limits(partial)
        if reason is not None:
            raise TooLarge(reason) if "bytes" in reason else InvalidParam(reason)
        try:
            pdu = finalize_event(
                partial, rv, self.server_name, self.signing_key.key_id, self.signing_key.key
            )
        except MalformedPdu as exc:
            raise BadJson(str(exc)) from None
        event = _event_dict(pdu)
        if pdu_too_large(pdu.as_dict()):
            raise TooLarge("Event is larger than 65536 bytes")

        create_event: dict[str, Any] | None = None
        if rv.room_id_is_create_event_hash and type_ != "m.room.create":
            create_pdu = self.state_event_txn(conn, pdu.room_id, "m.room.create", "")
            create_event = _event_dict(create_pdu) if create_pdu else None
        auth_pdus = self.get_pdus_txn(conn, list(referenced_ids(partial["auth_events"])))
        try:
            auth_state = check_auth_events(
                event,
                [_event_dict(p) for p in auth_pdus.values()],
                rv,
                create_event=create_event,
            )
            check_auth(event, auth_state, rv, create_event=create_event)
        except AuthError as exc:
            target = pdu.redacts if pdu.type == "m.room.redaction" else None
            if rv.redaction_in_auth_rules and target is not None and not server_of(target):
                # v1/v2 rule 11 reads the target id's server; Synapse answers an id without
                # one as malformed.
                raise Unknown(f"Invalid ID: {target!r}", status=400) from None
            raise Forbidden(str(exc.reason if hasattr(exc, "reason") else exc)) from None
        if pdu.type == "m.room.redaction":
            self._check_client_redaction_txn(conn, pdu, auth_state, create_event)
        self._check_client_relation_txn(conn, pdu)

        return pdu, state

    def _check_client_relation_txn(self, conn: Connection, pdu: Pdu) -> None:
        """Refuse a local event whose relation can't stand, as Synapse answers (400): a
        parent in another room, or unknown with nothing yet relating to it; an annotation
        without a key (or with one over 500 characters), or a second one with the same
        key, type and sender (M_DUPLICATE_ANNOTATION, unless the first was redacted); a
        thread started from an event that itself relates to another."""
        relation = relation_of(pdu.as_dict())
        if relation is None:
            return
        parent = self._accepted_pdu_txn(conn, relation.parent_id)
        if parent is not None and parent.room_id != pdu.room_id:
            raise Unknown("Relations must be in the same room", status=400)
        if parent is None and not store_relations.has_relations(conn, relation.parent_id):
            raise Unknown("Can't send relation to unknown event", status=400)
        if relation.rel_type == ANNOTATION:
            if relation.key is None:
                raise Unknown("Missing aggregation key", status=400)
            if len(relation.key) > MAX_AGGREGATION_KEY:
                raise Unknown("Aggregation key is too long", status=400)
            earlier = store_relations.annotations_by(
                conn, relation.parent_id, pdu.sender, pdu.type, relation.key
            )
            if any(
                not row["redaction_claimed"] or self.redacted_by_txn(conn, row["event_id"]) is None
                for row in earlier
            ):
                raise DuplicateAnnotation("Can't send same reaction twice")
        elif relation.rel_type == THREAD and store_relations.declares_relation(
            conn, relation.parent_id
        ):
            raise Unknown("Cannot start threads from an event with a relation", status=400)

    def _check_client_redaction_txn(
        self,
        conn: Connection,
        pdu: Pdu,
        auth_state: Mapping[tuple[str, str], Mapping[str, Any]],
        create_event: Mapping[str, Any] | None,
    ) -> None:
        """Refuse a local redaction `client_redaction_refusal` refuses, as Synapse answers:
        another room's event 400 M_UNKNOWN, an unknown one (no power) 404, else 403."""
        target = self._accepted_pdu_txn(conn, pdu.redacts) if pdu.redacts else None
        refusal = client_redaction_refusal(
            _event_dict(pdu),
            _event_dict(target) if target is not None else None,
            auth_state,
            pdu.room_version,
            create_event=create_event,
        )
        if refusal is None:
            return
        if refusal.kind == "not_found":
            raise NotFound(refusal.reason)
        if refusal.kind == "other_room":
            raise Unknown(refusal.reason, status=400)
        raise Forbidden(refusal.reason)

    def _accepted_pdu_txn(self, conn: Connection, event_id: str) -> Pdu | None:
        """The stored event `event_id` unless it was rejected."""
        row = store_events.get_event_row(conn, event_id)
        if row is None or row["rejected_reason"] is not None:
            return None
        return self.get_pdu_txn(conn, event_id)

    def place_on_tips_txn(
        self, conn: Connection, rv: RoomVersion, partial: dict[str, Any]
    ) -> dict[tuple[str, str], str]:
        """Set prev_events, depth and auth_events of `partial` from the room's forward
        extremities and current state (which it returns: the state before the event)."""
        room_id = partial.get("room_id")
        if room_id is None:
            prev_ids: list[str] = []
            depth = 1
            state: dict[tuple[str, str], str] = {}
        else:
            prev_ids = store_events.get_forward_extremities(conn, room_id)[:MAX_PREV_EVENTS]
            depths = store_events.get_depths(conn, prev_ids)
            depth = min(max(depths.values(), default=0) + 1, MAX_DEPTH)
            state = store_state.get_current_state(conn, room_id)
        partial["prev_events"] = prev_ids
        partial["depth"] = depth
        auth_keys = auth_types_for_event(partial, rv)
        auth_ids = sorted({state[k] for k in auth_keys if k in state})
        partial["auth_events"] = auth_ids
        if rv.event_id_in_event:  # v1/v2 reference events by [event_id, hashes] pairs
            referenced = self.get_pdus_txn(conn, prev_ids + auth_ids)
            partial["prev_events"] = reference_pairs(prev_ids, referenced)
            partial["auth_events"] = reference_pairs(auth_ids, referenced)
        return state

    def _store_local_pdu_txn(
        self, conn: Connection, pdu: Pdu, state_before: dict[tuple[str, str], str]
    ) -> None:
        room_id = pdu.room_id
        stream = insert_pdu_txn(conn, pdu, received_ts=pdu.origin_server_ts)
        store_events.update_forward_extremities(conn, room_id, pdu.event_id, pdu.prev_event_ids)
        store_state.record_event_state(
            conn,
            room_id=room_id,
            event_id=pdu.event_id,
            prev_event_ids=pdu.prev_event_ids,
            state_before=state_before,
            state_key=(pdu.type, pdu.state_key) if pdu.state_key is not None else None,
        )
        if pdu.state_key is not None:
            store_state.set_current_state(conn, room_id, pdu.type, pdu.state_key, pdu.event_id)
            if pdu.type == "m.room.member":
                membership = pdu.content.get("membership")
                if isinstance(membership, str):
                    store_rooms.set_membership(
                        conn,
                        room_id=room_id,
                        user_id=pdu.state_key,
                        membership=membership,
                        event_id=pdu.event_id,
                        stream_ordering=stream,
                    )
        forget_redacted_txn(conn, self, pdu)
        self.pdus.put(pdu)
        self.enqueue_for_peers_txn(conn, pdu)

    def enqueue_for_peers_txn(
        self, conn: Connection, pdu: Pdu, *, exclude: Iterable[str] = ()
    ) -> None:
        servers = set(store_rooms.servers_in_room(conn, pdu.room_id))
        servers.difference_update(exclude)
        if pdu.type == "m.room.member" and pdu.state_key and ":" in pdu.state_key:
            # An invited (or kicked) user's server must hear about it too.
            servers.add(server_of(pdu.state_key))
        servers.discard(self.server_name)
        for destination in sorted(servers):
            store_outbox.enqueue(
                conn,
                destination=destination,
                kind="pdu",
                payload=pdu.raw,
                event_id=pdu.event_id,
                now_ms=now_ms(),
            )

    # -- the operations the APIs call -------------------------------------------------

    async def _write(self, fn: Any, *args: Any) -> Any:
        def txn(conn: Connection) -> tuple[Any, int, bool]:
            # The stream position and whether anything was queued for other servers are
            # read in the write itself: no extra read per write.
            outbox_before = store_outbox.last_id(conn)
            result = fn(conn, *args)
            position = store_events.max_stream_ordering(conn)
            return result, position, store_outbox.last_id(conn) != outbox_before

        result, position, queued = await self.database.write(txn)
        self.notifier.on_stream(position)
        if queued and self.outbox_listener is not None:
            await self.outbox_listener()
        return result

    async def create_room(self, config: RoomConfig) -> str:
        rv = room_version(config.room_version)
        if rv is None:
            raise UnsupportedRoomVersion(f"Room version {config.room_version} is not supported")
        preset = PRESETS.get(config.preset)
        if preset is None:
            raise InvalidParam(f"Unknown preset {config.preset!r}")
        return await self._write(lambda conn: create_room_txn(self, conn, rv, config, preset))

    async def upgrade_room(
        self,
        user_id: str,
        room_id: str,
        new_version: str,
        additional_creators: list[str] | None = None,
    ) -> str:
        """Replace the room with one of `new_version` (relay/rooms/upgrade.py); the new
        room's id."""
        rv = room_version(new_version)
        if rv is None:
            raise UnsupportedRoomVersion(f"Room version {new_version} is not supported")
        return await self._write(upgrade_room_txn, self, user_id, room_id, rv, additional_creators)

    def member_content_txn(self, conn: Connection, user_id: str, membership: str) -> dict[str, Any]:
        content: dict[str, Any] = {"membership": membership}
        # As Synapse: joins and knocks carry the user's profile.
        if membership in ("join", "knock") and server_of(user_id) == self.server_name:
            row = store_accounts.get_profile(conn, user_id)
            if row is not None:
                if row[0]:
                    content["displayname"] = row[0]
                if row[1]:
                    content["avatar_url"] = row[1]
        return content

    async def send_event(
        self,
        sender: str,
        device_id: str | None,
        room_id: str,
        type_: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
        redacts: str | None = None,
    ) -> str:
        """Send a message (or, with state_key, a state event); idempotent per txn id."""

        def txn(conn: Connection) -> str:
            scope = f"send:{room_id}"
            if txn_id is not None and device_id is not None:
                earlier = store_txn_ids.get_txn(
                    conn, user_id=sender, device_id=device_id, scope=scope, txn_id=txn_id
                )
                if earlier is not None:
                    return earlier
            rv = self.room_version_txn(conn, room_id)
            if state_key is not None:
                unchanged = self.unchanged_state_txn(
                    conn, room_id, sender, type_, state_key, content
                )
                if unchanged is not None:
                    return unchanged
                if type_ == CANONICAL_ALIAS and state_key == "":
                    previous = self.state_event_txn(conn, room_id, type_, "")
                    check_canonical_alias_txn(
                        conn,
                        self.server_name,
                        room_id,
                        content,
                        previous.content if previous is not None else None,
                    )
            pdu = self.append_local_event_txn(
                conn,
                rv,
                room_id,
                sender=sender,
                type_=type_,
                content=content,
                state_key=state_key,
                redacts=redacts,
            )
            if txn_id is not None and device_id is not None:
                store_txn_ids.put_txn(
                    conn,
                    user_id=sender,
                    device_id=device_id,
                    scope=scope,
                    txn_id=txn_id,
                    result=pdu.event_id,
                    now_ms=now_ms(),
                )
                store_txn_ids.put_event_txn_id(
                    conn, event_id=pdu.event_id, user_id=sender, device_id=device_id, txn_id=txn_id
                )
            return pdu.event_id

        return await self._write(txn)

    async def update_membership(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        *,
        reason: str | None = None,
        extra_content: dict[str, Any] | None = None,
    ) -> str:
        def txn(conn: Connection) -> str:
            rv = self.room_version_txn(conn, room_id)
            if membership not in ("ban", "leave") and (
                store_rooms.get_membership(conn, room_id, target) == "ban"
            ):
                # As Synapse answers it, before the auth rules would (403 M_FORBIDDEN).
                raise BadState(f"Cannot {membership} user who was banned", status=403)
            content = self.member_content_txn(conn, target, membership)
            if extra_content:
                content.update(extra_content)
            if reason:
                content["reason"] = reason
            if membership == "join" and sender == target:
                voucher = authoriser_for_join_txn(conn, self, room_id, target)
                if voucher is not None:
                    content[AUTHORISING_USER] = voucher
            if membership == "join":
                current = self.state_event_txn(conn, room_id, "m.room.member", target)
                if current is not None and current.content.get("membership") == "join":
                    # Re-joining keeps the fields the user already had, except that a
                    # local user's displayname/avatar_url follow their profile (a
                    # cleared profile field must disappear from the event too).
                    kept = dict(current.content)
                    if server_of(target) == self.server_name:
                        kept.pop("displayname", None)
                        kept.pop("avatar_url", None)
                    content = {**kept, **content}
            unchanged = self.unchanged_state_txn(
                conn, room_id, sender, "m.room.member", target, content
            )
            if unchanged is not None:
                return unchanged
            pdu = self.append_local_event_txn(
                conn,
                rv,
                room_id,
                sender=sender,
                type_="m.room.member",
                content=content,
                state_key=target,
            )
            return pdu.event_id

        return await self._write(txn)

    def unchanged_state_txn(
        self,
        conn: Connection,
        room_id: str,
        sender: str,
        type_: str,
        state_key: str,
        content: dict[str, Any],
    ) -> str | None:
        """The id of the current state event at (type, state_key) when `sender` sent it
        with this very content: setting it again (or joining twice) makes no new event,
        as Synapse's `deduplicate_state_event`."""
        current = self.state_event_txn(conn, room_id, type_, state_key)
        if current is None or current.sender != sender:
            return None
        try:
            same = canonical_json(current.content) == canonical_json(content)
        except (CanonicalJsonError, TypeError, ValueError):
            return None
        return current.event_id if same else None

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        found = await self.database.read(store_rooms.get_alias, alias)
        if found is None:
            raise NotFound(f"Room alias {alias} not found")
        return found

    async def send_edu(self, room_id: str, edu_type: str, content: dict[str, Any]) -> None:
        """Queue an EDU about `room_id` for every other server in it (typing, receipts)."""
        payload = json.dumps(
            {"edu_type": edu_type, "content": content}, ensure_ascii=False, separators=(",", ":")
        ).encode()

        servers = [
            s
            for s in await self.database.read(store_rooms.servers_in_room, room_id)
            if s != self.server_name
        ]
        if not servers:
            return  # a local-only room: nothing to queue, no write

        def txn(conn: Connection) -> None:
            for destination in servers:
                store_outbox.enqueue(
                    conn, destination=destination, kind="edu", payload=payload, now_ms=now_ms()
                )

        await self.database.write(txn)
        if self.outbox_listener is not None:
            await self.outbox_listener()

    async def has_local_members(self, room_id: str) -> bool:
        """Whether one of our users is joined: only then can we build on the room."""
        suffix = ":" + self.server_name

        def txn(conn: Connection) -> bool:
            return any(u.endswith(suffix) for u in store_rooms.joined_users(conn, room_id))

        return await self.database.read(txn)

    async def is_known_room(self, room_id: str) -> bool:
        return await self.database.read(store_rooms.get_room_version, room_id) is not None

    async def membership_of(self, room_id: str, user_id: str) -> str | None:
        return await self.database.read(store_rooms.get_membership, room_id, user_id)

    async def forget(self, user_id: str, room_id: str) -> None:
        membership = await self.membership_of(room_id, user_id)
        if membership in ("join", "invite", "knock"):
            raise BadJson("You must leave the room before forgetting it", status=400)

        await self.database.write(store_rooms.forget_room, user_id, room_id)

    def membership_txn(self, conn: Connection, room_id: str, user_id: str) -> str | None:
        return store_rooms.get_membership(conn, room_id, user_id)

    def redacted_by_txn(self, conn: Connection, event_id: str) -> Pdu | None:
        """The first stored redaction of `event_id` that applies (`redaction_allowed`:
        same room, accepted, its sender able to redact or of the target sender's server),
        or None. Asked at every read, so a redaction stored before its target is held
        until the target arrives, and then applies or not by the same rule."""
        rows = store_redactions.redactions_of(conn, event_id)
        if not rows:
            return None
        target = self.get_pdu_txn(conn, event_id)
        if target is None:
            return None
        for row in rows:
            redaction = self.get_pdu_txn(conn, row.event_id)
            if redaction is not None and self._applies_txn(conn, redaction, row, target):
                return redaction
        return None

    def event_for_servers_txn(self, conn: Connection, pdu: Pdu) -> dict[str, Any]:
        """`pdu` as other servers get it (federation /event, /state, /event_auth,
        /backfill, /get_missing_events, send_join): pruned by its room version's redaction
        algorithm when a redaction applies (`redacted_by_txn`), as Synapse serves it;
        otherwise the signed event as stored. The pruned form keeps its hashes and
        signatures: the receiver verifies the signatures, and a content hash that no
        longer matches tells it the event was redacted."""
        if self.redacted_by_txn(conn, pdu.event_id) is None:
            return pdu.as_dict()
        return redact(pdu.as_dict(), pdu.room_version)

    def held_redaction_txn(self, conn: Connection, pdu: Pdu) -> bool:
        """Whether `pdu` is a redaction that clients must not get (yet): *handling
        redactions* sends a redaction to clients only once it applies, so one is held
        while its target is unknown (or rejected) and for good when `redaction_allowed`
        refuses it. Asked at every read, as `redacted_by_txn`: once a held redaction's
        target arrives, that target reaches clients redacted (`redacted_because`) and
        every later read carries the redaction (Synapse's `get_events_as_list`)."""
        if pdu.type != "m.room.redaction":
            return False
        row = store_redactions.redaction_row(conn, pdu.event_id)
        target = self._accepted_pdu_txn(conn, pdu.redacts) if pdu.redacts else None
        if row is None or target is None:
            return True
        return not self._applies_txn(conn, pdu, row, target)

    def _applies_txn(
        self,
        conn: Connection,
        redaction: Pdu,
        row: store_redactions.RedactionRow,
        target: Pdu,
    ) -> bool:
        """`redaction_allowed` for one stored redaction and its stored target."""
        auth_state, create_event = self._redaction_auth_state_txn(conn, redaction)
        return redaction_allowed(
            _event_dict(redaction),
            _event_dict(target),
            auth_state,
            redaction.room_version,
            create_event=create_event,
            rejected=row.rejected,
            soft_failed=row.soft_failed,
        )

    def _redaction_auth_state_txn(
        self, conn: Connection, redaction: Pdu
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Any] | None]:
        """The state a redaction is judged by, and the v12 create event: the room's state
        before it (what the receipt checks resolved), or for an outlier, which has no
        state, its own auth events."""
        rv = redaction.room_version
        event = _event_dict(redaction)
        state = store_state.get_state_before(conn, redaction.event_id)
        if state is not None:
            ids: Iterable[str] = [
                state[key] for key in auth_types_for_event(event, rv) if key in state
            ]
        else:
            ids = redaction.auth_event_ids
        auth_state = {
            (pdu.type, pdu.state_key): _event_dict(pdu)
            for pdu in self.get_pdus_txn(conn, ids).values()
            if pdu.state_key is not None
        }
        create_event = None
        if rv.room_id_is_create_event_hash:
            create = self.get_pdu_txn(conn, create_event_id_of(redaction.room_id))
            create_event = _event_dict(create) if create is not None else None
        return auth_state, create_event

    def txn_id_for_txn(
        self, conn: Connection, event_id: str, user_id: str, device_id: str
    ) -> str | None:
        return store_txn_ids.event_txn_id(conn, event_id, user_id, device_id)


def content_json(content: dict[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))
