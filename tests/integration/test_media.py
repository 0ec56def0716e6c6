"""Media between real relays: an upload on A downloaded through B (fetched over
federation, cached, then served from the cache), thumbnails across, a truncated upload
over a raw socket leaving nothing, and `relay media cleanup` on a running relay."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import RelayProcess, make_relay
from tests.integration.matrix_client import MatrixUser

UPLOAD = "/_matrix/media/v3/upload"
V1 = "/_matrix/client/v1/media"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def upload(user: MatrixUser, data: bytes, content_type: str, filename: str) -> str:
    r = user.http.post(
        UPLOAD, content=data, params={"filename": filename}, headers={"Content-Type": content_type}
    )
    assert r.status_code == 200, r.text
    return r.json()["content_uri"].removeprefix("mxc://")


def media_rows(relay: RelayProcess) -> list[tuple]:
    conn = sqlite3.connect(relay.data_dir / "relay.db")
    try:
        return conn.execute("SELECT server_name, media_id, remote, size FROM media").fetchall()
    finally:
        conn.close()


def media_files(relay: RelayProcess) -> list[Path]:
    root = relay.data_dir / "media"
    return (
        [p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp" and p.name != ".lock"]
        if root.exists()
        else []
    )


@pytest.fixture
def two_relays(tmp_path: Path) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    relays = [make_relay(tmp_path, "a"), make_relay(tmp_path, "b")]
    try:
        for r, user in zip(relays, ("alice", "bob"), strict=True):
            r.init("--no-verify-tls")
            r.start()
            r.cli("user", "add", user, "--password", "pw")
        yield relays[0], relays[1]
    finally:
        for r in relays:
            r.kill()


def test_upload_on_a_download_via_b_is_fetched_once_and_cached(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    data = png(1200, 600)
    mxc = upload(alice, data, "image/png", "map of the camp.png")
    assert mxc.startswith(a.server_name + "/")

    r = bob.http.get(f"{V1}/download/{mxc}")
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == (
        "inline; filename*=utf-8''map%20of%20the%20camp.png"
    )
    server, media_id = mxc.split("/")
    assert (server, media_id, 1, len(data)) in media_rows(b)

    # Served from B's cache: with A gone, B still has it.
    a.stop()
    r = bob.http.get(f"{V1}/download/{mxc}")
    assert r.status_code == 200 and r.content == data

    # A thumbnail is made from the cached original.
    r = bob.http.get(
        f"{V1}/thumbnail/{mxc}", params={"width": 320, "height": 240, "method": "scale"}
    )
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (320, 160)


def test_thumbnail_of_remote_media_comes_over_federation(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    mxc = upload(alice, png(900, 900), "image/png", "square.png")
    r = bob.http.get(f"{V1}/thumbnail/{mxc}", params={"width": 96, "height": 96, "method": "crop"})
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)
    # Only the thumbnail crossed: B has no copy of the original.
    assert [row for row in media_rows(b) if row[2] == 1] == []
    missing = bob.http.get(f"{V1}/download/{a.server_name}/nosuchmedia")
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"


def test_sequential_downloads_and_thumbnails_never_wait_on_the_body_drain(
    relay: RelayProcess,
) -> None:
    # Half of these used to stall 5.0 s: the drain of an unread request body raced the
    # file response's disconnect listener for the end of a GET's (empty) body. A GET
    # has no body to drain now, and a drain that gives up says so in the log.
    relay.cli("user", "add", "field", "--password", "pw")
    user = MatrixUser.login(relay.client_url, "field")
    data = png(800, 600)
    mxc = upload(user, data, "image/png", "map.png")
    requests = [(f"{V1}/download/{mxc}", {}), (f"{V1}/download/{mxc}/mc%2Fdl%2Fimg.enc", {})]
    requests.append((f"{V1}/thumbnail/{mxc}", {"width": 96, "height": 96, "method": "scale"}))
    for path, params in requests:
        for _ in range(30):
            r = user.http.get(path, params=params)
            assert r.status_code == 200, r.text
            assert r.content == data or path.startswith(f"{V1}/thumbnail")
    assert "gave up draining" not in relay.log()


def _raw_upload(relay: RelayProcess, token: str, announced: int, sent: bytes) -> None:
    """POST an upload announcing `announced` bytes, send `sent`, and hang up."""
    with socket.create_connection((relay.host, relay.client_port), timeout=10) as sock:
        head = (
            f"POST {UPLOAD}?filename=cut.bin HTTP/1.1\r\n"
            f"Host: {relay.host}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {announced}\r\n\r\n"
        )
        sock.sendall(head.encode() + sent)
        time.sleep(0.3)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        try:
            sock.recv(4096)
        except OSError:
            pass


def test_truncated_upload_leaves_nothing_behind(relay: RelayProcess) -> None:
    relay.cli("user", "add", "field", "--password", "pw")
    user = MatrixUser.login(relay.client_url, "field")
    token = user.http.headers["Authorization"].removeprefix("Bearer ")
    _raw_upload(relay, token, announced=1_000_000, sent=b"z" * 300_000)
    # The relay notices the hang-up; give it a moment, then look at disk and database.
    deadline = time.monotonic() + 10
    tmp = relay.data_dir / "media" / "tmp"
    while time.monotonic() < deadline and tmp.exists() and any(tmp.iterdir()):
        time.sleep(0.1)
    assert media_rows(relay) == []
    assert media_files(relay) == []
    assert not tmp.exists() or list(tmp.iterdir()) == []
    # And the relay still works.
    assert upload(user, b"whole", "text/plain", "ok.txt")
    assert len(media_rows(relay)) == 1 and len(media_files(relay)) == 1


def test_over_limit_upload_on_a_real_socket_gets_413(relay: RelayProcess) -> None:
    relay.cli("user", "add", "field", "--password", "pw")
    user = MatrixUser.login(relay.client_url, "field")
    config = relay.data_dir / "relay.toml"
    text = config.read_text().replace("max_upload_bytes = 52428800", "max_upload_bytes = 100000")
    config.write_text(text)
    relay.stop()
    relay.start()
    r = httpx.post(
        f"{relay.client_url}{UPLOAD}",
        content=b"q" * 400_000,
        headers={"Authorization": user.http.headers["Authorization"]},
        timeout=30,
    )
    assert r.status_code == 413 and r.json()["errcode"] == "M_TOO_LARGE"
    assert media_rows(relay) == [] and media_files(relay) == []


def test_media_cleanup_shrinks_the_remote_cache_while_running(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    uploads = [
        upload(alice, bytes([i]) * 10_000, "application/octet-stream", f"f{i}") for i in range(3)
    ]
    own = upload(bob, b"bob's own file", "text/plain", "own.txt")
    for mxc in uploads:
        assert bob.http.get(f"{V1}/download/{mxc}").status_code == 200
    assert len([r for r in media_rows(b) if r[2] == 1]) == 3

    # Everything older than 0 days: the whole remote cache goes; bob's upload stays.
    out = b.cli("media", "cleanup", "--older-than-days", "0", "--json")
    report = json.loads(out.stdout)
    assert report["media_removed"] == 3 and report["files_removed"] == 3
    assert [r[1] for r in media_rows(b)] == [own.split("/")[1]]
    assert len(media_files(b)) == 1
    r = bob.http.get(f"{V1}/download/{own}")
    assert r.status_code == 200 and r.content == b"bob's own file"
    # Dropped from the cache, fetched again on demand.
    r = bob.http.get(f"{V1}/download/{uploads[0]}")
    assert r.status_code == 200 and r.content == bytes([0]) * 10_000
