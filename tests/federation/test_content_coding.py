"""Compressed request bodies between relays (relay/federation/content_coding.py): a relay
announces gzip in its version answer, our client gzips signed bodies only for a destination
that announced it (plain JSON to Synapse and anyone else), and a real relay takes them;
inbound, a body that inflates past the cap is 413 and an unknown coding 415."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from relay.errors import TooLarge
from relay.events.canonical import canonical_json
from relay.federation import content_coding
from relay.federation.content_coding import UnsupportedCoding, announced, decode, encode
from tests.federation.conftest import open_side
from tests.federation.fakes import FakeNetwork, open_local
from tests.integration.conftest import RelayProcess

VERSION = "/_matrix/federation/v1/version"
RELAY_PEER = "relay.example:8448"
SYNAPSE_PEER = "synapse.example:8448"


def _body(n: int = 20) -> dict:
    return {
        "origin": "me.example:8448",
        "origin_server_ts": 1,
        "pdus": [],
        "edus": [{"edu_type": "org.example.test", "content": {"n": i}} for i in range(n)],
    }


def test_encode_only_for_a_peer_that_takes_gzip_and_decode_round_trips() -> None:
    plain = canonical_json(_body())
    assert encode(plain, frozenset()) == (plain, None)
    assert encode(b"{}", frozenset({"gzip"})) == (b"{}", None)  # too small to gain
    packed, coding = encode(plain, frozenset({"gzip"}))
    assert coding == "gzip" and len(packed) < len(plain)
    assert decode(packed, "gzip", 10**6) == plain
    assert decode(plain, "", 10**6) == plain


def test_decode_refuses_bombs_unknown_codings_and_garbage() -> None:
    bomb = gzip.compress(b" " * 2_000_000)
    with pytest.raises(TooLarge):
        decode(bomb, "gzip", 1_000_000)
    with pytest.raises(UnsupportedCoding):
        decode(b"x", "br", 10)
    with pytest.raises(UnsupportedCoding):
        decode(b"not gzip at all", "gzip", 100)


def test_announced_reads_only_codings_we_can_produce() -> None:
    assert announced({"server": {"name": "Synapse"}}) == frozenset()
    assert announced({content_coding.ANNOUNCE_KEY: ["zstd", "gzip", 3]}) == {"gzip"}
    assert announced({content_coding.ANNOUNCE_KEY: "gzip"}) == frozenset()


async def test_client_gzips_for_a_relay_and_sends_plain_json_to_synapse(tmp_path) -> None:
    network = FakeNetwork()
    versions = {
        RELAY_PEER: {"server": {"name": "edge-relay"}} | content_coding.announcement(),
        SYNAPSE_PEER: {"server": {"name": "Synapse", "version": "1.163.2"}},
    }
    for peer, version in versions.items():

        def handler(request: httpx.Request, version: dict = version) -> httpx.Response:
            if request.url.path == VERSION:
                return httpx.Response(200, json=version)
            return httpx.Response(200, json={"pdus": {}})

        network.routes[peer] = handler
    async with open_local(tmp_path, network) as local:
        for peer in versions:
            assert local.client.codings(peer) is None
            await local.client.get_json(peer, VERSION)
            await local.client.put_json(peer, "/_matrix/federation/v1/send/t1", _body())
        assert local.client.codings(RELAY_PEER) == {"gzip"}
        assert local.client.codings(SYNAPSE_PEER) == frozenset()
    sends = {r.headers["host"]: r for r in network.requests if r.method == "PUT"}
    to_relay, to_synapse = sends[RELAY_PEER], sends[SYNAPSE_PEER]
    assert to_relay.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(to_relay.content)) == _body()
    assert "content-encoding" not in to_synapse.headers
    assert to_synapse.content == canonical_json(_body())


async def test_a_real_relay_announces_gzip_and_takes_a_gzipped_transaction(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=False) as side:
        await side.client.get_json(b.server_name, VERSION)
        assert side.client.codings(b.server_name) == {"gzip"}
        body = _body() | {"origin": a.server_name}
        answer = await side.client.put_json(b.server_name, "/_matrix/federation/v1/send/gz1", body)
        assert answer == {"pdus": {}}
        assert side.client.statistics()["remote_errors"] == 0
