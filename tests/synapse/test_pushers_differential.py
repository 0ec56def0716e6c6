"""Differential: what a push gateway receives from Synapse and from a relay for the same
events; and one sequence of `/pushers/set` requests (valid ones, deletions, every
missing field, bad http data, an email pusher, an unknown kind, bodies that are no JSON
object) sent to a real Synapse 1.163.2 and to a relay; each answer has the same status and
errcode, and `GET /pushers` lists the same pushers after it (issue 14 item 3).

The relay's own extra bounds (string types, the spec's lengths, the size of `data`, the
number of pushers) are beyond what Synapse checks and are tested in
tests/client/test_pushers.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_relay
from tests.integration.matrix_client import MatrixUser
from tests.support import wait_until
from tests.synapse.conftest import fresh_synapse, side_by_side

P = "/_matrix/client/v3/pushers"
URL = "https://push.example.org/_matrix/push/v1/notify"


def _pusher(pushkey: str = "pk1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http",
        "app_id": "org.example.app",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "pushkey": pushkey,
        "lang": "en",
        "data": {"url": URL},
    }
    body.update(extra)
    return body


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in _pusher(f"no-{key}").items() if k != key}


# (case, JSON body, or raw bytes)
STEPS: list[tuple[str, Any]] = [
    ("an http pusher", _pusher()),
    ("the same again, updated", _pusher(device_display_name="Tablet")),
    ("a second pushkey", _pusher("pk2", profile_tag="tag")),
    ("plain http with the right path", _pusher("pk3", data={"url": URL.replace("https", "http")})),
    ("extra data kept", _pusher("pk4", data={"url": URL, "format": "event_id_only"})),
    ("append", _pusher("pk5", append=True)),
    ("null lang", _pusher("pk6", lang=None)),
    *[(f"no {key}", _without(key)) for key in ("kind", "app_id", "app_display_name")],
    *[(f"no {key}", _without(key)) for key in ("device_display_name", "pushkey", "lang")],
    ("no data", _without("data")),
    ("http without url", _pusher("bad1", data={})),
    ("http with null data", _pusher("bad2", data=None)),
    ("url not a string", _pusher("bad4", data={"url": ["x"]})),
    ("url with another path", _pusher("bad5", data={"url": "https://push.example.org/"})),
    ("url with a longer path", _pusher("bad6", data={"url": URL + "/x"})),
    ("url with a query", _pusher("pk7", data={"url": URL + "?x=1"})),
    ("an email pusher", _pusher("a@example.org", kind="email", data={})),
    ("an unknown kind", _pusher("pk8", kind="carrier-pigeon", data={})),
    ("delete", {"app_id": "org.example.app", "pushkey": "pk2", "kind": None}),
    ("delete again", {"app_id": "org.example.app", "pushkey": "pk2", "kind": None}),
    ("delete without pushkey", {"app_id": "org.example.app", "kind": None}),
    ("an empty object", {}),
    ("a list", [1]),
    ("not JSON", b"{nope"),
]


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MatrixUser]]:
    tmp: Path = tmp_path_factory.mktemp("pushers-diff")
    with side_by_side(tmp) as pair:
        yield pair.same_user_on_each("alice")


def _answer(user: MatrixUser, body: Any) -> tuple[int, str | None]:
    if isinstance(body, bytes):
        r = user.http.post(P + "/set", content=body)
    else:
        r = user.http.post(P + "/set", json=body)
    try:
        answer = r.json()
    except ValueError:
        return r.status_code, "(not JSON)"
    return r.status_code, answer.get("errcode") if isinstance(answer, dict) else None


def test_http_data_that_is_no_object_is_refused(users: list[MatrixUser]) -> None:
    """Synapse 1.163.2 answers 500 to an http pusher whose `data` is a string (it fails
    after the check for `url`); the relay answers that check's 400 M_MISSING_PARAM and
    stores nothing (only the relay is asked)."""
    relay = users[1]
    assert _answer(relay, _pusher("bad3", data="url")) == (400, "M_MISSING_PARAM")
    assert "bad3" not in [p["pushkey"] for p in relay.http.get(P).json()["pushers"]]


def test_pusher_requests_answer_as_synapse(users: list[MatrixUser]) -> None:
    differences = []
    for case, body in STEPS:
        synapse, relay = (_answer(user, body) for user in users)
        if synapse != relay:
            differences.append((case, "synapse", synapse, "relay", relay))
    assert differences == [], "\n".join(map(str, differences))
    listed = []
    for user in users:
        r = user.http.get(P)
        assert r.status_code == 200, r.text
        listed.append(sorted(r.json()["pushers"], key=lambda p: p["pushkey"]))
    assert listed[0] == listed[1]
    assert [p["pushkey"] for p in listed[1]] == ["pk1", "pk3", "pk4", "pk5", "pk6", "pk7", "pk8"]


# -- what a gateway receives ----------------------------------------------------------------


class _Gateway(ThreadingHTTPServer):
    received: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Gateway

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.received.append(json.loads(self.rfile.read(length))["notification"])
        answer = b'{"rejected": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _gateway() -> _Gateway:
    server = _Gateway(("127.0.0.1", 0), _Handler)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _pushes(base: str, gateway: _Gateway, users: tuple[MatrixUser, MatrixUser]) -> list[Any]:
    """Alice's pusher at `gateway`; Bob sends a message and a mention in a named room;
    what the gateway received."""
    alice, bob = users
    room_id = alice.create_room(preset="public_chat", name="Ops")
    bob.join(room_id)
    url = f"http://127.0.0.1:{gateway.server_address[1]}/_matrix/push/v1/notify"
    alice.call("POST", "/pushers/set", json=_pusher(data={"url": url, "brand": "x"}))
    bob.send(room_id, "hello")
    mention = {"msgtype": "m.text", "body": "hi", "m.mentions": {"user_ids": [alice.user_id]}}
    bob.call("PUT", f"/rooms/{room_id}/send/m.room.message/t-mention", json=mention)
    wait_until(lambda: len(gateway.received) >= 2, what=f"two pushes from {base}")
    return gateway.received


def _shape(notification: dict[str, Any], users: tuple[MatrixUser, MatrixUser]) -> Any:
    """What must be the same: every field's presence and every value that does not name
    the server (ids and timestamps aside)."""
    alice, bob = users
    content = json.loads(json.dumps(notification["content"]).replace(alice.user_id, "{alice}"))
    device = dict(notification["devices"][0])
    device["pushkey_ts"] = type(device["pushkey_ts"]).__name__
    # Synapse's one-to-one rule says `highlight: false` outright; absent means the same.
    tweaks = {k: v for k, v in device.get("tweaks", {}).items() if (k, v) != ("highlight", False)}
    device["tweaks"] = tweaks
    return {
        "keys": sorted(notification),
        "type": notification["type"],
        "sender": notification["sender"] == bob.user_id,
        "content": content,
        "prio": notification["prio"],
        "room_name": notification.get("room_name"),
        "sender_display_name": notification.get("sender_display_name") is not None,
        "device": device,
    }


def test_a_gateway_receives_what_synapse_sends(tmp_path: Path) -> None:
    """The same scenario against Synapse and a relay, each pushing to a loopback gateway:
    the notifications have the same fields and values, except where the spec and
    Synapse part: Synapse also sends the deprecated `id` and no `missed_calls`, by
    default counts rooms with unread messages as `unread` where the spec (and the relay)
    count the messages, and spells out a `highlight: false` tweak."""
    synapse = fresh_synapse(tmp_path)
    relay = make_relay(tmp_path, "relay")
    relay.init()
    gateways = [_gateway(), _gateway()]
    config = relay.data_dir / "relay.toml"
    allowed = f'allowed_gateways = ["http://127.0.0.1:{gateways[1].server_address[1]}"]'
    config.write_text(config.read_text().replace("allowed_gateways = []", allowed, 1))
    synapse.start()
    relay.start()
    try:
        synapse.register("alice")
        synapse.register("bob")
        for name in ("alice", "bob"):
            relay.cli("user", "add", name, "--password", "pw")
        pairs = [
            tuple(MatrixUser.login(base, name) for name in ("alice", "bob"))
            for base in (synapse.client_url, relay.client_url)
        ]
        received = [
            _pushes(base, gateway, pair)  # type: ignore[arg-type]
            for base, gateway, pair in zip(
                (synapse.client_url, relay.client_url), gateways, pairs, strict=True
            )
        ]
    finally:
        relay.kill()
        synapse.kill()
        for gateway in gateways:
            gateway.shutdown()
    for n in received[0]:
        n.pop("id")
        n["counts"]["missed_calls"] = 0
    shapes = [
        [_shape(n, pair) for n in got]  # type: ignore[arg-type]
        for got, pair in zip(received, pairs, strict=True)
    ]
    assert shapes[0] == shapes[1]
    assert received[0][0]["counts"] == received[1][0]["counts"] == {"unread": 1, "missed_calls": 0}
    assert received[1][1]["counts"]["unread"] == 2
