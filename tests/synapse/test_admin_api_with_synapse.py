"""Differential: one admin-API scenario against a real Synapse and against the relay; the
answers must have Synapse's shapes (the same keys, the same JSON types where both have a
value) and the same errors (status, errcode, and message where the relay says the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import side_by_side

ADMIN = "/_synapse/admin"


def _shape(value: Any) -> Any:
    """Keys and JSON types, recursively; a list by its first item."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    if value is None:
        return None
    return type(value).__name__


def _same_shape(ours: Any, theirs: Any, where: str = "") -> list[str]:
    """Differences of keys, and of types where neither side is null."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        problems = []
        for key in sorted(set(ours) | set(theirs)):
            if key not in ours:
                problems.append(f"{where}.{key}: missing in ours")
            elif key not in theirs:
                problems.append(f"{where}.{key}: not in Synapse's")
            else:
                problems += _same_shape(ours[key], theirs[key], f"{where}.{key}")
        return problems
    if isinstance(ours, list) and isinstance(theirs, list):
        if ours and theirs:
            return _same_shape(ours[0], theirs[0], f"{where}[0]")
        return []
    if ours is None or theirs is None or ours == theirs:
        return []
    return [f"{where}: {ours} vs {theirs}"]


class Server:
    def __init__(self, base: str, server_name: str, admin_token: str, user_token: str) -> None:
        self.base = base
        self.server_name = server_name
        self.admin = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30
        )
        self.user = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {user_token}"}, timeout=30
        )

    def run(self) -> dict[str, httpx.Response]:
        """The scenario; each step's response by name."""
        out: dict[str, httpx.Response] = {}
        bob = quote(f"@bob:{self.server_name}")
        nobody = quote(f"@nobody:{self.server_name}")
        out["version"] = self.admin.get(f"{ADMIN}/v1/server_version")
        out["create_user"] = self.admin.put(
            f"{ADMIN}/v2/users/{bob}", json={"password": "pw-bob", "displayname": "Bob"}
        )
        out["modify_user"] = self.admin.put(f"{ADMIN}/v2/users/{bob}", json={"admin": False})
        out["get_user"] = self.admin.get(f"{ADMIN}/v2/users/{bob}")
        out["list_users"] = self.admin.get(f"{ADMIN}/v2/users", params={"limit": "1"})
        out["no_user"] = self.admin.get(f"{ADMIN}/v2/users/{nobody}")
        out["not_admin"] = self.user.get(f"{ADMIN}/v2/users")
        out["whois"] = self.admin.get(f"{ADMIN}/v1/whois/{bob}")
        room = self.admin.post(
            "/_matrix/client/v3/createRoom", json={"name": "Water point", "preset": "public_chat"}
        ).json()["room_id"]
        out["list_rooms"] = self.admin.get(f"{ADMIN}/v1/rooms")
        out["room"] = self.admin.get(f"{ADMIN}/v1/rooms/{room}")
        out["members"] = self.admin.get(f"{ADMIN}/v1/rooms/{room}/members")
        out["no_room"] = self.admin.get(f"{ADMIN}/v1/rooms/!nope:{self.server_name}")
        out["bad_order"] = self.admin.get(f"{ADMIN}/v1/rooms", params={"order_by": "colour"})
        out["new_token"] = self.admin.post(
            f"{ADMIN}/v1/registration_tokens/new", json={"token": "abcd", "uses_allowed": 1}
        )
        out["dup_token"] = self.admin.post(
            f"{ADMIN}/v1/registration_tokens/new", json={"token": "abcd"}
        )
        out["bad_token"] = self.admin.post(
            f"{ADMIN}/v1/registration_tokens/new", json={"token": "has space"}
        )
        out["update_token"] = self.admin.put(
            f"{ADMIN}/v1/registration_tokens/abcd", json={"uses_allowed": 2}
        )
        out["no_token"] = self.admin.get(f"{ADMIN}/v1/registration_tokens/zzzz")
        out["delete_token"] = self.admin.delete(f"{ADMIN}/v1/registration_tokens/abcd")
        out["deactivate"] = self.admin.post(f"{ADMIN}/v1/deactivate/{bob}", json={})
        out["deactivated"] = self.admin.get(f"{ADMIN}/v2/users/{bob}")
        return out


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with side_by_side(tmp_path) as pair:
        pair.synapse.register("op", "pw", admin=True)
        pair.synapse.register("alice", "pw")
        pair.relay.cli("user", "add", "op", "--password", "pw", "--admin")
        pair.relay.cli("user", "add", "alice", "--password", "pw")
        theirs = Server(
            pair.synapse.client_url,
            pair.synapse.server_name,
            MatrixUser.login(pair.synapse.client_url, "op").http.headers["Authorization"][7:],
            MatrixUser.login(pair.synapse.client_url, "alice").http.headers["Authorization"][7:],
        )
        ours = Server(
            pair.relay.client_url,
            pair.relay.server_name,
            MatrixUser.login(pair.relay.client_url, "op").http.headers["Authorization"][7:],
            MatrixUser.login(pair.relay.client_url, "alice").http.headers["Authorization"][7:],
        )
        yield ours, theirs


def test_admin_api_answers_in_synapses_shapes(servers: tuple[Server, Server]) -> None:
    ours_server, theirs_server = servers
    ours, theirs = ours_server.run(), theirs_server.run()
    problems = []
    for step in theirs:
        a, b = ours[step], theirs[step]
        if a.status_code != b.status_code:
            problems.append(f"{step}: status {a.status_code} vs {b.status_code}: {a.text}")
            continue
        if b.status_code >= 400:
            if a.json().get("errcode") != b.json().get("errcode"):
                problems.append(f"{step}: {a.json()} vs {b.json()}")
            continue
        problems += [f"{step}{p}" for p in _same_shape(_shape(a.json()), _shape(b.json()))]
    assert problems == []
    # Same words where both say the same thing.
    for step in ("no_user", "not_admin", "no_room", "no_token", "dup_token"):
        assert ours[step].json() == theirs[step].json(), step
    assert ours["new_token"].json() == theirs["new_token"].json()
    assert ours["deactivate"].json() == theirs["deactivate"].json()
