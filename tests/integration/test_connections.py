"""Connections against a real relay (issue 13, resource exhaustion): a storm of connections,
connections that send nothing, a body promised and never sent, headers sent a byte at a
time; throughout, a normal request from another address is served. Timeouts are short
settings here; no test asserts how long anything took.

Before relay/listener.py: 1,100 connect-and-close in 9 s exhausted 1,024 descriptors (each
closed connection kept its descriptor until its 75 s keep-alive timer ended), and a stalled
body held its connection for minutes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RelayProcess, make_relay

STORM = 1100
#: Long enough for any test machine to notice a closed connection; never a measurement.
PATIENCE = 60.0


def start_relay(tmp_path: Path, **settings: str) -> RelayProcess:
    """A relay with 1,024 descriptors, as the board had in the report, and short timeouts."""
    r = make_relay(tmp_path)
    r.nofile = 1024
    r.init()
    path = r.data_dir / "relay.toml"
    text = path.read_text()
    settings = {
        "max_connections": "500",
        "max_connections_per_address": "100",
        "header_timeout_seconds": "2.0",
        "body_timeout_seconds": "2.0",
        "client_keep_alive_seconds": "60.0",
    } | settings
    for key, value in settings.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{key} ="))
        text = text.replace(old, f"{key} = {value}")
    path.write_text(text)
    r.start()
    return r


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    r = start_relay(tmp_path)
    try:
        yield r
    finally:
        r.kill()


def connect(relay: RelayProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(PATIENCE)
    sock.connect((relay.host, relay.client_port))
    return sock


def normal_request(relay: RelayProcess) -> None:
    """A client on another address asks for /versions, on a new connection."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, timeout=PATIENCE) as http:
        r = http.get(f"{relay.client_url}/_matrix/client/versions")
    assert r.status_code == 200, r.text
    assert "versions" in r.json()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ends this connection (reads until EOF or a reset)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def test_connect_and_close_storm_leaves_the_relay_serving(relay: RelayProcess) -> None:
    errors: list[BaseException] = []

    def storm(count: int) -> None:
        try:
            for _ in range(count):
                connect(relay).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=storm, args=(STORM // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        normal_request(relay)
    for t in threads:
        t.join()
    assert errors == []
    normal_request(relay)
    assert "out of resources" not in relay.log()


def test_connections_that_send_nothing_are_refused_beyond_the_limit_then_closed(
    tmp_path: Path,
) -> None:
    relay = start_relay(tmp_path, header_timeout_seconds="5.0")
    held = [connect(relay) for _ in range(100)]  # this address's share
    try:
        # One more from the same address: a clear refusal, then the end of the connection.
        extra = connect(relay)
        extra.sendall(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := extra.recv(65536):
            answer += chunk
        extra.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), answer
        assert json.loads(body)["errcode"] == "M_LIMIT_EXCEEDED"
        # The rest of the storm, silent; another address is served throughout.
        held += [connect(relay) for _ in range(STORM - 100)]
        normal_request(relay)
        # Within the limit but silent: closed after the header timeout, not kept.
        assert closed_by_server(held[0])
        normal_request(relay)
    finally:
        for sock in held:
            sock.close()
        normal_request(relay)
        relay.kill()


def test_stalled_body_is_closed_and_others_are_served(relay: RelayProcess) -> None:
    sock = connect(relay)
    sock.sendall(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"type":'
    )
    normal_request(relay)
    assert closed_by_server(sock)
    sock.close()
    normal_request(relay)


def test_headers_a_byte_at_a_time_are_cut_off(relay: RelayProcess) -> None:
    sock = connect(relay)
    # 120 bytes at one every 0.5 s at most: a minute, far beyond the header timeout.
    request = (b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 120)[:120]
    closed = False
    try:
        for i in range(len(request)):
            sock.sendall(request[i : i + 1])
            sock.settimeout(0.5)
            try:
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    finally:
        sock.close()
    assert closed
    normal_request(relay)


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection was closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_idle_keep_alive_connection_outlives_the_header_timeout(relay: RelayProcess) -> None:
    """Keep-alive (60 s here) is not the header timeout (2 s): a phone that pauses between
    requests keeps its connection."""
    sock = connect(relay)
    request = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(5)  # well past the header timeout, well within the keep-alive
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()
