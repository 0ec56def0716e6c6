"""synadm, the Synapse admin CLI (PyPI), drives the relay's Synapse admin API: it lists
users and rooms, creates a user, resets its password, deactivates it, and manages
registration tokens, exactly as an operator would against a Synapse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser

pytest.importorskip("synadm")


class Synadm:
    def __init__(self, relay: RelayProcess, token: str, tmp_path: Path) -> None:
        self.config = tmp_path / "synadm.yaml"
        settings = {
            "user": f"@op:{relay.server_name}",
            "token": token,
            "base_url": relay.client_url,
            "admin_path": "/_synapse/admin",
            "matrix_path": "/_matrix",
            "timeout": 30,
            "homeserver": relay.server_name,
            "ssl_verify": False,
            "server_discovery": "well-known",
            "format": "json",
        }
        self.config.write_text(json.dumps(settings))  # JSON is YAML

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "synadm",
                "-c",
                str(self.config),
                "--batch",
                "-o",
                "json",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def json(self, *args: str) -> Any:
        proc = self.run(*args)
        assert proc.returncode == 0, proc.stderr
        # Some commands print their prompts' text before the JSON; the JSON is last.
        lines = proc.stdout.strip().splitlines()
        for start in range(len(lines)):
            try:
                return json.loads("\n".join(lines[start:]))
            except ValueError:
                continue
        raise AssertionError(f"no JSON in synadm's output: {proc.stdout}\n{proc.stderr}")


def test_synadm_manages_users_rooms_and_tokens(relay: RelayProcess, tmp_path: Path) -> None:
    relay.cli("user", "add", "op", "--password", "pw", "--admin")
    relay.cli("user", "add", "alice", "--password", "pw")
    op = MatrixUser.login(relay.client_url, "op")
    room_id = op.create_room(name="Field ops")
    token = op.http.headers["Authorization"].removeprefix("Bearer ")
    synadm = Synadm(relay, token, tmp_path)
    server = relay.server_name

    assert synadm.json("version")["server_version"].startswith("edge-relay ")

    users = synadm.json("user", "list")
    assert {u["name"] for u in users["users"]} == {f"@op:{server}", f"@alice:{server}"}
    assert users["total"] == 2

    rooms = synadm.json("room", "list")
    assert [r["room_id"] for r in rooms["rooms"]] == [room_id]
    assert rooms["rooms"][0]["name"] == "Field ops"
    assert rooms["rooms"][0]["joined_local_members"] == 1
    assert synadm.json("room", "details", room_id)["creator"] == f"@op:{server}"
    assert synadm.json("room", "members", room_id)["members"] == [f"@op:{server}"]

    # Create a user, then reset its password: both through PUT /v2/users.
    created = synadm.json("user", "modify", f"@bob:{server}", "-P", "first", "-n", "Bob")
    assert created["name"] == f"@bob:{server}" and created["displayname"] == "Bob"
    bob = MatrixUser.login(relay.client_url, "bob", "first")
    synadm.json("user", "modify", f"@bob:{server}", "-P", "second")
    r = httpx.get(f"{relay.client_url}/_matrix/client/v3/account/whoami", headers=bob.http.headers)
    assert r.status_code == 401  # the password reset logged bob's devices out
    MatrixUser.login(relay.client_url, "bob", "second")
    assert synadm.json("user", "details", f"@bob:{server}")["deactivated"] is False

    deactivated = synadm.run("user", "deactivate", f"@bob:{server}")
    assert deactivated.returncode == 0, deactivated.stderr
    assert synadm.json("user", "details", f"@bob:{server}")["deactivated"] is True
    login = httpx.post(
        f"{relay.client_url}/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": "bob", "password": "second"},
    )
    assert login.status_code == 403
    listed = synadm.json("user", "list", "--deactivated")
    assert f"@bob:{server}" in {u["name"] for u in listed["users"]}

    # Registration tokens: new, list, update, delete.
    new = synadm.json("regtok", "new", "--token", "kit07-volunteers", "--uses-allowed", "3")
    assert new["token"] == "kit07-volunteers" and new["uses_allowed"] == 3
    assert len(synadm.json("regtok", "new")["token"]) == 16
    listed = synadm.json("regtok", "list")["registration_tokens"]
    # Tokens are stored hashed: a listing shows the start of each.
    assert {(t["token"], t["uses_allowed"]) for t in listed} >= {("kit0…", 3)}
    assert len(listed) == 2
    updated = synadm.json("regtok", "update", "kit07-volunteers", "--uses-allowed", "5")
    assert updated["uses_allowed"] == 5
    deleted = synadm.run("regtok", "delete", "kit07-volunteers")
    assert deleted.returncode == 0, deleted.stderr
    assert len(synadm.json("regtok", "list")["registration_tokens"]) == 1
    r = httpx.get(
        f"{relay.client_url}/_synapse/admin/v1/registration_tokens/kit07-volunteers",
        headers=op.http.headers,
    )
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"


def test_synadm_as_a_non_admin_is_refused(relay: RelayProcess, tmp_path: Path) -> None:
    relay.cli("user", "add", "alice", "--password", "pw")
    alice = MatrixUser.login(relay.client_url, "alice")
    r = alice.http.get("/_synapse/admin/v2/users")
    assert r.status_code == 403
    assert r.json() == {"errcode": "M_FORBIDDEN", "error": "You are not a server admin"}
