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
from relay.federation.content_coding import (
    Inflater,
    UnsupportedCoding,
    announced,
    decode,
    encode,
)
from tests.federation.conftest import open_side
from tests.federation.fakes import FakeNetwork, open_local
from tests.federation.inprocess import signed_request
from tests.federation.peers import signing_key_of
from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser

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
    # Answers: a relay is asked for gzip, Synapse for nothing but identity.
    assert to_relay.headers["accept-encoding"] == "gzip"
    assert to_synapse.headers["accept-encoding"] == "identity"


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


# -- answers ---------------------------------------------------------------------------------


def test_an_answer_is_inflated_only_when_asked_and_never_past_the_cap() -> None:
    plain = canonical_json(_body(200))
    packed = gzip.compress(plain)
    inflater = Inflater.for_answer("gzip", "gzip")
    assert inflater is not None
    for i in range(0, len(packed), 100):  # as it arrives, in pieces
        inflater.feed(packed[i : i + 100], 10**6)
    assert inflater.finish(10**6) == plain
    assert Inflater.for_answer("gzip", "identity") is None  # not asked: refused
    assert Inflater.for_answer("br", "gzip") is None
    bomb = Inflater.for_answer("gzip", "gzip")
    assert bomb is not None
    with pytest.raises(TooLarge):
        bomb.feed(gzip.compress(b" " * 5_000_000), 1_000_000)
    garbage = Inflater.for_answer("gzip", "gzip")
    assert garbage is not None
    with pytest.raises(UnsupportedCoding):
        garbage.feed(b"not gzip", 10**6)
    cut = Inflater.for_answer("gzip", "gzip")
    assert cut is not None
    cut.feed(packed[: len(packed) // 2], 10**6)
    with pytest.raises(UnsupportedCoding):
        cut.finish(10**6)


async def test_a_relay_gzips_big_answers_for_a_relay_that_asks_and_plain_for_others(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    b.cli("user", "add", "gzipowner", "--password", "pw")
    owner = MatrixUser.login(b.client_url, "gzipowner")
    topic = " ".join(f"word{i}" for i in range(400))  # a publicRooms answer of ~3 KB
    owner.create_room(visibility="public", name="gzip test", topic=topic)
    path = "/_matrix/federation/v1/publicRooms"
    key = signing_key_of(a)
    async with httpx.AsyncClient(verify=False) as raw:
        for accept in ("gzip", "identity"):
            uri, headers, _ = signed_request(
                a.server_name, key, b.server_name, "GET", path, None, None
            )
            answer = await raw.get(
                b.federation_url + uri, headers=headers | {"Accept-Encoding": accept}
            )
            assert answer.status_code == 200
            coded = answer.headers.get("content-encoding")
            assert coded == ("gzip" if accept == "gzip" else None), accept
    async with open_side(a, verify_tls=False) as side:
        await side.client.get_json(b.server_name, VERSION)  # learns that b takes gzip
        rooms = await side.client.get_json(b.server_name, path)
        assert any(room.get("topic") == topic for room in rooms["chunk"])
