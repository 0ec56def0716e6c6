"""FederationClient: TLS verification, and the two kinds of failure (PeerUnreachable vs
RemoteError), against a real relay's self-signed TLS listener."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trio

from relay.errors import Forbidden, NotFound, Unknown, UnsupportedRoomVersion
from relay.federation.client import FederationClient
from relay.federation.errors import (
    DestinationRefused,
    PeerUnreachable,
    RemoteError,
    RequestTimedOut,
    client_error,
    join_refusal,
)
from relay.federation.resolver import ResolvedServer
from relay.runtime.identity import new_signing_key
from tests.federation.conftest import open_side
from tests.federation.fakes import FakeNetwork, fake_config, open_local
from tests.integration.conftest import RelayProcess
from tests.support import free_port, fresh_loopback

pytestmark = pytest.mark.integration

VERSION = "/_matrix/federation/v1/version"


async def test_self_signed_peer_is_unreachable_when_tls_is_verified_without_ca_file(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=True, ca_file=None) as side:
        with pytest.raises(PeerUnreachable) as exc:
            await side.client.get_json(b.server_name, VERSION)
        assert exc.value.destination == b.server_name
        assert "CERTIFICATE" in exc.value.reason.upper()


async def test_self_signed_peer_is_trusted_with_its_cert_as_ca_file(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=True, ca_file=b.data_dir / "tls.crt") as side:
        body = await side.client.get_json(b.server_name, VERSION)
    assert body["server"]["name"] == "edge-relay"


async def test_ca_file_for_another_peer_does_not_trust_this_one(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=True, ca_file=a.data_dir / "tls.crt") as side:
        with pytest.raises(PeerUnreachable):
            await side.client.get_json(b.server_name, VERSION)


async def test_verify_tls_false_accepts_any_certificate(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=False) as side:
        assert "server" in await side.client.get_json(b.server_name, VERSION)


def _der(relay: RelayProcess) -> bytes:
    return ssl.PEM_cert_to_DER_cert((relay.data_dir / "tls.crt").read_text())


def _pin(side, relay: RelayProcess, certificate: bytes) -> None:
    """Route `relay`'s name as the mesh does for a trusted peer: to its listener, pinned."""
    side.client.resolver.mesh_hook = lambda name: (
        ResolvedServer(relay.federation_url, name, name, pinned_certificate=certificate)
        if name == relay.server_name
        else None
    )


async def test_pinned_certificate_is_trusted_with_tls_verified_and_no_ca_file(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    """A trusted mesh peer is reached with verify_tls on and nothing configured: its
    certificate, bound to its pinned key, is the only anchor."""
    a, b = relay_pair
    async with open_side(a, verify_tls=True, ca_file=None) as side:
        _pin(side, b, _der(b))
        body = await side.client.get_json(b.server_name, VERSION)
        assert body["server"]["name"] == "edge-relay"
        # The rest of federation keeps verify_tls: a's own listener, unpinned, is refused.
        with pytest.raises(PeerUnreachable):
            await side.client.get_json(a.server_name, VERSION)


async def test_peer_presenting_another_certificate_than_the_pinned_one_gets_nothing(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    """A host at a trusted peer's address with another certificate (even with verify_tls
    off): the handshake fails, the request is never sent."""
    a, b = relay_pair
    for verify in (True, False):
        async with open_side(a, verify_tls=verify) as side:
            _pin(side, b, _der(a))
            with pytest.raises(PeerUnreachable) as exc:
                await side.client.put_json(b.server_name, "/_matrix/federation/v1/send/t1", {})
            assert "CERTIFICATE" in exc.value.reason.upper()


async def test_an_error_answer_is_a_remote_error(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=False) as side:
        with pytest.raises(RemoteError) as exc:
            await side.client.get_json(b.server_name, "/_matrix/federation/v1/nonsense")
    assert (exc.value.status, exc.value.errcode) == (404, "M_UNRECOGNIZED")
    assert not exc.value.retryable


async def test_a_closed_port_is_unreachable(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, _ = relay_pair
    host = fresh_loopback()
    async with open_side(a, verify_tls=False) as side:
        with pytest.raises(PeerUnreachable):
            await side.client.get_json(f"{host}:{free_port(host)}", VERSION)
        assert side.client.statistics()["unreachable"] == 1


async def test_a_peer_that_never_answers_times_out_as_unreachable(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, _ = relay_pair
    host = fresh_loopback()
    listeners = await trio.open_tcp_listeners(0, host=host)
    port = listeners[0].socket.getsockname()[1]

    async def accept_and_stall(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, accept_and_stall, listeners)
        async with open_side(a, verify_tls=False) as side:
            with pytest.raises(PeerUnreachable, match="no answer within"):
                await side.client.get_json(f"{host}:{port}", VERSION, timeout=0.5)
        nursery.cancel_scope.cancel()


async def test_signed_uri_is_the_path_and_query_as_sent(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    net = FakeNetwork()
    net.routes["peer.example:8448"] = lambda r: seen.append(r) or httpx.Response(200, json={})
    async with open_local(tmp_path, net) as local:
        await local.client.get_json(
            "peer.example:8448",
            "/_matrix/federation/v1/query/profile",
            query={"user_id": "@a b:peer.example", "field": "displayname"},
        )
        await local.client.put_json("peer.example:8448", "/_matrix/federation/v1/send/t1", {})
    get, put = seen
    assert get.url.raw_path == (
        b"/_matrix/federation/v1/query/profile?user_id=%40a+b%3Apeer.example&field=displayname"
    )
    assert get.headers["host"] == "peer.example:8448"
    assert put.headers["content-type"] == "application/json"
    assert put.content == b"{}"


async def test_a_non_json_answer_is_a_remote_error(tmp_path: Path) -> None:
    net = FakeNetwork()
    net.routes["peer.example:8448"] = lambda r: httpx.Response(502, text="<html>bad gateway")
    async with open_local(tmp_path, net) as local:
        with pytest.raises(RemoteError) as exc:
            await local.client.get_json("peer.example:8448", VERSION)
    assert (exc.value.status, exc.value.errcode) == (502, None)
    assert exc.value.retryable


def test_client_error_relays_only_errcodes_that_mean_the_same() -> None:
    assert isinstance(client_error(RemoteError("x", 403, "M_FORBIDDEN", "no")), Forbidden)
    assert isinstance(client_error(RemoteError("x", 404, "M_NOT_FOUND", "no")), NotFound)
    assert isinstance(
        client_error(RemoteError("x", 400, "M_UNSUPPORTED_ROOM_VERSION", "v")),
        UnsupportedRoomVersion,
    )
    # A peer that lacks the room's version (its invite v2 answer; a make_join's goes on
    # as it is: join_refusal).
    err = client_error(RemoteError("x", 400, "M_INCOMPATIBLE_ROOM_VERSION", "v"))
    assert isinstance(err, UnsupportedRoomVersion)
    assert (err.status, err.errcode) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    for exc in (RemoteError("x", 500, "M_UNKNOWN", "boom"), PeerUnreachable("x", "down")):
        err = client_error(exc)
        assert isinstance(err, Unknown)
        assert err.status == 502
        assert err.message == "request to x failed"


def test_join_refusal_passes_on_the_remotes_decision_and_nothing_else() -> None:
    incompatible = RemoteError(
        "x",
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
        "upgrade",
        body={"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "room_version": "99", "other": 1},
    )
    err = join_refusal(incompatible)
    assert err is not None
    assert (err.status, err.to_json()) == (
        400,
        {"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "upgrade", "room_version": "99"},
    )
    forbidden = join_refusal(RemoteError("x", 403, "M_FORBIDDEN", "banned"))
    assert forbidden is not None and (forbidden.status, forbidden.errcode) == (403, "M_FORBIDDEN")
    # Ask the next server: failover errcodes, an endpoint it does not serve, an error that
    # is no Matrix error, server errors, a 401 (it could not authenticate us), our own
    # refusal to contact it.
    for exc in (
        RemoteError("x", 404, "M_UNRECOGNIZED", "no such endpoint"),
        RemoteError("x", 405, None, "<html>"),
        RemoteError("x", 404, "M_NOT_FOUND", "no room"),
        RemoteError("x", 400, "M_UNABLE_TO_AUTHORISE_JOIN", "ask another"),
        RemoteError("x", 400, "M_UNABLE_TO_GRANT_JOIN", "ask another"),
        RemoteError("x", 502, "M_UNKNOWN", "boom"),
        RemoteError("x", 401, "M_UNAUTHORIZED", "who are you"),
        DestinationRefused("x"),
    ):
        assert join_refusal(exc) is None, exc
    odd = join_refusal(RemoteError("x", 400, "m_lower" + "x" * 100, "y" * 5000))
    assert odd is not None
    assert (odd.errcode, len(odd.message)) == ("M_UNKNOWN", 500)


class _CutIntoReadError(httpx.AsyncBaseTransport):
    """A connection that never answers and, cancelled, raises a transport error instead,
    as httpcore does when the deadline strikes inside a connection it shares."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise httpx.ReadError("connection lost", request=request) from None
        raise AssertionError("unreachable")


async def test_a_timeout_that_surfaces_as_a_transport_error_is_still_a_timeout(
    tmp_path: Path,
) -> None:
    """Seen over a 9.6 kbit/s link: a pull cut by its timeout came out as 'unreachable:
    Cancelled', so it was given up instead of asked again smaller."""
    client = FederationClient(
        fake_config(tmp_path), new_signing_key(), transport=_CutIntoReadError()
    )
    try:
        with pytest.raises(RequestTimedOut):
            await client.get_json("peer.example:8448", VERSION, timeout=0.2)
    finally:
        await client.aclose()


def _key_share_groups(record: bytes) -> list[int]:
    """The named groups of the key shares in a TLS ClientHello `record` (RFC 8446 4.2.8)."""
    assert record[0] == 0x16 and record[5] == 0x01, "not a ClientHello"
    at = 5 + 4 + 2 + 32  # record header, handshake header, legacy version, random
    at += 1 + record[at]  # session id
    at += 2 + int.from_bytes(record[at : at + 2], "big")  # cipher suites
    at += 1 + record[at]  # compression methods
    end = at + 2 + int.from_bytes(record[at : at + 2], "big")
    at += 2
    while at < end:
        kind, size = (
            int.from_bytes(record[at : at + 2], "big"),
            int.from_bytes(record[at + 2 : at + 4], "big"),
        )
        body = record[at + 4 : at + 4 + size]
        if kind == 0x0033:  # key_share
            groups, inner = [], 2
            while inner < len(body):
                groups.append(int.from_bytes(body[inner : inner + 2], "big"))
                inner += 4 + int.from_bytes(body[inner + 2 : inner + 4], "big")
            return groups
        at += 4 + size
    return []


async def test_the_first_flight_carries_a_p256_key_share(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    """Synapse's listener takes only P-256: a ClientHello without a P-256 key share costs a
    HelloRetryRequest, one more round trip (seconds on a 9.6 kbit/s link)."""
    a, _ = relay_pair
    host = fresh_loopback()
    listeners = await trio.open_tcp_listeners(0, host=host)
    port = listeners[0].socket.getsockname()[1]
    hellos: list[bytes] = []

    async def read_the_hello(stream: trio.SocketStream) -> None:
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        hellos.append(data)
        await stream.aclose()  # no answer: the client gives up

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, read_the_hello, listeners)
        async with open_side(a, verify_tls=False) as side:
            with pytest.raises(PeerUnreachable):
                await side.client.get_json(f"{host}:{port}", VERSION, timeout=10)
        nursery.cancel_scope.cancel()
    assert hellos, "no ClientHello arrived"
    assert _key_share_groups(hellos[0]) == [0x0017]  # secp256r1, and only it
