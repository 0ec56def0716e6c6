"""The authorisation rules of room versions 1 to 12, as pure functions over event dicts.

An event is authorised in two steps, as Synapse splits them:

- `check_auth_events(event, auth_events, room_version)` keeps the rules about the event's own
  `auth_events` list (v10/v11 rule 2, v12 rules 2 and 3: no duplicates, only the types the
  *auth events selection* allows, none rejected, same room, a create event present, or in v12
  the room id derived from the create event) and the signature-presence part of rule
  4.2/5.2 (`join_authorised_via_users_server`). It returns the auth state for the next step.
- `check_auth(event, auth_state, room_version)` keeps every rule that reads room state: the
  create rules, `m.federate`, membership transitions (joins incl. restricted and knock, invites
  incl. third-party, leaves/kicks, bans, knocks), the sender-joined rule, third-party invite
  power, required power level, `@`-state keys and power levels changes. State resolution
  re-runs only this step (iterative auth checks).

Events are plain PDU dicts. `auth_state` maps `(type, state_key)` to the event dict in force;
each of those dicts also carries its `"event_id"` (PDUs of v3+ rooms do not hold their own id,
so the caller adds it). In v12 (MSC4291) the create event is never an auth event: pass it as
`create_event=`; it may also sit in `auth_state`, which `check_auth` accepts either way.

Not here: checking that signatures are valid (signing.py, before auth; `required_signers`
names the servers that must have signed), and the redact-level rule, which the spec moved out of
the auth rules into *handling redactions*: `redaction_allowed` decides whether a redaction is
applied, and so whether clients get it at all (every path that stores or reads events asks
it), `client_redaction_refusal` whether a local user may send one.

Per-version rules come from the flags of `RoomVersion`: the `m.room.aliases` rule (v1-v5), the
redact level as an auth rule with its event-id domain check (v1/v2), `notifications` in power
levels changes (v6+), knocking (v7+), restricted joins (v8+), `knock_restricted` and strictly
integer power levels (v10+; before, only `users` values must read as integers, strings and
floats included), the implicit creator (v11+), privileged creators and hashed room ids (v12).
In v1/v2 events reference others by `[event_id, hashes]` pairs (`referenced_ids` reads them)
and the server of the event id must have signed it too.

Deliberate readings, each matching Synapse:
- a missing `m.room.join_rules` event, or one without `join_rule`, means `invite`;
- power-level values in existing state are read with `int` semantics, defaults as in the
  `m.room.power_levels` schema (`state_default` 50, `events_default` 0, `invite` 0,
  `kick`/`ban`/`redact` 50, `users_default` 0; with no power levels event the creator has 100
  in v10/v11);
- a third-party-invite member event need not be signed by its sender's server.

Spec: https://spec.matrix.org/v1.16/rooms/v1/#authorisation-rules,
https://spec.matrix.org/v1.16/rooms/v3/#authorisation-rules,
https://spec.matrix.org/v1.16/rooms/v6/#authorisation-rules,
https://spec.matrix.org/v1.16/rooms/v7/#authorisation-rules,
https://spec.matrix.org/v1.16/rooms/v8/#authorisation-rules,
https://spec.matrix.org/v1.16/rooms/v10/#authorization-rules,
https://spec.matrix.org/v1.16/rooms/v11/#authorization-rules,
https://spec.matrix.org/v1.16/rooms/v12/#authorization-rules,
https://spec.matrix.org/v1.16/server-server-api/#auth-events-selection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.signing import VerifyKey

from relay.events.ids import (
    create_event_id_of,
    is_valid_user_id,
    referenced_ids,
    room_id_of_create,
    server_of,
)
from relay.events.redaction import redacts_of
from relay.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from relay.events.signing import SignatureError, verify_json_signature
from relay.events.unpadded_base64 import decode_base64_either

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
ALIASES = "m.room.aliases"
REDACTION = "m.room.redaction"
CREATE_KEY = (CREATE, "")
POWER_LEVELS_KEY = (POWER_LEVELS, "")
JOIN_RULES_KEY = (JOIN_RULES, "")
AUTHORISING_USER = "join_authorised_via_users_server"

#: The power of a v12 room creator (MSC4289): above any integer.
CREATOR_POWER = math.inf

_LEVEL_KEYS = "users_default events_default state_default ban redact kick invite".split()
_NAMED_DEFAULTS = {"invite": 0, "kick": 50, "ban": 50, "redact": 50}
_MAX_INT = 2**53 - 1

StateKey = tuple[str, str]
AuthState = Mapping[StateKey, Mapping[str, Any]]


class AuthError(Exception):
    """The event is not allowed by the authorisation rules; `reason` says which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- small readers ---------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return type(value) is int and -_MAX_INT <= value <= _MAX_INT


def _int_or(value: object, default: int) -> int:
    """An existing state value as an int (`int()` semantics), or `default` if unreadable."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return default


def _content(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    content = event.get("content") if event is not None else None
    return content if isinstance(content, Mapping) else {}


def membership(event: Mapping[str, Any] | None) -> str | None:
    """`content.membership` of a member event, or None if absent or malformed."""
    value = _content(event).get("membership")
    return value if isinstance(value, str) else None


def _membership_of(user_id: object, auth_state: AuthState) -> str | None:
    if not isinstance(user_id, str):
        return None
    return membership(auth_state.get((MEMBER, user_id)))


def _join_rule(auth_state: AuthState) -> str:
    value = _content(auth_state.get(JOIN_RULES_KEY)).get("join_rule", "invite")
    return value if isinstance(value, str) else ""


def _create_of(auth_state: AuthState, create_event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    create = create_event if create_event is not None else auth_state.get(CREATE_KEY)
    if create is None:
        raise AuthError("no m.room.create event")
    return create


def _create_event_id(create: Mapping[str, Any], room_id: object, rv: RoomVersion) -> str | None:
    if rv.room_id_is_create_event_hash and isinstance(room_id, str) and room_id.startswith("!"):
        return create_event_id_of(room_id)
    event_id = create.get("event_id")
    return event_id if isinstance(event_id, str) else None


def room_creators(create: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The room's creators: the create sender (v10: `content.creator`), plus in v12
    (MSC4289) every entry of `content.additional_creators`."""
    if not room_version.implicit_room_creator:
        creator = _content(create).get("creator")
        return {creator} if isinstance(creator, str) else set()
    creators = {create.get("sender", "")}
    if room_version.privileged_creators:
        extra = _content(create).get("additional_creators")
        if isinstance(extra, list):
            creators.update(c for c in extra if isinstance(c, str))
    return creators


# --- power levels ----------------------------------------------------------------------------


def user_power_level(
    user_id: str,
    auth_state: AuthState,
    room_version: RoomVersion,
    create_event: Mapping[str, Any] | None = None,
) -> int | float:
    """`user_id`'s power level: `CREATOR_POWER` (infinity) for a v12 creator, else its
    `users` entry, else `users_default`; with no power levels event, 100 for the creator of a
    v10/v11 room and 0 for everyone else."""
    create = create_event if create_event is not None else auth_state.get(CREATE_KEY)
    if room_version.privileged_creators and create is not None:
        if user_id in room_creators(create, room_version):
            return CREATOR_POWER
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    if power_levels is None:
        if create is not None and user_id in room_creators(create, room_version):
            return 100
        return 0
    content = _content(power_levels)
    users = content.get("users")
    if isinstance(users, Mapping) and user_id in users:
        return _int_or(users[user_id], 0)
    return _int_or(content.get("users_default"), 0)


def named_power_level(name: str, auth_state: AuthState) -> int:
    """The `invite`, `kick`, `ban` or `redact` level (defaults 0, 50, 50, 50)."""
    default = _NAMED_DEFAULTS[name]
    return _int_or(_content(auth_state.get(POWER_LEVELS_KEY)).get(name), default)


def required_power_level(event_type: str, state_key: str | None, auth_state: AuthState) -> int:
    """The spec's *required power level* for an event: `events[type]`, else `state_default`
    (50) for a state event (`state_key` not None) or `events_default` (0) for a message."""
    content = _content(auth_state.get(POWER_LEVELS_KEY))
    events = content.get("events")
    if isinstance(events, Mapping) and event_type in events:
        return _int_or(events[event_type], 0)
    if state_key is not None:
        return _int_or(content.get("state_default"), 50)
    return _int_or(content.get("events_default"), 0)


# --- auth events selection -------------------------------------------------------------------


def auth_types_for_event(event: Mapping[str, Any], room_version: RoomVersion) -> set[StateKey]:
    """The `(type, state_key)` pairs the event's `auth_events` may come from (server-server
    API, *auth events selection*). Empty for a create event; v12 never selects the create."""
    if event.get("type") == CREATE:
        return set()
    sender = event.get("sender", "")
    types: set[StateKey] = {POWER_LEVELS_KEY, (MEMBER, sender)}
    if not room_version.room_id_is_create_event_hash:
        types.add(CREATE_KEY)
    if event.get("type") != MEMBER:
        return types
    state_key = event.get("state_key")
    if isinstance(state_key, str):
        types.add((MEMBER, state_key))
    content = _content(event)
    value = membership(event)
    if value in ("join", "invite", "knock"):
        types.add(JOIN_RULES_KEY)
    if value == "invite" and "third_party_invite" in content:
        token = _third_party_token(content["third_party_invite"])
        if token is not None:
            types.add((THIRD_PARTY_INVITE, token))
    authoriser = content.get(AUTHORISING_USER)
    if value == "join" and room_version.restricted_join_rule and isinstance(authoriser, str):
        types.add((MEMBER, authoriser))
    return types


def _third_party_token(invite: object) -> str | None:
    signed = invite.get("signed") if isinstance(invite, Mapping) else None
    token = signed.get("token") if isinstance(signed, Mapping) else None
    return token if isinstance(token, str) else None


def required_signers(event: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """Servers whose valid signature the event needs: the sender's (except on a third-party
    invite, whose sender need not be local to the server that built it, as Synapse allows),
    in v1/v2 the server of the event id, and on a restricted join, the authorising user's
    server (v10 rule 4.2.1, v12 rule 5.2.1)."""
    content = _content(event)
    signers: set[str] = set()
    carried_id = event.get("event_id")
    if room_version.event_id_in_event and isinstance(carried_id, str):
        signers.add(server_of(carried_id))
    third_party = membership(event) == "invite" and "third_party_invite" in content
    if not (event.get("type") == MEMBER and third_party):
        signers.add(server_of(event.get("sender", "")))
    authoriser = content.get(AUTHORISING_USER)
    if event.get("type") == MEMBER and isinstance(authoriser, str):
        signers.add(server_of(authoriser))
    return signers


def check_auth_events(
    event: Mapping[str, Any],
    auth_events: Sequence[Mapping[str, Any]],
    room_version: RoomVersion,
    *,
    create_event: Mapping[str, Any] | None = None,
    rejected: Container[str] = frozenset(),
) -> dict[StateKey, Mapping[str, Any]]:
    """Rules on the event's own auth events; returns them as the auth state for `check_auth`.

    `auth_events` are the dicts (each with `"event_id"`) the event lists in `auth_events`;
    `rejected` holds ids of events that were rejected. Also checks that every server in
    `required_signers` has a signature on the event (validity is signing.py's job).
    """
    if event.get("type") == CREATE:
        return {}
    signatures = event.get("signatures")
    for server in required_signers(event, room_version):
        if not isinstance(signatures, Mapping) or server not in signatures:
            raise AuthError(f"event is not signed by {server}")
    room_id = event.get("room_id")
    if room_version.room_id_is_create_event_hash:
        if create_event is None or create_event.get("type") != CREATE:
            raise AuthError("room_id does not name an m.room.create event")
        create_id = create_event.get("event_id")
        if isinstance(create_id, str) and room_id != room_id_of_create(create_id):
            raise AuthError("room_id is not the create event's id")
        if create_id in rejected:
            raise AuthError("the room's m.room.create event was rejected")
    listed_ids = set(referenced_ids(event.get("auth_events")))
    given_ids = {e.get("event_id") for e in auth_events}
    if listed_ids != given_ids or len(auth_events) != len(listed_ids):
        raise AuthError("auth events given do not match the event's auth_events")
    allowed = auth_types_for_event(event, room_version)
    auth_state: dict[StateKey, Mapping[str, Any]] = {}
    for auth_event in auth_events:
        key = (auth_event.get("type", ""), auth_event.get("state_key"))
        if not isinstance(key[1], str):
            raise AuthError(f"auth event {auth_event.get('event_id')} is not a state event")
        if key in auth_state:
            raise AuthError(f"duplicate auth events for {key}")
        if key not in allowed:
            raise AuthError(f"auth event for {key} is not in the auth events selection")
        if auth_event.get("event_id") in rejected:
            raise AuthError(f"auth event {auth_event.get('event_id')} was rejected")
        if auth_event.get("room_id") != room_id:
            raise AuthError(f"auth event {auth_event.get('event_id')} is in another room")
        auth_state[key] = auth_event
    if not room_version.room_id_is_create_event_hash and CREATE_KEY not in auth_state:
        raise AuthError("no m.room.create event among the auth events")
    return auth_state


# --- the rules -------------------------------------------------------------------------------


def check_auth(
    event: Mapping[str, Any],
    auth_state: AuthState,
    room_version: RoomVersion,
    *,
    create_event: Mapping[str, Any] | None = None,
) -> None:
    """Raise `AuthError` unless the state-dependent auth rules allow `event` against
    `auth_state` (`(type, state_key)` -> event dict with `"event_id"`). In v12 pass the room's
    create event as `create_event` (it is not an auth event); v10/v11 read it from the state."""
    if event.get("type") == CREATE:
        _check_create(event, room_version)
        return
    create = _create_of(auth_state, create_event)
    sender = event.get("sender")
    if not isinstance(sender, str):
        raise AuthError("event has no sender")
    if _content(create).get("m.federate") is False:
        if server_of(sender) != server_of(create.get("sender", "")):
            raise AuthError("room is not federated (m.federate is false)")
    if event.get("type") == ALIASES and room_version.special_case_aliases:
        if event.get("state_key") != server_of(sender):
            raise AuthError("m.room.aliases state_key is not the sender's server")
        return
    if event.get("type") == MEMBER:
        _check_member(event, auth_state, room_version, create)
        return
    if _membership_of(sender, auth_state) != "join":
        raise AuthError(f"{sender} is not joined to the room")
    power = user_power_level(sender, auth_state, room_version, create)
    if event.get("type") == THIRD_PARTY_INVITE:
        if power < named_power_level("invite", auth_state):
            raise AuthError(f"{sender} is below the invite level")
        return
    state_key = event.get("state_key")
    if power < required_power_level(event.get("type", ""), state_key, auth_state):
        raise AuthError(f"{sender} is below the level required for {event.get('type')}")
    if isinstance(state_key, str) and state_key.startswith("@") and state_key != sender:
        raise AuthError("state keys starting with @ are reserved for that user")
    if event.get("type") == POWER_LEVELS:
        _check_power_levels(event, auth_state, room_version, create, power)
    if event.get("type") == REDACTION and room_version.redaction_in_auth_rules:
        _check_redaction_v1(event, auth_state, room_version, power)


def _check_redaction_v1(
    event: Mapping[str, Any], state: AuthState, rv: RoomVersion, power: int | float
) -> None:
    """v1/v2 rule 11: the redact level, or the same server minted both event ids."""
    if power >= named_power_level("redact", state):
        return
    redacts = redacts_of(event, rv)
    event_id = event.get("event_id")
    if isinstance(redacts, str) and isinstance(event_id, str):
        if server_of(redacts) == server_of(event_id):
            return
    raise AuthError(f"{event.get('sender')} may not redact {redacts}")


def _check_create(event: Mapping[str, Any], rv: RoomVersion) -> None:
    if event.get("prev_events"):
        raise AuthError("m.room.create has prev_events")
    sender = event.get("sender", "")
    if rv.room_id_is_create_event_hash:
        if "room_id" in event:
            raise AuthError("m.room.create has a room_id")
    elif server_of(str(event.get("room_id", ""))) != server_of(sender):
        raise AuthError("m.room.create room_id domain differs from the sender's")
    content = _content(event)
    declared = content.get("room_version")
    if "room_version" in content and not (
        isinstance(declared, str) and declared in KNOWN_ROOM_VERSIONS
    ):
        raise AuthError(f"unknown room version {declared!r}")
    if not rv.implicit_room_creator and "creator" not in content:
        raise AuthError("m.room.create has no creator")
    if rv.privileged_creators and "additional_creators" in content:
        check_additional_creators(content["additional_creators"])


def check_additional_creators(extra: Any) -> None:
    """v12 (MSC4289): `additional_creators`, in a create event or asked for by an upgrade,
    is a list of user ids."""
    if not isinstance(extra, list) or not all(
        isinstance(u, str) and is_valid_user_id(u) for u in extra
    ):
        raise AuthError("additional_creators must be a list of user ids")


# --- membership ------------------------------------------------------------------------------


class _Member:
    """What the membership rules read, computed once per event."""

    def __init__(
        self,
        event: Mapping[str, Any],
        state: AuthState,
        rv: RoomVersion,
        create: Mapping[str, Any],
    ) -> None:
        self.event, self.state, self.rv, self.create = event, state, rv, create
        self.sender: str = event["sender"]
        self.target: str = event["state_key"]
        self.content = _content(event)
        self.sender_membership = _membership_of(self.sender, state)
        self.target_membership = _membership_of(self.target, state)
        self.join_rule = _join_rule(state)

    def power(self, user_id: str) -> int | float:
        return user_power_level(user_id, self.state, self.rv, self.create)

    def level(self, name: str) -> int:
        return named_power_level(name, self.state)


def _check_member(
    event: Mapping[str, Any], state: AuthState, rv: RoomVersion, create: Mapping[str, Any]
) -> None:
    value = membership(event)
    if not isinstance(event.get("state_key"), str) or value is None:
        raise AuthError("member event without state_key or membership")
    check = _MEMBERSHIP_RULES.get(value)
    if check is None:
        raise AuthError(f"unknown membership {value!r}")
    check(_Member(event, state, rv, create))


def _check_join(m: _Member) -> None:
    create_id = _create_event_id(m.create, m.event.get("room_id"), m.rv)
    if create_id is not None and referenced_ids(m.event.get("prev_events")) == [create_id]:
        if m.rv.implicit_room_creator:
            first_creator = m.create.get("sender")
        else:
            first_creator = _content(m.create).get("creator")
        if m.target == first_creator:
            return
    if m.sender != m.target:
        raise AuthError("cannot join on behalf of another user")
    if m.sender_membership == "ban":
        raise AuthError(f"{m.sender} is banned")
    rule = m.join_rule
    if rule == "invite" or (rule == "knock" and m.rv.knock_join_rule):
        if m.sender_membership in ("invite", "join"):
            return
        raise AuthError(f"{m.sender} is not invited")
    if (rule == "restricted" and m.rv.restricted_join_rule) or (
        rule == "knock_restricted" and m.rv.knock_restricted_join_rule
    ):
        if m.sender_membership in ("invite", "join"):
            return
        authoriser = m.content.get(AUTHORISING_USER)
        if not isinstance(authoriser, str) or _membership_of(authoriser, m.state) != "join":
            raise AuthError("restricted join not authorised by a joined member")
        if m.power(authoriser) < m.level("invite"):
            raise AuthError(f"{authoriser} may not invite, so cannot authorise joins")
        return
    if rule == "public":
        return
    raise AuthError(f"join rule {rule!r} does not allow {m.sender} to join")


def _check_invite(m: _Member) -> None:
    if "third_party_invite" in m.content:
        _check_third_party_invite(m)
        return
    if m.sender_membership != "join":
        raise AuthError(f"{m.sender} is not joined, so cannot invite")
    if m.target_membership in ("join", "ban"):
        raise AuthError(f"{m.target} is {m.target_membership}, so cannot be invited")
    if m.power(m.sender) < m.level("invite"):
        raise AuthError(f"{m.sender} is below the invite level")


def _check_leave(m: _Member) -> None:
    if m.sender == m.target:
        allowed = ("invite", "join", "knock") if m.rv.knock_join_rule else ("invite", "join")
        if m.sender_membership in allowed:
            return
        raise AuthError(f"{m.sender} cannot leave from {m.sender_membership!r}")
    if m.sender_membership != "join":
        raise AuthError(f"{m.sender} is not joined, so cannot kick")
    sender_power = m.power(m.sender)
    if m.target_membership == "ban" and sender_power < m.level("ban"):
        raise AuthError(f"{m.sender} is below the ban level, so cannot unban")
    if sender_power >= m.level("kick") and m.power(m.target) < sender_power:
        return
    raise AuthError(f"{m.sender} may not kick {m.target}")


def _check_ban(m: _Member) -> None:
    if m.sender_membership != "join":
        raise AuthError(f"{m.sender} is not joined, so cannot ban")
    sender_power = m.power(m.sender)
    if sender_power >= m.level("ban") and m.power(m.target) < sender_power:
        return
    raise AuthError(f"{m.sender} may not ban {m.target}")


def _check_knock(m: _Member) -> None:
    rules = ("knock", "knock_restricted") if m.rv.knock_restricted_join_rule else ("knock",)
    if not m.rv.knock_join_rule or m.join_rule not in rules:
        raise AuthError(f"join rule {m.join_rule!r} does not allow knocking")
    if m.sender != m.target:
        raise AuthError("cannot knock on behalf of another user")
    if m.sender_membership in ("ban", "invite", "join"):
        raise AuthError(f"{m.sender} is {m.sender_membership}, so cannot knock")


_MEMBERSHIP_RULES: dict[str, Callable[[_Member], None]] = {
    "join": _check_join,
    "invite": _check_invite,
    "leave": _check_leave,
    "ban": _check_ban,
    "knock": _check_knock,
}


# --- third-party invites ---------------------------------------------------------------------


def _check_third_party_invite(m: _Member) -> None:
    if m.target_membership == "ban":
        raise AuthError(f"{m.target} is banned")
    invite = m.content["third_party_invite"]
    signed = invite.get("signed") if isinstance(invite, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError("third_party_invite has no signed object")
    if "mxid" not in signed or "token" not in signed:
        raise AuthError("third_party_invite.signed lacks mxid or token")
    if signed["mxid"] != m.target:
        raise AuthError("third_party_invite mxid does not match the state_key")
    token = signed["token"]
    tpi = m.state.get((THIRD_PARTY_INVITE, token)) if isinstance(token, str) else None
    if tpi is None:
        raise AuthError("no m.room.third_party_invite for this token")
    if tpi.get("sender") != m.sender:
        raise AuthError("sender differs from the m.room.third_party_invite sender")
    if not any(_signed_with(signed, key) for key in _public_keys(tpi)):
        raise AuthError("third_party_invite is not signed by any of the invite's keys")


def _public_keys(tpi: Mapping[str, Any]) -> list[str]:
    content = _content(tpi)
    keys = [content["public_key"]] if isinstance(content.get("public_key"), str) else []
    listed = content.get("public_keys")
    if isinstance(listed, list):
        for entry in listed:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                keys.append(entry["public_key"])
    return keys


def _signed_with(signed: Mapping[str, Any], public_key: str) -> bool:
    """True if any ed25519 signature in `signed.signatures` verifies with `public_key`."""
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    try:
        verify_key = VerifyKey(decode_base64_either(public_key))
    except (ValueError, TypeError):
        return False
    for server_name, block in signatures.items():
        if not isinstance(block, Mapping):
            continue
        for key_id in block:
            try:
                verify_json_signature(dict(signed), server_name, key_id, verify_key)
            except SignatureError:
                continue
            return True
    return False


# --- power levels changes --------------------------------------------------------------------


def _check_power_levels(
    event: Mapping[str, Any],
    state: AuthState,
    rv: RoomVersion,
    create: Mapping[str, Any],
    power: int | float,
) -> None:
    content = _content(event)
    # Before v10 only `users` must hold integers (strings and floats that read as one).
    for key in _LEVEL_KEYS if rv.enforce_int_power_levels else ():
        if key in content and not _is_level(content[key], rv):
            raise AuthError(f"power levels {key} is not an integer")
    for key in ("events", "notifications") if rv.enforce_int_power_levels else ():
        if key in content and not _is_int_map(content[key], rv):
            raise AuthError(f"power levels {key} is not an object of integers")
    users = content.get("users", {})
    if not _is_int_map(users, rv) or not all(is_valid_user_id(u) for u in users):
        raise AuthError("power levels users is not an object of user ids to integers")
    if rv.privileged_creators and room_creators(create, rv) & set(users):
        raise AuthError("room creators may not be listed in power levels users")
    previous = state.get(POWER_LEVELS_KEY)
    if previous is None:
        return
    old = _content(previous)
    for key in _LEVEL_KEYS:
        _check_change(old, content, key, power)
    maps = ("events", "notifications") if rv.limit_notifications_power_levels else ("events",)
    for key in maps:
        old_map, new_map = _as_map(old.get(key)), _as_map(content.get(key))
        for name in set(old_map) | set(new_map):
            _check_change(old_map, new_map, name, power)
    old_users = _as_map(old.get("users"))
    for user in set(old_users) | set(users):
        changed = _check_change(old_users, users, user, power)
        if changed and user != event.get("sender") and user in old_users:
            if _int_or(old_users[user], 0) >= power:
                raise AuthError(f"cannot change {user}, whose level is not below yours")


def _check_change(old: Mapping, new: Mapping, key: str, power: int | float) -> bool:
    """Reject if an altered value, before or after, is above `power`; True if altered."""
    if key in old and key in new and old[key] == new[key]:
        return False
    if key not in old and key not in new:
        return False
    if key in old and _int_or(old[key], 0) > power:
        raise AuthError(f"cannot change {key}: its current level is above yours")
    if key in new and _int_or(new[key], 0) > power:
        raise AuthError(f"cannot set {key} above your own level")
    return True


def _is_level(value: object, rv: RoomVersion) -> bool:
    """An acceptable power level value: an integer (v10+), or anything int()-able before."""
    if rv.enforce_int_power_levels:
        return _is_int(value)
    return _int_or(value, -1) == _int_or(value, 0)


def _is_int_map(value: object, rv: RoomVersion) -> bool:
    return isinstance(value, Mapping) and all(_is_level(v, rv) for v in value.values())


def _as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --- redactions ------------------------------------------------------------------------------
#
# *Handling redactions* (v3+): the auth rules accept any redaction the power levels let its
# sender send; whether it is *applied* (the target shown redacted, the redaction itself sent
# to clients) is decided here, once the target is known, for every path (local sends, /send,
# backfill, reads).
# Spec: https://spec.matrix.org/v1.16/rooms/v11/#handling-redactions


def redaction_allowed(
    redaction: Mapping[str, Any],
    redacted: Mapping[str, Any],
    auth_state: AuthState,
    room_version: RoomVersion,
    *,
    create_event: Mapping[str, Any] | None = None,
    rejected: bool = False,
    soft_failed: bool = False,
) -> bool:
    """Whether `redaction` is applied to `redacted` (both dicts with their `event_id`).

    It is when all hold:
    - it is an accepted `m.room.redaction` (neither `rejected` nor `soft_failed`) naming
      `redacted`, in the same room (a redaction never reaches into another room);
    - `redacted` is not the create event (Synapse never applies those either);
    - its sender is at or above the redact level in `auth_state` (the room's state as of
      the redaction), or on the same server as `redacted`'s sender: the domain check
      that v3+ defers until the target is known.

    A redaction whose target is not stored yet is simply not applied; the caller asks
    again once the target arrives.
    """
    if rejected or soft_failed:
        return False
    if redaction.get("type") != "m.room.redaction":
        return False
    target_id = redacted.get("event_id")
    if not isinstance(target_id, str) or redacts_of(redaction, room_version) != target_id:
        return False
    room_id = redaction.get("room_id")
    if not isinstance(room_id, str) or room_id != _room_of(redacted, room_version):
        return False
    if redacted.get("type") == CREATE and redacted.get("state_key") == "":
        return False
    sender = redaction.get("sender")
    target_sender = redacted.get("sender")
    if not isinstance(sender, str) or not isinstance(target_sender, str):
        return False
    if server_of(sender) == server_of(target_sender):
        return True
    power = user_power_level(sender, auth_state, room_version, create_event)
    return power >= named_power_level("redact", auth_state)


def _room_of(event: Mapping[str, Any], room_version: RoomVersion) -> str | None:
    """An event's room id; a v12 create event has none: its room is `!` + its id's hash."""
    room_id = event.get("room_id")
    if isinstance(room_id, str):
        return room_id
    event_id = event.get("event_id")
    if room_version.room_id_is_create_event_hash and event.get("type") == CREATE:
        return room_id_of_create(event_id) if isinstance(event_id, str) else None
    return None


@dataclass(frozen=True, slots=True)
class RedactionRefusal:
    """Why a local client may not send a redaction. `kind`: `not_found` (the target is
    unknown and the sender has no power to redact others), `other_room` (the target is in
    another room) or `forbidden`."""

    kind: str
    reason: str


def client_redaction_refusal(
    redaction: Mapping[str, Any],
    redacted: Mapping[str, Any] | None,
    auth_state: AuthState,
    room_version: RoomVersion,
    *,
    create_event: Mapping[str, Any] | None = None,
) -> RedactionRefusal | None:
    """Whether a local user may send `redaction` (already authorised), as Synapse's event
    creation decides; None if so. `redacted` is the target, None when it is not stored (or
    was rejected).

    The client-server spec lets a user redact their own events, and others' only at or
    above the redact level; the server rule (`redaction_allowed`) is checked on top, so a
    redaction we send is one we would apply. Refused, in Synapse's order: redacting a create
    or server ACL event (forbidden), an event of another room (other_room); with no redact
    power, an unknown event (not_found) or someone else's (forbidden). With the power, an
    unknown target is allowed: the redaction is held until the target arrives.
    """
    sender = redaction.get("sender", "")
    if redacted is not None:
        kind = (redacted.get("type"), redacted.get("state_key"))
        if kind == CREATE_KEY:
            return RedactionRefusal("forbidden", "Redacting create events is not permitted")
        if _room_of(redacted, room_version) != redaction.get("room_id"):
            return RedactionRefusal("other_room", "Cannot redact event from a different room")
        if kind == ("m.room.server_acl", ""):
            return RedactionRefusal("forbidden", "Redacting server ACL events is not permitted")
    power = user_power_level(sender, auth_state, room_version, create_event)
    if power < named_power_level("redact", auth_state):
        if redacted is None:
            target = redacts_of(redaction, room_version)
            return RedactionRefusal("not_found", f"Could not find event {target}")
        if redacted.get("sender") != sender:
            return RedactionRefusal("forbidden", "You don't have permission to redact events")
    if redacted is not None and not redaction_allowed(
        redaction, redacted, auth_state, room_version, create_event=create_event
    ):
        return RedactionRefusal("forbidden", "You don't have permission to redact events")
    return None
