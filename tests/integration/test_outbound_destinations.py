"""The destination policy against a real relay (issue 13, SSRF): a remote media server that
answers with a `Location` (or a redirect) pointing inside the relay's network gets the local
user an error and the internal server gets nothing; the same answers pointing at a remote
address are served.

Every server here is on loopback. The relay treats only the stand-in remote servers'
addresses as remote (`federation.ip_range_allowlist`); 127.0.0.92, the "internal admin"
server, stays what loopback is to a real relay.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RelayProcess, make_relay
from tests.integration.matrix_client import MatrixUser
from tests.support import free_port, fresh_loopback

V1 = "/_matrix/client/v1/media"
INTERNAL_HOST = "127.0.0.92"
FILE = b"the remote file's bytes"


class CountingServer:
    """An HTTP(S) server in a thread that counts the connections it accepts (a request or
    not) and answers each path with `answer(path) -> (status, headers, body)`."""

    def __init__(
        self,
        host: str,
        answer: Callable[[str], tuple[int, dict[str, str], bytes]],
        *,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.connections = 0
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                status, headers, body = answer(self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, object]:
                conn, addr = super().get_request()
                outer.connections += 1
                if tls is not None:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    ctx.load_cert_chain(str(tls[0]), str(tls[1]))
                    conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                return conn, addr

        self.port = free_port(host)
        self.host = host
        self.scheme = "https" if tls else "http"
        self.server = Server((host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def multipart_location(location: str) -> tuple[int, dict[str, str], bytes]:
    body = (
        b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n"
        b"--b\r\nLocation: " + location.encode() + b"\r\n\r\n\r\n--b--\r\n"
    )
    return 200, {"Content-Type": "multipart/mixed; boundary=b"}, body


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict]:
    """A relay, a user on it, a remote media server, a remote file server, and internal
    servers (plain and TLS) on 127.0.0.92 that nothing should reach."""
    relay = make_relay(tmp_path)
    remote_host, files_host = fresh_loopback(), fresh_loopback()
    relay.remote_ranges = (remote_host, files_host)
    relay.init("--no-verify-tls")
    relay.cli("user", "add", "alice", "--password", "pw")
    relay.start()
    # The stand-ins borrow the relay's self-signed certificate (it verifies nothing here).
    tls = (relay.data_dir / "tls.crt", relay.data_dir / "tls.key")
    internal = CountingServer(INTERNAL_HOST, lambda p: (200, {}, b"internal admin page"))
    internal_tls = CountingServer(
        INTERNAL_HOST, lambda p: (200, {}, b"internal admin page"), tls=tls
    )

    def files_answer(path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/hop/"):  # /hop/N: N more redirects, then the file
            left = int(path.split("/")[2])
            target = files.url(f"/hop/{left - 1}") if left > 1 else files.url("/file")
            return 302, {"Location": target}, b""
        if path == "/to-internal":
            return 302, {"Location": internal_tls.url("/internal-admin")}, b""
        return 200, {"Content-Type": "text/plain"}, FILE

    files = CountingServer(files_host, files_answer, tls=tls)
    plain_files = CountingServer(files_host, files_answer)
    locations = {
        "attack": internal.url("/internal-admin"),
        "remote-file": files.url("/file"),
        "redirect-inside": files.url("/to-internal"),
        "redirect-outside": files.url("/hop/1"),
        "redirects-5": files.url("/hop/5"),
        "redirects-6": files.url("/hop/6"),
        "plain-http": plain_files.url("/file"),
        "own-listener": f"https://{relay.host}:{relay.federation_port}/_matrix/key/v2/server",
    }

    def remote_answer(path: str) -> tuple[int, dict[str, str], bytes]:
        media_id = path.split("?")[0].rsplit("/", 1)[-1]
        return multipart_location(locations[media_id])

    remote = CountingServer(remote_host, remote_answer, tls=tls)
    servers = [internal, internal_tls, files, plain_files, remote]
    try:
        yield {
            "relay": relay,
            "alice": MatrixUser.login(relay.client_url, "alice"),
            "remote": f"{remote_host}:{remote.port}",
            "internal": internal,
            "internal_tls": internal_tls,
            "files": files,
            "plain_files": plain_files,
        }
    finally:
        relay.kill()
        for server in servers:
            server.close()


def download(lab: dict, media_id: str) -> httpx.Response:
    return lab["alice"].http.get(f"{V1}/download/{lab['remote']}/{media_id}")


def test_location_to_an_internal_address_is_refused_and_never_reached(lab: dict) -> None:
    """The reproduced attack: `Location: http://127.0.0.92:PORT/internal-admin`."""
    r = download(lab, "attack")
    assert r.status_code == 502, r.text
    assert b"internal admin page" not in r.content
    assert lab["internal"].connections == 0
    assert "refused" in lab["relay"].log()


def test_location_to_a_remote_address_is_served(lab: dict) -> None:
    r = download(lab, "remote-file")
    assert r.status_code == 200, r.text
    assert r.content == FILE


def test_redirect_from_a_remote_location_to_an_internal_address_is_refused(lab: dict) -> None:
    r = download(lab, "redirect-inside")
    assert r.status_code == 502, r.text
    assert lab["files"].paths == ["/to-internal"]
    assert lab["internal_tls"].connections == 0


def test_redirect_from_a_remote_location_to_a_remote_address_is_followed(lab: dict) -> None:
    r = download(lab, "redirect-outside")
    assert r.status_code == 200, r.text
    assert r.content == FILE


def test_five_redirects_are_followed_six_are_not(lab: dict) -> None:
    r = download(lab, "redirects-5")
    assert r.status_code == 200 and r.content == FILE
    before = len(lab["files"].paths)
    r = download(lab, "redirects-6")
    assert r.status_code == 502, r.text
    assert lab["files"].paths[before:] == [f"/hop/{n}" for n in range(6, 0, -1)]


def test_plain_http_location_is_refused_even_to_a_remote_address(lab: dict) -> None:
    r = download(lab, "plain-http")
    assert r.status_code == 502, r.text
    assert lab["plain_files"].connections == 0


def test_location_to_the_relays_own_listener_is_refused(lab: dict) -> None:
    """The relay's own federation listener, although its address counts as remote here
    (the allowlist names 127.x addresses; the listener's is refused whatever it says)."""
    relay: RelayProcess = lab["relay"]
    relay.stop()
    relay.remote_ranges = (*relay.remote_ranges, relay.host)
    text = (relay.data_dir / "relay.toml").read_text()
    old = next(line for line in text.splitlines() if line.startswith("ip_range_allowlist"))
    (relay.data_dir / "relay.toml").write_text(text.replace(old, relay.allowlist_line()))
    relay.start()
    lab["alice"] = MatrixUser.login(relay.client_url, "alice")
    r = download(lab, "own-listener")
    assert r.status_code == 502, r.text
    assert "this relay's own listener" in relay.log()


class AcceptCounter:
    """Listeners on one address and many ports that count connections and hang up: where
    a relay fetching keys from forged origins would connect."""

    def __init__(self, host: str, ports: int) -> None:
        self.host = host
        self.connections = 0
        self.sockets: list[socket.socket] = []
        for _ in range(ports):
            sock = socket.socket()
            sock.bind((host, 0))
            sock.listen(16)
            self.sockets.append(sock)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    @property
    def servers(self) -> list[str]:
        return [f"{self.host}:{s.getsockname()[1]}" for s in self.sockets]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def budget_lab(tmp_path: Path) -> Iterator[tuple[RelayProcess, AcceptCounter]]:
    """A relay whose key-fetch budget is 4 per requester (no refill to speak of), and 40
    would-be servers on an address it treats as remote."""
    relay = make_relay(tmp_path)
    targets = AcceptCounter(fresh_loopback(), 40)
    relay.remote_ranges = (targets.host,)
    relay.init("--no-verify-tls")
    text = (relay.data_dir / "relay.toml").read_text()
    text = text.replace("key_fetch_per_second = 0.2", "key_fetch_per_second = 0.001")
    (relay.data_dir / "relay.toml").write_text(
        text.replace("key_fetch_burst = 30", "key_fetch_burst = 4")
    )
    relay.start()
    try:
        yield relay, targets
    finally:
        relay.kill()
        targets.close()


def forged_profile_query(relay: RelayProcess, origin: str, source: str) -> httpx.Response:
    """A federation request from `source` claiming to be signed by `origin`."""
    header = (
        f'X-Matrix origin="{origin}",destination="{relay.server_name}",'
        'key="ed25519:x",sig="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"'
    )
    transport = httpx.HTTPTransport(verify=False, local_address=source)
    with httpx.Client(transport=transport, timeout=30) as http:
        return http.get(
            f"{relay.federation_url}/_matrix/federation/v1/query/profile",
            params={"user_id": f"@x:{relay.server_name}"},
            headers={"Authorization": header},
        )


def test_forged_origins_make_the_relay_connect_only_within_the_requesters_budget(
    budget_lab: tuple[RelayProcess, AcceptCounter],
) -> None:
    relay, targets = budget_lab
    servers = targets.servers
    for origin in servers[:20]:
        assert forged_profile_query(relay, origin, "127.0.0.1").status_code == 401
    assert targets.connections == 4  # the budget, not one per origin

    # Another requester has a budget of its own...
    for origin in servers[20:24]:
        assert forged_profile_query(relay, origin, "127.0.0.2").status_code == 401
    assert targets.connections == 8
    # ...but cannot make the relay try again a server that just failed.
    assert forged_profile_query(relay, servers[0], "127.0.0.3").status_code == 401
    assert targets.connections == 8


def test_notary_queries_fetch_only_within_the_requesters_budget(
    budget_lab: tuple[RelayProcess, AcceptCounter],
) -> None:
    relay, targets = budget_lab
    query = {"server_keys": {server: {} for server in targets.servers[:20]}}
    with httpx.Client(verify=False, timeout=60) as http:
        r = http.post(f"{relay.federation_url}/_matrix/key/v2/query", json=query)
    assert r.status_code == 200 and r.json() == {"server_keys": []}
    assert targets.connections == 4
