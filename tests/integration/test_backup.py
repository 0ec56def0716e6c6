"""`relay backup` while the relay runs under load, `relay restore` elsewhere.

20 senders write into one room while `relay backup` runs against the live relay (a
real subprocess). The archive is restored into a new directory and started on other
ports: every send acknowledged before the backup began is there, the database passes
`PRAGMA integrity_check`, and the restored relay serves the same server name and
signing key, the users' passwords and the media.
"""

from __future__ import annotations

import sqlite3
import tarfile
import threading
import time
from pathlib import Path

import httpx

from tests.integration.conftest import RelayProcess, login_device, make_relay, unlimit_rates
from tests.integration.matrix_client import MatrixUser
from tests.support import free_port, fresh_loopback

SENDERS = 20
V3 = "/_matrix/client/v3"


def _move_listeners(restored: RelayProcess, original: RelayProcess) -> None:
    """The restored copy runs beside the original: same name, its own ports."""
    path = restored.data_dir / "relay.toml"
    text = path.read_text()
    text = text.replace(
        f'client = "{original.host}:{original.client_port}"',
        f'client = "{restored.host}:{restored.client_port}"',
    ).replace(
        f'federation = "{original.host}:{original.federation_port}"',
        f'federation = "{restored.host}:{restored.federation_port}"',
    )
    path.write_text(text)


def _server_keys(relay: RelayProcess) -> dict:
    with httpx.Client(base_url=relay.federation_url, verify=False, timeout=30) as fed:
        return fed.get("/_matrix/key/v2/server").json()


def test_backup_under_load_restores_every_acknowledged_event(tmp_path: Path) -> None:
    relay = make_relay(tmp_path, "live")
    relay.init()
    unlimit_rates(relay)
    relay.start()
    try:
        relay.cli("user", "add", "alice", "--password", "pw")
        tokens = [login_device(relay.client_url, n) for n in range(SENDERS)]
        alice = MatrixUser(relay.client_url, "@alice", tokens[0])
        room_id = alice.create_room(name="backup")
        picture = b"\x89PNG not really, but bytes to keep" * 100
        r = alice.http.post(
            "/_matrix/media/v3/upload", content=picture, headers={"Content-Type": "image/png"}
        )
        assert r.status_code == 200, r.text
        media_id = r.json()["content_uri"].rsplit("/", 1)[1]

        acked: dict[str, str] = {}
        lock = threading.Lock()
        warmed_up = threading.Event()
        stop = threading.Event()

        def sender(n: int) -> None:
            with httpx.Client(
                base_url=relay.client_url,
                headers={"Authorization": f"Bearer {tokens[n]}"},
                timeout=60,
            ) as client:
                i = 0
                while not stop.is_set():
                    txn = f"t{n}-{i}"
                    r = client.put(
                        f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                        json={"msgtype": "m.text", "body": txn},
                    )
                    assert r.status_code == 200, r.text
                    with lock:
                        acked[txn] = r.json()["event_id"]
                        if len(acked) >= 200:
                            warmed_up.set()
                    i += 1

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
        for t in threads:
            t.start()
        try:
            assert warmed_up.wait(120), "senders made no progress"
            with lock:
                before = dict(acked)  # acknowledged before the backup began
            archive = tmp_path / "kit.tar.gz"
            started = time.monotonic()
            out = relay.cli("backup", "--output", str(archive)).stdout
            took = time.monotonic() - started
            with lock:
                during = len(acked) - len(before)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert "backed up" in out
        assert during > 0, "the senders were not writing while the backup ran"
        original_keys = _server_keys(relay)
    finally:
        relay.kill()

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[-1] == "manifest.json"
    # Figures for BENCHMARKS.md (printed, never asserted: the machine is shared).
    print(
        f"\nbackup under load: {took:.2f} s after {len(before)} acknowledged sends,"
        f" {archive.stat().st_size} bytes; {during} sends acknowledged meanwhile"
    )
    assert {"relay.toml", "signing.key", "tls.key", "tls.crt", "relay.db"} <= set(names)

    host = fresh_loopback()
    restored = RelayProcess(
        data_dir=tmp_path / "restored",
        host=host,
        client_port=free_port(host),
        federation_port=free_port(host),
    )
    out = restored.cli("restore", str(archive)).stdout
    assert f"restored {relay.server_name}" in out

    conn = sqlite3.connect(restored.data_dir / "relay.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    finally:
        conn.close()
    lost = {txn for txn, event_id in before.items() if event_id not in stored}
    assert lost == set(), f"{len(lost)} sends acknowledged before the backup are missing"

    _move_listeners(restored, relay)
    restored.start()
    try:
        keys = _server_keys(restored)
        assert keys["server_name"] == original_keys["server_name"] == relay.server_name
        assert keys["verify_keys"] == original_keys["verify_keys"]
        user = MatrixUser.login(restored.client_url, "alice")
        some_txn = sorted(before)[0]
        event = user.call("GET", f"/rooms/{room_id}/event/{before[some_txn]}")
        assert event["content"]["body"] == some_txn
        r = user.http.get(f"/_matrix/client/v1/media/download/{relay.server_name}/{media_id}")
        assert r.status_code == 200 and r.content == picture
    finally:
        restored.kill()
