"""`relay token add|list|delete` and `relay init --open-registration`, as a user runs them;
and a token made by the CLI letting a registration through the real app."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import httpx
import pytest

from relay.client.routes import client_app
from relay.config import load_config
from relay.node import build_services
from relay.runtime.database import open_database
from relay.runtime.identity import read_signing_key
from tests.integration.conftest import run_cli

SERVER_NAME = "kit-07.relief.example"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", SERVER_NAME)
    return d


def _tokens(data_dir: Path) -> list[dict]:
    return json.loads(run_cli("token", "list", "--data-dir", str(data_dir), "--json").stdout)


@pytest.mark.parametrize(
    "command", [["token"], ["token", "add"], ["token", "list"], ["token", "delete"]]
)
def test_every_token_command_has_help(command: list[str]) -> None:
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0
    assert "Usage:" in proc.stdout


def test_token_add_list_delete(data_dir: Path) -> None:
    d = str(data_dir)
    proc = run_cli("token", "add", "--data-dir", d, "--uses", "3", "--expires-in-hours", "2", "T1")
    assert proc.stdout.strip() == "T1"
    random_token = run_cli("token", "add", "--data-dir", d).stdout.strip()
    assert len(random_token) >= 16
    # Tokens are stored hashed: the list shows a hint (a quarter of each), never a token.
    tokens = {t["hint"]: t for t in _tokens(data_dir)}
    short, long = "…", random_token[: len(random_token) // 4] + "…"
    assert set(tokens) == {short, long}
    assert tokens[short]["uses_allowed"] == 3 and tokens[short]["expiry_time"] is not None
    assert tokens[short]["valid"] is True
    assert tokens[long]["uses_allowed"] is None
    assert tokens[long]["expiry_time"] is None
    human = run_cli("token", "list", "--data-dir", d).stdout
    assert "…  used 0/3" in human and "unlimited" in human
    assert random_token not in human
    run_cli("token", "delete", "--data-dir", d, "T1")
    assert [t["hint"] for t in _tokens(data_dir)] == [long]


def test_token_add_existing_and_delete_unknown_fail_in_one_line(data_dir: Path) -> None:
    d = str(data_dir)
    run_cli("token", "add", "--data-dir", d, "T1")
    proc = run_cli("token", "add", "--data-dir", d, "T1", check=False)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "already exists" in proc.stderr
    proc = run_cli("token", "delete", "--data-dir", d, "nope", check=False)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--uses", "0"],
        ["--uses", "many"],
        ["--expires-in-hours", "-1"],
        ["--bogus"],
        ["bad token!"],
        ["x" * 65],
    ],
)
def test_bad_token_add_flag_is_one_line_exit_2(data_dir: Path, args: list[str]) -> None:
    proc = run_cli("token", "add", "--data-dir", str(data_dir), *args, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _tokens(data_dir) == []


def test_init_open_registration_sets_mode(tmp_path: Path) -> None:
    d = tmp_path / "open"
    run_cli("init", "--data-dir", str(d), "--server-name", SERVER_NAME, "--open-registration")
    assert tomllib.loads((d / "relay.toml").read_text())["registration"]["mode"] == "open"
    d2 = tmp_path / "closed"
    run_cli("init", "--data-dir", str(d2), "--server-name", SERVER_NAME)
    assert tomllib.loads((d2 / "relay.toml").read_text())["registration"]["mode"] == "closed"


async def test_token_from_the_cli_lets_a_registration_through(data_dir: Path) -> None:
    config_path = data_dir / "relay.toml"
    text = config_path.read_text()
    config_path.write_text(text.replace('mode = "closed"', 'mode = "token"'))
    token = run_cli("token", "add", "--data-dir", str(data_dir), "--uses", "1").stdout.strip()
    config = load_config(data_dir)
    assert config.registration == "token"
    async with open_database(config.database_path, synchronous="NORMAL") as database:
        services = await build_services(config, database, read_signing_key(config.signing_key_path))
        transport = httpx.ASGITransport(app=client_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
            body = {"username": "newcomer", "password": "pw"}
            r = await http.post("/_matrix/client/v3/register", json=body)
            assert r.status_code == 401
            auth = {
                "type": "m.login.registration_token",
                "token": token,
                "session": r.json()["session"],
            }
            r = await http.post("/_matrix/client/v3/register", json={**body, "auth": auth})
            assert r.status_code == 200, r.text
            assert r.json()["user_id"] == f"@newcomer:{SERVER_NAME}"
    assert _tokens(data_dir)[0]["completed"] == 1
