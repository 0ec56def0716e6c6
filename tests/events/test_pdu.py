"""Pdu: frozen raw bytes with typed accessors; finalize_event hashes and signs."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import given

from relay.events.canonical import canonical_json
from relay.events.hashes import check_content_hash
from relay.events.ids import event_id, room_id_from_create_event
from relay.events.pdu import MalformedPdu, Pdu, finalize_event, membership, stripped_from_remote
from relay.events.room_versions import V10, V11, V12, RoomVersion
from relay.events.signing import decode_signing_key_seed, verify_event_signature
from tests.events.helpers import ROOM_VERSIONS, pdu_dicts

KEY = decode_signing_key_seed("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
VERIFY = KEY.verify_key

MEMBER: dict[str, Any] = {
    "type": "m.room.member",
    "room_id": "!r:example.org",
    "sender": "@alice:example.org",
    "state_key": "@alice:example.org",
    "origin_server_ts": 1700000000000,
    "depth": 3,
    "prev_events": ["$p1", "$p2"],
    "auth_events": ["$a1"],
    "content": {"membership": "join", "displayname": "Alice"},
}


def _finalize(partial: dict[str, Any], version: RoomVersion = V11) -> Pdu:
    return finalize_event(partial, version, "example.org", "ed25519:1", KEY)


def test_finalize_event_hashes_signs_and_verifies() -> None:
    pdu = _finalize(MEMBER)
    event = pdu.as_dict()
    assert check_content_hash(event)
    verify_event_signature(event, V11, "example.org", "ed25519:1", VERIFY)
    assert "event_id" not in event


def test_finalize_event_drops_supplied_event_id_hashes_signatures() -> None:
    partial = {**MEMBER, "event_id": "$x", "hashes": {"sha256": "x"}, "signatures": {"a": {}}}
    assert _finalize(partial) == _finalize(MEMBER)


def test_finalize_event_never_mutates_partial() -> None:
    partial = copy.deepcopy(MEMBER)
    _finalize(partial)
    assert partial == MEMBER


def test_pdu_raw_is_canonical_json_of_signed_event() -> None:
    pdu = _finalize(MEMBER)
    assert pdu.raw == canonical_json(pdu.as_dict())
    assert Pdu(pdu.raw, V11) == pdu


def test_pdu_accessors() -> None:
    pdu = _finalize(MEMBER)
    assert pdu.event_id == event_id(pdu.as_dict(), V11)
    assert pdu.room_id == "!r:example.org"
    assert pdu.type == "m.room.member"
    assert pdu.state_key == "@alice:example.org"
    assert pdu.is_state
    assert pdu.sender == "@alice:example.org"
    assert pdu.prev_event_ids == ("$p1", "$p2")
    assert pdu.auth_event_ids == ("$a1",)
    assert pdu.depth == 3
    assert pdu.origin_server_ts == 1700000000000
    assert pdu.content == {"membership": "join", "displayname": "Alice"}
    assert pdu.redacts is None


def test_pdu_event_id_is_cached() -> None:
    pdu = _finalize(MEMBER)
    assert pdu.event_id is pdu.event_id


def test_pdu_is_frozen_and_content_copies_cannot_change_it() -> None:
    pdu = _finalize(MEMBER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pdu.raw = b"{}"  # type: ignore[misc]
    pdu.content["membership"] = "leave"
    pdu.as_dict()["content"]["membership"] = "leave"
    assert membership(pdu) == "join"


def test_pdu_is_hashable_and_compares_by_raw_and_version() -> None:
    pdu = _finalize(MEMBER)
    assert len({pdu, Pdu(pdu.raw, V11)}) == 1
    assert Pdu(pdu.raw, V10) != pdu


def test_v12_create_event_room_id_is_its_event_id_with_bang() -> None:
    create = {
        "type": "m.room.create",
        "sender": "@alice:example.org",
        "state_key": "",
        "origin_server_ts": 1,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
        "content": {"room_version": "12"},
    }
    pdu = _finalize(create, V12)
    assert pdu.room_id == "!" + pdu.event_id[1:]
    assert pdu.room_id == room_id_from_create_event(pdu.as_dict(), V12)
    with pytest.raises(MalformedPdu):
        _finalize(create, V11)


def test_redacts_is_top_level_in_v10() -> None:
    redaction = {**MEMBER, "type": "m.room.redaction", "redacts": "$top", "content": {}}
    redaction.pop("state_key")
    assert _finalize(redaction, V10).redacts == "$top"
    assert _finalize(redaction, V11).redacts is None


@pytest.mark.parametrize("version", [V11, V12], ids=lambda v: f"v{v.identifier}")
def test_redacts_is_in_content_from_v11(version: RoomVersion) -> None:
    redaction = {**MEMBER, "type": "m.room.redaction", "content": {"redacts": "$c"}}
    redaction.pop("state_key")
    assert _finalize(redaction, version).redacts == "$c"
    assert _finalize(redaction, V10).redacts is None


def test_membership_returns_none_for_malformed_or_other_types() -> None:
    assert membership(_finalize({**MEMBER, "content": {"membership": 5}})) is None
    assert membership(_finalize({**MEMBER, "content": {}})) is None
    assert membership(_finalize({**MEMBER, "type": "m.room.message"})) is None


def test_state_key_is_none_for_message_events() -> None:
    message = {k: v for k, v in MEMBER.items() if k != "state_key"}
    pdu = _finalize({**message, "type": "m.room.message"})
    assert pdu.state_key is None
    assert not pdu.is_state


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"a": NaN}',
        b'{"b":1, "a":2}',
    ],
)
def test_pdu_rejects_non_canonical_or_invalid_bytes(raw: bytes) -> None:
    with pytest.raises(MalformedPdu):
        Pdu(raw, V11)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("type", 5),
        ("sender", None),
        ("room_id", 1),
        ("state_key", 1),
        ("content", []),
        ("depth", "3"),
        ("depth", True),
        ("origin_server_ts", None),
        ("prev_events", "$p"),
        ("auth_events", [1]),
        ("depth", 1.5),
        ("depth", 2**60),
    ],
)
def test_pdu_from_dict_rejects_malformed_fields(key: str, value: object) -> None:
    with pytest.raises(MalformedPdu):
        Pdu.from_dict({**MEMBER, key: value}, V11)


def test_pdu_from_dict_rejects_missing_room_id_outside_v12_create() -> None:
    event = {k: v for k, v in MEMBER.items() if k != "room_id"}
    for version in ROOM_VERSIONS:
        with pytest.raises(MalformedPdu):
            Pdu.from_dict(event, version)


@given(pdu_dicts())
def test_finalized_pdu_roundtrips_through_raw(partial: dict[str, Any]) -> None:
    for version in ROOM_VERSIONS:
        refs = {}
        if version.event_id_in_event:  # v1/v2 cite events by [event_id, hashes] pairs
            refs = {k: [[i, {}] for i in partial[k]] for k in ("prev_events", "auth_events")}
        pdu = _finalize({**partial, **refs}, version)
        again = Pdu(pdu.raw, version)
        assert again == pdu
        assert again.event_id == pdu.event_id
        assert again.as_dict() == pdu.as_dict()
        verify_event_signature(pdu.as_dict(), version, "example.org", "ed25519:1", VERIFY)


def test_stripped_from_remote_keeps_the_four_client_fields_and_refuses_malformed() -> None:
    full = {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@a:hq.example",
        "content": {"room_version": "12"},
        "event_id": "$x",
        "signatures": {"hq.example": {}},
        "depth": 1,
    }
    assert stripped_from_remote(full) == {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@a:hq.example",
        "content": {"room_version": "12"},
    }
    for broken in (
        "not an event",
        {**full, "state_key": None},
        {**full, "content": []},
        {k: v for k, v in full.items() if k != "sender"},
    ):
        assert stripped_from_remote(broken) is None
