"""The transaction stream between relays (relay/federation/transaction_stream.py): a relay
announces it, another relay's client opens it with one signed upgrade and pushes
transactions on it, compressed with the stream so far as the dictionary; Synapse (which
announces nothing) and a relay that refuses the upgrade get `PUT /send`. Inbound, the
stream is hostile input like any other: unsigned upgrades, garbage, bombs and malformed
transactions change nothing and end the stream or get an error answer."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
import pytest
import trio
import wsproto
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from relay.errors import TooLarge
from relay.events.canonical import canonical_json
from relay.events.hashes import add_content_hash
from relay.events.ids import event_id
from relay.events.room_versions import room_version
from relay.events.signing import SignatureError, sign_json, verify_json_signature
from relay.federation import transaction_stream as stream
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.federation.request_auth import authorization_headers
from relay.runtime.identity import write_self_signed_certificate
from tests.federation.conftest import open_side
from tests.federation.fakes import ME, FakeNetwork, json_of, open_local
from tests.integration.conftest import RelayProcess
from tests.support import fresh_loopback

VERSION = "/_matrix/federation/v1/version"
SIGNER = ("a.example", "ed25519:a_test")


def _txn(origin: str, n: int, *, room: str = "!room:example.org") -> dict[str, Any]:
    """A transaction of EDUs only (PDUs need a room both sides share): the same words each
    time but the counter, as a room's messages repeat their room, sender and keys."""
    return {
        "origin": origin,
        "origin_server_ts": 1_700_000_000_000 + n,
        "pdus": [],
        "edus": [
            {
                "edu_type": "org.example.test",
                "content": {"room_id": room, "sender": f"@alice:{origin}", "n": n},
            }
        ],
    }


# -- the codec ----------------------------------------------------------------------------


def test_each_message_is_packed_against_the_stream_so_far() -> None:
    packer, unpacker = stream.Packer(), stream.Unpacker()
    sizes = []
    for n in range(5):
        message = _txn("a.example", n) | {"txn_id": f"t{n}"}
        packed = packer.pack(message)
        sizes.append(len(packed))
        assert unpacker.unpack(packed) == message
    # The repeats cost a few bytes after the first message.
    assert max(sizes[1:]) * 3 < len(canonical_json(_txn("a.example", 0)))
    assert max(sizes[1:]) < sizes[0]


def test_a_message_unpacked_alone_or_out_of_order_fails() -> None:
    packer = stream.Packer()
    first = packer.pack({"a": "x" * 100})
    second = packer.pack({"a": "x" * 100})
    with pytest.raises(stream.BadMessage):
        stream.Unpacker().unpack(second)  # needs the first as its dictionary
    unpacker = stream.Unpacker()
    assert unpacker.unpack(first) == {"a": "x" * 100}
    assert unpacker.unpack(second) == {"a": "x" * 100}


def test_unpack_refuses_bombs_garbage_and_non_objects() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = bomb.compress(b'{"a":"' + b"x" * 3_000_000 + b'"}') + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(packed) < 10_000
    with pytest.raises(TooLarge):
        stream.Unpacker(limit=1_000_000).unpack(packed[:-4])
    with pytest.raises(stream.BadMessage):
        stream.Unpacker().unpack(b"\xff\xfe not deflate")
    with pytest.raises(stream.BadMessage):
        stream.Unpacker().unpack(stream.Packer().pack([1, 2]))


def _roundtrip(pdus: list[Any], versions: list[Any]) -> tuple[list[Any], list[Any]]:
    """(what goes on the stream, what the receiver restores) for `pdus`."""
    sent = stream.compact(pdus, versions, stream.References())
    return sent, stream.restore(sent, versions, stream.References())


def test_compaction_leaves_out_only_hashes_that_restore_recomputes() -> None:
    key = nacl.signing.SigningKey.generate()
    pdu = add_content_hash({"type": "m.room.message", "content": {"body": "hi"}, "depth": 1})
    sent, back = _roundtrip([pdu], [None])
    assert sent == [{k: v for k, v in pdu.items() if k != "hashes"}]
    assert back == [pdu]
    # Byte for byte: the restored PDU is the one signed, so its signature verifies.
    signed = sign_json(add_content_hash({"type": "m.room.message", "depth": 2}), *SIGNER, key)
    [compacted], [restored] = _roundtrip([signed], ["10"])
    assert "hashes" not in compacted
    assert canonical_json(restored) == canonical_json(signed)
    verify_json_signature(restored, *SIGNER, key.verify_key)
    # A wrong hash, or a second algorithm, goes as it is.
    wrong = pdu | {"hashes": {"sha256": "AAAA"}}
    two = pdu | {"hashes": pdu["hashes"] | {"sha512": "BBBB"}}
    sent, _ = _roundtrip([wrong, two, "not a pdu"], [None, None, None])
    assert sent == [wrong, two, "not a pdu"]


def test_a_restored_hash_the_origin_never_signed_fails_the_signature_check() -> None:
    key = nacl.signing.SigningKey.generate()
    # Signed without any hashes: restoring one alters what was signed.
    unhashed = sign_json({"type": "m.room.message", "depth": 2}, *SIGNER, key)
    [restored] = stream.restore([unhashed], ["10"], stream.References())
    assert "hashes" in restored
    with pytest.raises(SignatureError):
        verify_json_signature(restored, *SIGNER, key.verify_key)


def _chain(version: str, key: nacl.signing.SigningKey, length: int) -> list[dict[str, Any]]:
    """`length` signed messages of one room, each naming the one before as its prev event
    (and the first as an auth event), in room `version`'s event format."""
    rv = room_version(version)
    assert rv is not None
    pdus: list[dict[str, Any]] = []
    for depth in range(1, length + 1):

        def ref(pdu: dict[str, Any]) -> Any:
            found = event_id(pdu, rv)
            return [found, {"sha256": "x"}] if rv.event_id_in_event else found

        event: dict[str, Any] = {
            "type": "m.room.message",
            "room_id": "!room:a.example",
            "sender": "@alice:a.example",
            "depth": depth,
            "origin_server_ts": depth,
            "content": {"body": f"message {depth}"},
            "prev_events": [ref(pdus[-1])] if pdus else [],
            "auth_events": [ref(pdus[0])] if pdus else [],
        }
        if rv.event_id_in_event:
            event["event_id"] = f"$m{depth}:a.example"
        pdus.append(sign_json(add_content_hash(event), *SIGNER, key))
    return pdus


@pytest.mark.parametrize("version", ["1", "3", "10", "12"])
def test_a_prev_or_auth_event_sent_before_goes_as_a_reference(version: str) -> None:
    key = nacl.signing.SigningKey.generate()
    pdus = _chain(version, key, 4)
    versions = [version] * 4
    sent, restored = _roundtrip(pdus, versions)
    assert sent[0]["prev_events"] == []
    pairs = room_version(version).event_id_in_event  # type: ignore[union-attr]

    def first(value: list[Any]) -> Any:
        return value[0][0] if pairs else value[0]

    assert [first(p["prev_events"]) for p in sent[1:]] == ["^1", "^1", "^1"]
    assert [first(p["auth_events"]) for p in sent[1:]] == ["^1", "^2", "^3"]
    assert [canonical_json(p) for p in restored] == [canonical_json(p) for p in pdus]
    for pdu in restored:
        verify_json_signature(pdu, *SIGNER, key.verify_key)
    # Smaller on the stream: the ids were most of a short message's random bytes.
    packer = stream.Packer()
    packer.pack(pdus[0])
    plain = len(packer.pack(pdus[1]))
    packer = stream.Packer()
    packer.pack(sent[0])
    assert len(packer.pack(sent[1])) < plain


def test_a_reference_restored_with_a_lie_about_the_room_version_fails_the_signature() -> None:
    key = nacl.signing.SigningKey.generate()
    pdus = _chain("10", key, 2)
    sent = stream.compact(pdus, ["10", "10"], stream.References())
    # The receiver is told v3 (standard base64 ids): the reference names another id.
    restored = stream.restore(sent, ["3", "3"], stream.References())
    assert restored[1]["prev_events"] != pdus[1]["prev_events"]
    with pytest.raises(SignatureError):
        verify_json_signature(restored[1], *SIGNER, key.verify_key)


def test_references_that_name_nothing_stay_as_they_are() -> None:
    references = stream.References()
    references.note({"type": "x"}, None)  # no version: no id
    assert references.expand("^1") == "^1"  # names a PDU without an id
    assert references.expand("^2") == "^2"  # beyond what came
    assert references.expand("^0") == "^0"
    assert references.expand("^x") == "^x"
    assert references.expand("$not-a-reference") == "$not-a-reference"
    bad = {"type": "x", "prev_events": "not a list", "auth_events": [["^1"], [], 3]}
    [restored] = stream.restore([bad], "not a list", references)
    assert restored["prev_events"] == "not a list"
    assert restored["auth_events"] == [["^1"], [], 3]


def test_only_the_latest_pdus_can_be_named() -> None:
    references = stream.References()
    for n in range(stream.MAX_REFERENCES + 1):
        references.note({"type": "m", "event_id": f"$e{n}:a"}, "1")
    assert references.shorten(f"$e{stream.MAX_REFERENCES}:a") == "^1"
    assert references.shorten("$e1:a") == f"^{stream.MAX_REFERENCES}"
    assert references.shorten("$e0:a") == "$e0:a"  # fell out of the window


def test_offered_only_for_the_version_we_speak() -> None:
    assert stream.offered(stream.announcement())
    assert not stream.offered({"server": {"name": "Synapse", "version": "1.163.2"}})
    assert not stream.offered({stream.ANNOUNCE_KEY: "v2"})
    assert not stream.offered(["not", "an", "object"])


# -- a real relay -------------------------------------------------------------------------


async def test_a_relay_takes_transactions_on_its_stream_and_answers_retries_from_the_cache(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=False) as side:
        client = side.client
        version = await client.get_json(b.server_name, VERSION)
        assert stream.offered(version)
        for n in range(3):
            answer = await client.send_transaction(
                b.server_name, f"st{n}", _txn(a.server_name, n), timeout=30
            )
            assert answer == {"pdus": {}}
        assert client.has_stream(b.server_name)
        # A retry of a transaction b already took is answered from its cache, over /send too.
        again = await client.put_json(
            b.server_name, "/_matrix/federation/v1/send/st1", _txn(a.server_name, 1)
        )
        assert again == {"pdus": {}}
        # A keep-alive on the open stream shows b alive, without a new connection.
        await client.probe(b.server_name)
        assert client.has_stream(b.server_name)
        # A transaction b refuses whole is an error answer, and the stream goes on.
        with pytest.raises(RemoteError) as refused:
            await client.send_transaction(b.server_name, "st9", _txn("someone.else", 9), timeout=30)
        assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
        answer = await client.send_transaction(
            b.server_name, "st10", _txn(a.server_name, 10), timeout=30
        )
        assert answer == {"pdus": {}}
    log = b.log()
    assert log.count(f"{a.server_name} opened a transaction stream") == 1


async def test_a_relay_never_asked_gets_the_stream_on_the_first_transaction(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=False) as side:
        # No version answer seen: the first transaction tries the upgrade, which a relay takes.
        answer = await side.client.send_transaction(
            b.server_name, "first1", _txn(a.server_name, 1), timeout=30
        )
        assert answer == {"pdus": {}}
        assert side.client.has_stream(b.server_name)


# -- hostile input on the stream ----------------------------------------------------------


class RawStream:
    """A WebSocket to a relay's stream endpoint spoken by hand (wsproto over TLS), signed
    by `origin` or not at all."""

    def __init__(self, relay: RelayProcess) -> None:
        self.relay = relay
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.tls: trio.SSLStream[trio.SocketStream] | None = None

    async def open(self, headers: list[tuple[bytes, bytes]]) -> Any:
        host, port = self.relay.federation_url.removeprefix("https://").rsplit(":", 1)
        sock = await trio.open_tcp_stream(host, int(port))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.tls = trio.SSLStream(sock, ctx, server_hostname=host)
        await self.tls.send_all(
            self.ws.send(
                Request(host=self.relay.server_name, target=stream.PATH, extra_headers=headers)
            )
        )
        return await self.next_event()

    async def next_event(self) -> Any:
        assert self.tls is not None
        while True:
            for event in self.ws.events():
                return event
            data = await self.tls.receive_some(65536)
            self.ws.receive_data(data or None)

    async def send(self, data: bytes | str) -> None:
        assert self.tls is not None
        message = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        await self.tls.send_all(self.ws.send(message))


async def _signed_stream(relay: RelayProcess, signer: RelayProcess) -> RawStream:
    """A stream to `relay` opened with `signer`'s signature."""
    async with open_side(signer, verify_tls=False) as side:
        [authorization] = authorization_headers(
            method="GET",
            uri=stream.PATH,
            origin=signer.server_name,
            destination=relay.server_name,
            signing_key=side.client.signing_key,
            content=None,
            has_content=False,
        )
    raw = RawStream(relay)
    event = await raw.open([(b"authorization", authorization.encode())])
    assert isinstance(event, AcceptConnection), event
    return raw


async def test_an_unsigned_or_forged_upgrade_is_refused_with_a_matrix_error(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    raw = RawStream(b)
    event = await raw.open([])
    assert isinstance(event, RejectConnection) and event.status_code == 401
    body = b""
    while True:
        event = await raw.next_event()
        assert isinstance(event, RejectData)
        body += event.data
        if event.body_finished:
            break
    assert json.loads(body)["errcode"] == "M_UNAUTHORIZED"
    forged = RawStream(b)
    bad_sig = base64.b64encode(secrets.token_bytes(64)).decode().rstrip("=")
    header = (
        f'X-Matrix origin="{a.server_name}",destination="{b.server_name}",'
        f'key="ed25519:a_bcde",sig="{bad_sig}"'
    )
    event = await forged.open([(b"authorization", header.encode())])
    assert isinstance(event, RejectConnection) and event.status_code == 401


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"\xff\xfe not deflate", stream.CLOSE_BAD_DATA),
        ("a text message", stream.CLOSE_BAD_DATA),
        ("bomb", stream.CLOSE_TOO_BIG),
    ],
)
async def test_garbage_on_the_stream_closes_it(
    relay_pair: tuple[RelayProcess, RelayProcess], message: bytes | str, code: int
) -> None:
    a, b = relay_pair
    raw = await _signed_stream(b, a)
    if message == "bomb":
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = b'{"txn_id":"x","edus":["' + b"x" * (stream.MAX_MESSAGE_BYTES + 10) + b'"]}'
        message = (deflate.compress(body) + deflate.flush(zlib.Z_SYNC_FLUSH))[:-4]
    await raw.send(message)
    event = await raw.next_event()
    assert isinstance(event, CloseConnection) and event.code == code


async def test_a_malformed_transaction_gets_an_error_answer_and_the_stream_goes_on(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    raw = await _signed_stream(b, a)
    packer, unpacker = stream.Packer(), stream.Unpacker()

    async def exchange(message: dict[str, Any]) -> dict[str, Any]:
        await raw.send(packer.pack(message))
        event = await raw.next_event()
        assert isinstance(event, BytesMessage) and event.message_finished
        return unpacker.unpack(bytes(event.data))

    no_id = await exchange(_txn(a.server_name, 1))
    assert (no_id["status"], no_id["errcode"]) == (400, "M_BAD_JSON")
    too_many = await exchange({"txn_id": "many", "pdus": [{}] * 51, "edus": []})
    assert (too_many["status"], too_many["errcode"]) == (400, "M_BAD_JSON")
    not_lists = await exchange({"txn_id": "nl", "pdus": {}, "edus": []})
    assert not_lists["errcode"] == "M_BAD_JSON"
    ok = await exchange(_txn(a.server_name, 2) | {"txn_id": "fine"})
    assert ok == {"pdus": {}}
    # An empty message is a keep-alive, answered in kind.
    await raw.send(b"")
    event = await raw.next_event()
    assert isinstance(event, BytesMessage) and event.data == b""


# -- who gets what -------------------------------------------------------------------------

RELAY_PEER = "relay.example:8448"
SYNAPSE_PEER = "synapse.example:8448"
UNASKED_PEER = "unasked.example:8448"


async def test_synapse_gets_plain_send_and_a_relay_refusing_the_upgrade_falls_back(
    tmp_path: Path,
) -> None:
    network = FakeNetwork()
    versions = {
        # Announces the stream, but something before it (a proxy) answers the upgrade 404.
        RELAY_PEER: {"server": {"name": "edge-relay"}} | stream.announcement(),
        SYNAPSE_PEER: {"server": {"name": "Synapse", "version": "1.163.2"}},
        # A Synapse we have not asked for its version: the first transaction tries.
        UNASKED_PEER: {"server": {"name": "Synapse", "version": "1.163.2"}},
    }
    for peer, version in versions.items():

        def handler(request: httpx.Request, version: dict = version) -> httpx.Response:
            if request.url.path == VERSION:
                return httpx.Response(200, json=version)
            if request.url.path == stream.PATH:
                return httpx.Response(404, json={"errcode": "M_UNRECOGNIZED", "error": "no"})
            return httpx.Response(200, json={"pdus": {}})

        network.routes[peer] = handler
    pdu = add_content_hash({"type": "m.room.message", "content": {"body": "hi"}, "depth": 1})
    body = {"origin": ME, "origin_server_ts": 1, "pdus": [pdu], "edus": []}
    async with open_local(tmp_path, network) as local:
        for peer in versions:
            if peer != UNASKED_PEER:
                await local.client.get_json(peer, VERSION)
            for txn_id in ("t1", "t2"):
                answer = await local.client.send_transaction(peer, txn_id, body, timeout=30)
                assert answer == {"pdus": {}}
            assert not local.client.has_stream(peer)
    asked = [(r.headers["host"], r.method, r.url.path) for r in network.requests]
    upgrades = [a for a in asked if a[2] == stream.PATH]
    # Tried once where announced, once where unknown; never where Synapse said what it is.
    assert upgrades == [(RELAY_PEER, "GET", stream.PATH), (UNASKED_PEER, "GET", stream.PATH)]
    sends = [r for r in network.requests if r.method == "PUT"]
    assert [(r.headers["host"], r.url.path) for r in sends] == [
        (peer, f"/_matrix/federation/v1/send/{t}") for peer in versions for t in ("t1", "t2")
    ]
    for request in sends:  # plain /send: the PDU whole, hashes and all
        assert json_of(request)["pdus"] == [pdu]


async def test_a_stream_the_peer_closed_while_idle_is_replaced_without_a_failure(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=False) as side:
        client = side.client
        await client.get_json(b.server_name, VERSION)
        first = await client.send_transaction(
            b.server_name, "idle1", _txn(a.server_name, 1), timeout=30
        )
        assert first == {"pdus": {}} and client.has_stream(b.server_name)
        b.stop()  # b closes its end while ours sits idle
        b.start()
        failures = client.statistics()["unreachable"]
        again = await client.send_transaction(
            b.server_name, "idle2", _txn(a.server_name, 2), timeout=30
        )
        assert again == {"pdus": {}}
        assert client.statistics()["unreachable"] == failures
    assert b.log().count(f"{a.server_name} opened a transaction stream") >= 1


# -- a hostile peer's answers ------------------------------------------------------------


async def _serve_hostile_stream(
    stream_: trio.SSLStream[trio.SocketStream], answer: Callable[[bytes], bytes]
) -> None:
    """Accept one upgrade, then answer each message with `answer(message)` as raw bytes."""
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    while True:
        data = await stream_.receive_some(65536)
        if not data:
            return
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Request):
                await stream_.send_all(ws.send(AcceptConnection()))
            elif isinstance(event, BytesMessage):
                await stream_.send_all(ws.send(BytesMessage(data=answer(bytes(event.data)))))
            elif isinstance(event, CloseConnection):
                return


@pytest.mark.parametrize(
    ("name", "answer", "reason"),
    [
        ("a keep-alive for a transaction", lambda m: b"", "answer out of turn"),
        ("not deflate", lambda m: b"\xff\xfe\xfd", "bad answer"),
        ("a bomb", lambda m: stream.Packer().pack({"x": "y" * 2_000_000}), "bad answer"),
        ("too big to read", lambda m: b"z" * (stream.MAX_ANSWER_BYTES + 1), "answer too large"),
    ],
)
async def test_a_hostile_answer_on_the_stream_is_unreachable_and_closes_it(
    relay_pair: tuple[RelayProcess, RelayProcess],
    tmp_path: Path,
    name: str,
    answer: Callable[[bytes], bytes],
    reason: str,
) -> None:
    a, _ = relay_pair
    host = fresh_loopback()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_self_signed_certificate(cert, key, host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listeners = await trio.open_ssl_over_tcp_listeners(0, context, host=host)
    peer = f"{host}:{listeners[0].transport_listener.socket.getsockname()[1]}"

    async def handler(connection: trio.SSLStream[trio.SocketStream]) -> None:
        await _serve_hostile_stream(connection, answer)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, listeners)
        async with open_side(a, verify_tls=False) as side:
            with pytest.raises(PeerUnreachable, match=reason):
                await side.client.send_transaction(peer, "h1", _txn(a.server_name, 1), timeout=30)
            assert not side.client.has_stream(peer), name
        nursery.cancel_scope.cancel()


async def test_a_second_stream_from_the_same_origin_replaces_the_first(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    first = await _signed_stream(b, a)
    second = await _signed_stream(b, a)
    with trio.fail_after(30):  # not a timing assertion: a stream left open would hang here
        event = await first.next_event()
    assert isinstance(event, CloseConnection)
    assert (event.code, event.reason) == (stream.CLOSE_NORMAL, "replaced by a newer stream")
    packer, unpacker = stream.Packer(), stream.Unpacker()
    await second.send(packer.pack(_txn(a.server_name, 1) | {"txn_id": "after-replace"}))
    answer = await second.next_event()
    assert isinstance(answer, BytesMessage)
    assert unpacker.unpack(bytes(answer.data)) == {"pdus": {}}
