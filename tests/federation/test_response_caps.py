"""Every federation answer is read up to what it can legitimately be, then dropped.

A peer (or a notary naming one) that answers megabytes of JSON to a key query used to be
read whole into memory (a 20 MB answer took a relay from 77 to 613 MB). Bounds are proved
by counting the bytes the peer got to hand over, never by time.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from relay.federation.client import (
    DEFAULT_RESPONSE_BYTES,
    KEY_RESPONSE_BYTES,
    ROOM_STATE_RESPONSE_BYTES,
    FederationClient,
)
from relay.federation.errors import RemoteError, ResponseTooLarge
from relay.runtime.identity import new_signing_key, write_self_signed_certificate
from tests.federation.fakes import FakeNetwork, fake_config, open_local

PEER = "peer.example:8448"
CHUNK = 64 * 1024
HUGE = 20 * 1024 * 1024


class Endless:
    """A JSON-looking body of `total` bytes, counting what the reader pulled."""

    def __init__(self, total: int = HUGE) -> None:
        self.total = total
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"server_keys": ["'
        while self.pulled < self.total:
            self.pulled += CHUNK
            yield b"x" * CHUNK


def test_caps_are_ordered_and_documented() -> None:
    assert KEY_RESPONSE_BYTES == 1024 * 1024
    assert KEY_RESPONSE_BYTES < DEFAULT_RESPONSE_BYTES < ROOM_STATE_RESPONSE_BYTES
    # 100 PDUs of the largest allowed size fit an ordinary answer (backfill, missing events).
    assert DEFAULT_RESPONSE_BYTES > 100 * 65536


async def test_a_notary_answering_megabytes_is_cut_at_the_key_cap(tmp_path: Path) -> None:
    body = Endless()
    net = FakeNetwork()
    net.routes["notary.example:8448"] = lambda r: httpx.Response(200, content=body)
    async with open_local(tmp_path, net) as local:
        with pytest.raises(ResponseTooLarge) as exc:
            await local.keyring.query_notary("notary.example:8448", {PEER: {"ed25519:k": 0}})
    assert exc.value.limit == KEY_RESPONSE_BYTES
    assert "larger than" in str(exc.value)
    assert body.pulled <= KEY_RESPONSE_BYTES + CHUNK


async def test_a_server_key_answer_over_the_cap_is_refused(tmp_path: Path) -> None:
    body = Endless()
    net = FakeNetwork()
    net.routes[PEER] = lambda r: httpx.Response(200, content=body)
    async with open_local(tmp_path, net) as local:
        with pytest.raises(ResponseTooLarge):
            await local.keyring.fetch_server_keys(PEER)
    assert body.pulled <= KEY_RESPONSE_BYTES + CHUNK


async def test_other_answers_are_cut_at_the_default_cap(tmp_path: Path) -> None:
    body = Endless()
    net = FakeNetwork()
    net.routes[PEER] = lambda r: httpx.Response(200, content=body)
    async with open_local(tmp_path, net) as local:
        with pytest.raises(ResponseTooLarge):
            await local.client.get_json(PEER, "/_matrix/federation/v1/event/$e")
    assert body.pulled <= DEFAULT_RESPONSE_BYTES + CHUNK


async def test_a_declared_length_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    body = Endless()
    net = FakeNetwork()
    net.routes[PEER] = lambda r: httpx.Response(
        200, content=body, headers={"Content-Length": str(HUGE)}
    )
    async with open_local(tmp_path, net) as local:
        with pytest.raises(ResponseTooLarge):
            await local.client.get_json(PEER, "/_matrix/key/v2/server", max_bytes=1024)
    assert body.pulled == 0


async def test_a_compressed_answer_is_refused(tmp_path: Path) -> None:
    net = FakeNetwork()
    net.routes[PEER] = lambda r: httpx.Response(
        200, content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"}
    )
    async with open_local(tmp_path, net) as local:
        with pytest.raises(RemoteError, match="gzip"):
            await local.client.get_json(PEER, "/_matrix/federation/v1/version")
    assert net.requests[0].headers["accept-encoding"] == "identity"


async def test_an_answer_within_its_cap_is_read(tmp_path: Path) -> None:
    payload = {"x": "y" * (KEY_RESPONSE_BYTES - 100)}
    net = FakeNetwork()
    net.routes[PEER] = lambda r: httpx.Response(200, json=payload)
    async with open_local(tmp_path, net) as local:
        assert await local.client.get_json(PEER, "/k", max_bytes=KEY_RESPONSE_BYTES) == payload


async def test_a_real_peer_on_loopback_sending_20_mb_is_cut_off(tmp_path: Path) -> None:
    """A TLS server on 127.0.0.1 streams 20 MB of JSON to a key query; the client stops at
    the cap and hangs up, so the server cannot hand over the rest."""
    write_self_signed_certificate(tmp_path / "c.pem", tmp_path / "k.pem", "127.0.0.1")
    ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    listeners = await trio.open_ssl_over_tcp_listeners(0, ssl_context, host="127.0.0.1")
    port = listeners[0].transport_listener.socket.getsockname()[1]
    sent = 0
    finished = trio.Event()

    async def answer(stream: trio.SSLStream) -> None:
        nonlocal sent
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(4096)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        try:
            await stream.send_all(head + b'{"server_keys": ["')
            while sent < HUGE:
                await stream.send_all(b"x" * CHUNK)
                sent += CHUNK
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            finished.set()

    client = FederationClient(fake_config(tmp_path, verify_tls=False), new_signing_key())
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, answer, listeners)
            with pytest.raises(ResponseTooLarge):
                await client.post_json(
                    f"127.0.0.1:{port}",
                    "/_matrix/key/v2/query",
                    {"server_keys": {}},
                    max_bytes=KEY_RESPONSE_BYTES,
                )
            await client.aclose()
            # The server is stopped by the broken connection, with socket buffers between.
            await finished.wait()
            nursery.cancel_scope.cancel()
    finally:
        await client.aclose()
    assert sent < HUGE // 2, f"the peer handed over {sent} bytes"
