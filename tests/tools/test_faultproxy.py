"""tools/faultproxy.py: heal, cut, blackhole and heal again, against a real echo server.

Synchronous tests with plain sockets, as the integration tests use the proxy.
Timeouts only keep a broken run from hanging; nothing asserts on timing.
"""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
GENEROUS = 10.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        if self.server.tls_context is not None:  # type: ignore[attr-defined]
            sock = self.server.tls_context.wrap_socket(sock, server_side=True)  # type: ignore[attr-defined]
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, tls_context: ssl.SSLContext | None = None):
        super().__init__((HOST, 0), _Echo)
        self.tls_context = tls_context


def _serve(tls_context: ssl.SSLContext | None = None) -> Iterator[_EchoServer]:
    server = _EchoServer(tls_context)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo() -> Iterator[_EchoServer]:
    yield from _serve()


@pytest.fixture
def proxy(echo: _EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(HOST, 0, *echo.server_address) as p:
        yield p


def _connect(proxy: FaultProxy, timeout: float = GENEROUS) -> socket.socket:
    return socket.create_connection((HOST, proxy.listen_port), timeout=timeout)


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _assert_reset(sock: socket.socket) -> None:
    """The connection was reset (RST), not closed gracefully and not left hanging."""
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        sock.sendall(b"after the cut")
        sock.recv(100)


def _assert_new_connection_reset(proxy: FaultProxy) -> None:
    """A new connection is reset at once: during connect() or at first use."""
    try:
        sock = _connect(proxy)
    except ConnectionResetError:
        return
    with sock:
        _assert_reset(sock)


def test_forwards_when_healed(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"hello") == b"hello"
        assert _roundtrip(sock, b"again") == b"again"
    stats = proxy.statistics()
    assert stats["mode"] == "heal"
    assert stats["accepted"] == 1
    assert stats["bytes_up"] == 10
    assert stats["bytes_down"] == 10


def test_large_transfer_both_ways(proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: more than any socket buffer
    with _connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            received += sock.recv(65536)
        sender.join(GENEROUS)
    assert received == payload


def test_cut_resets_open_and_new_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as open_sock:
        assert _roundtrip(open_sock, b"before") == b"before"
        proxy.cut()
        _assert_reset(open_sock)
    _assert_new_connection_reset(proxy)
    assert proxy.statistics()["mode"] == "cut"
    proxy.heal()
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"healed") == b"healed"


def test_blackhole_accepts_but_never_answers(proxy: FaultProxy) -> None:
    with _connect(proxy) as open_sock:
        assert _roundtrip(open_sock, b"before") == b"before"
        proxy.blackhole()
        open_sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            _roundtrip(open_sock, b"lost?")
        accepted = proxy.statistics()["accepted"]
        with _connect(proxy) as new_sock:  # the connect itself succeeds
            new_sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                _roundtrip(new_sock, b"anyone?")
            assert proxy.statistics()["accepted"] == accepted + 1

            # Heal: both resume with nothing lost, as TCP does after a partition.
            proxy.heal()
            new_sock.settimeout(GENEROUS)
            assert new_sock.recv(100) == b"anyone?"
        open_sock.settimeout(GENEROUS)
        assert open_sock.recv(100) == b"lost?"
        assert _roundtrip(open_sock, b"after") == b"after"


def test_cut_during_blackhole_resets_the_held_connections(proxy: FaultProxy) -> None:
    proxy.blackhole()
    with _connect(proxy) as sock:
        sock.sendall(b"held")
        proxy.cut()
        _assert_reset(sock)


def test_delay_still_forwards(proxy: FaultProxy) -> None:
    proxy.delay(0.05)
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"slow") == b"slow"
    assert proxy.statistics()["delay"] == 0.05
    proxy.delay(0)


def test_tls_runs_end_to_end(tmp_path: Path) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    client_ctx = ssl.create_default_context()
    try:
        import trustme
    except ImportError:
        from relay.runtime.identity import write_self_signed_certificate

        cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
        write_self_signed_certificate(cert, key, f"{HOST}:8448")
        server_ctx.load_cert_chain(cert, key)
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
    else:
        ca = trustme.CA()
        ca.issue_cert(HOST).configure_cert(server_ctx)
        ca.configure_trust(client_ctx)
    for server in _serve(server_ctx):
        with FaultProxy(HOST, 0, *server.server_address) as proxy:
            with _connect(proxy) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=HOST) as tls:
                    assert _roundtrip(tls, b"through the proxy") == b"through the proxy"
            assert proxy.statistics()["bytes_up"] > len(b"through the proxy")


def test_many_concurrent_connections(proxy: FaultProxy) -> None:
    socks = [_connect(proxy) for _ in range(64)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(f"message {i}".encode())
        for i, sock in enumerate(socks):
            expected = f"message {i}".encode()
            received = b""
            while len(received) < len(expected):
                received += sock.recv(100)
            assert received == expected
        assert proxy.statistics()["open"] == 64
    finally:
        for sock in socks:
            sock.close()
    assert proxy.statistics()["accepted"] == 64


def test_stop_closes_everything_and_frees_the_port(echo: _EchoServer) -> None:
    proxy = FaultProxy(HOST, 0, *echo.server_address).start()
    port = proxy.listen_port
    sock = _connect(proxy)
    assert _roundtrip(sock, b"x") == b"x"
    proxy.stop()
    try:
        assert sock.recv(10) == b""
    except ConnectionResetError:
        pass
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=GENEROUS)
    with FaultProxy(HOST, port, *echo.server_address) as again:
        with _connect(again) as sock:
            assert _roundtrip(sock, b"y") == b"y"


def test_upstream_down_resets_the_client() -> None:
    with socket.socket() as placeholder:  # a port with nobody listening
        placeholder.bind((HOST, 0))
        dead_port = placeholder.getsockname()[1]
        with FaultProxy(HOST, 0, HOST, dead_port) as proxy:
            _assert_new_connection_reset(proxy)
            assert proxy.statistics()["upstream_failures"] == 1


def test_start_fails_loudly_when_the_port_is_taken(proxy: FaultProxy) -> None:
    with pytest.raises(OSError):
        FaultProxy(HOST, proxy.listen_port, HOST, 1).start()


def test_cli(echo: _EchoServer) -> None:
    target = "{}:{}".format(*echo.server_address)
    cli = subprocess.Popen(
        [sys.executable, "-m", "tools.faultproxy", "--listen", f"{HOST}:0", "--target", target],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cli.stdin and cli.stdout
    try:
        banner = cli.stdout.readline()
        assert banner.startswith("listening ")
        port = int(banner.split()[1].rsplit(":", 1)[1])
        with socket.create_connection((HOST, port), timeout=GENEROUS) as sock:
            assert _roundtrip(sock, b"cli") == b"cli"
            cli.stdin.write("cut\n")
            cli.stdin.flush()
            assert cli.stdout.readline() == "ok cut\n"
            _assert_reset(sock)
        cli.stdin.write("stats\n")
        cli.stdin.flush()
        stats = json.loads(cli.stdout.readline())
        assert stats["mode"] == "cut"
        assert stats["accepted"] == 1
        cli.stdin.write("quit\n")
        cli.stdin.flush()
        assert cli.wait(GENEROUS) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.faultproxy", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=GENEROUS,
    )
    assert result.returncode == 0
    assert "--listen" in result.stdout
    assert "blackhole" in result.stdout
