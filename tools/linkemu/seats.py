"""Servers on either end of an `EmulatedLink`, and users of them, for tests and benchmarks.

- `SynapseSeat`: a real Synapse (tools/synapse_harness.py) at a side's address, its client
  API on port 8008, federation (TLS) on 8448, the link's subnet taken off its federation
  blacklist.
- `RelaySeat`: an edge relay the same way (`relay init` + `relay run` in the namespace),
  the link's subnet allowed as a federation destination.
- `SeatUser`: a Matrix user of a seat; every request is made inside the seat's namespace.

Everything binds only to the side's address inside its namespace.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tools.linkemu.link import ROOT, inside, wait_for
from tools.relay_process import RELAY, launch, without_mdns
from tools.synapse_harness import Synapse

CLIENT_PORT, FEDERATION_PORT = 8008, 8448
V3 = "/_matrix/client/v3"


class SynapseSeat:
    def __init__(self, directory: Path, ns: str, address: str, *, fast_retry: bool) -> None:
        self.ns = ns
        self.synapse = Synapse(directory, address, CLIENT_PORT, FEDERATION_PORT)
        self.synapse.write_config(fast_retry=fast_retry)
        path = directory / "homeserver.yaml"
        config = json.loads(path.read_text())
        for key in ("federation_ip_range_blacklist", "ip_range_blacklist"):
            config[key] = [r for r in config[key] if r != "10.0.0.0/8"]
        path.write_text(json.dumps(config, indent=1))

    @property
    def server_name(self) -> str:
        return self.synapse.server_name

    @property
    def client_url(self) -> str:
        return self.synapse.client_url

    @property
    def pid(self) -> int | None:
        return self.synapse.proc.pid if self.synapse.proc else None

    def start(self) -> None:
        with inside(self.ns):
            self.synapse.start()

    def add_user(self, localpart: str) -> SeatUser:
        with inside(self.ns):
            self.synapse.register(localpart)
        return SeatUser.login(self, localpart)

    def log(self) -> str:
        return self.synapse.log()

    def stop(self) -> None:
        self.synapse.kill()


class RelaySeat:
    def __init__(
        self, data_dir: Path, ns: str, address: str, *extra_init: str, log_level: str = "INFO"
    ) -> None:
        self.ns = ns
        self.data_dir = data_dir
        self.address = address
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.cli(
            "init",
            "--server-name",
            self.server_name,
            "--client-listen",
            f"{address}:{CLIENT_PORT}",
            "--federation-listen",
            f"{address}:{FEDERATION_PORT}",
            "--no-verify-tls",
            *extra_init,
        )
        config = data_dir / "relay.toml"
        text = config.read_text()
        for key in ("login_per_second", "send_per_second"):
            text = text.replace(f"{key} = ", f"{key} = 0 #", 1)
        text = text.replace('level = "INFO"', f'level = "{log_level}"', 1)
        # The other side of the link is a private address: allowed, as Synapse's seat does.
        subnet = ".".join(address.split(".")[:3]) + ".0/24"
        text = text.replace("ip_range_allowlist = []", f'ip_range_allowlist = ["{subnet}"]', 1)
        config.write_text(without_mdns(text))  # one peer across the link, no LAN discovery

    @property
    def server_name(self) -> str:
        return f"{self.address}:{FEDERATION_PORT}"

    @property
    def client_url(self) -> str:
        return f"http://{self.address}:{CLIENT_PORT}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def cli(self, *args: str) -> str:
        command = [*RELAY, *args, "--data-dir", str(self.data_dir)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"relay {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def start(self) -> None:
        with open(self.log_path, "ab") as log, inside(self.ns):
            launched = launch(self.data_dir, log=log, describe=lambda: self.log()[-3000:])
        self.proc = launched.proc
        launched.wait_ready(30)

    def add_user(self, localpart: str) -> SeatUser:
        self.cli("user", "add", localpart, "--password", "pw")
        return SeatUser.login(self, localpart)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


Seat = SynapseSeat | RelaySeat


class SeatUser:
    """A logged-in user; each call runs inside the seat's namespace."""

    def __init__(self, seat: Seat, user_id: str, token: str) -> None:
        self.seat, self.user_id, self.token = seat, user_id, token

    @classmethod
    def login(cls, seat: Seat, localpart: str) -> SeatUser:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": "pw",
        }
        with inside(seat.ns):
            r = httpx.post(f"{seat.client_url}{V3}/login", json=body, timeout=60)
        r.raise_for_status()
        return cls(seat, r.json()["user_id"], r.json()["access_token"])

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        with inside(self.seat.ns):
            r = httpx.request(
                method, f"{self.seat.client_url}{V3}{path}", headers=headers, timeout=90, **kw
            )
        if r.status_code != 200:
            raise AssertionError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def create_room(self, **body: Any) -> str:
        return self.call("POST", "/createRoom", json=body)["room_id"]

    def invite(self, room_id: str, user_id: str) -> None:
        self.call("POST", f"/rooms/{quote(room_id)}/invite", json={"user_id": user_id})

    def join(self, room_id: str) -> None:
        self.call("POST", f"/join/{quote(room_id, safe='')}", json={})

    def send(self, room_id: str, body: str) -> str:
        return self.call(
            "PUT",
            f"/rooms/{quote(room_id)}/send/m.room.message/{uuid.uuid4().hex}",
            json={"msgtype": "m.text", "body": body},
        )["event_id"]

    def bodies(self, room_id: str) -> list[str]:
        """Message bodies of the room's whole timeline, oldest first (/messages)."""
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"dir": "b", "limit": 100}
            if token:
                params["from"] = token
            page = self.call("GET", f"/rooms/{quote(room_id)}/messages", params=params)
            events.extend(page.get("chunk", []))
            token = page.get("end")
            if not token or not page.get("chunk"):
                break
        return [
            e["content"]["body"]
            for e in reversed(events)
            if e["type"] == "m.room.message" and "body" in e.get("content", {})
        ]

    def recent_bodies(self, room_id: str, limit: int) -> list[str]:
        """Message bodies of the room's newest `limit` events, oldest first (one page:
        no pagination past what the server holds, so no backfill over the link)."""
        page = self.call(
            "GET", f"/rooms/{quote(room_id)}/messages", params={"dir": "b", "limit": limit}
        )
        return [
            e["content"]["body"]
            for e in reversed(page.get("chunk", []))
            if e["type"] == "m.room.message" and "body" in e.get("content", {})
        ]

    def wait_for_invite(self, room_id: str, timeout: float = 120) -> None:
        def invited() -> bool:
            rooms = self.call("GET", "/sync", params={"timeout": 0}).get("rooms", {})
            return room_id in rooms.get("invite", {})

        wait_for(invited, timeout, f"an invite to {room_id}", interval=0.5)

    def wait_for_bodies(self, room_id: str, expected: list[str], timeout: float) -> list[str]:
        """The room's bodies once all of `expected` are among them."""
        want = set(expected)
        seen: list[str] = []

        def arrived() -> bool:
            nonlocal seen
            seen = self.bodies(room_id)
            return want <= set(seen)

        wait_for(arrived, timeout, f"{len(want)} messages in {room_id}", interval=1.0)
        return seen


def shared_room(host: SeatUser, guest: SeatUser) -> str:
    """A private room `host` made and `guest` (on the other seat) joined over the link."""
    room_id = host.create_room(name="slow link", preset="private_chat")
    host.invite(room_id, guest.user_id)
    guest.wait_for_invite(room_id)
    guest.join(room_id)
    return room_id
