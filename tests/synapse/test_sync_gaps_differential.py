"""Differential: the same gapped-sync scenarios run against a real Synapse 1.163.2 and a
relay (two separate servers, the same users and steps on each); the room entries of the
syncs after each gap carry the same state (type, state_key, content, with the server
name written out), the same `limited`, timeline and summary (issue 14 item 5). And a
real outage between the two (tests/synapse/test_outage.py's link): the relay user's
sync across it brings every state change.

Known, chosen differences are named where they are compared (see `_summary`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.matrix_client import V3, MatrixUser
from tests.synapse.conftest import side_by_side
from tests.synapse.test_outage import Link, _shared_room, start_link

NAMES = ("alice", "bob", "carol", "dave")


@dataclass
class Server:
    kind: str
    server_name: str
    users: dict[str, MatrixUser]

    def uid(self, name: str) -> str:
        return self.users[name].user_id

    def sync(
        self, who: str, since: str | None = None, flt: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": 0, "set_presence": "offline"}
        if since is not None:
            params["since"] = since
        # Synapse answers a request it answered in the last minutes from its response
        # cache (a stale `next_batch`): a filter of its own makes each request new.
        unique = {"account_data": {"not_types": [uuid.uuid4().hex]}}
        params["filter"] = json.dumps({**(flt or {}), **unique})
        return self.users[who].call("GET", "/sync", params=params)

    def put_state(self, who: str, room: str, type_: str, content: Any, key: str = "") -> None:
        self.users[who].call(
            "PUT", f"/rooms/{room}/state/{type_}/{quote(key, safe='')}", json=content
        )

    def leave(self, who: str, room: str) -> None:
        self.users[who].call("POST", f"/rooms/{room}/leave", json={})

    def send(self, who: str, room: str, body: str) -> None:
        self.users[who].send(room, body)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    tmp: Path = tmp_path_factory.mktemp("sync-gaps-diff")
    with side_by_side(tmp, unlimited=True) as pair:
        for name in NAMES:
            pair.synapse.register(name)
            pair.relay.cli("user", "add", name, "--password", "pw")
        yield [
            Server(
                "synapse",
                pair.synapse.server_name,
                {n: MatrixUser.login(pair.synapse.client_url, n) for n in NAMES},
            ),
            Server(
                "relay",
                pair.relay.server_name,
                {n: MatrixUser.login(pair.relay.client_url, n) for n in NAMES},
            ),
        ]


def _plain(server: Server, value: Any) -> Any:
    """`value` with the server's name and its users' ids written alike on both servers."""
    text = json.dumps(value, sort_keys=True).replace(server.server_name, "HS")
    return json.loads(text)


#: What `createRoom` makes differently (not sync's business): the create and power
#: levels contents, and the relay's `m.room.guest_access` of the public_chat preset.
CREATION = ("m.room.create", "m.room.power_levels", "m.room.guest_access")


def _state_events(server: Server, room: dict[str, Any]) -> list[dict[str, Any]]:
    """The state section without what is also in the timeline. The relay never repeats
    a timeline event there (spec: the state before the timeline); Synapse does when the
    timeline's first event is a member event it reads the state *after* (its
    `get_state_ids_for_event` on the first event, "good enough" says its comment), so
    only Synapse's are dropped, and the relay's checked."""
    in_timeline = {e["event_id"] for e in room["timeline"]["events"]}
    events = room["state"]["events"]
    if server.kind == "relay":
        assert not in_timeline & {e["event_id"] for e in events}
    return [e for e in events if e["event_id"] not in in_timeline]


def _state(server: Server, room: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted(
        (
            e["type"],
            _plain(server, e["state_key"]),
            json.dumps(_plain(server, e["content"]), sort_keys=True),
        )
        for e in _state_events(server, room)
        if e["type"] not in CREATION
    )


def _state_keys(server: Server, room: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (e["type"], _plain(server, e["state_key"]))
        for e in _state_events(server, room)
        if e["type"] != "m.room.guest_access"
    )


def _timeline(server: Server, room: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (e["type"], _plain(server, e.get("state_key", e["content"].get("body"))))
        for e in room["timeline"]["events"]
        if e["type"] != "m.room.guest_access"
    ]


def _entry(server: Server, room: dict[str, Any], *, lazy: bool = False) -> dict[str, Any]:
    """What is compared of one room entry. The summary only when lazy loading members:
    without, Synapse sends `{}` always, where the relay sends the counts when they
    changed (the spec requires them then)."""
    entry = {
        "limited": room["timeline"]["limited"],
        "timeline": _timeline(server, room),
        "state": _state(server, room),
        "state_keys": _state_keys(server, room),
    }
    if lazy:
        entry["summary"] = _plain(server, room.get("summary"))
    return entry


Scenario = Callable[[Server], list[dict[str, Any]]]


def _named_room(s: Server, **extra: Any) -> str:
    return s.users["alice"].create_room(preset="public_chat", name="gaps", **extra)


def gap_with_old_leaves(s: Server) -> list[dict[str, Any]]:
    room = _named_room(s)
    s.users["bob"].join(room)
    since = s.sync("alice")["next_batch"]
    s.users["carol"].join(room)
    s.leave("carol", room)
    s.put_state("alice", room, "m.room.topic", {"topic": "first"})
    s.put_state("alice", room, "m.room.topic", {"topic": "second"})
    s.users["dave"].join(room)
    for n in range(5):
        s.send("bob", room, f"m{n}")
    flt = {"room": {"timeline": {"limit": 3}}}
    return [_entry(s, s.sync("alice", since, flt)["rooms"]["join"][room])]


def lazy_members_across_syncs(s: Server) -> list[dict[str, Any]]:
    room = _named_room(s)
    for name in ("bob", "carol"):
        s.users[name].join(room)
    s.send("alice", room, "before")
    ll = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
    first = s.sync("alice", None, ll)
    out = [_entry(s, first["rooms"]["join"][room], lazy=True)]
    s.send("bob", room, "bob once")
    second = s.sync("alice", first["next_batch"], ll)
    out.append(_entry(s, second["rooms"]["join"][room], lazy=True))
    s.send("bob", room, "bob twice")
    third = s.sync("alice", second["next_batch"], ll)
    out.append(_entry(s, third["rooms"]["join"][room], lazy=True))
    # A gap: carol leaves and dave comes and goes while bob talks on.
    s.leave("carol", room)
    s.users["dave"].join(room)
    s.leave("dave", room)
    for n in range(4):
        s.send("bob", room, f"gap {n}")
    fourth = s.sync("alice", third["next_batch"], ll)
    out.append(_entry(s, fourth["rooms"]["join"][room], lazy=True))
    redundant = {"room": {**ll["room"], "state": {**ll["room"]["state"]}}}
    redundant["room"]["state"]["include_redundant_members"] = True
    s.send("bob", room, "bob again")
    fifth = s.sync("alice", fourth["next_batch"], redundant)
    out.append(_entry(s, fifth["rooms"]["join"][room], lazy=True))
    return out


def newly_joined_room(s: Server) -> list[dict[str, Any]]:
    room = _named_room(s)
    s.put_state("alice", room, "m.room.topic", {"topic": "t"})
    for n in range(3):
        s.send("alice", room, f"old {n}")
    since = s.sync("bob")["next_batch"]
    s.users["bob"].join(room)
    s.send("alice", room, "welcome")
    s.send("alice", room, "bob")
    flt = {"room": {"timeline": {"limit": 3}}}
    out = [_entry(s, s.sync("bob", since, flt)["rooms"]["join"][room])]
    # The whole history fits: still `limited`, as the room is new to the client.
    whole = {"room": {"timeline": {"limit": 50}}}
    out.append(_entry(s, s.sync("bob", since, whole)["rooms"]["join"][room]))
    return out


def own_member_event(s: Server) -> list[dict[str, Any]]:
    room = _named_room(s)
    s.users["bob"].join(room)
    since = s.sync("alice")["next_batch"]
    content = {"membership": "join", "displayname": "Robert", "avatar_url": "mxc://x/y"}
    s.put_state("bob", room, "m.room.member", content, s.uid("bob"))
    body = s.sync("alice", since)
    out = [_entry(s, body["rooms"]["join"][room])]
    s.users["bob"].call(
        "PUT", f"/profile/{quote(s.uid('bob'))}/displayname", json={"displayname": "Bobby"}
    )
    # Synapse writes the profile's member events in the background: wait for this one.
    member = f"/rooms/{room}/state/m.room.member/{quote(s.uid('bob'))}"
    deadline = time.monotonic() + 30
    while s.users["alice"].call("GET", member).get("displayname") != "Bobby":
        assert time.monotonic() < deadline, "the profile change never reached the room"
        time.sleep(0.2)
    for n in range(4):
        s.send("alice", room, f"m{n}")
    flt = {"room": {"timeline": {"limit": 2}}}
    out.append(_entry(s, s.sync("alice", body["next_batch"], flt)["rooms"]["join"][room]))
    return out


def joined_and_left_in_one_gap(s: Server) -> list[dict[str, Any]]:
    room = _named_room(s)
    s.put_state("alice", room, "m.room.topic", {"topic": "t"})
    s.send("alice", room, "hello")
    since = s.sync("bob")["next_batch"]
    s.users["bob"].join(room)
    s.send("alice", room, "hi bob")
    s.leave("bob", room)
    flt = {"room": {"timeline": {"limit": 3}}}
    body = s.sync("bob", since, flt)
    out = [_entry(s, body["rooms"]["leave"][room])]
    s.send("alice", room, "while bob was away")
    s.users["bob"].join(room)
    s.send("alice", room, "back")
    out.append(_entry(s, s.sync("bob", body["next_batch"], flt)["rooms"]["join"][room]))
    return out


def summaries(s: Server) -> list[dict[str, Any]]:
    room = s.users["alice"].create_room(preset="public_chat")  # unnamed: heroes
    s.users["carol"].join(room)
    s.users["bob"].join(room)
    ll = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
    first = s.sync("alice", None, ll)
    out = [_entry(s, first["rooms"]["join"][room], lazy=True)]
    s.send("bob", room, "chat")
    second = s.sync("alice", first["next_batch"], ll)
    out.append(_entry(s, second["rooms"]["join"][room], lazy=True))
    s.leave("carol", room)
    s.users["alice"].invite(room, s.uid("dave"))
    third = s.sync("alice", second["next_batch"], ll)
    out.append(_entry(s, third["rooms"]["join"][room], lazy=True))
    s.put_state("alice", room, "m.room.name", {"name": "now named"})
    s.users["carol"].join(room)
    for n in range(3):
        s.send("alice", room, f"m{n}")
    fourth = s.sync("alice", third["next_batch"], ll)
    out.append(_entry(s, fourth["rooms"]["join"][room], lazy=True))
    return out


SCENARIOS: list[Scenario] = [
    gap_with_old_leaves,
    lazy_members_across_syncs,
    newly_joined_room,
    own_member_event,
    joined_and_left_in_one_gap,
    summaries,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_gapped_sync_answers_as_synapse(servers: list[Server], scenario: Scenario) -> None:
    synapse, relay = (scenario(server) for server in servers)
    assert len(synapse) == len(relay)
    differences = [
        (step, key, "synapse", s[key], "relay", r[key])
        for step, (s, r) in enumerate(zip(synapse, relay, strict=True))
        for key in s
        if s[key] != r[key]
    ]
    assert differences == [], "\n".join(map(str, differences))


# -- a real outage: the relay's user syncs across it ----------------------------------------


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    link = start_link(tmp_path, fast_retry=True)
    try:
        yield link
    finally:
        link.relay.kill()
        link.synapse.kill()
        link.to_relay.stop()
        link.to_synapse.stop()


def _picture(body: dict[str, Any], room_id: str, known: dict[tuple[str, str], str]) -> bool:
    """Lay the room's entry of a sync over the client's picture; was the room there?"""
    entry = body["rooms"]["join"].get(room_id)
    if entry is None:
        return False
    in_timeline = {e["event_id"] for e in entry["timeline"]["events"]}
    assert not in_timeline & {e["event_id"] for e in entry["state"]["events"]}
    for event in entry["state"]["events"] + entry["timeline"]["events"]:
        if "state_key" in event:
            known[(event["type"], event["state_key"])] = event["event_id"]
    return True


def test_a_sync_across_an_outage_brings_every_state_change(link: Link) -> None:
    """The field user was away while the link was down and both sides wrote (topic
    twice, a rename and messages at HQ; messages and a new display name in the field).
    After the link heals, one gapped sync brings the field client's picture to the
    relay's state of the room, with no timeline event repeated in `state`."""
    room_id, hq, field = _shared_room(link)
    flt = json.dumps({"room": {"timeline": {"limit": 3}}})
    first = field.call("GET", "/sync", params={"filter": flt, "timeout": 0})
    known: dict[tuple[str, str], str] = {}
    assert _picture(first, room_id, known)
    link.cut()
    for topic in ("outage 1", "outage 2"):
        hq.call("PUT", f"/rooms/{room_id}/state/m.room.topic/", json={"topic": topic})
    hq.call("PUT", f"/rooms/{room_id}/state/m.room.name/", json={"name": "renamed"})
    for n in range(6):
        hq.send(room_id, f"hq {n}")
        field.send(room_id, f"field {n}")
    me = quote(field.user_id, safe="")
    field.call(
        "PUT",
        f"/rooms/{room_id}/state/m.room.member/{me}",
        json={"membership": "join", "displayname": "in the field"},
    )
    link.heal()
    field.wait_for_bodies(room_id, {f"hq {n}" for n in range(6)}, timeout=120)
    topic = f"/rooms/{room_id}/state/m.room.topic/"
    deadline = time.monotonic() + 60
    while field.call("GET", topic).get("topic") != "outage 2":
        assert time.monotonic() < deadline, "HQ's topic never reached the relay"
        time.sleep(0.5)
    params = {"filter": flt, "timeout": 0, "since": first["next_batch"]}
    body = field.call("GET", "/sync", params=params)
    assert _picture(body, room_id, known)
    assert body["rooms"]["join"][room_id]["timeline"]["limited"] is True
    r = field.http.get(f"{V3}/rooms/{room_id}/state")
    assert r.status_code == 200, r.text
    assert known == {(e["type"], e["state_key"]): e["event_id"] for e in r.json()}
