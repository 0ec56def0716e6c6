"""The CLI's contract: --help everywhere, one-line errors with exit code 2, nothing written."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.config import load_config
from relay.media.blobs import LOCK_FILE, TMP_DIR, BlobStore, BlobWriter
from store import accounts as store_accounts
from store import db as store_db
from store import media as store_media
from store.passwords import verify_password
from tests.integration.conftest import run_cli
from tools.relay_process import RELAY

PROVISION = (
    Path(__file__).parent.parent / "firmware-image/rootfs/usr/local/lib/edge-relay/provision.py"
)

COMMANDS = [[], ["init"], ["run"], ["user"], ["user", "add"], ["status"], ["backup"], ["restore"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "relay")
def test_every_command_has_help(command: list[str]) -> None:
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0
    assert "Usage:" in proc.stdout


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.stdout.startswith("relay 0.")


def _files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_init_writes_config_key_cert_database(tmp_path: Path) -> None:
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", "kit-07.relief.example")
    assert {"relay.db", "relay.toml", "signing.key", "tls.crt", "tls.key"} <= set(_files(d))
    config = tomllib.loads((d / "relay.toml").read_text())
    assert config["server_name"] == "kit-07.relief.example"
    assert config["listeners"] == {
        "client": "127.0.0.1:8008",
        "federation": "0.0.0.0:8448",
        "metrics": "",  # off
        "public_baseurl": "",  # from each request
        "trusted_proxies": [],
        "max_connections": 1000,
        "max_connections_per_address": 100,
        "header_timeout_seconds": 30.0,
        "body_timeout_seconds": 60.0,
        "client_keep_alive_seconds": 75.0,
        "federation_keep_alive_seconds": 900.0,
    }
    algorithm, version, seed = (d / "signing.key").read_text().split()
    assert algorithm == "ed25519" and version.startswith("a_") and len(seed) == 43
    assert stat.S_IMODE((d / "signing.key").stat().st_mode) == 0o600
    assert (d / "tls.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    status = json.loads(run_cli("status", "--data-dir", str(d), "--json").stdout)
    assert status["key_id"] == f"ed25519:{version}"
    assert status["counts"] == {"users": 0, "rooms": 0, "events": 0}


def test_status_counts_stored_media(tmp_path: Path) -> None:
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", "a.example")
    conn = store_db.open_database(d / "relay.db")
    rows = [
        # (server, media id, remote, size, sha256): two uploads, one cached remote file,
        # and an id /create reserved but nobody uploaded, which holds no bytes yet.
        ("a.example", "up1", False, 100, "1" * 64),
        ("a.example", "up2", False, 20, "2" * 64),
        ("b.example", "far", True, 3000, "3" * 64),
        ("a.example", "pending", False, None, None),
    ]
    try:
        with store_db.write(conn):
            for server, media_id, remote, size, sha256 in rows:
                store_media.insert_media(
                    conn,
                    server_name=server,
                    media_id=media_id,
                    remote=remote,
                    user_id=None if remote else "@u:a.example",
                    content_type="image/png",
                    filename=None,
                    size=size,
                    sha256=sha256,
                    now_ms=1,
                )
    finally:
        conn.close()
    status = json.loads(run_cli("status", "--data-dir", str(d), "--json").stdout)
    assert status["media"] == {
        "local_media": 2,
        "local_bytes": 120,
        "remote_media": 1,
        "remote_bytes": 3000,
        "thumbnails": 0,
        "thumbnail_bytes": 0,
    }
    assert status["database"]["rows"]["media"] == 4
    assert status["database"]["schema_version"] == store_db.known_schema_version()
    text = run_cli("status", "--data-dir", str(d)).stdout
    assert "2 local (120 bytes), 1 remote cached (3000 bytes)" in text
    assert f"database:     schema {store_db.known_schema_version()}," in text
    assert "most rows: media 4" in text


def test_init_keys_differ_between_relays(tmp_path: Path) -> None:
    for name in ("a", "b"):
        run_cli("init", "--data-dir", str(tmp_path / name), "--server-name", f"{name}.example")
    assert (tmp_path / "a/signing.key").read_text() != (tmp_path / "b/signing.key").read_text()


def test_init_refuses_existing_relay(tmp_path: Path) -> None:
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", "a.example")
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.suffix in (".toml", ".key")}
    proc = run_cli("init", "--data-dir", str(d), "--server-name", "b.example", check=False)
    assert proc.returncode == 2
    assert "already holds a relay" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert before == {p.name: p.read_bytes() for p in d.iterdir() if p.suffix in (".toml", ".key")}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--server-name", "bad name!"], "server name"),
        (["--server-name", "a.example", "--client-listen", "nonsense"], "--client-listen"),
        (["--server-name", "a.example", "--federation-listen", "h:99999"], "--federation-listen"),
        (["--server-name", "a.example", "--ca-file", "/nonexistent.pem"], "--ca-file"),
        (["--server-name", "a.example", "--bogus-flag"], "--bogus-flag"),
        (["--server-name", "a.example", "--upstream", "not valid!"], "upstream"),
        (["--server-name", "a.example", "--mesh-policy", "closed"], "mesh-policy"),
    ],
)
def test_bad_init_flag_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    d = tmp_path / "data"
    proc = run_cli("init", "--data-dir", str(d), *args, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert not d.exists()


@pytest.mark.parametrize(
    ("mutation", "needle"),
    [
        (lambda t: t.replace("[listeners]", "[listeners"), "not valid TOML"),
        (lambda t: t.replace('client = "127.0.0.1:8008"', 'client = "x"'), "listeners.client"),
        (lambda t: t + "\nsurprise = 1\n", "surprise"),
        (lambda t: t.replace("verify_tls = true", 'verify_tls = "yes"'), "verify_tls"),
        (lambda t: t.replace('policy = "open"', 'policy = "closed"'), "mesh.policy"),
        (lambda t: t.replace('synchronous = "FULL"', 'synchronous = "SOMETIMES"'), "synchronous"),
        (
            lambda t: t.replace(
                "housekeeping_interval_seconds = 3600.0", "housekeeping_interval_seconds = 0"
            ),
            "housekeeping_interval_seconds",
        ),
    ],
)
def test_broken_config_is_one_line_exit_2(tmp_path: Path, mutation, needle: str) -> None:
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", "a.example")
    path = d / "relay.toml"
    path.write_text(mutation(path.read_text()))
    before = sorted(p.name for p in d.iterdir())
    for command in (["run"], ["status"], ["user", "add", "bob", "--password", "x"]):
        proc = run_cli(*command, "--data-dir", str(d), check=False)
        assert proc.returncode == 2, (command, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert needle in lines[0]
    assert sorted(p.name for p in d.iterdir()) == before


def test_missing_data_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run_cli("status", "--data-dir", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 2
    assert "relay init" in proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_user_add_rejects_bad_localpart(tmp_path: Path) -> None:
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", "a.example")
    proc = run_cli("user", "add", "--data-dir", str(d), "Bad Name", "--password", "x", check=False)
    assert proc.returncode == 2
    assert "localpart" in proc.stderr


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: every file the relay leaves to the umask would be world-writable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_files_are_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    d = tmp_path / "data"
    d.mkdir(mode=0o755)  # an existing directory, open to all
    run_cli("init", "--data-dir", str(d), "--server-name", "kit-07.relief.example")
    assert _mode(d) == 0o700
    for name in ["relay.db", "relay.toml", "signing.key", "tls.crt", "tls.key"]:
        assert _mode(d / name) == 0o600, name
    conn = store_db.open_database(d / "relay.db")  # WAL and SHM appear
    try:
        for name in ["relay.db-wal", "relay.db-shm"]:
            assert _mode(d / name) == 0o600, name
    finally:
        conn.close()


def test_database_side_files_are_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "old.db"
    db.touch(mode=0o644)  # made by an older relay
    conn = store_db.open_database(db)
    try:
        assert [_mode(db), _mode(tmp_path / "old.db-wal"), _mode(tmp_path / "old.db-shm")] == [
            0o600
        ] * 3
    finally:
        conn.close()


async def test_media_files_and_dirs_are_private(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "media"
    root.mkdir(mode=0o755)
    blobs = BlobStore(root)
    sha, _ = blobs.put_bytes(b"thumbnail")
    async with blobs.alock(exclusive=False):
        async with BlobWriter(blobs, 100) as writer:
            await writer.write(b"upload")
            upload, _ = await writer.commit()
    for path in [blobs.path_for(sha), blobs.path_for(upload), root / LOCK_FILE]:
        assert _mode(path) == 0o600, path
    dirs = [root, root / TMP_DIR, *[p for p in root.rglob("*") if p.is_dir()]]
    assert {d: _mode(d) for d in dirs} == {d: 0o700 for d in dirs}


def _password_hash(d: Path, user_id: str) -> str | None:
    conn = store_db.open_database(d / "relay.db")
    try:
        row = store_accounts.get_user(conn, user_id)
    finally:
        conn.close()
    return None if row is None else row["password_hash"]


def test_user_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    """The password is not in argv (any local user reads it in ps / /proc/*/cmdline)."""
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", "a.example")
    proc = subprocess.run(
        [*RELAY, "user", "add", "--data-dir", str(d), "carol", "--password-stdin", "--admin"],
        input="correct horse battery staple\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    encoded = _password_hash(d, "@carol:a.example")
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery staple\n", encoded)


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (["--password-stdin"], "\n", "must not be empty"),
        (["--password", "x", "--password-stdin"], "x\n", "not both"),
        ([], "", "--password-stdin"),  # no terminal to prompt on
    ],
    ids=["empty", "both", "none-without-terminal"],
)
def test_user_add_password_mistakes_are_one_line_exit_2(
    tmp_path: Path, args: list[str], stdin: str, needle: str
) -> None:
    d = tmp_path / "data"
    run_cli("init", "--data-dir", str(d), "--server-name", "a.example")
    proc = subprocess.run(
        [*RELAY, "user", "add", "--data-dir", str(d), "dave", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert _password_hash(d, "@dave:a.example") is None


def test_provisioning_passes_the_admin_password_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """firmware-image's provision.py creates the admin with --password-stdin."""
    provision = _provision_module(monkeypatch)
    d = tmp_path / "relay"
    run_cli("init", "--data-dir", str(d), "--server-name", "a.example")
    calls: list[tuple[tuple[str, ...], str]] = []
    real_run = provision.run

    def spy(*args: str, stdin: str = "") -> Any:
        calls.append((args, stdin))
        return real_run(*args, stdin=stdin)

    monkeypatch.setattr(provision, "RELAY_DIR", d)
    monkeypatch.setattr(provision, "run", spy)
    provision.add_admin({"admin": {"user": "root", "password": "s3cret pass"}}, tmp_path)
    [(args, stdin)] = calls
    assert "s3cret pass" not in " ".join(args) and "--password-stdin" in args
    assert stdin == "s3cret pass\n"
    assert verify_password("s3cret pass", _password_hash(d, "@root:a.example"))


def _provision_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("provision", PROVISION)
    assert spec is not None and spec.loader is not None
    provision = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "provision", provision)  # for its dataclasses
    spec.loader.exec_module(provision)
    return provision


@pytest.mark.parametrize(
    ("provisioned", "policy"), [({}, "pinned"), ({"mesh_policy": "open"}, "open")]
)
def test_provisioned_appliance_federates_only_with_pinned_servers_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provisioned: dict[str, str], policy: str
) -> None:
    """The firmware image's relay gets mesh.policy = "pinned" unless the provisioning file
    opts out; a plain `relay init` stays "open"."""
    provision = _provision_module(monkeypatch)
    monkeypatch.setattr(provision, "DATA", tmp_path)
    monkeypatch.setattr(provision, "RELAY_DIR", tmp_path / "relay")
    monkeypatch.setattr(provision, "RELAY", "relay")
    provision.init_relay({"server_name": "kit.example", **provisioned}, "kit")
    assert load_config(tmp_path / "relay").mesh_policy == policy
    run_cli("init", "--data-dir", str(tmp_path / "plain"), "--server-name", "a.example")
    assert load_config(tmp_path / "plain").mesh_policy == "open"


def test_a_second_connection_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    """Making relay.db private must not open and close it: that drops every POSIX lock
    this process holds on it, and another process then takes the database as unused
    (it checkpointed and deleted the WAL under a running relay)."""
    path = tmp_path / "relay.db"
    first = store_db.connect(path)
    first.execute("CREATE TABLE t (x)")
    first.execute("SELECT * FROM t").fetchall()  # holds its shared lock from here on
    second = store_db.connect(path)
    try:
        probe = (
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode != 0, "another process could lock a database in use"
        assert "BlockingIOError" in proc.stderr or "PermissionError" in proc.stderr, proc.stderr
    finally:
        second.close()
        first.close()
