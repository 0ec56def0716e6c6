"""tools/linkemu: the emulated slow link carries TCP, shapes it, counts it, and loses packets
when told to (TCP still delivers every byte). Needs root; skipped with the reason otherwise."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tools.linkemu.__main__ import echo_check
from tools.linkemu.link import EmulatedLink, LinkUnavailable, inside, wait_for
from tools.linkemu.profiles import PROFILES, Profile, profile


@pytest.fixture
def link() -> Iterator[EmulatedLink]:
    try:
        EmulatedLink.check_available()
    except LinkUnavailable as exc:
        pytest.skip(str(exc))
    with EmulatedLink("t") as made:
        yield made


def test_profiles_named_by_the_issue() -> None:
    for name in ("9.6k", "64k", "256k"):
        assert profile(name).delay_ms == 300 and profile(name).loss == 0
        assert profile(f"{name}-loss").loss == 0.01
    assert profile("9.6k").rate_bit == 9600
    with pytest.raises(ValueError):
        profile("1g")
    assert set(PROFILES) >= {"unshaped", "9.6k-loss"}


def test_shaped_link_carries_and_counts(link: EmulatedLink) -> None:
    link.shape(profile("9.6k"))
    before = link.counters()
    echo_check(link, payload=1000)
    used = link.counters() - before
    assert used.connections_from_a == 1
    assert used.connections_from_b == 0
    # 1000 bytes each way plus TCP/IP headers and the handshake.
    assert used.bytes_a_to_b > 1000 and used.bytes_b_to_a > 1000
    assert used.dropped == 0


def test_lossy_link_drops_packets_and_tcp_still_delivers(link: EmulatedLink) -> None:
    link.shape(Profile("lossy", 20_000_000, delay_ms=1, loss=0.05))
    size = 400_000
    with inside(link.ns_b):
        server = socket.create_server((link.ADDRESS_B, 7008))
    received = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with inside(link.ns_a):
        client = socket.create_connection((link.ADDRESS_B, 7008), timeout=60)
    with client:
        client.sendall(bytes(range(256)) * (size // 256))
    thread.join(60)
    server.close()
    assert bytes(received) == bytes(range(256)) * (size // 256)
    wait_for(lambda: link.delayer_drops() > 0, 10, "the delay stage's drop count")
