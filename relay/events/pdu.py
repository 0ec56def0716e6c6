"""``Pdu``: a persistent data unit as one frozen value, raw bytes plus typed reads.

Rules kept here:

- ``raw`` is the canonical JSON of the event exactly as signed; the store keeps
  it and federation sends it byte for byte. Constructing a ``Pdu`` checks
  that ``raw`` is canonical, strict (no floats, no big ints) and has the
  fields every accessor reads, so accessors never fail.
- No class per event type: unknown types are carried like any other. Content
  helpers (``membership``) return ``None`` on malformed content.
- From room v3 the event id is not stored in the event; it is computed once,
  lazily, from the reference hash. In v1/v2 the event carries it (``$opaque:domain``)
  and references other events by ``[event_id, {hashes}]`` pairs; ``prev_event_ids`` and
  ``auth_event_ids`` give plain ids in every version. In v12 a create event has no
  ``room_id``: its room id is its event id with ``!``.
- ``content`` and ``as_dict()`` return fresh copies; a ``Pdu`` never changes.

Spec: https://spec.matrix.org/v1.16/server-server-api/#pdus
and https://spec.matrix.org/v1.16/rooms/v12/#event-format
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import nacl.signing

from relay.events.canonical import canonical_json, check_canonical_json_values, parse_json_strict
from relay.events.hashes import add_content_hash, reference_hash
from relay.events.ids import event_id as compute_event_id
from relay.events.ids import is_valid_event_id, mint_event_id, referenced_ids, room_id_of_create
from relay.events.redaction import redacts_of
from relay.events.room_versions import RoomVersion
from relay.events.signing import sign_event
from relay.events.unpadded_base64 import encode_base64


class MalformedPdu(ValueError):
    """Bytes or a dict that cannot be a PDU of the given room version."""


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_reference_list(value: Any) -> bool:
    """A v1/v2 ``prev_events``/``auth_events`` value: ``[[event_id, {hashes}], ...]``."""
    return isinstance(value, list) and all(
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], dict)
        for item in value
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_shape(event: dict[str, Any], room_version: RoomVersion) -> None:
    if not isinstance(event.get("type"), str):
        raise MalformedPdu("type must be a string")
    if not isinstance(event.get("sender"), str):
        raise MalformedPdu("sender must be a string")
    is_hashed_create = (
        room_version.room_id_is_create_event_hash and event["type"] == "m.room.create"
    )
    if not is_hashed_create and not isinstance(event.get("room_id"), str):
        raise MalformedPdu("room_id must be a string")
    if "room_id" in event and not isinstance(event["room_id"], str):
        raise MalformedPdu("room_id must be a string")
    if "state_key" in event and not isinstance(event["state_key"], str):
        raise MalformedPdu("state_key must be a string")
    if not isinstance(event.get("content"), dict):
        raise MalformedPdu("content must be an object")
    for key in ("depth", "origin_server_ts"):
        if not _is_int(event.get(key)):
            raise MalformedPdu(f"{key} must be an integer")
    if room_version.event_id_in_event:
        carried = event.get("event_id")
        if not isinstance(carried, str) or not is_valid_event_id(carried, room_version):
            raise MalformedPdu("event_id must be a $opaque:domain event id")
        for key in ("prev_events", "auth_events"):
            if not _is_reference_list(event.get(key)):
                raise MalformedPdu(f"{key} must be a list of [event_id, hashes] pairs")
        return
    for key in ("prev_events", "auth_events"):
        if not _is_str_list(event.get(key)):
            raise MalformedPdu(f"{key} must be a list of event ids")


@dataclass(frozen=True, slots=True)
class Pdu:
    """A signed event of ``room_version`` held as its canonical JSON ``raw`` bytes.

    Raises (on construction):
        MalformedPdu: ``raw`` is not strict canonical JSON of a well-shaped event.
    """

    raw: bytes
    room_version: RoomVersion
    _event: dict[str, Any] = field(init=False, repr=False, compare=False)
    _event_id: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            event = parse_json_strict(self.raw)
        except ValueError as e:
            raise MalformedPdu(str(e)) from e
        if not isinstance(event, dict):
            raise MalformedPdu("a PDU must be a JSON object")
        if self.room_version.strict_canonical_json:
            try:
                check_canonical_json_values(event)
            except ValueError as e:
                raise MalformedPdu(str(e)) from e
        if canonical_json(event) != self.raw:
            raise MalformedPdu("raw bytes are not canonical JSON")
        _check_shape(event, self.room_version)
        object.__setattr__(self, "_event", event)

    @classmethod
    def from_dict(cls, event: dict[str, Any], room_version: RoomVersion) -> Pdu:
        """The ``Pdu`` for a parsed event dict (encoded to canonical JSON).

        Raises:
            MalformedPdu: as the constructor.
        """
        try:
            raw = canonical_json(event)
        except (TypeError, ValueError) as e:
            raise MalformedPdu(str(e)) from e
        return cls(raw, room_version)

    def as_dict(self) -> dict[str, Any]:
        """A fresh (deep) copy of the event as a dict."""
        return copy.deepcopy(self._event)

    @property
    def event_id(self) -> str:
        """The carried id (v1/v2), else ``$`` + the reference hash (computed once)."""
        if self._event_id is None:
            object.__setattr__(self, "_event_id", compute_event_id(self._event, self.room_version))
        assert self._event_id is not None
        return self._event_id

    @property
    def room_id(self) -> str:
        """The room id; for a v12 create event, its event id with ``!``."""
        room_id = self._event.get("room_id")
        if room_id is None:  # only a v12 create event passes _check_shape without one
            return room_id_of_create(self.event_id)
        return room_id

    @property
    def type(self) -> str:
        return self._event["type"]

    @property
    def state_key(self) -> str | None:
        return self._event.get("state_key")

    @property
    def is_state(self) -> bool:
        return "state_key" in self._event

    @property
    def sender(self) -> str:
        return self._event["sender"]

    @property
    def prev_event_ids(self) -> tuple[str, ...]:
        return tuple(referenced_ids(self._event["prev_events"]))

    @property
    def auth_event_ids(self) -> tuple[str, ...]:
        return tuple(referenced_ids(self._event["auth_events"]))

    @property
    def depth(self) -> int:
        return self._event["depth"]

    @property
    def origin_server_ts(self) -> int:
        return self._event["origin_server_ts"]

    @property
    def content(self) -> dict[str, Any]:
        """A fresh copy of the content: mutating it never changes the ``Pdu``."""
        return copy.deepcopy(self._event["content"])

    @property
    def redacts(self) -> str | None:
        """The redacted event id: ``content.redacts`` in v11+, top-level in v10."""
        return redacts_of(self._event, self.room_version)


def membership(pdu: Pdu) -> str | None:
    """``content.membership`` of an ``m.room.member`` event, else ``None``."""
    if pdu.type != "m.room.member":
        return None
    value = pdu._event["content"].get("membership")
    return value if isinstance(value, str) else None


def finalize_event(
    partial: dict[str, Any],
    room_version: RoomVersion,
    server_name: str,
    key_id: str,
    signing_key: nacl.signing.SigningKey,
) -> Pdu:
    """Hash and sign a locally built event and freeze it as a ``Pdu``.

    Any ``event_id``, ``hashes`` or ``signatures`` in ``partial`` are dropped first: from
    v3 the id is derived, never stored; in v1/v2 a fresh ``$opaque:server_name`` id is
    minted (as Synapse does for a make_join template too). In v1/v2 ``prev_events`` and
    ``auth_events`` must already be pairs (``reference_pairs``).

    Raises:
        MalformedPdu: ``partial`` lacks a field a PDU needs, or holds floats.
    """
    event = {k: v for k, v in partial.items() if k not in ("event_id", "hashes", "signatures")}
    if room_version.event_id_in_event:
        event["event_id"] = mint_event_id(server_name)
    signed = sign_event(add_content_hash(event), room_version, server_name, key_id, signing_key)
    return Pdu.from_dict(signed, room_version)


def reference_pairs(event_ids: list[str], pdus: dict[str, Pdu]) -> list[list[Any]]:
    """``event_ids`` as v1/v2 references: ``[event_id, {"sha256": reference hash}]``, the
    hash from the referenced event in ``pdus`` (``{}`` when it is not there)."""
    pairs: list[list[Any]] = []
    for event_id in event_ids:
        pdu = pdus.get(event_id)
        hashes = {}
        if pdu is not None:
            digest = reference_hash(pdu._event, pdu.room_version)
            hashes = {"sha256": encode_base64(digest)}
        pairs.append([event_id, hashes])
    return pairs


def strip_state_event(pdu: Pdu) -> dict[str, Any]:
    """The stripped form used in invite_state / knock_state."""
    return {
        "type": pdu.type,
        "state_key": pdu.state_key,
        "content": pdu.content,
        "sender": pdu.sender,
    }


def stripped_from_remote(event: Any) -> dict[str, Any] | None:
    """A state event another server sent to identify a room (`knock_room_state`: full
    PDUs since v1.16, stripped ones before, as Synapse still sends) in its stripped
    client form; None when it is not a well-shaped state event."""
    if not isinstance(event, dict):
        return None
    fields = (event.get("type"), event.get("state_key"), event.get("sender"))
    if not all(isinstance(value, str) for value in fields) or not isinstance(
        event.get("content"), dict
    ):
        return None
    return {
        "type": event["type"],
        "state_key": event["state_key"],
        "content": copy.deepcopy(event["content"]),
        "sender": event["sender"],
    }
