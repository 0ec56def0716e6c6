"""A real relay process (`relay run`, its push delivery wired in relay/node.py) pushes to a
test push gateway on loopback that its operator allowed (`push.allowed_gateways`), and
after a restart pushes only what is new: a pusher's progress is on disk (issue 14
item 3)."""

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
from tests.support import seconds_until, wait_until

NOTIFY = "/_matrix/push/v1/notify"


class _Gateway(ThreadingHTTPServer):
    received: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Gateway

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        if self.path == NOTIFY:
            self.server.received.append(body["notification"])
        answer = b'{"rejected": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[_Gateway]:
    server = _Gateway(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_running_relay_pushes_to_an_allowed_gateway_across_a_restart(
    tmp_path: Path, gateway: _Gateway
) -> None:
    port = gateway.server_address[1]
    relay = make_relay(tmp_path)
    relay.remote_ranges = ()  # loopback is internal here, as on a real box
    relay.init()
    config = relay.data_dir / "relay.toml"
    text = config.read_text()
    allowed = f'allowed_gateways = ["http://127.0.0.1:{port}"]'
    config.write_text(text.replace("allowed_gateways = []", allowed, 1))
    relay.start()
    try:
        relay.cli("user", "add", "alice", "--password", "pw")
        relay.cli("user", "add", "bob", "--password", "pw")
        alice = MatrixUser.login(relay.client_url, "alice")
        bob = MatrixUser.login(relay.client_url, "bob")
        room_id = alice.create_room(preset="public_chat")
        bob.join(room_id)
        pusher = {
            "kind": "http",
            "app_id": "org.example.app",
            "app_display_name": "Example",
            "device_display_name": "Phone",
            "pushkey": "pk1",
            "lang": "en",
            "data": {"url": f"http://127.0.0.1:{port}{NOTIFY}"},
        }
        alice.call("POST", "/pushers/set", json=pusher)
        first = bob.send(room_id, "before the restart")
        wait_until(lambda: len(gateway.received) >= 1, what="the first push")
        assert relay.stop() == 0
        relay.start()
        bob = MatrixUser.login(relay.client_url, "bob")
        second = bob.send(room_id, "after the restart")
        took = seconds_until(
            lambda: len(gateway.received) >= 2, 30, "the second push", interval=0.005
        )
        print(f"send answered -> gateway received: {took * 1000:.0f} ms")  # a figure, not asserted
        assert [n["event_id"] for n in gateway.received] == [first, second]
        assert gateway.received[1]["content"]["body"] == "after the restart"
    finally:
        relay.kill()
