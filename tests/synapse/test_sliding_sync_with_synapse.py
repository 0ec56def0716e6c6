"""Differential: one scripted scenario (rooms created, joined, left, named and unnamed,
encrypted, a DM invite, a space, messages, state changes, typing, receipts, account
data, a to-device message, a restart) against a real Synapse and against the relay, each
with its own local users, both answering Simplified Sliding Sync (MSC4186); what each
answers must have the same shape: lists and their windows in order, which rooms are
sent, and per room `initial`, name, heroes, counts, `limited`, `num_live`, the timeline,
the `required_state` keys, `is_dm`, `invite_state`; the extension payloads; and a `pos`
that still works after the server restarts.

Deliberate differences, left out of the comparison: stream positions and tokens (each
server's own), `bump_stamp` values (compared by the order they put rooms in), and event
fields beyond type/state_key/sender/content; and `notification_count`/`highlight_count`,
which Synapse 1.163 always answers 0 in sliding sync (the relay counts, as its /sync)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import Pair

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
_TXN = itertools.count()

REQUIRED_STATE = [
    ["m.room.name", ""],
    ["m.room.encryption", ""],
    ["m.room.create", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.topic", "*"],
]
EXTENSIONS = {
    "to_device": {"enabled": True},
    "e2ee": {"enabled": True},
    "account_data": {"enabled": True, "lists": ["*"], "rooms": ["*"]},
    "receipts": {"enabled": True, "lists": ["*"], "rooms": ["*"]},
    "typing": {"enabled": True, "lists": ["*"], "rooms": ["*"]},
}


def _body(subscription: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "lists": {
            # A window smaller than the list, so Synapse sorts it (it leaves a list it
            # returns whole unsorted); one range a list, as Synapse's extensions assume.
            "recent": {
                "ranges": [[0, 2]],
                "required_state": REQUIRED_STATE,
                "timeline_limit": 3,
            },
            "dms": {
                "ranges": [[0, 0]],
                "timeline_limit": 1,
                "required_state": [],
                "filters": {"is_dm": True},
            },
            "invites": {
                "ranges": [[0, 0]],
                "timeline_limit": 1,
                "required_state": [],
                "filters": {"is_invite": True},
            },
            "encrypted": {
                "ranges": [[0, 0]],
                "timeline_limit": 0,
                "required_state": [["m.room.encryption", ""]],
                "filters": {"is_encrypted": True},
            },
            "not spaces": {
                "ranges": [[0, 0]],
                "timeline_limit": 0,
                "required_state": [],
                "filters": {"not_room_types": ["m.space"]},
            },
        },
        "extensions": EXTENSIONS,
    }
    if subscription is not None:
        body["room_subscriptions"] = {
            subscription: {"required_state": [["m.room.member", "*"]], "timeline_limit": 1}
        }
    return body


def _ss(user: MatrixUser, body: dict[str, Any], pos: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout": 0}
    if pos is not None:
        params["pos"] = pos
    r = user.http.post(SS, params=params, json=body)
    assert r.status_code == 200, r.text
    return r.json()


class Labels:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, value: str, label: str) -> str:
        self.names[value] = label
        return value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.names.get(value, value)
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        return value


def _event(labels: Labels, event: dict[str, Any]) -> dict[str, Any]:
    out = {
        "type": event["type"],
        "sender": labels(event["sender"]),
        "content": labels(event["content"]),
    }
    if "state_key" in event:
        out["state_key"] = labels(event["state_key"])
    return out


def _shape(labels: Labels, answer: dict[str, Any]) -> dict[str, Any]:
    lists = {
        name: {
            "count": value["count"],
            "ops": [{**op, "room_ids": labels(op["room_ids"])} for op in value.get("ops", [])],
        }
        for name, value in answer.get("lists", {}).items()
    }
    rooms = {}
    for room_id, room in answer["rooms"].items():
        shaped: dict[str, Any] = {
            key: labels(room[key])
            for key in (
                "initial",
                "name",
                "avatar",
                "heroes",
                "joined_count",
                "invited_count",
                "limited",
                "num_live",
                "is_dm",
                "unstable_expanded_timeline",
            )
            if key in room
        }
        shaped["has bump_stamp"] = "bump_stamp" in room
        shaped["has prev_batch"] = "prev_batch" in room
        shaped["timeline"] = [_event(labels, e) for e in room.get("timeline", [])]
        shaped["required_state"] = sorted(
            (e["type"], labels(e["state_key"])) for e in room.get("required_state", [])
        )
        if "invite_state" in room:
            shaped["invite_state"] = sorted(
                (e["type"], labels(e.get("state_key"))) for e in room["invite_state"]
            )
        rooms[labels(room_id)] = shaped
    ext = answer.get("extensions", {})
    extensions = {
        "to_device": [labels(e["content"]) for e in ext.get("to_device", {}).get("events", [])],
        "e2ee": {
            "counts": ext.get("e2ee", {}).get("device_one_time_keys_count"),
            "fallback": ext.get("e2ee", {}).get("device_unused_fallback_key_types"),
            "device_lists": labels(ext.get("e2ee", {}).get("device_lists")),
        },
        "account_data global": sorted(
            e["type"] for e in ext.get("account_data", {}).get("global", [])
        ),
        "account_data rooms": labels(ext.get("account_data", {}).get("rooms", {})),
        "receipts": {
            labels(room_id): sorted(
                (labels(event_id), receipt_type, labels(user))
                for event_id, by_type in receipt["content"].items()
                for receipt_type, users in by_type.items()
                for user in users
            )
            for room_id, receipt in ext.get("receipts", {}).get("rooms", {}).items()
        },
        "typing": labels(ext.get("typing", {}).get("rooms", {})),
    }
    return {"lists": lists, "rooms": rooms, "extensions": extensions}


def _order_by_bump(answer: dict[str, Any], labels: Labels) -> list[str]:
    stamps = {labels(r): v["bump_stamp"] for r, v in answer["rooms"].items() if "bump_stamp" in v}
    return sorted(stamps, key=lambda r: (-stamps[r], r))


def _scenario(login: Callable[[str], MatrixUser], restart: Callable[[], None]) -> dict[str, Any]:
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    labels = Labels()
    for user, name in ((alice, "@alice"), (bob, "@bob"), (carol, "@carol")):
        labels.add(user.user_id, name)
        # Synapse gives new users a displayname, the relay none: set one on both.
        user.call("PUT", f"/profile/{user.user_id}/displayname", json={"displayname": name[1:]})
    public = labels.add(alice.create_room(preset="public_chat", name="Public"), "!public")
    bob.join(public)
    unnamed = labels.add(carol.create_room(preset="public_chat"), "!unnamed")
    # A message first, so the room's last three events don't depend on the order of
    # createRoom's initial state (which differs between the servers).
    carol.send(unnamed, "before bob")
    bob.join(unnamed)
    encrypted = labels.add(
        alice.create_room(
            preset="public_chat",
            name="Secret",
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        ),
        "!encrypted",
    )
    bob.join(encrypted)
    left = labels.add(alice.create_room(preset="public_chat", name="Left"), "!left")
    bob.join(left)
    bob.call("POST", f"/rooms/{left}/leave", json={})
    space = labels.add(
        alice.create_room(preset="public_chat", name="Space", creation_content={"type": "m.space"}),
        "!space",
    )
    bob.join(space)
    dm = labels.add(alice.create_room(preset="trusted_private_chat", is_direct=True), "!dm")
    alice.invite(dm, bob.user_id)
    for i in range(4):
        labels.add(alice.send(public, f"p{i}"), f"$p{i}")
    carol_msg = labels.add(carol.send(unnamed, "hello from carol"), "$carol")
    alice.call("PUT", f"/rooms/{public}/state/m.room.topic/", json={"topic": "news"})
    bob.call("POST", f"/rooms/{unnamed}/receipt/m.read/{carol_msg}", json={})
    bob.call(
        "PUT", f"/user/{bob.user_id}/rooms/{public}/account_data/m.tag", json={"tags": {"u.x": {}}}
    )
    bob.call("PUT", f"/user/{bob.user_id}/account_data/m.custom", json={"a": 1})
    answers: dict[str, Any] = {}
    first = _ss(bob, _body())
    answers["initial"] = _shape(labels, first)
    answers["initial bump order"] = _order_by_bump(first, labels)

    # Things happen: a message, typing, a to-device message, a new invite list member.
    labels.add(alice.send(encrypted, "secret message"), "$secret")
    alice.call(
        "PUT", f"/rooms/{public}/typing/{alice.user_id}", json={"typing": True, "timeout": 30000}
    )
    device = bob.call("GET", "/account/whoami")["device_id"]
    alice.call(
        "PUT",
        f"/sendToDevice/m.test/t{next(_TXN)}",
        json={"messages": {bob.user_id: {device: {"ping": 1}}}},
    )
    second = _ss(bob, _body(), first["pos"])
    answers["incremental"] = _shape(labels, second)

    # A subscription to a room in no window, then a restart: the pos still holds.
    third = _ss(bob, _body(subscription=unnamed), second["pos"])
    answers["subscription"] = _shape(labels, third)
    restart()
    labels.add(carol.send(unnamed, "after the restart"), "$after")
    fourth = _ss(bob, _body(subscription=unnamed), third["pos"])
    answers["after restart"] = _shape(labels, fourth)
    return answers


def test_sliding_sync_answers_match_synapse(pair: Pair) -> None:
    def restart_synapse() -> None:
        pair.synapse.stop()
        pair.synapse.start()

    def restart_relay() -> None:
        pair.relay.stop()
        pair.relay.start()  # returns once the relay says READY=1

    for url in (pair.synapse.client_url, pair.relay.client_url):
        versions = httpx.get(f"{url}/_matrix/client/versions", timeout=30).json()
        assert versions["unstable_features"].get("org.matrix.simplified_msc3575") is True

    on_synapse = _scenario(pair.synapse_user, restart_synapse)
    on_relay = _scenario(pair.relay_user, restart_relay)
    for step in on_synapse:
        if isinstance(on_synapse[step], dict):
            for part in on_synapse[step]:
                assert on_relay[step][part] == on_synapse[step][part], (step, part)
        else:
            assert on_relay[step] == on_synapse[step], step


def test_the_sliding_sync_client_scenario_passes_on_synapse_too(pair: Pair) -> None:
    """The js-sdk sliding sync scenario the relay passes (tests/interop/) is a fair
    judge: it passes against Synapse as well."""
    from tests.interop.test_matrix_js_sdk_sliding_sync import run_sliding_scenario

    pair.synapse.register("anna", "pw a")
    pair.synapse.register("ben", "pw b")
    proc = run_sliding_scenario(pair.synapse.client_url, ("anna", "pw a", "ben", "pw b"))
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
