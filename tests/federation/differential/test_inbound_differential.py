"""The same federation conversation from our fake remote against a real Synapse and a real relay:
every row's status, errcode and view of the answer must match, in the order the rows are listed
(later rows build on earlier ones). A new scenario is one row in ROWS."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from relay.events.pdu import Pdu
from relay.events.room_versions import RoomVersion, room_version
from tests.federation.differential.conversation import (
    V1,
    V2,
    VERSIONS,
    Act,
    Conversation,
    Request,
    Row,
    View,
    no_view,
    outcome,
    q,
    request_row,
    wait_until,
)
from tests.federation.differential.fake_remote import FakeRemote

# -- views: what of a 2xx body must be the same --------------------------------------------


def pdu_results(conv: Conversation, r: httpx.Response) -> Any:
    """Per-PDU results: which event ids, and whether each is an error."""
    return {k: sorted(v) for k, v in r.json()["pdus"].items()}


def first_pdu(conv: Conversation, r: httpx.Response) -> Any:
    pdu = r.json()["pdus"][0]
    return (pdu["type"], pdu["sender"], pdu["content"])


def state_view(conv: Conversation, r: httpx.Response) -> Any:
    body = r.json()
    return (
        sorted((e["type"], e["state_key"]) for e in body["pdus"]),
        sorted({e["type"] for e in body["auth_chain"]}),
    )


def state_ids_view(conv: Conversation, r: httpx.Response) -> Any:
    body = r.json()
    return len(body["pdu_ids"]), len(body["auth_chain_ids"])


def auth_chain_view(conv: Conversation, r: httpx.Response) -> Any:
    return sorted((e["type"], e.get("state_key")) for e in r.json()["auth_chain"])


def pdu_types(conv: Conversation, r: httpx.Response) -> Any:
    return sorted((e["type"], e.get("state_key")) for e in r.json()["pdus"])


def missing_view(conv: Conversation, r: httpx.Response) -> Any:
    return sorted((e["type"], e.get("state_key")) for e in r.json()["events"])


def template_view(conv: Conversation, r: httpx.Response) -> Any:
    body = r.json()
    ev = body["event"]
    return body.get("room_version"), ev["type"], ev["state_key"], ev["content"], ev["sender"]


def template_auth_view(conv: Conversation, r: httpx.Response) -> Any:
    """What a template's auth_events are, by (type, state key) as the remote knows the room
    (a v12 create event, named by the room id, is never among them)."""
    known = {eid: list(key) for key, eid in conv.state.items()}
    known.setdefault("$" + conv.room_id[1:], ["m.room.create (by the room id)", ""])
    return sorted(known.get(eid, ["?", ""]) for eid in r.json()["event"]["auth_events"])


def send_join_view(conv: Conversation, r: httpx.Response) -> Any:
    body = r.json()
    if isinstance(body, list):
        return ["v1", body[0], send_join_view(conv, httpx.Response(200, json=body[1]))]
    gina = conv.remote.user("gina")  # her join is a kept difference (JOIN_ID)
    return {
        "state": sorted(
            (e["type"], e["state_key"]) for e in body["state"] if e["state_key"] != gina
        ),
        "auth_chain_types": sorted({e["type"] for e in body["auth_chain"]}),
        "members_omitted": body.get("members_omitted", False),
        "servers_in_room": (
            sorted(conv.normalize(body["servers_in_room"])) if "servers_in_room" in body else None
        ),
        "signed_by": sorted(conv.normalize(list(body["event"]["signatures"])))
        if "event" in body
        else None,
    }


def leave_view(conv: Conversation, r: httpx.Response) -> Any:
    return r.json()


def invite_view(conv: Conversation, r: httpx.Response) -> Any:
    body = r.json()
    if isinstance(body, list):
        return ["v1", body[0], invite_view(conv, httpx.Response(200, json=body[1]))]
    ev = body["event"]
    signed_by = sorted(conv.normalize(list(ev["signatures"])))
    return ev["type"], ev["state_key"], ev["content"]["membership"], signed_by


def whole_body(conv: Conversation, r: httpx.Response) -> Any:
    return r.json()


def public_rooms_view(conv: Conversation, r: httpx.Response) -> Any:
    """The conversation's own room in the list (the other room versions' rooms are there too,
    in no order the spec fixes)."""
    body = r.json()
    return [
        {k: room.get(k) for k in ("name", "topic", "num_joined_members", "canonical_alias")}
        | {"world_readable": room["world_readable"], "guest_can_join": room["guest_can_join"]}
        for room in body["chunk"]
        if room["room_id"] == conv.room_id
    ]


def devices_view(conv: Conversation, r: httpx.Response) -> Any:
    body = r.json()
    return body["user_id"], isinstance(body["stream_id"], int), len(body["devices"]) > 0


def keys_view(conv: Conversation, r: httpx.Response) -> Any:
    return sorted(r.json())


# -- acts: requests (and the scripts before them) --------------------------------------------


def message(conv: Conversation, name: str, body: str, **kw: Any) -> dict[str, Any]:
    ev = conv.pdu("carol", "m.room.message", {"msgtype": "m.text", "body": body}, **kw)
    conv.named[name] = conv.event_id(ev)
    return ev


def send_message(conv: Conversation) -> httpx.Response:
    ev = message(conv, "msg", "hello from the fake remote")
    r = conv.send(conv.txn([ev]))
    conv.advance("msg", ev)
    return r


def send_many(count: int) -> Any:
    return lambda conv: conv.txn(
        [message(conv, f"many{i}", f"one of many {i}") for i in range(count)]
    )


def send_bad_signature(conv: Conversation) -> Request:
    ev = message(conv, "badsig", "tampered")
    ev = copy.deepcopy(ev)
    sigs = ev["signatures"][conv.remote.name]
    key_id = next(iter(sigs))
    sigs[key_id] = sigs[key_id][:-4] + ("AAAA" if not sigs[key_id].endswith("AAAA") else "BBBB")
    return conv.txn([ev])


def send_content_changed(conv: Conversation) -> Request:
    """Content no longer matching its hash: the redacted form is what counts."""
    ev = copy.deepcopy(message(conv, "rehashed", "original"))
    ev["content"]["body"] = "changed after signing"
    return conv.txn([ev])


def send_unknown_room(conv: Conversation) -> Request:
    room = f"!nowhere{conv.kind}:{conv.remote.name}"
    ev = conv.pdu("carol", "m.room.message", {"msgtype": "m.text", "body": "x"}, room_id=room)
    conv.named["unknown_room_msg"] = conv.event_id(ev)
    return conv.txn([ev])


def send_rejected(conv: Conversation) -> Request:
    """Carol (power 0) gives herself power 100: fails auth, rejected."""
    pl = {
        "users": {conv.alice.user_id: 100, conv.remote.user("carol"): 100},
        "users_default": 0,
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "events": {},
    }
    ev = conv.pdu("carol", "m.room.power_levels", pl, state_key="")
    conv.named["rejected"] = conv.event_id(ev)
    return conv.txn([ev])


def event(name: str) -> Any:
    return lambda conv: Request("GET", f"{V1}/event/{q(conv.named.get(name, '$nope'))}")


def room_read(kind: str, name: str | None, **query: str) -> Any:
    def make(conv: Conversation) -> Request:
        params: dict[str, Any] = dict(query)
        if name is not None:
            params["event_id"] = conv.named.get(name, "$nope")
        return Request("GET", f"{V1}/{kind}/{q(conv.room_id)}", query=params)

    return make


def event_auth(name: str) -> Any:
    return lambda conv: Request(
        "GET", f"{V1}/event_auth/{q(conv.room_id)}/{q(conv.named.get(name, '$nope'))}"
    )


def backfill(v: str | None, limit: str | None) -> Any:
    def make(conv: Conversation) -> Request:
        params: dict[str, Any] = {}
        if v is not None:
            params["v"] = conv.named.get(v, "$nope")
        if limit is not None:
            params["limit"] = limit
        return Request("GET", f"{V1}/backfill/{q(conv.room_id)}", query=params)

    return make


def missing(body: Any) -> Any:
    def make(conv: Conversation) -> Request:
        b = body(conv) if callable(body) else body
        return Request("POST", f"{V1}/get_missing_events/{q(conv.room_id)}", body=b)

    return make


def make_join(user: Any, ver: str | None = None, room: Any = None) -> Any:
    """`ver` None: the conversation's room version."""

    def make(conv: Conversation) -> Request:
        return Request(
            "GET",
            f"{V1}/make_join/{q(room(conv) if room else conv.room_id)}/{q(user(conv))}",
            query={"ver": ver or conv.version},
        )

    return make


def creators_listed(conv: Conversation) -> httpx.Response:
    """Whether Alice, the room's creator, is in m.room.power_levels `users` (v12: creators
    have infinite power and are not listed)."""
    levels = conv.client("GET", f"/rooms/{q(conv.room_id)}/state/m.room.power_levels/").json()
    return observed({"alice listed": conv.alice.user_id in levels.get("users", {})})


def join_as(localpart: str, v1: bool = False) -> Any:
    return lambda conv: conv.join(localpart, v1=v1)[0]


def join_omitting_members(conv: Conversation) -> httpx.Response:
    user = conv.remote.user("erin")
    made = conv.send(make_join(lambda c: user)(conv))
    ev = conv.remote.signed_template(conv.version, made.json()["event"])
    eid = conv.event_id(ev)
    r = conv.send(
        Request(
            "PUT",
            f"{V2}/send_join/{q(conv.room_id)}/{q(eid)}",
            query={"omit_members": "true"},
            body=ev,
        )
    )
    if r.status_code == 200:
        conv.advance("join_erin", ev)
    return r


def bad_join(kind: str) -> Any:
    """A join the target must refuse, built from a genuine template for Frank."""

    def act(conv: Conversation) -> httpx.Response:
        user = conv.remote.user("gina" if kind == "id_mismatch" else "frank")
        made = conv.send(make_join(lambda c: user)(conv))
        template = made.json()["event"]
        if kind == "not_join":
            template["content"] = {"membership": "leave"}
        if kind == "local_user":
            template["sender"] = template["state_key"] = conv.alice.user_id
        ev = conv.remote.signed_template(conv.version, template)
        eid = conv.event_id(ev)
        if kind == "bad_signature":
            ev = copy.deepcopy(ev)
            sigs = ev["signatures"][conv.remote.name]
            key_id = next(iter(sigs))
            sigs[key_id] = "A" * len(sigs[key_id])
        if kind == "id_mismatch":
            eid = conv.named["msg"]
        r = conv.send(Request("PUT", f"{V2}/send_join/{q(conv.room_id)}/{q(eid)}", body=ev))
        if kind == "id_mismatch" and r.status_code == 200:
            # Synapse took it (a kept difference): Gina leaves, so later rows see one room.
            conv.advance("join_gina", ev)
            left = leave_as("gina", v1=False)(conv)
            assert left.status_code == 200, left.text
        return r

    return act


def make_leave(user: Any) -> Any:
    return lambda conv: Request("GET", f"{V1}/make_leave/{q(conv.room_id)}/{q(user(conv))}")


def leave_as(localpart: str, v1: bool) -> Any:
    def act(conv: Conversation) -> httpx.Response:
        made = conv.send(make_leave(lambda c: c.remote.user(localpart))(conv))
        assert made.status_code == 200, made.text
        ev = conv.remote.signed_template(conv.version, made.json()["event"])
        eid = conv.event_id(ev)
        path = f"{V1 if v1 else V2}/send_leave/{q(conv.room_id)}/{q(eid)}"
        r = conv.send(Request("PUT", path, body=ev))
        if r.status_code == 200:
            conv.advance(f"leave_{localpart}", ev)
        return r

    return act


def rules(version: str) -> RoomVersion:
    rv = room_version(version)
    assert rv is not None
    return rv


def id_of(event: dict[str, Any], version: str) -> str:
    return Pdu.from_dict(event, rules(version)).event_id


def create_content(version: str, creator: str) -> dict[str, Any]:
    """A create event's content: `creator` named up to version 10, the sender's from 11."""
    if rules(version).implicit_room_creator:
        return {"room_version": version}
    return {"creator": creator, "room_version": version}


def remote_room(
    conv: Conversation, tag: str, version: str | None = None
) -> tuple[str, dict[Any, str], list[dict[str, Any]]]:
    """A room of the remote's own (Fred's), for invites, of `version` (None: the
    conversation's): its id, state and events."""
    version = version or conv.version
    remote = conv.remote
    room_id = f"!{tag}{conv.kind}{uuid.uuid4().hex[:6]}:{remote.name}"
    hashed_id = rules(version).room_id_is_create_event_hash
    fred = remote.user("fred")
    state: dict[Any, str] = {}
    events: list[dict[str, Any]] = []
    tip: list[str] = []

    def add(type_: str, content: dict[str, Any], key: str = "") -> None:
        ev = remote.event(
            version,
            room_id=None if type_ == "m.room.create" and hashed_id else room_id,
            sender=fred,
            type_=type_,
            content=content,
            state=state,
            prev_events=tip,
            depth=len(events) + 1,
            state_key=key,
        )
        eid = id_of(ev, version)
        state[(type_, key)] = eid
        tip[:] = [eid]
        events.append(ev)

    add("m.room.create", create_content(version, fred))
    if hashed_id:
        room_id = "!" + state[("m.room.create", "")][1:]
    add("m.room.member", {"membership": "join"}, fred)
    # Version 12: the creator's power is infinite and he may not be listed.
    add("m.room.power_levels", {"users": {} if hashed_id else {fred: 100}})
    add("m.room.join_rules", {"join_rule": "invite"})
    return room_id, state, events


SAME = "same"


def invite(
    version: str,
    *,
    user: Any = None,
    tamper: bool = False,
    room_version: str | None = SAME,
    room_state: Any = None,
    in_version: str | None = None,
) -> Any:
    """An invite of `user` (Alice) to a room of the remote's, over /invite `version`;
    `room_version` SAME: the room's, None: left out of the body; `room_state` in place of
    the stripped create event as invite_room_state; `in_version`: a room of that version
    (None: the conversation's)."""

    def act(conv: Conversation) -> httpx.Response:
        rv = in_version or conv.version
        room_id, state, events = remote_room(conv, "inv", rv)
        invitee = user(conv) if user else conv.alice.user_id
        ev = conv.remote.event(
            rv,
            room_id=room_id,
            sender=conv.remote.user("fred"),
            type_="m.room.member",
            content={"membership": "invite"},
            state=state,
            prev_events=[id_of(events[-1], rv)],
            depth=len(events) + 1,
            state_key=invitee,
        )
        eid = id_of(ev, rv)
        conv.named[f"invite_{version}_{len(conv.named)}"] = eid
        if tamper:
            ev = copy.deepcopy(ev)
            sigs = ev["signatures"][conv.remote.name]
            key_id = next(iter(sigs))
            sigs[key_id] = "A" * len(sigs[key_id])
        if version == "v1":
            return conv.send(Request("PUT", f"{V1}/invite/{q(room_id)}/{q(eid)}", body=ev))
        body: dict[str, Any] = {
            "event": ev,
            "invite_room_state": [conv.remote.stripped(e, rv) for e in events[:1]],
        }
        if room_state is not None:
            body["invite_room_state"] = room_state
        if room_version is not None:
            body["room_version"] = rv if room_version == SAME else room_version
        return conv.send(Request("PUT", f"{V2}/invite/{q(room_id)}/{q(eid)}", body=body))

    return act


def query(path: str, params: Any) -> Any:
    return lambda conv: Request("GET", f"{V1}/{path}", query=params(conv))


def post(path: str, body: Any, **kw: Any) -> Any:
    return lambda conv: Request(
        "POST", f"{V1}/{path}", body=body(conv) if callable(body) else body, **kw
    )


def openid_userinfo(conv: Conversation) -> httpx.Response:
    token = conv.client(
        "POST", f"/user/{q(conv.alice.user_id)}/openid/request_token", json={}
    ).json()["access_token"]
    return conv.send(
        Request("GET", f"{V1}/openid/userinfo", query={"access_token": token}, signed=False)
    )


def observed(value: Any) -> httpx.Response:
    """What the target's client API showed, as an answer to compare."""
    return httpx.Response(200, json=value)


def typing_users(conv: Conversation, room_id: str | None = None) -> list[str]:
    """Who Alice's /sync says is typing in `room_id` (her room by default)."""
    r = fresh_sync(conv)
    room = r.json().get("rooms", {}).get("join", {}).get(room_id or conv.room_id, {})
    for edu in room.get("ephemeral", {}).get("events", []):
        if edu["type"] == "m.typing":
            return sorted(edu["content"]["user_ids"])
    return []


def typing_edu(user_id: str, typing: bool = True) -> dict[str, Any]:
    return {
        "edu_type": "m.typing",
        "content": {"room_id": "", "user_id": user_id, "typing": typing},
    }


def typing_checked(spoof: Any) -> Any:
    """A typing EDU for `spoof(conv)` beside a genuine one for Carol: who does Alice see?"""

    def act(conv: Conversation) -> httpx.Response:
        edus = []
        for user in (spoof(conv), conv.remote.user("carol")):
            edu = typing_edu(user)
            edu["content"]["room_id"] = conv.room_id
            edus.append(edu)
        r = conv.send(conv.txn([], edus))
        assert r.status_code == 200, r.text
        seen = wait_until(
            lambda: conv.remote.user("carol") in typing_users(conv) and typing_users(conv)
        )
        stop = typing_edu(conv.remote.user("carol"), typing=False)
        stop["content"]["room_id"] = conv.room_id
        conv.send(conv.txn([], [stop]))
        wait_until(lambda: conv.remote.user("carol") not in typing_users(conv))
        return observed(seen)

    return act


def fresh_sync(conv: Conversation) -> httpx.Response:
    """A full /sync with a one-event timeline. The filter names a new nonsense type each time:
    Synapse answers a repeated identical /sync from a cache."""
    never = uuid.uuid4().hex
    sync_filter = json.dumps(
        {"room": {"timeline": {"limit": 1}}, "account_data": {"not_types": [never]}}
    )
    return conv.client("GET", "/sync", params={"timeout": 0, "filter": sync_filter})


def read_receipts(conv: Conversation, name: str, room_id: str | None = None) -> list[str]:
    """Who Alice's /sync says has read the event `name` (in her room by default)."""
    r = fresh_sync(conv)
    room = r.json().get("rooms", {}).get("join", {}).get(room_id or conv.room_id, {})
    readers: set[str] = set()
    for edu in room.get("ephemeral", {}).get("events", []):
        if edu["type"] == "m.receipt":
            readers.update(edu["content"].get(conv.named[name], {}).get("m.read", {}))
    return sorted(readers)


def receipt_checked(spoof: Any) -> Any:
    """A read receipt for `spoof(conv)` beside a genuine one for Carol: whose does Alice see?"""

    def act(conv: Conversation) -> httpx.Response:
        # On Alice's newest message, so her /sync's one-event timeline holds it.
        conv.named["read_me"] = conv.alice.send(conv.room_id, "read me")
        receipt = {"event_ids": [conv.named["read_me"]], "data": {"ts": 1_700_000_000_000}}
        users = {spoof(conv): receipt, conv.remote.user("carol"): receipt}
        edu = {"edu_type": "m.receipt", "content": {conv.room_id: {"m.read": users}}}
        r = conv.send(conv.txn([], [edu]))
        assert r.status_code == 200, r.text
        carol = conv.remote.user("carol")
        return observed(
            wait_until(
                lambda: carol in read_receipts(conv, "read_me") and read_receipts(conv, "read_me")
            )
        )

    return act


def foreign_auth(conv: Conversation) -> httpx.Response:
    """Fred, in no room of the target, changes its topic citing his own room's events as
    auth (his power 100 there): the target must not let it change the room's state."""
    _room_id, state, _events = remote_room(conv, "auth")
    ev = conv.pdu("fred", "m.room.topic", {"topic": "taken over"}, state_key="", state=state)
    conv.named["foreign_auth"] = conv.event_id(ev)
    sent = conv.send(conv.txn([ev]))
    if sent.status_code != 200:
        return sent
    topic = conv.client("GET", f"/rooms/{q(conv.room_id)}/state/m.room.topic/").json()
    # Its /send result is compared in the rejected rows (REJECTED_RESULT): here the state.
    return observed({"topic": topic.get("topic")})


def carol_devices(conv: Conversation) -> list[str]:
    """The device ids Alice's client is given for Carol."""
    carol = conv.remote.user("carol")
    r = conv.client("POST", "/keys/query", json={"device_keys": {carol: []}})
    return sorted(r.json().get("device_keys", {}).get(carol, {}))


def asked_for_devices(conv: Conversation, since: int) -> bool:
    path = f"/_matrix/federation/v1/user/devices/{conv.remote.user('carol')}"
    return any(
        m == "GET" and p.replace("%40", "@").replace("%3A", ":") == path
        for m, p in conv.remote.received[since:]
    )


def device_update(conv: Conversation, device_id: str, stream: int, prev: int) -> dict[str, Any]:
    """Carol's m.device_list_update; her stream ids go up with each room version's run (one
    Carol for all)."""
    carol = conv.remote.user("carol")
    base = 100 * int(conv.version)
    return {
        "edu_type": "m.device_list_update",
        "content": {
            "user_id": carol,
            "device_id": device_id,
            "stream_id": base + stream,
            "prev_id": [base + prev],
            "deleted": False,
            "keys": conv.remote.device_keys(carol, device_id),
        },
    }


def device_list_gap(conv: Conversation) -> httpx.Response:
    """An m.device_list_update whose prev_id (5) the target never had: it must resync over
    /user/devices (which now answers CAROLDEV at stream 7), and Alice is shown that answer."""
    carol = conv.remote.user("carol")
    listed = {"device_id": "CAROLDEV", "keys": conv.remote.device_keys(carol, "CAROLDEV")}
    base = 100 * int(conv.version)
    conv.remote.devices[carol] = (base + 4, [listed])
    # The target only tracks Carol's devices once a local user cares: Alice asks for them
    # (which may resync already, at stream 4: only what the EDU makes the target ask counts).
    carol_devices(conv)
    conv.remote.devices[carol] = (base + 7, [listed])
    before = len(conv.remote.received)
    r = conv.send(conv.txn([], [device_update(conv, "CAROLGAP", 7, 5)]))
    assert r.status_code == 200, r.text
    asked = wait_until(lambda: asked_for_devices(conv, before))
    shown = wait_until(lambda: "CAROLDEV" in carol_devices(conv) and carol_devices(conv))
    return observed({"resynced": bool(asked), "devices": shown})


def device_list_next(conv: Conversation) -> httpx.Response:
    """The update after the resync's stream id: Alice is shown the new device. (Whether the
    target resyncs is not compared: Synapse retries a first contact's resync on its own
    clock, so /user/devices answers the new device too.)"""
    carol = conv.remote.user("carol")
    update = device_update(conv, "CAROLNEW", 8, 7)
    listed = conv.remote.devices[carol][1]
    new = {"device_id": "CAROLNEW", "keys": update["content"]["keys"]}
    conv.remote.devices[carol] = (update["content"]["stream_id"], [*listed, new])
    r = conv.send(conv.txn([], [update]))
    assert r.status_code == 200, r.text
    return observed(wait_until(lambda: "CAROLNEW" in carol_devices(conv) and carol_devices(conv)))


def soft_failed(conv: Conversation) -> httpx.Response:
    """Dave joins, Alice kicks him, then his message built before the kick arrives."""
    r, join = conv.join("dave")
    assert r.status_code == 200, r.text
    dave = conv.remote.user("dave")
    conv.client("POST", f"/rooms/{q(conv.room_id)}/kick", json={"user_id": dave}).raise_for_status()
    ev = conv.pdu(
        "dave",
        "m.room.message",
        {"msgtype": "m.text", "body": "after my kick"},
        prev_events=[conv.event_id(join)],
    )
    conv.named["soft_failed"] = conv.event_id(ev)
    sent = conv.send(conv.txn([ev]))
    assert sent.status_code == 200, sent.text
    shown = conv.client(
        "GET", f"/rooms/{q(conv.room_id)}/messages", params={"dir": "b", "limit": 50}
    ).json()
    bodies = [e["content"].get("body") for e in shown["chunk"] if e["type"] == "m.room.message"]
    return observed({"result": pdu_results(conv, sent), "shown": "after my kick" in bodies})


def client_event(name: str) -> Any:
    def act(conv: Conversation) -> httpx.Response:
        return conv.client("GET", f"/rooms/{q(conv.room_id)}/event/{q(conv.named[name])}")

    return act


def room_state(conv: Conversation) -> httpx.Response:
    """Gina's join is a kept difference (Synapse takes a send_join whose path names another
    event), so her membership is not compared."""
    events = conv.client("GET", f"/rooms/{q(conv.room_id)}/state").json()
    gina = conv.remote.user("gina")
    return observed(
        sorted(
            [e["type"], e["state_key"], e["content"].get("membership")]
            for e in events
            if e["type"] in ("m.room.member", "m.room.power_levels", "m.room.join_rules")
            and e["state_key"] != gina
        )
    )


def private_room(conv: Conversation) -> httpx.Response:
    """Alice's invite-only room, with one message, that no user of the remote is in."""
    room_id = conv.alice.create_room(preset="private_chat", room_version=conv.version)
    conv.named["private_room"] = room_id
    conv.named["private_msg"] = conv.alice.send(room_id, "not for the remote")
    return observed({})


def in_private(path: str, **query: str) -> Any:
    """A request about the private room: `{room}` and `{msg}` filled in; query values naming
    `msg` become its event id."""

    def make(conv: Conversation) -> Request:
        room, msg = conv.named["private_room"], conv.named["private_msg"]
        params = {k: (msg if v == "msg" else v) for k, v in query.items()}
        return Request("GET", path.format(room=q(room), msg=q(msg)), query=params or None)

    return make


def bad_leave(kind: str) -> Any:
    """A leave the target must refuse, built from a genuine template for Carol."""

    def act(conv: Conversation) -> httpx.Response:
        made = conv.send(make_leave(lambda c: c.remote.user("carol"))(conv))
        template = made.json()["event"]
        if kind == "not_leave":
            template["content"] = {"membership": "join"}
        ev = conv.remote.signed_template(conv.version, template)
        eid = conv.event_id(ev)
        if kind == "bad_signature":
            ev = copy.deepcopy(ev)
            sigs = ev["signatures"][conv.remote.name]
            key_id = next(iter(sigs))
            sigs[key_id] = "A" * len(sigs[key_id])
        return conv.send(Request("PUT", f"{V2}/send_leave/{q(conv.room_id)}/{q(eid)}", body=ev))

    return act


def backfill_joined_history(conv: Conversation) -> httpx.Response:
    """A public room whose history is visible to members only since they joined: Alice
    writes, then Carol joins, then Alice writes again; the remote backfills it all. What
    came before Carol's join must not reach her server intact."""
    saved = (conv.room_id, dict(conv.state), list(conv.tip), conv.depth)
    room_id = conv.alice.create_room(
        preset="public_chat",
        room_version=conv.version,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "joined"},
            },
            {
                "type": "m.room.guest_access",
                "state_key": "",
                "content": {"guest_access": "forbidden"},
            },
        ],
    )
    conv.named["joined_room"] = room_id
    conv.alice.send(room_id, "before carol")
    conv.room_id, conv.state, conv.tip, conv.depth = room_id, {}, [], 0
    try:
        r, _ = conv.join("carol")
        assert r.status_code == 200, r.text
    finally:
        conv.room_id, conv.state, conv.tip, conv.depth = saved
    last = conv.alice.send(room_id, "after carol")
    r = conv.send(Request("GET", f"{V1}/backfill/{q(room_id)}", query={"v": last, "limit": "20"}))
    if r.status_code != 200:
        return r
    return observed(
        sorted(
            [e["type"], e["content"].get("body", "(no body)")]
            for e in r.json()["pdus"]
            if e["type"] == "m.room.message"
        )
    )


def carol(conv: Conversation) -> str:
    return conv.remote.user("carol")


def alice(conv: Conversation) -> str:
    return conv.alice.user_id


# -- server ACLs: Zoe's server (`conv.other`) denied, Carol's (`conv.remote`) allowed ----------


@dataclass(frozen=True)
class Side:
    """Who acts in an ACL row: a user (by localpart) of Zoe's server, which the room's ACL
    denies, or of Carol's, which it allows. Twin rows differ only in their side."""

    server: Callable[[Conversation], FakeRemote]
    localpart: str

    def user(self, conv: Conversation) -> str:
        return self.server(conv).user(self.localpart)

    def named(self, localpart: str) -> Side:
        """Another user of the same server."""
        return replace(self, localpart=localpart)

    def sends(self, make: Callable[[Conversation], Request]) -> Act:
        """The request `make` builds, sent by this side's server."""
        return lambda conv: conv.send(make(conv), self.server(conv))

    def transaction(
        self,
        conv: Conversation,
        pdus: list[dict[str, Any]],
        edus: list[dict[str, Any]] | None = None,
    ) -> httpx.Response:
        """A /send transaction from this side's server."""
        server = self.server(conv)
        return conv.send(conv.txn(pdus, edus, remote=server), server)


ZOE = Side(lambda conv: conv.other, "zoe")
CAROL = Side(lambda conv: conv.remote, "carol")


def acl_twins(
    name: str,
    act: Callable[[Side], Act],
    view: View = no_view,
    *,
    denied: Side = ZOE,
    allowed: Side = CAROL,
    denied_known: str | None = None,
) -> list[Row]:
    """The same act by a user of the denied server (refused), then by one of the allowed.
    `denied_known`: a difference we keep in what the denied server is answered."""
    return [
        Row(f"acl denied: {name}", act(denied), view, denied_known),
        Row(f"acl allowed twin: {name}", act(allowed), view),
    ]


def acl_request_twins(
    name: str,
    make: Callable[[Conversation], Request],
    view: View = no_view,
    *,
    denied_known: str | None = None,
) -> list[Row]:
    """The request `make` builds (the same from either server), as ACL twins."""
    return acl_twins(name, lambda side: side.sends(make), view, denied_known=denied_known)


def bob(conv: Conversation) -> str:
    """A local user of the target in none of its rooms (registered on both)."""
    return f"@bob:{conv.server_name}"


def set_acl(
    content: dict[str, Any] | Callable[[Conversation], dict[str, Any]],
    room: Callable[[Conversation], str] | None = None,
) -> Act:
    """Alice sets the server ACL `content` (or `content(conv)`) of her room (or of `room(conv)`)
    from her client; the remote learns the event of her room, the one it builds on."""

    def act(conv: Conversation) -> httpx.Response:
        room_id = room(conv) if room else conv.room_id
        body = content(conv) if callable(content) else content
        r = conv.client("PUT", f"/rooms/{q(room_id)}/state/m.room.server_acl/", json=body)
        if r.status_code == 200 and room is None:
            conv.learn("acl", r.json()["event_id"])
        return r

    return act


ALLOW_ALL = {"allow": ["*"]}


def deny_zoe(conv: Conversation) -> dict[str, Any]:
    """An ACL denying Zoe's server by name, allowing every other."""
    return {"allow": ["*"], "deny": [ZOE.server(conv).host]}


def acl_denying_self(conv: Conversation) -> httpx.Response:
    """Alice's ACL denying IP literals, her own server's name among them. Where it is taken
    (Synapse: a kept difference) the room's ACL is put back at once, so the rows after see
    the same room on both."""
    r = set_acl({"allow": ["*"], "allow_ip_literals": False})(conv)
    if r.status_code == 200:
        back = set_acl(ALLOW_ALL)(conv)
        assert back.status_code == 200, back.text
    return r


def join_other(conv: Conversation) -> httpx.Response:
    return conv.join(ZOE.localpart, remote=ZOE.server(conv))[0]


def join_by_hand(side: Side) -> Act:
    """A send_join of `side`'s join event built without make_join (the denied server gets none)."""

    def make(conv: Conversation) -> Request:
        user = side.user(conv)
        ev = conv.pdu(
            side.localpart,
            "m.room.member",
            {"membership": "join"},
            state_key=user,
            remote=side.server(conv),
        )
        return Request("PUT", f"{V2}/send_join/{q(conv.room_id)}/{q(conv.event_id(ev))}", body=ev)

    return side.sends(make)


def invite_into_room(side: Side) -> Act:
    """An invite of Bob into Alice's room by `side`'s user."""

    def make(conv: Conversation) -> Request:
        ev = conv.pdu(
            side.localpart,
            "m.room.member",
            {"membership": "invite"},
            state_key=bob(conv),
            remote=side.server(conv),
        )
        body = {"event": ev, "room_version": conv.version, "invite_room_state": []}
        return Request("PUT", f"{V2}/invite/{q(conv.room_id)}/{q(conv.event_id(ev))}", body=body)

    return side.sends(make)


def send_from(side: Side, name: str) -> Act:
    """A message of `side`'s user; accepted ones become the remote's tip."""

    def act(conv: Conversation) -> httpx.Response:
        ev = conv.pdu(
            side.localpart,
            "m.room.message",
            {"msgtype": "m.text", "body": f"from {side.localpart}"},
            remote=side.server(conv),
        )
        r = side.transaction(conv, [ev])
        if r.status_code == 200 and r.json()["pdus"].get(conv.event_id(ev)) == {}:
            conv.advance(name, ev)
        else:
            conv.named[name] = conv.event_id(ev)
        return r

    return act


def acl_typing(conv: Conversation) -> httpx.Response:
    """Zoe (denied server) and Carol type: whom does Alice see?"""
    for side in (ZOE, CAROL):
        edu = typing_edu(side.user(conv))
        edu["content"]["room_id"] = conv.room_id
        r = side.transaction(conv, [], [edu])
        assert r.status_code == 200, r.text
    ours = {ZOE.user(conv), CAROL.user(conv)}  # Zed of an earlier row may still show on Synapse

    def seen() -> list[str]:
        return [u for u in typing_users(conv) if u in ours]

    shown = wait_until(lambda: CAROL.user(conv) in seen() and seen())
    for side in (ZOE, CAROL):
        stop = typing_edu(side.user(conv), typing=False)
        stop["content"]["room_id"] = conv.room_id
        side.transaction(conv, [], [stop])
    wait_until(lambda: not seen())
    return observed(shown)


def acl_receipts(conv: Conversation) -> httpx.Response:
    """Zoe (denied server) and Carol read Alice's newest message: whose receipt shows?"""
    conv.named["acl_read"] = conv.alice.send(conv.room_id, "read me too")
    receipt = {"event_ids": [conv.named["acl_read"]], "data": {"ts": 1_700_000_000_000}}
    for side in (ZOE, CAROL):
        read = {conv.room_id: {"m.read": {side.user(conv): receipt}}}
        r = side.transaction(conv, [], [{"edu_type": "m.receipt", "content": read}])
        assert r.status_code == 200, r.text
    return observed(
        wait_until(
            lambda: (
                carol(conv) in read_receipts(conv, "acl_read") and read_receipts(conv, "acl_read")
            )
        )
    )


def give_carol_power(conv: Conversation) -> httpx.Response:
    """Alice gives Carol power 100 (enough for m.room.server_acl on both)."""
    path = f"/rooms/{q(conv.room_id)}/state/m.room.power_levels/"
    levels = conv.client("GET", path).json()
    levels.setdefault("users", {})[carol(conv)] = 100
    r = conv.client("PUT", path, json=levels)
    if r.status_code == 200:
        conv.learn("carol_power", r.json()["event_id"])
    return r


def carol_denies_ip_literals(conv: Conversation) -> httpx.Response:
    """Carol's ACL denying IP literals: her own server (127.x.y.z:port) with it."""
    ev = conv.pdu(
        "carol",
        "m.room.server_acl",
        {"allow": ["*"], "allow_ip_literals": False},
        state_key="",
    )
    r = conv.send(conv.txn([ev]))
    if r.status_code == 200 and r.json()["pdus"].get(conv.event_id(ev)) == {}:
        conv.advance("acl_no_ip", ev)
        # Synapse answers /send a moment before the room's state holds the event.
        path = f"/rooms/{q(conv.room_id)}/state/m.room.server_acl/"
        wait_until(lambda: conv.client("GET", path).json().get("allow_ip_literals") is False)
    return r


# -- knocking ------------------------------------------------------------------------------


def knock_room(version: str | None) -> Any:
    """Alice's room with the knock join rule, of `version` (None: the conversation's)."""

    def act(conv: Conversation) -> httpx.Response:
        room_id = conv.alice.create_room(
            preset="private_chat",
            room_version=version or conv.version,
            initial_state=[
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
            ],
        )
        conv.named[f"knock_room_{version}"] = room_id
        return observed({})

    return act


def make_knock(room_of: Any, user: Any, ver: Any) -> Any:
    def make(conv: Conversation) -> Request:
        return Request(
            "GET",
            f"{V1}/make_knock/{q(room_of(conv))}/{q(user(conv))}",
            query={"ver": ver(conv)},
        )

    return make


def knock_room_of(version: str | None) -> Any:
    return lambda conv: conv.named[f"knock_room_{version}"]


def knock_view(conv: Conversation, r: httpx.Response) -> Any:
    return sorted((e["type"], e.get("state_key")) for e in r.json()["knock_room_state"])


def knock(version: str | None, localpart: str, kind: str = "good") -> Any:
    """make_knock then send_knock as `localpart` of the remote, in the knock room of
    `version`; `kind` spoils the event (bad_signature, not_knock)."""

    def act(conv: Conversation) -> httpx.Response:
        kv = version or conv.version
        rv = room_version(kv)
        assert rv is not None
        room_id = conv.named[f"knock_room_{version}"]
        user = conv.remote.user(localpart)
        made = conv.send(make_knock(lambda c: room_id, lambda c: user, lambda c: [kv])(conv))
        assert made.status_code == 200, made.text
        template = made.json()["event"]
        if kind == "not_knock":
            template["content"] = {"membership": "join"}
        ev = conv.remote.signed_template(kv, template)
        eid = Pdu.from_dict(ev, rv).event_id
        if kind == "bad_signature":
            ev = copy.deepcopy(ev)
            sigs = ev["signatures"][conv.remote.name]
            key_id = next(iter(sigs))
            sigs[key_id] = "A" * len(sigs[key_id])
        return conv.send(Request("PUT", f"{V1}/send_knock/{q(room_id)}/{q(eid)}", body=ev))

    return act


def knocker_membership(version: str | None, localpart: str) -> Any:
    """What Alice's client says of `localpart`'s membership in the knock room."""

    def act(conv: Conversation) -> httpx.Response:
        room_id = conv.named[f"knock_room_{version}"]
        user = conv.remote.user(localpart)
        path = f"/rooms/{q(room_id)}/state/m.room.member/{q(user)}"
        shown = wait_until(lambda: conv.client("GET", path).json().get("membership"))
        return observed({"membership": shown})

    return act


# -- invites: room versions, signatures, invite_room_state ----------------------------------


def invite_state_seen(conv: Conversation) -> httpx.Response:
    """An invite of Alice with the room's create, join rules and Fred's membership as
    invite_room_state: what her client's /sync shows of the invite."""
    room_id, state, events = remote_room(conv, "istate")
    ev = conv.remote.event(
        conv.version,
        room_id=room_id,
        sender=conv.remote.user("fred"),
        type_="m.room.member",
        content={"membership": "invite"},
        state=state,
        prev_events=[conv.event_id(events[-1])],
        depth=len(events) + 1,
        state_key=conv.alice.user_id,
    )
    eid = conv.event_id(ev)
    stripped = [conv.remote.stripped(e, conv.version) for e in events]
    body = {"event": ev, "room_version": conv.version, "invite_room_state": stripped}
    r = conv.send(Request("PUT", f"{V2}/invite/{q(room_id)}/{q(eid)}", body=body))
    if r.status_code != 200:
        return r

    def invite_state() -> Any:
        rooms = fresh_sync(conv).json().get("rooms", {}).get("invite", {})
        events = rooms.get(room_id, {}).get("invite_state", {}).get("events")
        return events and sorted((e["type"], e["state_key"]) for e in events)

    return observed(wait_until(invite_state))


# -- EDUs about a room the origin's server is not in ----------------------------------------


def typing_elsewhere(conv: Conversation) -> httpx.Response:
    """Carol 'types' in Alice's private room (no user of the remote is in it), in the same
    transaction as a genuine typing notification in Alice's room."""
    edus = []
    for room_id in (conv.named["private_room"], conv.room_id):
        edu = typing_edu(carol(conv))
        edu["content"]["room_id"] = room_id
        edus.append(edu)
    r = conv.send(conv.txn([], edus))
    assert r.status_code == 200, r.text
    wait_until(lambda: carol(conv) in typing_users(conv))
    shown = typing_users(conv, conv.named["private_room"])
    stop = typing_edu(carol(conv), typing=False)
    stop["content"]["room_id"] = conv.room_id
    conv.send(conv.txn([], [stop]))
    wait_until(lambda: carol(conv) not in typing_users(conv))
    return observed(shown)


def receipt_elsewhere(conv: Conversation) -> httpx.Response:
    """Carol's receipt on Alice's private message (her server is not in that room), in the
    same EDU as a genuine one in Alice's room."""
    conv.named["read_here"] = conv.alice.send(conv.room_id, "read here")
    receipt: dict[str, Any] = {"data": {"ts": 1_700_000_000_000}}
    content = {
        conv.named["private_room"]: {
            "m.read": {carol(conv): receipt | {"event_ids": [conv.named["private_msg"]]}}
        },
        conv.room_id: {"m.read": {carol(conv): receipt | {"event_ids": [conv.named["read_here"]]}}},
    }
    r = conv.send(conv.txn([], [{"edu_type": "m.receipt", "content": content}]))
    assert r.status_code == 200, r.text
    wait_until(lambda: carol(conv) in read_receipts(conv, "read_here"))
    return observed(read_receipts(conv, "private_msg", conv.named["private_room"]))


def served_soon(conv: Conversation, name: str) -> httpx.Response:
    """/event of `name`, asked again while it is not found: Synapse answers /send before an
    event it accepted can be read back (a 404 for a moment)."""
    answers: list[httpx.Response] = []

    def found() -> bool:
        answers.append(conv.send(event(name)(conv)))
        return answers[-1].status_code == 200

    wait_until(found, timeout=10)
    return answers[-1]


# -- redactions (v11 moved `redacts` into the content) ---------------------------------------


def redaction(where: str) -> Any:
    """Carol writes a message and redacts it, `redacts` placed where the room version reads
    it ('right') or only where it does not ('wrong'); then the message as served."""

    def act(conv: Conversation) -> httpx.Response:
        name = f"redacted_{where}"
        ev = message(conv, name, "soon gone")
        r = conv.send(conv.txn([ev]))
        assert r.status_code == 200, r.text
        conv.advance(name, ev)
        in_content = conv.rules.updated_redaction_rules == (where == "right")
        target = conv.named[name]
        red = conv.pdu(
            "carol",
            "m.room.redaction",
            {"redacts": target} if in_content else {},
            **({} if in_content else {"redacts": target}),
        )
        sent = conv.send(conv.txn([red]))
        if sent.status_code != 200:
            return sent
        conv.advance(f"redaction_{where}", red)
        # Synapse applies a redaction it took over /send a moment later: once the redaction
        # itself is served, the redacted event is served redacted.
        served_soon(conv, f"redaction_{where}")
        return served_soon(conv, name)

    return act


# Differences we keep, each with its reason (README: "Differences from Synapse we keep").
SYNAPSE_500 = (
    "Synapse answers 500 M_UNKNOWN to a missing or malformed parameter it does not check; "
    "we answer the 400 the spec's parameter rules call for"
)
PDUS_LIST = "the spec says pdus is an array; Synapse iterates an object as if empty"
REJECTED_RESULT = (
    "a PDU that fails the auth rules gets an error in its /send result (the spec: 'what went "
    "wrong in processing this PDU'); Synapse stores it as rejected and answers {}"
)
REJECTED_SERVED = (
    "a rejected event is never served (issue 20: 'rejected events never served'); Synapse "
    "serves it from /event"
)
GME_LISTS = "earliest_events and latest_events are required arrays; Synapse answers 200 empty"
JOIN_ID = (
    "the path's event id must be the event's (the spec's eventId); Synapse takes the join "
    "whatever the path says"
)
INVITE_NOBODY = (
    "we do not sign an invite for a user we do not have (404); Synapse signs it, so the room "
    "believes someone who does not exist was invited"
)
USER_SIGNING = (
    "the spec's federation keys/query answer has no user_signing_keys (a user's own); Synapse "
    "adds an empty map"
)
MIN_DEPTH = (
    "the spec's min_depth is the minimum depth of events to return: none here; Synapse "
    "(earliest_events empty) answers the room's first events"
)
EDU_MEMBER = (
    "typing and receipts count only from a user joined to the room; Synapse takes them from "
    "any user of a server in the room, so a user who never joined shows as typing"
)
REQUIRED_BODY = "the field is required by the spec; Synapse answers 200 with nothing"
INVITE_VERSION = (
    "the spec's invite v2 answer to a room version we do not support is 400 "
    "M_INCOMPATIBLE_ROOM_VERSION with room_version; Synapse answers M_UNSUPPORTED_ROOM_VERSION"
)
ACL_EVENT = (
    "issue 20 has /event refused to a server the event's room ACL denies; Synapse serves it "
    "(the spec's list of endpoints an ACL must guard does not name /event)"
)
ACL_SELF = (
    "an ACL that would deny our own server is refused (both refuse one by name); Synapse "
    "compares IP literals with the port still on its own name (127.0.0.1:8448) and takes an "
    "allow_ip_literals false that denies it, the spec says the port is not considered"
)

ROWS: list[Row] = [
    # /send
    Row("send: a valid message", send_message, pdu_results),
    request_row("send: 51 PDUs", send_many(51), pdu_results),
    request_row(
        "send: 101 EDUs",
        lambda c: c.txn([], [{"edu_type": "org.example.nothing", "content": {}}] * 101),
    ),
    request_row(
        "send: 100 EDUs",
        lambda c: c.txn([], [{"edu_type": "org.example.nothing", "content": {}}] * 100),
        whole_body,
    ),
    request_row(
        "send: pdus not a list",
        lambda c: Request(
            "PUT",
            f"{V1}/send/{uuid.uuid4().hex}",
            body={"origin": c.remote.name, "origin_server_ts": 1, "pdus": {}},
        ),
        known=PDUS_LIST,
    ),
    request_row(
        "send: no pdus",
        lambda c: Request(
            "PUT",
            f"{V1}/send/{uuid.uuid4().hex}",
            body={"origin": c.remote.name, "origin_server_ts": 1},
        ),
    ),
    request_row("send: a PDU with a bad signature", send_bad_signature, pdu_results),
    request_row("send: content not matching its hash", send_content_changed, pdu_results),
    request_row("send: a PDU for a room we do not know", send_unknown_room, pdu_results),
    request_row("send: a PDU that fails auth", send_rejected, pdu_results, known=REJECTED_RESULT),
    request_row(
        "send: unsigned", lambda c: Request("PUT", f"{V1}/send/x", body={"pdus": []}, signed=False)
    ),
    # /event
    request_row("event: a message", event("msg"), first_pdu),
    Row("send: auth events from another room", foreign_auth, whole_body),
    request_row("event: unknown", event("nope")),
    request_row("event: rejected is never served", event("rejected"), known=REJECTED_SERVED),
    request_row("event: bad signature never stored", event("badsig")),
    request_row("send: 50 PDUs", send_many(50), lambda c, r: len(r.json()["pdus"])),
    Row("redaction: redacts where the room version reads it", redaction("right"), first_pdu),
    Row("redaction: redacts where the room version ignores it", redaction("wrong"), first_pdu),
    # /state, /state_ids
    request_row("state: at a message", room_read("state", "msg"), state_view),
    request_row("state: no event_id", room_read("state", None)),
    request_row("state: unknown event", room_read("state", "nope")),
    request_row("state_ids: at a message", room_read("state_ids", "msg"), state_ids_view),
    request_row("state_ids: no event_id", room_read("state_ids", None)),
    request_row("state_ids: unknown event", room_read("state_ids", "nope")),
    request_row("state_ids: rejected event", room_read("state_ids", "rejected")),
    # /event_auth
    request_row("event_auth: a message", event_auth("msg"), auth_chain_view),
    request_row("event_auth: unknown event", event_auth("nope")),
    # /backfill
    request_row("backfill: from the message", backfill("msg", "2"), pdu_types),
    request_row("backfill: limit 1", backfill("msg", "1"), pdu_types),
    request_row("backfill: no v", backfill(None, "2"), known=SYNAPSE_500),
    request_row("backfill: no limit", backfill("msg", None)),
    request_row("backfill: limit not a number", backfill("msg", "many")),
    request_row("backfill: unknown v", backfill("nope", "5"), pdu_types),
    # /get_missing_events
    request_row(
        "get_missing_events: between join and message",
        missing(
            lambda c: {
                "earliest_events": [c.named["join_carol"]],
                "latest_events": [c.named["msg"]],
                "limit": 10,
            }
        ),
        missing_view,
    ),
    request_row(
        "get_missing_events: latest_events not a list",
        missing({"earliest_events": [], "latest_events": "x"}),
        known=GME_LISTS,
    ),
    request_row("get_missing_events: no body fields", missing({})),
    request_row(
        "get_missing_events: min_depth above everything",
        missing(
            lambda c: {
                "earliest_events": [],
                "latest_events": [c.named["msg"]],
                "limit": 10,
                "min_depth": 1000,
            }
        ),
        missing_view,
        known=MIN_DEPTH,
    ),
    request_row(
        "get_missing_events: limit 1",
        missing(lambda c: {"earliest_events": [], "latest_events": [c.named["msg"]], "limit": 1}),
        missing_view,
    ),
    request_row(
        "get_missing_events: limit not a number",
        missing(
            lambda c: {"earliest_events": [], "latest_events": [c.named["msg"]], "limit": "ten"}
        ),
        known=SYNAPSE_500,
    ),
    # make_join / send_join
    request_row("make_join: a local user", make_join(alice)),
    request_row("make_join: another server's user", make_join(lambda c: "@x:other.example")),
    request_row(
        "make_join: unknown room", make_join(carol, room=lambda c: f"!nope:{c.server_name}")
    ),
    request_row("make_join: version not supported", make_join(carol, ver="1")),
    request_row("make_join: template", make_join(lambda c: c.remote.user("frank")), template_view),
    request_row(
        "make_join: the template's auth events",
        make_join(lambda c: c.remote.user("frank")),
        template_auth_view,
    ),
    Row("power levels: the creators listed", creators_listed, whole_body),
    Row("send_join v1: Dave joins", join_as("dave", v1=True), send_join_view),
    Row("send_join v2 omit_members: Erin joins", join_omitting_members, send_join_view),
    Row("send_join: bad signature", bad_join("bad_signature")),
    Row("send_join: event id not the path's", bad_join("id_mismatch"), known=JOIN_ID),
    Row("send_join: not a join", bad_join("not_join")),
    Row("send_join: a local user's join", bad_join("local_user")),
    # make_leave / send_leave
    request_row("make_leave: a local user", make_leave(alice)),
    request_row("make_leave: Dave", make_leave(lambda c: c.remote.user("dave")), template_view),
    Row("send_leave v1: Dave leaves", leave_as("dave", v1=True), leave_view),
    Row("send_leave v2: Erin leaves", leave_as("erin", v1=False), leave_view),
    Row("send_leave: bad signature", bad_leave("bad_signature")),
    Row("send_leave: not a leave", bad_leave("not_leave")),
    # make_knock / send_knock
    request_row(
        "make_knock: a room whose join rule is public",
        make_knock(lambda c: c.room_id, lambda c: c.remote.user("kim"), lambda c: [c.version]),
    ),
    Row("knock room: made", knock_room(None), whole_body),
    request_row(
        "make_knock: versions without knocking",
        make_knock(knock_room_of(None), lambda c: c.remote.user("kim"), lambda c: ["6"]),
    ),
    request_row(
        "make_knock: a local user",
        make_knock(knock_room_of(None), alice, lambda c: [c.version]),
    ),
    request_row(
        "make_knock: template",
        make_knock(knock_room_of(None), lambda c: c.remote.user("kim"), lambda c: [c.version]),
        template_view,
    ),
    Row("send_knock: bad signature", knock(None, "kim", "bad_signature")),
    Row("send_knock: not a knock", knock(None, "kim", "not_knock")),
    Row("send_knock: Kim knocks", knock(None, "kim"), knock_view),
    Row("send_knock: Alice sees Kim knocking", knocker_membership(None, "kim"), whole_body),
    Row("knock room v7: made", knock_room("7"), whole_body),
    Row("send_knock v7: Kim knocks", knock("7", "kim"), knock_view),
    Row("send_knock v7: Alice sees Kim knocking", knocker_membership("7", "kim"), whole_body),
    # a room the remote has no user in
    Row("private room: made", private_room, whole_body),
    request_row("private room: /event", in_private(f"{V1}/event/{{msg}}")),
    request_row("private room: /state_ids", in_private(f"{V1}/state_ids/{{room}}", event_id="msg")),
    request_row("private room: /state", in_private(f"{V1}/state/{{room}}", event_id="msg")),
    request_row("private room: /event_auth", in_private(f"{V1}/event_auth/{{room}}/{{msg}}")),
    request_row(
        "private room: /backfill", in_private(f"{V1}/backfill/{{room}}", v="msg", limit="5")
    ),
    request_row(
        "private room: make_join",
        lambda c: Request(
            "GET",
            f"{V1}/make_join/{q(c.named['private_room'])}/{q(c.remote.user('carol'))}",
            query={"ver": c.version},
        ),
    ),
    Row("backfill: history before the server joined", backfill_joined_history, whole_body),
    # /invite
    Row("invite v2: Alice", invite("v2"), invite_view),
    # v1 invites carry no room version: both servers read the event as room version 1 and
    # find a newer-format event malformed (M_BAD_JSON).
    Row("invite v1: Alice", invite("v1"), invite_view),
    Row(
        "invite v2: an unknown local user",
        invite("v2", user=lambda c: f"@nobody:{c.server_name}"),
        known=INVITE_NOBODY,
    ),
    Row("invite v2: another server's user", invite("v2", user=lambda c: "@x:other.example")),
    Row("invite v2: bad signature", invite("v2", tamper=True)),
    Row("invite v1: Alice to a version 1 room", invite("v1", in_version="1"), invite_view),
    Row("invite v1: bad signature", invite("v1", tamper=True, in_version="1")),
    Row("invite v2: Alice to a version 1 room", invite("v2", in_version="1"), invite_view),
    Row(
        "invite v2: an unsupported room_version",
        invite("v2", room_version="999"),
        known=INVITE_VERSION,
    ),
    Row("invite v2: room_version not the room's", invite("v2", room_version="9")),
    Row("invite v2: invite_room_state not a list", invite("v2", room_state="create")),
    Row("invite v2: invite_room_state reaches Alice", invite_state_seen, whole_body),
    Row("invite v2: no room_version", invite("v2", room_version=None), known=SYNAPSE_500),
    # /query
    request_row(
        "query/directory: the room's alias",
        query("query/directory", lambda c: {"room_alias": c.alias}),
        lambda c, r: (r.json()["room_id"], sorted(c.normalize(r.json()["servers"]))),
    ),
    request_row(
        "query/directory: unknown alias",
        query("query/directory", lambda c: {"room_alias": f"#nope:{c.server_name}"}),
    ),
    request_row(
        "query/directory: another server's alias",
        query("query/directory", lambda c: {"room_alias": "#nope:other.example"}),
    ),
    request_row(
        "query/directory: no alias", query("query/directory", lambda c: {}), known=SYNAPSE_500
    ),
    request_row(
        "query/profile: Alice",
        query("query/profile", lambda c: {"user_id": c.alice.user_id}),
        whole_body,
    ),
    request_row(
        "query/profile: displayname",
        query("query/profile", lambda c: {"user_id": c.alice.user_id, "field": "displayname"}),
        whole_body,
    ),
    request_row(
        "query/profile: unknown field",
        query("query/profile", lambda c: {"user_id": c.alice.user_id, "field": "age"}),
    ),
    request_row(
        "query/profile: unknown user",
        query("query/profile", lambda c: {"user_id": f"@nobody:{c.server_name}"}),
    ),
    request_row(
        "query/profile: another server's user",
        query("query/profile", lambda c: {"user_id": "@x:other.example"}),
    ),
    request_row(
        "query/profile: no user_id", query("query/profile", lambda c: {}), known=SYNAPSE_500
    ),
    # /publicRooms
    request_row(
        "publicRooms GET", query("publicRooms", lambda c: {"limit": "10"}), public_rooms_view
    ),
    request_row("publicRooms GET: bad limit", query("publicRooms", lambda c: {"limit": "x"})),
    request_row(
        "publicRooms POST: matching filter",
        post("publicRooms", {"limit": 10, "filter": {"generic_search_term": "differential"}}),
        public_rooms_view,
    ),
    request_row(
        "publicRooms POST: filter matching nothing",
        post("publicRooms", {"limit": 10, "filter": {"generic_search_term": "zzzznothing"}}),
        public_rooms_view,
    ),
    request_row(
        "publicRooms POST: limit not a number",
        post("publicRooms", {"limit": "ten"}),
        known=SYNAPSE_500,
    ),
    # /user/devices, /user/keys
    request_row(
        "user/devices: Alice",
        lambda c: Request("GET", f"{V1}/user/devices/{q(c.alice.user_id)}"),
        devices_view,
    ),
    request_row(
        "user/devices: another server's user",
        lambda c: Request("GET", f"{V1}/user/devices/{q('@x:other.example')}"),
    ),
    request_row(
        "user/keys/query: Alice",
        post("user/keys/query", lambda c: {"device_keys": {c.alice.user_id: []}}),
        keys_view,
        known=USER_SIGNING,
    ),
    request_row(
        "user/keys/query: no device_keys", post("user/keys/query", {}), known=REQUIRED_BODY
    ),
    request_row(
        "user/keys/claim: nothing to claim",
        post(
            "user/keys/claim",
            lambda c: {"one_time_keys": {c.alice.user_id: {"NODEVICE": "signed_curve25519"}}},
        ),
        keys_view,
    ),
    request_row(
        "user/keys/claim: no one_time_keys", post("user/keys/claim", {}), known=REQUIRED_BODY
    ),
    # /openid/userinfo
    Row("openid/userinfo: Alice's token", openid_userinfo, whole_body),
    request_row(
        "openid/userinfo: unknown token",
        lambda c: Request(
            "GET", f"{V1}/openid/userinfo", query={"access_token": "nope"}, signed=False
        ),
    ),
    request_row(
        "openid/userinfo: no token",
        lambda c: Request("GET", f"{V1}/openid/userinfo", signed=False),
    ),
    # EDUs
    Row("typing: a user of another server", typing_checked(alice), whole_body),
    Row(
        "typing: a user not in the room",
        typing_checked(lambda c: c.remote.user("zed")),
        whole_body,
        known=EDU_MEMBER,
    ),
    Row("receipt: a user of another server", receipt_checked(alice), whole_body),
    Row(
        "receipt: a user not in the room",
        receipt_checked(lambda c: c.remote.user("zed")),
        whole_body,
        known=EDU_MEMBER,
    ),
    request_row(
        "presence: accepted",
        lambda c: c.txn(
            [],
            [
                {
                    "edu_type": "m.presence",
                    "content": {
                        "push": [
                            {
                                "user_id": c.remote.user("carol"),
                                "presence": "online",
                                "last_active_ago": 5,
                            }
                        ]
                    },
                }
            ],
        ),
        whole_body,
    ),
    Row("device_list_update: prev_id gap resyncs", device_list_gap, whole_body),
    Row("device_list_update: the next stream id applies", device_list_next, whole_body),
    Row("typing: in a room the origin's server is not in", typing_elsewhere, whole_body),
    Row("receipt: in a room the origin's server is not in", receipt_elsewhere, whole_body),
    # server ACLs: Zoe's server denied by name, Carol's allowed; then IP literals denied
    Row("acl: Zoe of another server joins", join_other, send_join_view),
    Row("acl: Alice denies Zoe's server", set_acl(deny_zoe)),
    *acl_request_twins("make_join", make_join(lambda c: c.remote.user("frank"))),
    # the denied server gets no make_join template: its join is built by hand
    Row("acl denied: send_join", join_by_hand(ZOE.named("zoe2"))),
    Row("acl allowed twin: send_join", join_as("hank"), send_join_view),
    *acl_twins("make_leave", lambda side: side.sends(make_leave(side.user)), template_view),
    *acl_request_twins("backfill", backfill("msg", "2"), pdu_types),
    *acl_request_twins("state", room_read("state", "msg"), state_view),
    *acl_request_twins("state_ids", room_read("state_ids", "msg"), state_ids_view),
    *acl_request_twins("event", event("msg"), first_pdu, denied_known=ACL_EVENT),
    *acl_request_twins("event_auth", event_auth("msg"), auth_chain_view),
    *acl_request_twins(
        "get_missing_events",
        missing(
            lambda c: {
                "earliest_events": [c.named["join_carol"]],
                "latest_events": [c.named["msg"]],
                "limit": 10,
            }
        ),
        missing_view,
    ),
    *acl_twins("invite", invite_into_room, invite_view),
    *acl_twins("/send PDU", lambda side: send_from(side, f"{side.localpart}_msg"), pdu_results),
    Row("acl: typing EDUs, denied and allowed", acl_typing, whole_body),
    Row("acl: receipt EDUs, denied and allowed", acl_receipts, whole_body),
    Row(
        "acl: Alice denies Zoe's server in the knock room",
        set_acl(deny_zoe, room=knock_room_of(None)),
    ),
    *acl_twins(
        "make_knock",
        lambda side: side.sends(make_knock(knock_room_of(None), side.user, lambda c: [c.version])),
        template_view,
        allowed=CAROL.named("kit"),
    ),
    Row("acl: Alice lifts the deny", set_acl(ALLOW_ALL)),
    Row("acl lifted at once: state", ZOE.sends(room_read("state", "msg")), state_view),
    Row("acl lifted at once: /send PDU", send_from(ZOE, "zoe_msg2"), pdu_results),
    Row(
        "acl: Alice's client ACL denying IP literals (her own server's name)",
        acl_denying_self,
        known=ACL_SELF,
    ),
    Row("acl: Alice gives Carol power", give_carol_power),
    Row("acl: Carol's ACL denies IP literals", carol_denies_ip_literals, pdu_results),
    request_row("acl ip literal: state", room_read("state", "msg"), state_view),
    request_row("acl ip literal: make_join", make_join(lambda c: c.remote.user("ivan"))),
    Row("acl ip literal: /send PDU", send_from(CAROL, "ip_msg"), pdu_results),
    Row("acl: Alice allows IP literals again", set_acl(ALLOW_ALL)),
    request_row("acl ip literal lifted: state", room_read("state", "msg"), state_view),
    # soft failure, and what clients are shown
    Row("soft failure: a kicked user's message", soft_failed, whole_body),
    Row("client /event: the rejected event", client_event("rejected")),
    Row("room state at the end", room_state, whole_body),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
@pytest.mark.parametrize(
    "conversations", VERSIONS, ids=[f"v{v}" for v in VERSIONS], indirect=True, scope="module"
)
def test_row(conversations: list[Conversation], row: Row) -> None:
    """Status, errcode and view match. Where Synapse answers an error with no Matrix error
    body (a bare `{}` or empty 404, or its own 500 for a missing parameter) only the kind of
    answer is compared: the relay always gives a Matrix error. A row with `known` must still
    differ as recorded there, so a kept difference that goes away is noticed."""
    synapse, relay = (outcome(conv, row) for conv in conversations)
    answers = " | ".join(f"{c.kind}: {c.normalize(c.last)}" for c in conversations)
    if synapse[0] >= 400 and synapse[1] is None:
        synapse, relay = synapse[:1], relay[:1]
    if row.known is not None:
        assert relay != synapse, f"kept difference gone ({row.known}); answers: {answers}"
        return
    assert relay == synapse, f"relay {relay} != synapse {synapse}; answers: {answers}"
