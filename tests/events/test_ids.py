"""Event ids, v12 room ids, and identifier grammar.

The spec has no event-id vector, so the expected ids here are computed by hand:
the redacted form is written out literally and hashed with hashlib + json.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given

from relay.events.ids import (
    event_id,
    has_control_character,
    is_valid_event_id,
    is_valid_localpart,
    is_valid_room_alias,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    localpart_of,
    parse_user_id,
    room_id_from_create_event,
    server_of,
)
from relay.events.room_versions import V10, V11, V12
from tests.events.helpers import ROOM_VERSIONS, events, json_values


def _hash_id(sigil: str, redacted_by_hand: dict[str, Any]) -> str:
    text = json.dumps(redacted_by_hand, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return sigil + base64.urlsafe_b64encode(digest).decode().rstrip("=")


MEMBER = {
    "type": "m.room.member",
    "room_id": "!r:example.org",
    "sender": "@ünï:example.org",
    "state_key": "@ünï:example.org",
    "origin": "example.org",
    "origin_server_ts": 1700000000000,
    "depth": 7,
    "prev_events": ["$prev"],
    "auth_events": ["$create", "$pl"],
    "content": {"membership": "join", "displayname": "Ünï"},
    "hashes": {"sha256": "c29tZWhhc2g"},
    "signatures": {"example.org": {"ed25519:1": "c2ln"}},
    "unsigned": {"age": 10},
}


def test_event_id_v10_by_hand() -> None:
    redacted = {
        "type": "m.room.member",
        "room_id": "!r:example.org",
        "sender": "@ünï:example.org",
        "state_key": "@ünï:example.org",
        "origin": "example.org",
        "origin_server_ts": 1700000000000,
        "depth": 7,
        "prev_events": ["$prev"],
        "auth_events": ["$create", "$pl"],
        "content": {"membership": "join"},
        "hashes": {"sha256": "c29tZWhhc2g"},
    }
    assert event_id(MEMBER, V10) == _hash_id("$", redacted)


def test_event_id_v11_by_hand() -> None:
    redacted = {
        "type": "m.room.member",
        "room_id": "!r:example.org",
        "sender": "@ünï:example.org",
        "state_key": "@ünï:example.org",
        "origin_server_ts": 1700000000000,
        "depth": 7,
        "prev_events": ["$prev"],
        "auth_events": ["$create", "$pl"],
        "content": {"membership": "join"},
        "hashes": {"sha256": "c29tZWhhc2g"},
    }
    expected = _hash_id("$", redacted)
    assert event_id(MEMBER, V11) == expected
    assert event_id(MEMBER, V12) == expected
    assert is_valid_event_id(expected)


CREATE_V12 = {
    "type": "m.room.create",
    "sender": "@alice:example.org",
    "state_key": "",
    "origin_server_ts": 1700000000000,
    "depth": 1,
    "prev_events": [],
    "auth_events": [],
    "content": {"room_version": "12", "additional_creators": ["@bob:example.org"]},
    "hashes": {"sha256": "aGFzaA"},
    "signatures": {"example.org": {"ed25519:1": "c2ln"}},
}


def test_room_id_from_create_event_v12_by_hand() -> None:
    redacted = {k: v for k, v in CREATE_V12.items() if k != "signatures"}
    expected = _hash_id("!", redacted)
    assert room_id_from_create_event(CREATE_V12, V12) == expected
    assert room_id_from_create_event(CREATE_V12, V12)[1:] == event_id(CREATE_V12, V12)[1:]
    assert is_valid_room_id(expected, V12)


def test_room_id_from_create_event_refuses_domain_room_versions() -> None:
    for version in (V10, V11):
        with pytest.raises(ValueError):
            room_id_from_create_event(CREATE_V12, version)


def test_room_id_from_create_event_refuses_other_types() -> None:
    with pytest.raises(ValueError):
        room_id_from_create_event({**CREATE_V12, "type": "m.room.message"}, V12)


@given(events(), json_values, json_values)
def test_event_id_is_stable_under_unsigned_and_signatures(
    event: dict[str, Any], unsigned: object, signatures: object
) -> None:
    changed = {**event, "unsigned": unsigned, "signatures": signatures}
    for version in ROOM_VERSIONS:
        assert event_id(changed, version) == event_id(event, version)


@given(events())
def test_event_id_is_stable_under_redaction(event: dict[str, Any]) -> None:
    from relay.events.redaction import redact

    for version in ROOM_VERSIONS:
        assert event_id(redact(event, version), version) == event_id(event, version)


@pytest.mark.parametrize(
    "name",
    [
        "matrix.org",
        "matrix.org:8888",
        "1.2.3.4",
        "1.2.3.4:1234",
        "[1234:5678::abcd]",
        "[1234:5678::abcd]:5678",
        "127.0.0.2:8448",
        "kit-07.relief.example",
        "localhost",
        "MATRIX.ORG",
    ],
)
def test_is_valid_server_name_accepts_spec_examples(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "matrix.org:",
        "matrix.org:123456",
        "matrix.org:port",
        "matrix_org",
        "ex ample.org",
        "[1234:5678::abcd",
        "[not:an:ipv6:zz]",
        "[1234:5678::abcd]:",
        "[1234:5678::abcd]x",
        "1234:5678::abcd",
        "256.1.1.1",
        "a" * 256,
        "ünï.org",
    ],
)
def test_is_valid_server_name_rejects(name: str) -> None:
    assert not is_valid_server_name(name)


def test_parse_user_id_splits_on_first_colon() -> None:
    assert parse_user_id("@alice:example.org:8448") == ("alice", "example.org:8448")
    assert parse_user_id("@a:[::1]:8448") == ("a", "[::1]:8448")


@pytest.mark.parametrize("user_id", ["@ALICE:example.org", "@ünï:example.org"])
def test_parse_user_id_accepts_historical_localparts_by_default(user_id: str) -> None:
    assert parse_user_id(user_id)
    assert not is_valid_user_id(user_id, historical=False)


@pytest.mark.parametrize(
    "user_id",
    [
        "alice:example.org",
        "@alice",
        "@alice:",
        # The appendix's grammar is 1*user_id_char, historical characters included.
        "@:example.org",
        "@a\x00b:example.org",
        "@alice:exa mple.org",
        "@" + "a" * 250 + ":example.org",
    ],
)
def test_parse_user_id_rejects(user_id: str) -> None:
    with pytest.raises(ValueError):
        parse_user_id(user_id)
    assert not is_valid_user_id(user_id)


@pytest.mark.parametrize("localpart", ["alice", "a.b_c=d-e/f+g", "0"])
def test_is_valid_localpart_strict_accepts(localpart: str) -> None:
    assert is_valid_localpart(localpart)


@pytest.mark.parametrize("localpart", ["", "Alice", "a b", "a:b", "ünï", "a*"])
def test_is_valid_localpart_strict_rejects(localpart: str) -> None:
    assert not is_valid_localpart(localpart)


def test_is_valid_localpart_historical_allows_all_but_empty_colon_nul_surrogate() -> None:
    assert is_valid_localpart("Ünï *\x01", historical=True)
    for bad in ("", "a:b", "a\x00", "\ud800"):
        assert not is_valid_localpart(bad, historical=True)


def test_is_valid_room_alias() -> None:
    assert is_valid_room_alias("#room:example.org")
    assert is_valid_room_alias("#Ünï room:example.org:8448")
    for bad in ("room:example.org", "#room", "#a:b:c:d", "#" + "a" * 250 + ":example.org"):
        assert not is_valid_room_alias(bad)


def test_is_valid_room_id_depends_on_room_version() -> None:
    hashed = "!" + "A" * 42 + "A"
    assert is_valid_room_id(hashed, V12)
    assert not is_valid_room_id(hashed, V11)
    assert is_valid_room_id("!opaque:example.org", V10)
    assert not is_valid_room_id("!opaque:example.org", V12)
    assert not is_valid_room_id("!" + "A" * 44, V12)
    assert not is_valid_room_id("$" + "A" * 43, V12)


def test_is_valid_event_id() -> None:
    assert not is_valid_event_id("$0:domain")
    assert not is_valid_event_id("$" + "+" * 43)


@pytest.mark.parametrize("ch", ["\x00", "\x01", "\t", "\n", "\x1f", "\x7f", "\x80", "\x9f"])
def test_control_characters_are_seen(ch: str) -> None:
    assert has_control_character(f"m.room{ch}message")


@pytest.mark.parametrize("text", ["", "m.room.message", "é ü ß", "\xa0", "🙂", "a b"])
def test_printable_text_has_no_control_character(text: str) -> None:
    assert not has_control_character(text)


def test_server_of_and_localpart_of_split_on_the_first_colon() -> None:
    assert server_of("@alice:example.org:8448") == "example.org:8448"
    assert localpart_of("@alice:example.org:8448") == "alice"
    assert localpart_of("#room:example.org") == "room"
    # "@a:evil.example:localhost" is a user of evil.example:localhost, not of localhost:
    # the old `endswith(":" + server)` checks took it for a local user.
    assert server_of("@a:evil.example:localhost") != "localhost"
    assert server_of("no-colon") == ""
