"""Redaction: each spec rule per room version, plus idempotence and purity.

Rules checked against matrix-spec content/rooms/fragments/v9-redactions.md
(room v10) and v11-redactions.md (rooms v11 and v12).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given

from relay.events.redaction import redact
from relay.events.room_versions import V10, V11, V12, RoomVersion
from tests.events.helpers import ROOM_VERSIONS, events

NEW_RULES = [V11, V12]

ESSENTIAL = {
    "event_id": "$abc",
    "type": "m.room.message",
    "room_id": "!r:example.org",
    "sender": "@u:example.org",
    "state_key": "",
    "hashes": {"sha256": "aGFzaA"},
    "signatures": {"example.org": {"ed25519:a": "c2ln"}},
    "depth": 5,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "origin_server_ts": 1234,
}
LEGACY_TOP_LEVEL = {"origin": "example.org", "membership": "join", "prev_state": []}
NEVER_KEPT = {"unsigned": {"age_ts": 1}, "age_ts": 1, "redacts": "$x", "custom": {"a": 1}}


def _event(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return {**ESSENTIAL, **LEGACY_TOP_LEVEL, **NEVER_KEPT, "type": event_type, "content": content}


def _content(event_type: str, content: dict[str, Any], version: RoomVersion) -> dict[str, Any]:
    return redact(_event(event_type, content), version)["content"]


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_keeps_essential_top_level_keys(version: RoomVersion) -> None:
    redacted = redact(_event("m.room.message", {"body": "hi"}), version)
    for key, value in ESSENTIAL.items():
        if key != "type":
            assert redacted[key] == value


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_drops_unsigned_age_ts_redacts_and_unknown_top_level_keys(
    version: RoomVersion,
) -> None:
    redacted = redact(_event("m.room.message", {}), version)
    assert not set(NEVER_KEPT) & set(redacted)


def test_redact_v10_keeps_origin_membership_prev_state() -> None:
    redacted = redact(_event("m.room.message", {}), V10)
    assert {k: redacted[k] for k in LEGACY_TOP_LEVEL} == LEGACY_TOP_LEVEL


@pytest.mark.parametrize("version", NEW_RULES, ids=lambda v: f"v{v.identifier}")
def test_redact_v11_drops_origin_membership_prev_state(version: RoomVersion) -> None:
    redacted = redact(_event("m.room.message", {}), version)
    assert not set(LEGACY_TOP_LEVEL) & set(redacted)


@pytest.mark.parametrize(
    "version",
    [v for v in ROOM_VERSIONS if not v.special_case_aliases],
    ids=lambda v: f"v{v.identifier}",
)
def test_redact_strips_all_content_of_other_types(version: RoomVersion) -> None:
    """v6+: `m.room.aliases` lost its meaning (v1-v5 keep `aliases`: the twin below)."""
    assert _content("m.room.message", {"body": "x", "membership": "join"}, version) == {}
    assert _content("m.room.aliases", {"aliases": ["#a:b"]}, version) == {}


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_aliases_keeps_aliases_only_before_v6(version: RoomVersion) -> None:
    kept = _content("m.room.aliases", {"aliases": ["#a:b"], "x": 1}, version)
    assert kept == ({"aliases": ["#a:b"]} if version.special_case_aliases else {})


@pytest.mark.parametrize(
    "version",
    [v for v in ROOM_VERSIONS if v.restricted_join_redaction_fix],
    ids=lambda v: f"v{v.identifier}",
)
def test_redact_member_keeps_membership_and_join_authorised_via(version: RoomVersion) -> None:
    content = {
        "membership": "join",
        "join_authorised_via_users_server": "@admin:example.org",
        "displayname": "Alice",
        "avatar_url": "mxc://a/b",
    }
    assert _content("m.room.member", content, version) == {
        "membership": "join",
        "join_authorised_via_users_server": "@admin:example.org",
    }


THIRD_PARTY = {
    "display_name": "alice...@example.org",
    "signed": {"mxid": "@alice:example.org", "token": "abc", "signatures": {}},
}


def test_redact_v10_drops_member_third_party_invite() -> None:
    content = {"membership": "invite", "third_party_invite": THIRD_PARTY}
    assert _content("m.room.member", content, V10) == {"membership": "invite"}


@pytest.mark.parametrize("version", NEW_RULES, ids=lambda v: f"v{v.identifier}")
def test_redact_v11_keeps_member_third_party_invite_signed_only(version: RoomVersion) -> None:
    content = {"membership": "invite", "third_party_invite": THIRD_PARTY}
    assert _content("m.room.member", content, version) == {
        "membership": "invite",
        "third_party_invite": {"signed": THIRD_PARTY["signed"]},
    }


@pytest.mark.parametrize("version", NEW_RULES, ids=lambda v: f"v{v.identifier}")
def test_redact_v11_drops_third_party_invite_without_signed(version: RoomVersion) -> None:
    for invite in ({"display_name": "x"}, "not an object", None):
        content = {"membership": "invite", "third_party_invite": invite}
        assert _content("m.room.member", content, version) == {"membership": "invite"}


CREATE_CONTENT = {
    "creator": "@u:example.org",
    "room_version": "10",
    "m.federate": False,
    "predecessor": {"room_id": "!old:example.org"},
    "additional_creators": ["@b:example.org"],
}


def test_redact_v10_keeps_only_create_creator() -> None:
    assert _content("m.room.create", CREATE_CONTENT, V10) == {"creator": "@u:example.org"}


@pytest.mark.parametrize("version", NEW_RULES, ids=lambda v: f"v{v.identifier}")
def test_redact_v11_keeps_create_content(version: RoomVersion) -> None:
    assert _content("m.room.create", CREATE_CONTENT, version) == CREATE_CONTENT


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_join_rules_keeps_join_rule_and_allow_from_v8(version: RoomVersion) -> None:
    allow = [{"type": "m.room_membership", "room_id": "!s:example.org"}]
    content = {"join_rule": "restricted", "allow": allow, "other": 1}
    expected: dict[str, Any] = {"join_rule": "restricted"}
    if version.restricted_join_rule:
        expected["allow"] = allow
    assert _content("m.room.join_rules", content, version) == expected


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_member_keeps_join_authorised_via_only_from_v9(version: RoomVersion) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": "@a:example.org"}
    kept = _content("m.room.member", content, version)
    assert ("join_authorised_via_users_server" in kept) == version.restricted_join_redaction_fix


POWER_LEVELS = {
    "ban": 50,
    "events": {"m.room.name": 100},
    "events_default": 0,
    "invite": 50,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {"@u:example.org": 100},
    "users_default": 0,
    "notifications": {"room": 50},
}


def test_redact_v10_drops_power_levels_invite_and_notifications() -> None:
    expected = {k: v for k, v in POWER_LEVELS.items() if k not in ("invite", "notifications")}
    assert _content("m.room.power_levels", POWER_LEVELS, V10) == expected


@pytest.mark.parametrize("version", NEW_RULES, ids=lambda v: f"v{v.identifier}")
def test_redact_v11_keeps_power_levels_invite(version: RoomVersion) -> None:
    expected = {k: v for k, v in POWER_LEVELS.items() if k != "notifications"}
    assert _content("m.room.power_levels", POWER_LEVELS, version) == expected


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_history_visibility_keeps_history_visibility(version: RoomVersion) -> None:
    content = {"history_visibility": "shared", "x": 1}
    assert _content("m.room.history_visibility", content, version) == {
        "history_visibility": "shared"
    }


def test_redact_v10_strips_redaction_content_redacts() -> None:
    assert _content("m.room.redaction", {"redacts": "$x", "reason": "spam"}, V10) == {}


@pytest.mark.parametrize("version", NEW_RULES, ids=lambda v: f"v{v.identifier}")
def test_redact_v11_keeps_redaction_content_redacts(version: RoomVersion) -> None:
    content = {"redacts": "$x", "reason": "spam"}
    assert _content("m.room.redaction", content, version) == {"redacts": "$x"}


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_malformed_content_becomes_empty_object(version: RoomVersion) -> None:
    for content in (None, "text", [1, 2]):
        event = {"type": "m.room.member", "content": content}
        assert redact(event, version)["content"] == {}
    assert redact({"type": "m.room.member"}, version)["content"] == {}


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_non_string_type_strips_content(version: RoomVersion) -> None:
    assert redact({"type": ["m.room.create"], "content": {"a": 1}}, version)["content"] == {}


@pytest.mark.parametrize("version", ROOM_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_redact_result_shares_nothing_with_input(version: RoomVersion) -> None:
    event = _event("m.room.create", copy.deepcopy(CREATE_CONTENT))
    redacted = redact(event, version)
    redacted["content"]["creator"] = "@mallory:example.org"
    redacted["signatures"]["example.org"]["ed25519:a"] = "forged"
    assert event["content"]["creator"] == "@u:example.org"
    assert event["signatures"] == ESSENTIAL["signatures"]


@given(events())
def test_redact_is_idempotent(event: dict[str, Any]) -> None:
    for version in ROOM_VERSIONS:
        once = redact(event, version)
        assert redact(once, version) == once


@given(events())
def test_redact_never_mutates_input(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    for version in ROOM_VERSIONS:
        redact(event, version)
    assert event == before


@given(events())
def test_redact_v11_keeps_no_more_top_level_keys_than_v10(event: dict[str, Any]) -> None:
    assert set(redact(event, V11)) <= set(redact(event, V10))
    assert redact(event, V11) == redact(event, V12)
