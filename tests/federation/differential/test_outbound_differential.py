"""Outbound joins, the same on both targets: Alice (a user of the target) joins a room the fake
remote hosts, and the remote answers make_join and send_join well, or badly in one way. Each
malformed answer has its well-formed twin (`well-formed answer`); the status, errcode and the
room state Alice then reads must match between a real Synapse and the relay.

What Synapse does here (synapse/federation/federation_client.py `send_join`,
`_try_destination_list`; handlers/federation_event.py `process_remote_join`): an event of the
answer whose signature fails is dropped, and so is one whose auth events were dropped; the join
stands if what is left authorises it. An answer without a create event in its state, or whose
create names another room version, is invalid: the next server is tried, and when none is left
the client gets 502. A make_join or send_join refusal (4xx) reaches the client as the remote
said it, except the codes that mean "ask another server" (404 `M_NOT_FOUND`,
`M_UNABLE_TO_AUTHORISE_JOIN`, `M_UNABLE_TO_GRANT_JOIN`); server errors and unreachable servers
move on to the next `via` server."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.federation.differential.conversation import (
    VERSIONS,
    Conversation,
    Row,
    outcome,
    q,
    wait_until,
)
from tests.federation.differential.fake_remote import FakeRemote
from tests.federation.differential.hosted_room import HostedRoom, event_id_of
from tests.support import free_port, fresh_loopback

# -- the rooms the remote hosts, one per scenario, built once for both targets ----------------

OUTBOUND_VERSIONS = VERSIONS
pytestmark = pytest.mark.parametrize(
    "conversations",
    OUTBOUND_VERSIONS,
    ids=[f"v{v}" for v in OUTBOUND_VERSIONS],
    indirect=True,
    scope="module",
)

Build = Callable[[HostedRoom], None]
_rooms: dict[tuple[int, str, str], HostedRoom] = {}


def hosted(remote: FakeRemote, version: str, name: str, build: Build, **create: Any) -> HostedRoom:
    """Scenario `name`'s room in `version`, built once for both targets."""
    key = (id(remote), version, name)
    if key not in _rooms:
        room = HostedRoom.create(remote, version, name.replace(" ", "-"), **create)
        build(room)
        _rooms[key] = room.host()
    return _rooms[key]


def well_formed(room: HostedRoom) -> None:
    room.add("m.room.name", {"name": "A room elsewhere"}, "")


def forged_name(room: HostedRoom) -> None:
    room.forge_signature(event_id_of(room.add("m.room.name", {"name": "forged"}, ""), room.version))


def unsigned_name(room: HostedRoom) -> None:
    name = room.add("m.room.name", {"name": "unsigned"}, "")
    room.damage(event_id_of(name, room.version), lambda e: e.update(signatures={}))


def bad_displayname(room: HostedRoom) -> None:
    # sytest: "Membership event with an invalid displayname in the send_join response
    # should not cause room join to fail".
    room.add(
        "m.room.member",
        {"membership": "join", "displayname": [], "avatar_url": []},
        room.creator,
    )
    dave = room.remote.user("dave")
    room.add("m.room.member", {"membership": "join", "displayname": {"x": 1}}, dave, sender=dave)


def unverifiable_auth_event(room: HostedRoom) -> None:
    # Complement: "/send_join response with state with unverifiable auth events shouldn't
    # block room join": a state event (dave's leave) cites a badly signed event (his join).
    dave = room.remote.user("dave")
    join = room.add("m.room.member", {"membership": "join"}, dave, sender=dave)
    room.add("m.room.member", {"membership": "leave"}, dave, sender=dave)
    room.forge_signature(event_id_of(join, room.version))


def forged_join_rules(room: HostedRoom) -> None:
    room.forge_signature(room.state[("m.room.join_rules", "")])


def without_create(room: HostedRoom) -> None:
    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        body["state"] = [e for e in body["state"] if e["type"] != "m.room.create"]
        return 200, body

    room.answer_send_join = answer


def create_nowhere(room: HostedRoom) -> None:
    def answer(body: dict[str, Any]) -> tuple[int, Any]:
        for part in ("state", "auth_chain"):
            body[part] = [e for e in body[part] if e["type"] != "m.room.create"]
        return 200, body

    room.answer_send_join = answer


def refuses_make_join(status: int, body: dict[str, Any]) -> Build:
    def build(room: HostedRoom) -> None:
        room.make_join_refusal = (status, body)

    return build


def refuses_send_join(status: int, body: dict[str, Any]) -> Build:
    def build(room: HostedRoom) -> None:
        room.answer_send_join = lambda _: (status, body)

    return build


# -- servers to join through -----------------------------------------------------------------

# Servers a scenario joins through besides the remote: each role is a server of its own, so
# that Synapse backing off one (after a 500 or no answer) never touches another row's server.
DEAD_HOST = fresh_loopback()
#: Nobody listens there.
DEAD = f"{DEAD_HOST}:{free_port(DEAD_HOST)}"
_extra: dict[str, FakeRemote] = {}
_tmp: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def extra_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    _tmp.append(tmp_path_factory.mktemp("servers"))
    try:
        yield
    finally:
        for remote in _extra.values():
            remote.stop()


def extra_server(role: str) -> FakeRemote:
    if role not in _extra:
        _extra[role] = FakeRemote(_tmp[-1] / role)
        _extra[role].start()
    return _extra[role]


def server(conv: Conversation, role: str) -> str:
    """`remote`: the conversation's remote; `dead`: nobody answers there; any other role is
    a fake server of its own (`extra_server`)."""
    if role == "remote":
        return conv.remote.name
    if role == "dead":
        return DEAD
    return extra_server(role).name


def refuses_first(role: str, status: int, body: dict[str, Any]) -> Build:
    """The room is well formed; `role`'s server, tried first, refuses its make_join."""

    def build(room: HostedRoom) -> None:
        well_formed(room)
        extra_server(role).scripts.append(
            (
                "GET",
                f"/_matrix/federation/v1/make_join/{re.escape(room.room_id)}/[^/]+",
                lambda m, b: (status, body),
            )
        )

    return build


# -- acts and views ------------------------------------------------------------------------


def join(
    name: str, build: Build, via: tuple[str, ...] = ("remote",), host: str = "remote", **create: Any
) -> Callable[[Conversation], httpx.Response]:
    """Alice joins scenario `name`'s room by id through the `via` servers (roles, see
    `server`); the room is hosted by `host`."""

    def act(conv: Conversation) -> httpx.Response:
        remote = conv.remote if host == "remote" else extra_server(host)
        room = hosted(remote, conv.version, name, build, **create)
        servers = [("via", server(conv, role)) for role in via]
        return conv.client("POST", f"/join/{q(room.room_id)}", params=servers, json={})

    return act


def room_state(name: str) -> Callable[[Conversation], httpx.Response]:
    """What Alice may read of the scenario's room afterwards (nothing, when the join failed)."""

    def act(conv: Conversation) -> httpx.Response:
        room = _rooms[(id(conv.remote), conv.version, name)]
        return conv.client("GET", f"/rooms/{q(room.room_id)}/state")

    return act


def state_keys(conv: Conversation, r: httpx.Response) -> Any:
    """After a join: the room's state as Alice reads it, and whether /sync has the room."""
    room_id = r.json()["room_id"]
    state = conv.client("GET", f"/rooms/{q(room_id)}/state")
    assert state.status_code == 200, state.text
    # A filter naming the room: Synapse answers a repeated identical /sync from a cache.
    only_room = json.dumps({"room": {"rooms": [room_id]}})
    synced = conv.client("GET", "/sync", params={"timeout": "0", "filter": only_room})
    assert synced.status_code == 200, synced.text
    return (
        sorted((e["type"], e["state_key"]) for e in state.json()),
        room_id in synced.json().get("rooms", {}).get("join", {}),
    )


def state_view(conv: Conversation, r: httpx.Response) -> Any:
    return sorted((e["type"], e["state_key"]) for e in r.json())


def message_reaches_third_server(conv: Conversation) -> httpx.Response:
    """A member of a third server is in the room's state (the remote hosts the room): after
    joining, Alice's message must be sent to that server too. Each target gets a room and a
    third server of its own, so one target's sending says nothing of the other's."""
    third = extra_server(f"third-{conv.kind}-{conv.version}")

    def build(room: HostedRoom) -> None:
        zoe = third.user("zoe")
        room.add("m.room.member", {"membership": "join"}, zoe, sender=zoe, by=third)

    room = hosted(conv.remote, conv.version, f"third server {conv.kind}", build)
    joined = conv.client(
        "POST", f"/join/{q(room.room_id)}", params={"via": conv.remote.name}, json={}
    )
    if joined.status_code != 200:
        return joined
    return conv.client(
        "PUT",
        f"/rooms/{q(room.room_id)}/send/m.room.message/{uuid.uuid4().hex}",
        json={"msgtype": "m.text", "body": "to every server in the room"},
    )


def third_server_got_it(conv: Conversation, r: httpx.Response) -> Any:
    third = extra_server(f"third-{conv.kind}-{conv.version}")
    return wait_until(lambda: third.asked("PUT", "/_matrix/federation/v1/send/"), timeout=30)


FORBIDDEN = {"errcode": "M_FORBIDDEN", "error": "You are not invited to this room."}
NOT_FOUND = {"errcode": "M_NOT_FOUND", "error": "Unknown room"}
OOPS = {"errcode": "M_UNKNOWN", "error": "oops"}
INCOMPATIBLE = {
    "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
    "error": "Your homeserver does not support the features required to join this room",
    "room_version": "org.example.future",
}

ROWS: list[Row] = [
    Row("well-formed answer", join("well formed", well_formed), state_keys),
    Row("one state event with a forged signature", join("forged", forged_name), state_keys),
    Row("one state event with no signature", join("unsigned", unsigned_name), state_keys),
    Row(
        "member events with non-string displayname",
        join("displayname", bad_displayname),
        state_keys,
    ),
    Row(
        "state event citing an unverifiable auth event",
        join("unverifiable", unverifiable_auth_event),
        state_keys,
    ),
    Row("join rules with a forged signature", join("no join rules", forged_join_rules), state_keys),
    Row("no create event in the state", join("no create", without_create), state_keys),
    Row("no create event in the state: nothing stored", room_state("no create"), state_view),
    Row("no create event anywhere", join("create nowhere", create_nowhere), state_keys),
    Row(
        "create event of another room version",
        join("other version", well_formed, create_version="9"),
        state_keys,
    ),
    Row(
        "create event of another room version: nothing stored",
        room_state("other version"),
        state_view,
    ),
    Row(
        "the servers of the members get our messages",
        message_reaches_third_server,
        third_server_got_it,
    ),
    Row("make_join 403 M_FORBIDDEN", join("not invited", refuses_make_join(403, FORBIDDEN))),
    Row(
        "make_join 400 M_INCOMPATIBLE_ROOM_VERSION",
        join("incompatible", refuses_make_join(400, INCOMPATIBLE)),
    ),
    Row(
        "make_join 400 with an errcode of its own",
        join(
            "own errcode", refuses_make_join(400, {"errcode": "M_TEST_ERROR_CODE", "error": "no"})
        ),
    ),
    Row("make_join 404 M_NOT_FOUND", join("not found", refuses_make_join(404, NOT_FOUND))),
    Row("send_join 403 M_FORBIDDEN", join("send_join refused", refuses_send_join(403, FORBIDDEN))),
    Row(
        "via: an unreachable server first",
        join("dead first", well_formed, via=("dead", "remote")),
        state_keys,
    ),
    Row(
        "via: a server answering 500 first",
        join("500 first", refuses_first("other500", 500, OOPS), via=("other500", "remote")),
        state_keys,
    ),
    Row(
        "via: a server not in the room first",
        join("404 first", refuses_first("other404", 404, NOT_FOUND), via=("other404", "remote")),
        state_keys,
    ),
    Row(
        "via: a server refusing 403 first",
        join("403 first", refuses_first("other403", 403, FORBIDDEN), via=("other403", "remote")),
        state_keys,
    ),
    Row(
        "join by room id with no via",
        join("no via", well_formed, via=()),
        state_keys,
        known="the relay also asks the server named in the room id (before v12), as Synapse "
        "once did, and answers M_NOT_FOUND when it knows no server; Synapse 1.163 answers "
        "404 M_UNKNOWN",
    ),
    Row(
        "make_join 500 from the only server",
        join("server error", refuses_make_join(500, OOPS), via=("broken",), host="broken"),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_row(conversations: list[Conversation], row: Row) -> None:
    """Status, errcode and view match (as in test_inbound_differential)."""
    synapse, relay = (outcome(conv, row) for conv in conversations)
    answers = " | ".join(f"{c.kind}: {c.normalize(c.last)}" for c in conversations)
    if row.known is not None:
        assert relay != synapse, f"kept difference gone ({row.known}); answers: {answers}"
        return
    assert relay == synapse, f"relay {relay} != synapse {synapse}; answers: {answers}"


def test_incompatible_room_version_reaches_the_client_with_its_room_version(
    conversations: list[Conversation],
) -> None:
    """sytest "Outbound federation correctly handles unsupported room versions": the
    remote's `room_version` comes with its errcode, on both targets."""
    for conv in conversations:
        r = join("incompatible", refuses_make_join(400, INCOMPATIBLE))(conv)
        assert (r.status_code, r.json()) == (400, INCOMPATIBLE), (conv.kind, r.text)


def test_members_omitted_answer_is_refused_and_the_full_answer_joins(
    conversations: list[Conversation],
) -> None:
    """The relay never asks for a partial state (`omit_members`): an answer saying members
    were omitted is not the room's state, and is refused as Synapse refuses one it did not
    ask for (502, nothing stored); the same answer with the members joins. (Synapse asks
    for partial state, so this is not a differential row.)"""
    relay = next(c for c in conversations if c.kind == "relay")

    def omitted(room: HostedRoom) -> None:
        def answer(body: dict[str, Any]) -> tuple[int, Any]:
            return 200, {**body, "members_omitted": True, "servers_in_room": [room.remote.name]}

        room.answer_send_join = answer

    def full(room: HostedRoom) -> None:
        def answer(body: dict[str, Any]) -> tuple[int, Any]:
            return 200, {**body, "members_omitted": False, "servers_in_room": [room.remote.name]}

        room.answer_send_join = answer

    refused = join("members omitted", omitted)(relay)
    assert (refused.status_code, refused.json()["errcode"]) == (502, "M_UNKNOWN"), refused.text
    assert room_state("members omitted")(relay).status_code == 403
    joined = join("members given", full)(relay)
    assert joined.status_code == 200, joined.text
    assert state_keys(relay, joined)[1] is True
