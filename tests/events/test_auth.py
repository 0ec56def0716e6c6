"""The authorisation rules of rooms v10, v11 and v12, scenario by scenario.

Each test builds a small room by hand (`Room`: create, creator join, power levels, join rules)
and checks one rule; names say the rule.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey

from relay.events.auth import (
    AuthError,
    auth_types_for_event,
    check_auth,
    check_auth_events,
    client_redaction_refusal,
    redaction_allowed,
    required_power_level,
    required_signers,
    user_power_level,
)
from relay.events.room_versions import V10, V11, V12, RoomVersion

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CAROL = "@carol:c.example"
DAVE = "@dave:d.example"
ALL_VERSIONS = pytest.mark.parametrize("rv", [V10, V11, V12], ids=lambda v: f"v{v.identifier}")


class Room:
    """A room built event by event: create, creator join, power levels, join rules.

    `send`/`member` check the auth rules against the current state and apply the event;
    `rejects`/`rejects_member` assert the rules refuse it and return the reason.
    """

    def __init__(
        self,
        rv: RoomVersion,
        *,
        join_rule: str | None = "public",
        users: dict[str, int] | None = None,
        power_levels: dict[str, Any] | None = None,
        create_content: dict[str, Any] | None = None,
    ) -> None:
        self.rv = rv
        self.count = 0
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.last: str | None = None
        content: dict[str, Any] = {"room_version": rv.identifier}
        if not rv.implicit_room_creator:
            content["creator"] = ALICE
        content.update(create_content or {})
        create_id = f"$create{rv.identifier}"
        self.room_id = "!" + create_id[1:] if rv.room_id_is_create_event_hash else "!r:a.example"
        self.create: dict[str, Any] = {
            "event_id": create_id,
            "type": "m.room.create",
            "state_key": "",
            "sender": ALICE,
            "content": content,
            "origin_server_ts": 0,
            "prev_events": [],
            "auth_events": [],
            "depth": 1,
        }
        if not rv.room_id_is_create_event_hash:
            self.create["room_id"] = self.room_id
        self.apply(self.create)
        self.member(ALICE, ALICE, "join")
        if users is None:
            users = {} if rv.privileged_creators else {ALICE: 100}
        self.send(
            ALICE, "m.room.power_levels", {"users": users, **(power_levels or {})}, state_key=""
        )
        if join_rule is not None:
            self.send(ALICE, "m.room.join_rules", {"join_rule": join_rule}, state_key="")

    @property
    def create_event(self) -> dict[str, Any] | None:
        """What `check_auth` gets as `create_event=`: only v12 events do not cite it."""
        return self.create if self.rv.room_id_is_create_event_hash else None

    def event(
        self,
        sender: str,
        type_: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        prev_events: list[str] | None = None,
    ) -> dict[str, Any]:
        """A new event on top of the room, citing the auth events the selection picks."""
        self.count += 1
        event: dict[str, Any] = {
            "event_id": f"$e{self.count}",
            "type": type_,
            "sender": sender,
            "content": content,
            "origin_server_ts": self.count,
            "room_id": self.room_id,
            "prev_events": prev_events if prev_events is not None else [self.last],
            "depth": self.count + 1,
        }
        if state_key is not None:
            event["state_key"] = state_key
        keys = auth_types_for_event(event, self.rv)
        event["auth_events"] = [self.state[k]["event_id"] for k in keys if k in self.state]
        return event

    def auth_state(self, event: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        keys = auth_types_for_event(event, self.rv)
        return {k: v for k, v in self.state.items() if k in keys}

    def check(self, event: dict[str, Any]) -> None:
        check_auth(event, self.auth_state(event), self.rv, create_event=self.create_event)

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events[event["event_id"]] = event
        self.last = event["event_id"]
        if "state_key" in event:
            self.state[(event["type"], event["state_key"])] = event
        return event

    def send(self, sender: str, type_: str, content: dict[str, Any], **kw: Any) -> dict:
        event = self.event(sender, type_, content, **kw)
        self.check(event)
        return self.apply(event)

    def rejects(self, sender: str, type_: str, content: dict[str, Any], **kw: Any) -> str:
        event = self.event(sender, type_, content, **kw)
        with pytest.raises(AuthError) as info:
            self.check(event)
        return info.value.reason

    def member(self, sender: str, target: str, membership: str, **extra: Any) -> dict:
        content = {"membership": membership, **extra}
        return self.send(sender, "m.room.member", content, state_key=target)

    def rejects_member(self, sender: str, target: str, membership: str, **extra: Any) -> str:
        content = {"membership": membership, **extra}
        return self.rejects(sender, "m.room.member", content, state_key=target)

    def power_levels(self) -> dict[str, Any]:
        return dict(self.state[("m.room.power_levels", "")]["content"])


# --- m.room.create ---------------------------------------------------------------------------


def _create(rv: RoomVersion, **overrides: Any) -> dict[str, Any]:
    event = {
        "type": "m.room.create",
        "state_key": "",
        "sender": ALICE,
        "content": {"room_version": rv.identifier, "creator": ALICE},
        "prev_events": [],
        "auth_events": [],
        "origin_server_ts": 0,
    }
    if not rv.room_id_is_create_event_hash:
        event["room_id"] = "!r:a.example"
    event.update(overrides)
    return event


@ALL_VERSIONS
def test_create_is_allowed_with_no_state(rv: RoomVersion) -> None:
    check_auth(_create(rv), {}, rv)


@ALL_VERSIONS
def test_create_with_prev_events_is_rejected(rv: RoomVersion) -> None:
    with pytest.raises(AuthError, match="prev_events"):
        check_auth(_create(rv, prev_events=["$x"]), {}, rv)


@pytest.mark.parametrize("rv", [V10, V11])
def test_create_room_id_domain_must_match_sender(rv: RoomVersion) -> None:
    with pytest.raises(AuthError, match="domain"):
        check_auth(_create(rv, room_id="!r:b.example"), {}, rv)


def test_v12_create_with_room_id_is_rejected() -> None:
    with pytest.raises(AuthError, match="room_id"):
        check_auth(_create(V12, room_id="!r:a.example"), {}, V12)


@ALL_VERSIONS
def test_create_with_unknown_room_version_is_rejected(rv: RoomVersion) -> None:
    with pytest.raises(AuthError, match="room version"):
        check_auth(_create(rv, content={"room_version": "99", "creator": ALICE}), {}, rv)


def test_v10_create_requires_creator() -> None:
    with pytest.raises(AuthError, match="creator"):
        check_auth(_create(V10, content={"room_version": "10"}), {}, V10)


@pytest.mark.parametrize("rv", [V11, V12])
def test_v11_create_needs_no_creator(rv: RoomVersion) -> None:
    check_auth(_create(rv, content={"room_version": rv.identifier}), {}, rv)


@pytest.mark.parametrize("extra", [BOB, [BOB, 5], ["bob"], ["@bob"]])
def test_v12_additional_creators_must_be_user_ids(extra: Any) -> None:
    content = {"room_version": "12", "additional_creators": extra}
    with pytest.raises(AuthError, match="additional_creators"):
        check_auth(_create(V12, content=content), {}, V12)


# --- joins -----------------------------------------------------------------------------------


@ALL_VERSIONS
def test_creator_join_right_after_create_is_allowed(rv: RoomVersion) -> None:
    room = Room(rv)
    assert room.state[("m.room.member", ALICE)]["content"]["membership"] == "join"


@ALL_VERSIONS
def test_non_creator_join_right_after_create_is_rejected(rv: RoomVersion) -> None:
    room = Room(rv)
    join = room.event(
        BOB,
        "m.room.member",
        {"membership": "join"},
        state_key=BOB,
        prev_events=[room.create["event_id"]],
    )
    room.state = {k: v for k, v in room.state.items() if k[0] == "m.room.create"}
    with pytest.raises(AuthError):
        room.check(join)


@ALL_VERSIONS
def test_join_rule_invite_blocks_uninvited_join(rv: RoomVersion) -> None:
    room = Room(rv, join_rule="invite")
    assert "not invited" in room.rejects_member(BOB, BOB, "join")


@ALL_VERSIONS
def test_join_rule_invite_admits_invited_user(rv: RoomVersion) -> None:
    room = Room(rv, join_rule="invite")
    room.member(ALICE, BOB, "invite")
    room.member(BOB, BOB, "join")


def test_missing_join_rules_means_invite() -> None:
    room = Room(V11, join_rule=None)
    room.rejects_member(BOB, BOB, "join")
    room.member(ALICE, BOB, "invite")
    room.member(BOB, BOB, "join")


@ALL_VERSIONS
def test_join_rule_public_admits_anyone(rv: RoomVersion) -> None:
    Room(rv).member(BOB, BOB, "join")


def test_unknown_join_rule_rejects_join() -> None:
    room = Room(V11, join_rule="private")
    assert "does not allow" in room.rejects_member(BOB, BOB, "join")


def test_join_on_behalf_of_another_user_is_rejected() -> None:
    room = Room(V11)
    assert "another user" in room.rejects_member(ALICE, BOB, "join")


def test_banned_user_cannot_join_public_room() -> None:
    room = Room(V11)
    room.member(ALICE, BOB, "ban")
    assert "banned" in room.rejects_member(BOB, BOB, "join")


@ALL_VERSIONS
def test_restricted_join_needs_authorising_user(rv: RoomVersion) -> None:
    room = Room(rv, join_rule="restricted")
    assert "restricted" in room.rejects_member(BOB, BOB, "join")


@ALL_VERSIONS
def test_restricted_join_authorised_by_joined_inviter(rv: RoomVersion) -> None:
    room = Room(rv, join_rule="restricted")
    room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE)


def test_restricted_join_authoriser_must_be_joined() -> None:
    room = Room(V11, join_rule="restricted")
    room.member(ALICE, CAROL, "invite")
    reason = room.rejects_member(BOB, BOB, "join", join_authorised_via_users_server=CAROL)
    assert "joined member" in reason


def test_restricted_join_authoriser_needs_invite_level() -> None:
    room = Room(V11, join_rule="restricted", power_levels={"invite": 50})
    room.member(ALICE, CAROL, "invite")
    room.member(CAROL, CAROL, "join")
    reason = room.rejects_member(BOB, BOB, "join", join_authorised_via_users_server=CAROL)
    assert "may not invite" in reason


def test_restricted_join_of_invited_user_needs_no_authoriser() -> None:
    room = Room(V11, join_rule="restricted")
    room.member(ALICE, BOB, "invite")
    room.member(BOB, BOB, "join")


@ALL_VERSIONS
def test_knock_restricted_join_via_authoriser(rv: RoomVersion) -> None:
    room = Room(rv, join_rule="knock_restricted")
    room.rejects_member(BOB, BOB, "join")
    room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE)


# --- knocks ----------------------------------------------------------------------------------


@ALL_VERSIONS
def test_knock_allowed_when_join_rule_is_knock(rv: RoomVersion) -> None:
    room = Room(rv, join_rule="knock")
    room.member(BOB, BOB, "knock")
    room.member(ALICE, BOB, "invite")
    room.member(BOB, BOB, "join")


def test_knock_rejected_on_public_room() -> None:
    room = Room(V11)
    assert "knocking" in room.rejects_member(BOB, BOB, "knock")


def test_knock_on_behalf_of_another_user_is_rejected() -> None:
    room = Room(V11, join_rule="knock")
    assert "another user" in room.rejects_member(ALICE, BOB, "knock")


@pytest.mark.parametrize("state", ["invite", "join", "ban"])
def test_knock_rejected_when_invited_joined_or_banned(state: str) -> None:
    room = Room(V11, join_rule="knock")
    if state == "join":
        room.member(ALICE, BOB, "invite")
        room.member(BOB, BOB, "join")
    else:
        room.member(ALICE, BOB, state)
    room.rejects_member(BOB, BOB, "knock")


def test_knocker_may_rescind_knock_by_leaving() -> None:
    room = Room(V11, join_rule="knock")
    room.member(BOB, BOB, "knock")
    room.member(BOB, BOB, "leave")


# --- invites ---------------------------------------------------------------------------------


def test_invite_needs_joined_sender() -> None:
    room = Room(V11, join_rule="invite")
    assert "not joined" in room.rejects_member(BOB, CAROL, "invite")


def test_invite_needs_invite_level() -> None:
    room = Room(V11, power_levels={"invite": 50})
    room.member(BOB, BOB, "join")
    assert "invite level" in room.rejects_member(BOB, CAROL, "invite")
    room.member(ALICE, CAROL, "invite")


@pytest.mark.parametrize("state", ["join", "ban"])
def test_cannot_invite_joined_or_banned_user(state: str) -> None:
    room = Room(V11)
    if state == "join":
        room.member(BOB, BOB, "join")
    else:
        room.member(ALICE, BOB, "ban")
    assert state in room.rejects_member(ALICE, BOB, "invite")


# --- leaves, kicks, bans ---------------------------------------------------------------------


def test_invited_user_may_reject_invite() -> None:
    room = Room(V11, join_rule="invite")
    room.member(ALICE, BOB, "invite")
    room.member(BOB, BOB, "leave")


def test_leave_without_membership_is_rejected() -> None:
    room = Room(V11)
    room.rejects_member(BOB, BOB, "leave")


def test_banned_user_cannot_unban_self_by_leaving() -> None:
    room = Room(V11)
    room.member(ALICE, BOB, "ban")
    room.rejects_member(BOB, BOB, "leave")


def test_kick_needs_kick_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 40})
    room.member(BOB, BOB, "join")
    room.member(CAROL, CAROL, "join")
    assert "may not kick" in room.rejects_member(BOB, CAROL, "leave")
    room.member(ALICE, CAROL, "leave")


def test_kick_of_equal_power_user_is_rejected() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50, CAROL: 50})
    room.member(BOB, BOB, "join")
    room.member(CAROL, CAROL, "join")
    room.rejects_member(BOB, CAROL, "leave")


def test_kick_needs_sender_joined() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50})
    room.member(CAROL, CAROL, "join")
    assert "not joined" in room.rejects_member(BOB, CAROL, "leave")


def test_unban_needs_ban_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50}, power_levels={"kick": 50, "ban": 60})
    room.member(BOB, BOB, "join")
    room.member(ALICE, CAROL, "ban")
    assert "unban" in room.rejects_member(BOB, CAROL, "leave")
    room.member(ALICE, CAROL, "leave")


def test_ban_needs_ban_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 49})
    room.member(BOB, BOB, "join")
    assert "may not ban" in room.rejects_member(BOB, CAROL, "ban")
    room.member(ALICE, CAROL, "ban")


def test_ban_of_higher_power_user_is_rejected() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50})
    room.member(BOB, BOB, "join")
    room.rejects_member(BOB, ALICE, "ban")


def test_ban_needs_sender_joined() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50})
    assert "not joined" in room.rejects_member(BOB, CAROL, "ban")


def test_unknown_membership_is_rejected() -> None:
    room = Room(V11)
    assert "unknown membership" in room.rejects_member(BOB, BOB, "lurk")


def test_member_event_without_membership_is_rejected() -> None:
    room = Room(V11)
    room.rejects(BOB, "m.room.member", {"displayname": "B"}, state_key=BOB)


# --- third-party invites ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _third_party_room(key: SigningKey, *, sender: str = ALICE) -> Room:
    room = Room(V11, join_rule="invite")
    public_key = _b64(bytes(key.verify_key))
    room.send(
        sender,
        "m.room.third_party_invite",
        {"display_name": "b...", "public_key": public_key, "public_keys": []},
        state_key="tok",
    )
    return room


def _signed(key: SigningKey, mxid: str = BOB, token: str = "tok") -> dict[str, Any]:
    signed = {"mxid": mxid, "token": token}
    signature = key.sign(encode_canonical_json(signed)).signature
    return {**signed, "signatures": {"id.example": {"ed25519:0": _b64(signature)}}}


def test_third_party_invite_with_valid_signature_is_allowed() -> None:
    key = SigningKey.generate()
    room = _third_party_room(key)
    room.member(ALICE, BOB, "invite", third_party_invite={"signed": _signed(key)})


def test_third_party_invite_key_published_url_safe_is_read() -> None:
    key = SigningKey.generate()
    while "+" not in _b64(bytes(key.verify_key)) and "/" not in _b64(bytes(key.verify_key)):
        key = SigningKey.generate()
    room = Room(V11, join_rule="invite")
    url_safe = base64.urlsafe_b64encode(bytes(key.verify_key)).decode().rstrip("=")
    room.send(ALICE, "m.room.third_party_invite", {"public_key": url_safe}, state_key="tok")
    room.member(ALICE, BOB, "invite", third_party_invite={"signed": _signed(key)})


def test_third_party_invite_with_foreign_signature_is_rejected() -> None:
    room = _third_party_room(SigningKey.generate())
    invite = {"signed": _signed(SigningKey.generate())}
    assert "not signed" in room.rejects_member(ALICE, BOB, "invite", third_party_invite=invite)


def test_third_party_invite_mxid_must_match_state_key() -> None:
    key = SigningKey.generate()
    room = _third_party_room(key)
    invite = {"signed": _signed(key, mxid=CAROL)}
    assert "mxid" in room.rejects_member(ALICE, BOB, "invite", third_party_invite=invite)


def test_third_party_invite_sender_must_match_invite_sender() -> None:
    key = SigningKey.generate()
    room = _third_party_room(key)
    room.member(ALICE, DAVE, "invite")
    room.member(DAVE, DAVE, "join")
    invite = {"signed": _signed(key)}
    assert "sender" in room.rejects_member(DAVE, BOB, "invite", third_party_invite=invite)


def test_third_party_invite_needs_token_in_state() -> None:
    key = SigningKey.generate()
    room = _third_party_room(key)
    invite = {"signed": _signed(key, token="other")}
    reason = room.rejects_member(ALICE, BOB, "invite", third_party_invite=invite)
    assert "no m.room.third_party_invite" in reason


def test_third_party_invite_event_needs_invite_level() -> None:
    room = Room(V11, power_levels={"invite": 50})
    room.member(BOB, BOB, "join")
    assert "invite level" in room.rejects(
        BOB, "m.room.third_party_invite", {"public_key": "x"}, state_key="t"
    )


# --- non-member events -----------------------------------------------------------------------


def test_message_needs_joined_sender() -> None:
    room = Room(V11)
    assert "not joined" in room.rejects(BOB, "m.room.message", {"body": "hi"})


def test_message_needs_events_default() -> None:
    room = Room(V11, power_levels={"events_default": 10})
    room.member(BOB, BOB, "join")
    room.rejects(BOB, "m.room.message", {"body": "hi"})
    room.send(ALICE, "m.room.message", {"body": "hi"})


def test_state_event_needs_state_default() -> None:
    room = Room(V11)
    room.member(BOB, BOB, "join")
    assert "below the level" in room.rejects(BOB, "m.room.topic", {"topic": "x"}, state_key="")


def test_events_entry_overrides_defaults() -> None:
    room = Room(V11, power_levels={"events": {"m.room.topic": 0, "m.reaction": 20}})
    room.member(BOB, BOB, "join")
    room.send(BOB, "m.room.topic", {"topic": "x"}, state_key="")
    room.rejects(BOB, "m.reaction", {})


def test_state_key_starting_with_at_must_be_sender() -> None:
    room = Room(V11, power_levels={"state_default": 0})
    room.member(BOB, BOB, "join")
    room.send(BOB, "org.example.status", {}, state_key=BOB)
    assert "reserved" in room.rejects(BOB, "org.example.status", {}, state_key=ALICE)


def test_m_federate_false_keeps_other_servers_out() -> None:
    room = Room(V11, create_content={"m.federate": False})
    assert "federated" in room.rejects_member(BOB, BOB, "join")
    room.member(ALICE, ALICE, "join")


def test_redaction_is_not_gated_by_redact_level() -> None:
    room = Room(V11, power_levels={"redact": 100})
    room.member(BOB, BOB, "join")
    room.send(BOB, "m.room.redaction", {"redacts": "$e2"})


# --- power levels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        {"ban": "50"},
        {"kick": 50.0},
        {"invite": True},
        {"events": {"m.room.topic": "50"}},
        {"notifications": {"room": 1.5}},
        {"users": {BOB: "10"}},
        {"users": []},
        {"state_default": 2**53},
    ],
)
def test_power_levels_values_must_be_integers(content: dict[str, Any]) -> None:
    room = Room(V10)
    content = {"users": {ALICE: 100}, **content}
    assert "power levels" in room.rejects(ALICE, "m.room.power_levels", content, state_key="")


@pytest.mark.parametrize("user", ["bob", "@bob", "!room:a.example", "@:a.example"])
def test_power_levels_users_keys_must_be_user_ids(user: str) -> None:
    room = Room(V11)
    content = {"users": {ALICE: 100, user: 10}}
    room.rejects(ALICE, "m.room.power_levels", content, state_key="")


def test_initial_power_levels_by_creator_are_allowed() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 100}, power_levels={"ban": 100, "kick": 0})
    assert room.power_levels()["ban"] == 100


def test_power_levels_cannot_raise_above_own_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50})
    room.member(BOB, BOB, "join")
    pl = room.power_levels()
    raised = {**pl, "users": {ALICE: 100, BOB: 50, CAROL: 51}}
    assert "above your own" in room.rejects(BOB, "m.room.power_levels", raised, state_key="")
    room.send(BOB, "m.room.power_levels", {**pl, "users": {**pl["users"], CAROL: 50}}, state_key="")


def test_power_levels_cannot_change_setting_above_own_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50}, power_levels={"ban": 75})
    room.member(BOB, BOB, "join")
    lowered = {**room.power_levels(), "ban": 10}
    assert "current level" in room.rejects(BOB, "m.room.power_levels", lowered, state_key="")


def test_power_levels_cannot_remove_events_entry_above_own_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50}, power_levels={"events": {"m.room.name": 60}})
    room.member(BOB, BOB, "join")
    removed = {**room.power_levels(), "events": {}}
    room.rejects(BOB, "m.room.power_levels", removed, state_key="")


def test_power_levels_cannot_demote_peer_at_own_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50, CAROL: 50})
    room.member(BOB, BOB, "join")
    demoted = {**room.power_levels(), "users": {ALICE: 100, BOB: 50, CAROL: 0}}
    assert "not below yours" in room.rejects(BOB, "m.room.power_levels", demoted, state_key="")


def test_power_levels_can_demote_self() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50})
    room.member(BOB, BOB, "join")
    room.send(BOB, "m.room.power_levels", {"users": {ALICE: 100, BOB: 10}}, state_key="")
    assert user_power_level(BOB, room.state, V11) == 10


def test_power_levels_unchanged_entries_above_own_level_are_fine() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 50}, power_levels={"ban": 75})
    room.member(BOB, BOB, "join")
    room.send(BOB, "m.room.power_levels", {**room.power_levels(), "invite": 25}, state_key="")


@pytest.mark.parametrize("rv", [V10, V11], ids=["v10", "v11"])
def test_default_power_without_power_levels_is_100_for_creator(rv: RoomVersion) -> None:
    room = Room(rv)
    state = {k: v for k, v in room.state.items() if k[0] != "m.room.power_levels"}
    assert user_power_level(ALICE, state, rv) == 100
    assert user_power_level(BOB, state, rv) == 0


def test_required_power_level_defaults() -> None:
    assert required_power_level("m.room.topic", "", {}) == 50
    assert required_power_level("m.room.message", None, {}) == 0
    room = Room(V11, power_levels={"state_default": 20, "events_default": 5})
    assert required_power_level("m.room.topic", "", room.state) == 20
    assert required_power_level("m.room.message", None, room.state) == 5


# --- v12: privileged creators and hashed room ids --------------------------------------------


def test_v12_creator_outranks_power_levels() -> None:
    room = Room(V12, users={BOB: 100}, power_levels={"users_default": 100})
    room.member(BOB, BOB, "join")
    assert user_power_level(ALICE, room.state, V12, room.create) == math.inf
    room.member(ALICE, BOB, "ban")


def test_v12_creator_cannot_be_kicked_or_banned() -> None:
    room = Room(V12, users={BOB: 100})
    room.member(BOB, BOB, "join")
    room.rejects_member(BOB, ALICE, "ban")
    room.rejects_member(BOB, ALICE, "leave")


def test_v12_power_levels_may_not_list_creators() -> None:
    room = Room(V12, create_content={"additional_creators": [CAROL]})
    for user in (ALICE, CAROL):
        reason = room.rejects(ALICE, "m.room.power_levels", {"users": {user: 100}}, state_key="")
        assert "creators" in reason


def test_v12_additional_creator_is_privileged() -> None:
    room = Room(V12, users={BOB: 100}, create_content={"additional_creators": [CAROL]})
    room.member(CAROL, CAROL, "join")
    room.member(BOB, BOB, "join")
    assert user_power_level(CAROL, room.state, V12, room.create) == math.inf
    room.member(CAROL, BOB, "leave")


def test_v12_creator_has_infinite_power_without_power_levels() -> None:
    room = Room(V12)
    state = {k: v for k, v in room.state.items() if k[0] != "m.room.power_levels"}
    assert user_power_level(ALICE, state, V12, room.create) == math.inf
    assert user_power_level(BOB, state, V12, room.create) == 0


def test_v12_event_without_create_event_is_rejected() -> None:
    room = Room(V12)
    message = room.event(ALICE, "m.room.message", {})
    with pytest.raises(AuthError, match="create"):
        check_auth(message, room.auth_state(message), V12)


# --- auth events selection and the event's own auth events -----------------------------------


def test_auth_types_for_restricted_join_include_authoriser() -> None:
    event = {
        "type": "m.room.member",
        "sender": BOB,
        "state_key": BOB,
        "content": {"membership": "join", "join_authorised_via_users_server": ALICE},
    }
    assert auth_types_for_event(event, V11) == {
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.member", BOB),
        ("m.room.join_rules", ""),
        ("m.room.member", ALICE),
    }
    assert ("m.room.create", "") not in auth_types_for_event(event, V12)


def test_auth_types_for_third_party_invite_include_token() -> None:
    event = {
        "type": "m.room.member",
        "sender": ALICE,
        "state_key": BOB,
        "content": {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}},
    }
    assert ("m.room.third_party_invite", "t") in auth_types_for_event(event, V11)
    assert auth_types_for_event({"type": "m.room.create"}, V11) == set()


def _signed_event(room: Room, event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "signatures": {s: {"ed25519:k": "sig"} for s in required_signers(event, V11)}}


def _auth_events_of(room: Room, event: dict[str, Any]) -> list[dict[str, Any]]:
    return [room.events[i] for i in event["auth_events"]]


@ALL_VERSIONS
def test_auth_events_that_fit_the_selection_are_accepted(rv: RoomVersion) -> None:
    room = Room(rv)
    event = _signed_event(
        room, room.event(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
    )
    state = check_auth_events(event, _auth_events_of(room, event), rv, create_event=room.create)
    check_auth(event, state, rv, create_event=room.create_event)


def test_auth_events_outside_the_selection_are_rejected() -> None:
    room = Room(V11)
    event = _signed_event(room, room.event(ALICE, "m.room.message", {}))
    event["auth_events"].append(room.state[("m.room.join_rules", "")]["event_id"])
    with pytest.raises(AuthError, match="selection"):
        check_auth_events(event, _auth_events_of(room, event), V11)


def test_duplicate_auth_events_are_rejected() -> None:
    room = Room(V11)
    first_power_levels = room.state[("m.room.power_levels", "")]["event_id"]
    room.send(ALICE, "m.room.power_levels", {"users": {ALICE: 100}}, state_key="")
    event = _signed_event(room, room.event(ALICE, "m.room.message", {}))
    event["auth_events"].append(first_power_levels)
    with pytest.raises(AuthError, match="duplicate"):
        check_auth_events(event, _auth_events_of(room, event), V11)


def test_rejected_auth_event_is_rejected() -> None:
    room = Room(V11)
    event = _signed_event(room, room.event(ALICE, "m.room.message", {}))
    pl_id = room.state[("m.room.power_levels", "")]["event_id"]
    with pytest.raises(AuthError, match="rejected"):
        check_auth_events(event, _auth_events_of(room, event), V11, rejected={pl_id})


def test_auth_event_from_another_room_is_rejected() -> None:
    room = Room(V11)
    event = _signed_event(room, room.event(ALICE, "m.room.message", {}))
    auth_events = [{**e, "room_id": "!other:a.example"} for e in _auth_events_of(room, event)]
    with pytest.raises(AuthError, match="another room"):
        check_auth_events(event, auth_events, V11)


@pytest.mark.parametrize("rv", [V10, V11], ids=["v10", "v11"])
def test_missing_create_among_auth_events_is_rejected(rv: RoomVersion) -> None:
    room = Room(rv)
    event = _signed_event(room, room.event(ALICE, "m.room.message", {}))
    event["auth_events"].remove(room.create["event_id"])
    with pytest.raises(AuthError, match="create"):
        check_auth_events(event, _auth_events_of(room, event), rv)


def test_v12_create_among_auth_events_is_rejected() -> None:
    room = Room(V12)
    event = _signed_event(room, room.event(ALICE, "m.room.message", {}))
    room.events[room.create["event_id"]] = {**room.create, "room_id": room.room_id}
    event["auth_events"].append(room.create["event_id"])
    with pytest.raises(AuthError, match="selection"):
        check_auth_events(event, _auth_events_of(room, event), V12, create_event=room.create)


def test_v12_room_id_must_be_create_event_hash() -> None:
    room = Room(V12)
    event = _signed_event(room, room.event(ALICE, "m.room.message", {}))
    event["room_id"] = "!somethingelse"
    with pytest.raises(AuthError, match="room_id"):
        check_auth_events(event, [], V12, create_event=room.create)


def test_restricted_join_must_carry_authorising_server_signature() -> None:
    room = Room(V11, join_rule="restricted")
    content = {"membership": "join", "join_authorised_via_users_server": ALICE}
    event = room.event(BOB, "m.room.member", content, state_key=BOB)
    assert required_signers(event, V11) == {"a.example", "b.example"}
    event["signatures"] = {"b.example": {"ed25519:k": "sig"}}
    with pytest.raises(AuthError, match=r"a\.example"):
        check_auth_events(event, _auth_events_of(room, event), V11)


# --- handling redactions ---------------------------------------------------------------------


def _redaction(room: Room, sender: str, target: str, **extra: Any) -> dict[str, Any]:
    """A redaction of `target` by `sender`, authorised and applied to the room."""
    if room.rv.updated_redaction_rules:
        return room.send(sender, "m.room.redaction", {"redacts": target, **extra})
    event = room.event(sender, "m.room.redaction", dict(extra))
    event["redacts"] = target
    room.check(event)
    return room.apply(event)


def _applies(room: Room, redaction: dict[str, Any], target: dict[str, Any], **kw: Any) -> bool:
    return redaction_allowed(
        redaction, target, room.auth_state(redaction), room.rv, create_event=room.create_event, **kw
    )


def _three_servers(rv: RoomVersion) -> Room:
    """Alice (a.example) can redact; Bob (b.example, power 0) and Carol (c.example) cannot."""
    room = Room(rv, users=None if rv.privileged_creators else {ALICE: 100})
    room.member(BOB, BOB, "join")
    room.member(CAROL, CAROL, "join")
    return room


def test_redaction_applies_for_same_server_or_redact_level() -> None:
    room = Room(V11, users={ALICE: 100, BOB: 0})
    room.member(BOB, BOB, "join")
    room.member(CAROL, CAROL, "join")
    carol_msg = room.send(CAROL, "m.room.message", {"body": "x"})
    bob_redacts = room.send(BOB, "m.room.redaction", {"redacts": carol_msg["event_id"]})
    alice_redacts = room.send(ALICE, "m.room.redaction", {"redacts": carol_msg["event_id"]})
    carol_redacts = room.send(CAROL, "m.room.redaction", {"redacts": carol_msg["event_id"]})
    assert not redaction_allowed(bob_redacts, carol_msg, room.state, V11)
    assert redaction_allowed(alice_redacts, carol_msg, room.state, V11)
    assert redaction_allowed(carol_redacts, carol_msg, room.state, V11)


@ALL_VERSIONS
def test_redaction_in_another_room_is_never_applied(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    other = _three_servers(rv)
    other.room_id = other.room_id + "2"
    secret = other.send(CAROL, "m.room.message", {"body": "private"})
    secret = {**secret, "room_id": other.room_id}
    # Carol herself, and Alice with power 100, redacting from the first room: never.
    for sender in (CAROL, ALICE):
        redaction = _redaction(room, sender, secret["event_id"])
        assert not _applies(room, redaction, secret)
        # The twin: the same event id in the redaction's own room is redacted.
        assert _applies(room, redaction, {**secret, "room_id": room.room_id})


@ALL_VERSIONS
def test_rejected_or_soft_failed_redaction_is_never_applied(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    carol_msg = room.send(CAROL, "m.room.message", {"body": "x"})
    redaction = _redaction(room, ALICE, carol_msg["event_id"])
    assert _applies(room, redaction, carol_msg)
    assert not _applies(room, redaction, carol_msg, rejected=True)
    assert not _applies(room, redaction, carol_msg, soft_failed=True)


@ALL_VERSIONS
def test_redaction_applies_only_to_the_event_it_names(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    first = room.send(CAROL, "m.room.message", {"body": "x"})
    second = room.send(CAROL, "m.room.message", {"body": "y"})
    redaction = _redaction(room, ALICE, first["event_id"])
    assert _applies(room, redaction, first)
    assert not _applies(room, redaction, second)
    message = room.send(ALICE, "m.room.message", {"body": "z", "redacts": first["event_id"]})
    assert not _applies(room, {**message, "redacts": first["event_id"]}, first)


def test_redacts_is_top_level_in_v10_and_in_content_from_v11() -> None:
    room = _three_servers(V10)
    msg = room.send(CAROL, "m.room.message", {"body": "x"})
    in_content = room.send(CAROL, "m.room.redaction", {"redacts": msg["event_id"]})
    assert not _applies(room, in_content, msg)
    assert _applies(room, _redaction(room, CAROL, msg["event_id"]), msg)
    room = _three_servers(V11)
    msg = room.send(CAROL, "m.room.message", {"body": "x"})
    top_level = room.event(CAROL, "m.room.redaction", {})
    top_level["redacts"] = msg["event_id"]
    assert not _applies(room, room.apply(top_level), msg)
    assert _applies(room, _redaction(room, CAROL, msg["event_id"]), msg)


@ALL_VERSIONS
def test_redaction_of_the_create_event_is_never_applied(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    redaction = _redaction(room, ALICE, room.create["event_id"])
    assert not _applies(room, redaction, room.create)
    join_rules = room.state[("m.room.join_rules", "")]
    assert _applies(room, _redaction(room, ALICE, join_rules["event_id"]), join_rules)


# --- a local client's redaction --------------------------------------------------------------


def _refusal(room: Room, redaction: dict[str, Any], target: dict[str, Any] | None):
    return client_redaction_refusal(
        redaction, target, room.auth_state(redaction), room.rv, create_event=room.create_event
    )


@ALL_VERSIONS
def test_client_may_redact_own_events_and_others_only_with_redact_level(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    bob2 = "@bob2:b.example"
    room.member(bob2, bob2, "join")
    bob_msg = room.send(BOB, "m.room.message", {"body": "x"})
    assert _refusal(room, _redaction(room, BOB, bob_msg["event_id"]), bob_msg) is None
    assert _refusal(room, _redaction(room, ALICE, bob_msg["event_id"]), bob_msg) is None
    # Same server is the federation rule; a user of that server still needs the power.
    refusal = _refusal(room, _redaction(room, bob2, bob_msg["event_id"]), bob_msg)
    assert refusal is not None and refusal.kind == "forbidden"
    refusal = _refusal(room, _redaction(room, CAROL, bob_msg["event_id"]), bob_msg)
    assert refusal is not None and refusal.kind == "forbidden"


@ALL_VERSIONS
def test_client_redaction_of_an_unknown_event_needs_redact_level(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    refusal = _refusal(room, _redaction(room, BOB, "$unknown"), None)
    assert refusal is not None and refusal.kind == "not_found"
    assert _refusal(room, _redaction(room, ALICE, "$unknown"), None) is None


@ALL_VERSIONS
def test_client_redaction_of_another_rooms_event_is_refused(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    other = _three_servers(rv)
    secret = {**other.send(BOB, "m.room.message", {"body": "x"}), "room_id": "!other:a.example"}
    for sender in (BOB, ALICE):
        refusal = _refusal(room, _redaction(room, sender, secret["event_id"]), secret)
        assert refusal is not None and refusal.kind == "other_room"
    # The twin: the same event in the room itself.
    mine = {**secret, "room_id": room.room_id}
    assert _refusal(room, _redaction(room, BOB, mine["event_id"]), mine) is None


@ALL_VERSIONS
def test_client_redaction_of_create_or_server_acl_is_forbidden(rv: RoomVersion) -> None:
    room = _three_servers(rv)
    refusal = _refusal(room, _redaction(room, ALICE, room.create["event_id"]), room.create)
    assert refusal is not None and refusal.kind == "forbidden"
    acl = room.send(ALICE, "m.room.server_acl", {"allow": ["*"]}, state_key="")
    refusal = _refusal(room, _redaction(room, ALICE, acl["event_id"]), acl)
    assert refusal is not None and refusal.kind == "forbidden"
    topic = room.send(ALICE, "m.room.topic", {"topic": "t"}, state_key="")
    assert _refusal(room, _redaction(room, ALICE, topic["event_id"]), topic) is None
