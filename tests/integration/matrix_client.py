"""A small synchronous Matrix client for integration tests (raw HTTP, no SDK), so a
test can drive a relay or a Synapse the same way and read what arrived."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

V3 = "/_matrix/client/v3"


class MatrixUser:
    def __init__(self, base_url: str, user_id: str, token: str) -> None:
        self.base_url = base_url
        self.user_id = user_id
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.since: str | None = None

    @classmethod
    def login(cls, base_url: str, localpart: str, password: str = "pw") -> MatrixUser:
        r = httpx.post(
            f"{base_url}{V3}/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
            },
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return cls(base_url, body["user_id"], body["access_token"])

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        r = self.http.request(method, f"{V3}{path}", **kw)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def create_room(self, **body: Any) -> str:
        return self.call("POST", "/createRoom", json=body)["room_id"]

    def join(self, room: str, via: list[str] | None = None) -> str:
        params = [("server_name", s) for s in via or []]
        return self.call("POST", f"/join/{quote(room, safe='')}", params=params, json={})["room_id"]

    def invite(self, room_id: str, user_id: str) -> None:
        self.call("POST", f"/rooms/{room_id}/invite", json={"user_id": user_id})

    def send(self, room_id: str, body: str) -> str:
        return self.call(
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/{uuid.uuid4().hex}",
            json={"msgtype": "m.text", "body": body},
        )["event_id"]

    def sync(self, timeout_ms: int = 1000) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": timeout_ms}
        if self.since:
            params["since"] = self.since
        body = self.call("GET", "/sync", params=params)
        self.since = body["next_batch"]
        return body

    def wait_for(self, predicate: Any, timeout: float = 60, what: str = "") -> dict[str, Any]:
        """Sync until `predicate(sync_body)` is truthy; return that body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.sync(timeout_ms=1000)
            if predicate(body):
                return body
        raise AssertionError(f"timed out waiting for {what or predicate}")

    def wait_for_invite(self, room_id: str, timeout: float = 60) -> None:
        self.wait_for(
            lambda b: room_id in b.get("rooms", {}).get("invite", {}), timeout, f"invite {room_id}"
        )

    def messages(self, room_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The whole timeline of the room, oldest first, via /messages backwards."""
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"dir": "b", "limit": limit}
            if token:
                params["from"] = token
            body = self.call("GET", f"/rooms/{room_id}/messages", params=params)
            events.extend(body.get("chunk", []))
            token = body.get("end")
            if not token or not body.get("chunk"):
                break
        return list(reversed(events))

    def bodies(self, room_id: str) -> list[str]:
        return [
            e["content"]["body"]
            for e in self.messages(room_id)
            if e["type"] == "m.room.message" and "body" in e.get("content", {})
        ]

    def wait_for_bodies(self, room_id: str, expected: set[str], timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            seen = self.bodies(room_id)
            if expected <= set(seen):
                return seen
            time.sleep(0.5)
        missing = expected - set(seen)
        raise AssertionError(f"{len(missing)} messages never arrived, e.g. {sorted(missing)[:5]}")
