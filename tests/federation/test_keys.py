"""The KeyRing: fetching, checking and caching other servers' keys; verifying with them.

Real relays (subprocesses) for fetching over HTTPS; an in-process fake network for forged
responses and notaries.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from relay.config import ConfigError, config_from_dict
from relay.events.room_versions import V10, V12
from relay.events.signing import SignatureError, sign_event
from relay.federation.destinations import FetchBudget
from relay.federation.resolver import ResolvedServer
from relay.federation.server_keys import (
    MAX_KEY_VALIDITY_MS,
    KeyNotFound,
    KeyResponseError,
    check_key_response,
)
from relay.runtime.identity import new_signing_key, read_signing_key
from store import keys as store_keys
from tests.federation.conftest import open_side
from tests.federation.fakes import DAY_MS, FakeNetwork, FakeServer, json_of, now_ms, open_local
from tests.integration.conftest import RelayProcess
from tests.support import free_port

pytestmark = pytest.mark.integration

REMOTE = "remote.example:8448"
NOTARY = "notary.example:8448"


# Against a real relay ----------------------------------------------------------------


async def _forget(side, server_name: str) -> None:
    await side.database.write(store_keys.delete_server_keys, server_name)


async def test_keys_are_fetched_from_the_server_itself_then_cached(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    b_key = read_signing_key(b.data_dir / "signing.key")
    async with open_side(a) as side:
        await _forget(side, b.server_name)
        verify_key = await side.keyring.get_verify_key(
            b.server_name, b_key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert bytes(verify_key) == bytes(b_key.key.verify_key)
        assert side.client.statistics()["requests"] == 1
        row = await side.database.read(store_keys.get_server_key, b.server_name, b_key.key_id)
        assert row["verify_key"] == b_key.verify_key_base64
        assert row["valid_until_ts"] > now_ms() + DAY_MS // 2
        kept = await side.database.read(store_keys.get_server_key_response, b.server_name)
        assert kept["from_server"] == b.server_name

        again = await side.keyring.get_verify_key(
            b.server_name, b_key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert bytes(again) == bytes(b_key.key.verify_key)
        assert side.client.statistics()["requests"] == 1


async def test_an_expired_cached_key_is_refetched(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    b_key = read_signing_key(b.data_dir / "signing.key")
    async with open_side(a, keyring_options={"min_refetch_interval_ms": 0}) as side:
        await _forget(side, b.server_name)
        await side.database.write(
            lambda conn: store_keys.put_server_key(
                conn,
                server_name=b.server_name,
                key_id=b_key.key_id,
                verify_key=b_key.verify_key_base64,
                valid_until_ts=now_ms() - 1,
                now_ms=now_ms() - DAY_MS,
            )
        )
        await side.keyring.get_verify_key(
            b.server_name, b_key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert side.client.statistics()["requests"] == 1
        row = await side.database.read(store_keys.get_server_key, b.server_name, b_key.key_id)
        assert row["valid_until_ts"] > now_ms()


async def test_an_unknown_key_id_is_refetched_once_then_refused(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a) as side:
        await _forget(side, b.server_name)
        for _ in range(3):
            with pytest.raises(KeyNotFound):
                await side.keyring.get_verify_key(
                    b.server_name, "ed25519:nope", minimum_valid_until_ts=now_ms()
                )
        assert side.client.statistics()["requests"] == 1


async def test_a_new_route_lets_a_failed_server_be_asked_again_at_once(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    """A LAN peer approved just after a failed fetch of its key (it had no route yet) is
    asked at once, not after the refetch interval."""
    a, b = relay_pair
    b_key = read_signing_key(b.data_dir / "signing.key")
    nowhere = ResolvedServer(f"https://{b.host}:{free_port(b.host)}", b.server_name, None)
    async with open_side(a, verify_tls=False) as side:
        await _forget(side, b.server_name)
        side.client.resolver.mesh_hook = lambda name: nowhere if name == b.server_name else None
        for _ in range(2):
            with pytest.raises(KeyNotFound):
                await side.keyring.get_verify_key(
                    b.server_name, b_key.key_id, minimum_valid_until_ts=now_ms()
                )
        assert side.client.statistics()["requests"] == 1
        side.client.resolver.mesh_hook = None
        side.keyring.new_route(b.server_name)
        await side.keyring.get_verify_key(
            b.server_name, b_key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert side.client.statistics()["requests"] == 2


async def test_a_key_needed_beyond_its_validity_is_refused(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    b_key = read_signing_key(b.data_dir / "signing.key")
    async with open_side(a) as side:
        with pytest.raises(KeyNotFound, match="valid until"):
            await side.keyring.get_verify_key(
                b.server_name, b_key.key_id, minimum_valid_until_ts=now_ms() + 8 * DAY_MS
            )


# Forged responses, in process ----------------------------------------------------------


async def test_a_valid_response_over_the_fake_network_is_accepted(tmp_path: Path) -> None:
    remote, net = FakeServer(REMOTE), FakeNetwork()
    net.serve_keys(remote)
    async with open_local(tmp_path, net) as local:
        key = await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert bytes(key) == bytes(remote.key.key.verify_key)
        [request] = net.requests
        assert request.url.path == "/_matrix/key/v2/server"
        assert request.headers["authorization"].startswith('X-Matrix origin="me.example:8448"')


@pytest.mark.parametrize(
    "forge",
    [
        "other_server_name",
        "signed_by_another_key",
        "unsigned",
        "tampered_after_signing",
        "signed_by_unlisted_key_only",
    ],
)
async def test_a_forged_key_response_is_refused(tmp_path: Path, forge: str) -> None:
    remote, mallory, net = FakeServer(REMOTE), FakeServer("mallory.example:8448"), FakeNetwork()
    if forge == "other_server_name":
        response = mallory.key_response()
    elif forge == "signed_by_another_key":
        response = remote.key_response()
        response["signatures"] = {
            REMOTE: {
                remote.key.key_id: mallory.key_response()["signatures"]["mallory.example:8448"][
                    mallory.key.key_id
                ]
            }
        }
    elif forge == "unsigned":
        response = remote.key_response()
        del response["signatures"]
    elif forge == "tampered_after_signing":
        response = remote.key_response()
        response["valid_until_ts"] += 1
    else:
        response = remote.key_response()
        response["signatures"] = {REMOTE: {"ed25519:other": "AAAA"}}
    net.serve_keys(remote, response)
    async with open_local(tmp_path, net) as local:
        with pytest.raises(KeyNotFound):
            await local.keyring.get_verify_key(
                REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
            )
        assert await local.database.read(store_keys.get_server_keys, REMOTE) == {}
        assert await local.database.read(store_keys.get_server_key_response, REMOTE) is None


def test_key_response_validity_is_capped_at_seven_days() -> None:
    remote = FakeServer(REMOTE)
    now = now_ms()
    keys = check_key_response(remote.key_response(valid_until_ts=now + 30 * DAY_MS), REMOTE, now)
    assert keys[remote.key.key_id].valid_until_ts == now + MAX_KEY_VALIDITY_MS


def test_old_verify_keys_are_valid_until_they_expired() -> None:
    old = new_signing_key()
    remote = FakeServer(REMOTE, old_keys={old.key_id: (old, 12345)})
    keys = check_key_response(remote.key_response(), REMOTE, now_ms())
    assert keys[old.key_id].valid_until_ts == 12345
    assert keys[old.key_id].expired_ts == 12345


def test_key_response_must_be_for_the_server_asked() -> None:
    with pytest.raises(KeyResponseError, match="not 'remote"):
        check_key_response(FakeServer("x.example").key_response(), REMOTE, now_ms())


async def test_old_keys_verify_old_events_but_not_new_requests(tmp_path: Path) -> None:
    old = new_signing_key()
    expired = now_ms() - DAY_MS
    remote, net = FakeServer(REMOTE, old_keys={old.key_id: (old, expired)}), FakeNetwork()
    net.serve_keys(remote)
    async with open_local(tmp_path, net) as local:
        await local.keyring.get_verify_key(
            REMOTE, old.key_id, minimum_valid_until_ts=expired - 1000
        )
        with pytest.raises(KeyNotFound):
            await local.keyring.get_verify_key(REMOTE, old.key_id, minimum_valid_until_ts=now_ms())


# Notary fallback ----------------------------------------------------------------------


def _notary_handler(remote: FakeServer, *, signed_by: FakeServer):
    """A notary answering POST /_matrix/key/v2/query with `remote`'s keys."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/_matrix/key/v2/query"
        assert REMOTE in json_of(request)["server_keys"]
        entry = signed_by.sign(remote.key_response())
        return httpx.Response(200, json={"server_keys": [entry]})

    return handler


async def test_unreachable_server_keys_come_from_a_pinned_notary(tmp_path: Path) -> None:
    remote, notary, net = FakeServer(REMOTE), FakeServer(NOTARY), FakeNetwork()
    net.routes[NOTARY] = _notary_handler(remote, signed_by=notary)
    pinned = {NOTARY: {notary.key.key_id: notary.key.verify_key_base64}}
    async with open_local(tmp_path, net, trusted_key_servers=pinned) as local:
        key = await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert bytes(key) == bytes(remote.key.key.verify_key)
        kept = await local.database.read(store_keys.get_server_key_response, REMOTE)
        assert kept["from_server"] == NOTARY


async def test_a_notary_answer_not_signed_by_its_pinned_key_is_refused(tmp_path: Path) -> None:
    remote, notary, impostor = FakeServer(REMOTE), FakeServer(NOTARY), FakeServer(NOTARY)
    net = FakeNetwork()
    net.routes[NOTARY] = _notary_handler(remote, signed_by=impostor)
    pinned = {NOTARY: {notary.key.key_id: notary.key.verify_key_base64}}
    async with open_local(tmp_path, net, trusted_key_servers=pinned) as local:
        with pytest.raises(KeyNotFound):
            await local.keyring.get_verify_key(
                REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
            )


async def test_a_notary_without_pinned_keys_is_checked_with_its_published_keys(
    tmp_path: Path,
) -> None:
    remote, notary, net = FakeServer(REMOTE), FakeServer(NOTARY), FakeNetwork()
    query = _notary_handler(remote, signed_by=notary)
    served = notary.key_response()

    def notary_routes(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_matrix/key/v2/server":
            return httpx.Response(200, json=served)
        return query(request)

    net.routes[NOTARY] = notary_routes
    async with open_local(tmp_path, net, trusted_key_servers={NOTARY: {}}) as local:
        await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
        )


# Pinned mesh peers as notaries ---------------------------------------------------------

PEER = "kit-a.example:8448"


def _mesh_peer(local, peer: FakeServer, *, pinned: FakeServer | None = None) -> None:
    """`peer` is a reachable trusted mesh peer, pinned with `pinned`'s key (default its own)."""
    key = (pinned or peer).key
    local.keyring.mesh_notaries = lambda: {peer.name: {key.key_id: key.verify_key_base64}}


async def test_unreachable_server_keys_come_from_a_pinned_mesh_peer(tmp_path: Path) -> None:
    remote, peer, net = FakeServer(REMOTE), FakeServer(PEER), FakeNetwork()
    net.routes[PEER] = _notary_handler(remote, signed_by=peer)
    async with open_local(tmp_path, net) as local:
        _mesh_peer(local, peer)
        key = await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert bytes(key) == bytes(remote.key.key.verify_key)
        kept = await local.database.read(store_keys.get_server_key_response, REMOTE)
        assert kept["from_server"] == PEER


@pytest.mark.parametrize("signer", ["another key", "unsigned"])
async def test_a_mesh_peer_answer_not_signed_by_its_pinned_key_is_refused(
    tmp_path: Path, signer: str
) -> None:
    remote, peer, other = FakeServer(REMOTE), FakeServer(PEER), FakeServer(PEER)
    net = FakeNetwork()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_matrix/key/v2/server":  # the peer's published keys: no help
            return httpx.Response(200, json=other.key_response())
        entry = remote.key_response() if signer == "unsigned" else other.sign(remote.key_response())
        return httpx.Response(200, json={"server_keys": [entry]})

    net.routes[PEER] = handler
    async with open_local(tmp_path, net) as local:
        _mesh_peer(local, peer)
        with pytest.raises(KeyNotFound):
            await local.keyring.get_verify_key(
                REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
            )
        assert PEER in [r.headers["host"] for r in net.requests]  # asked, and refused
        assert await local.database.read(store_keys.get_server_key_response, REMOTE) is None


async def test_a_mesh_peer_answer_must_be_signed_by_the_origin_server_too(tmp_path: Path) -> None:
    forged, peer, net = FakeServer(REMOTE), FakeServer(PEER), FakeNetwork()
    unsigned = {
        "server_name": REMOTE,
        "verify_keys": {forged.key.key_id: {"key": forged.key.verify_key_base64}},
        "valid_until_ts": now_ms() + DAY_MS,
    }
    entry = peer.sign(unsigned)  # vouched for by the peer, never signed by REMOTE
    net.routes[PEER] = lambda request: httpx.Response(200, json={"server_keys": [entry]})
    async with open_local(tmp_path, net) as local:
        _mesh_peer(local, peer)
        with pytest.raises(KeyNotFound):
            await local.keyring.get_verify_key(
                REMOTE, forged.key.key_id, minimum_valid_until_ts=now_ms()
            )
        assert PEER in [r.headers["host"] for r in net.requests]  # asked, and refused


def _knowing(notary: FakeServer, *servers: FakeServer):
    """A notary that answers, signed by `notary`, for those of `servers` it is asked about."""

    def handler(request: httpx.Request) -> httpx.Response:
        asked = json_of(request)["server_keys"]
        entries = [notary.sign(s.key_response()) for s in servers if s.name in asked]
        return httpx.Response(200, json={"server_keys": entries})

    return handler


async def test_trusted_key_servers_are_asked_before_mesh_peers(tmp_path: Path) -> None:
    remote, other = FakeServer(REMOTE), FakeServer("other.example:8448")
    notary, peer, net = FakeServer(NOTARY), FakeServer(PEER), FakeNetwork()
    net.routes[NOTARY] = _knowing(notary, remote)
    net.routes[PEER] = _knowing(peer, remote, other)
    pinned = {NOTARY: {notary.key.key_id: notary.key.verify_key_base64}}
    async with open_local(tmp_path, net, trusted_key_servers=pinned) as local:
        _mesh_peer(local, peer)
        await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert [r.headers["host"] for r in net.requests] == [REMOTE, NOTARY]
        kept = await local.database.read(store_keys.get_server_key_response, REMOTE)
        assert kept["from_server"] == NOTARY
        # What the trusted key server does not know, the mesh peer is asked for.
        net.requests.clear()
        await local.keyring.get_verify_key(
            other.name, other.key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert [r.headers["host"] for r in net.requests] == [other.name, NOTARY, PEER]
        kept = await local.database.read(store_keys.get_server_key_response, other.name)
        assert kept["from_server"] == PEER


async def test_a_mesh_peer_is_asked_when_the_trusted_key_servers_fail(tmp_path: Path) -> None:
    remote, notary, peer, net = (
        FakeServer(REMOTE),
        FakeServer(NOTARY),
        FakeServer(PEER),
        FakeNetwork(),
    )
    net.routes[PEER] = _notary_handler(remote, signed_by=peer)  # NOTARY is unreachable
    pinned = {NOTARY: {notary.key.key_id: notary.key.verify_key_base64}}
    async with open_local(tmp_path, net, trusted_key_servers=pinned) as local:
        _mesh_peer(local, peer)
        await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=now_ms()
        )
        assert [r.headers["host"] for r in net.requests] == [REMOTE, NOTARY, PEER]


async def test_a_key_from_a_mesh_peer_is_cached_until_its_valid_until_ts(tmp_path: Path) -> None:
    remote, peer, net = FakeServer(REMOTE), FakeServer(PEER), FakeNetwork()
    valid_until = now_ms() + 60_000

    def handler(request: httpx.Request) -> httpx.Response:
        entry = peer.sign(remote.key_response(valid_until_ts=valid_until))
        return httpx.Response(200, json={"server_keys": [entry]})

    net.routes[PEER] = handler
    clock = [now_ms()]
    async with open_local(tmp_path, net, clock=lambda: clock[0]) as local:
        _mesh_peer(local, peer)
        await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=clock[0]
        )
        row = await local.database.read(store_keys.get_server_key, REMOTE, remote.key.key_id)
        assert row["valid_until_ts"] == valid_until
        asked = len(net.requests)
        # Within its validity: served from the cache.
        await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=valid_until - 1
        )
        assert len(net.requests) == asked
        # Needed beyond it: asked again (once the refetch interval has passed).
        clock[0] += 10 * 60_000
        valid_until = clock[0] + 60_000
        await local.keyring.get_verify_key(
            REMOTE, remote.key.key_id, minimum_valid_until_ts=clock[0]
        )
        assert len(net.requests) > asked
        row = await local.database.read(store_keys.get_server_key, REMOTE, remote.key.key_id)
        assert row["valid_until_ts"] == valid_until


# Verifying JSON and events ------------------------------------------------------------


async def test_verify_json_for_server(tmp_path: Path) -> None:
    remote, net = FakeServer(REMOTE), FakeNetwork()
    net.serve_keys(remote)
    async with open_local(tmp_path, net) as local:
        signed = remote.sign({"a": 1})
        await local.keyring.verify_json_for_server(signed, REMOTE)
        with pytest.raises(SignatureError):
            await local.keyring.verify_json_for_server({**signed, "a": 2}, REMOTE)
        with pytest.raises(SignatureError, match="not signed"):
            await local.keyring.verify_json_for_server({"a": 1}, REMOTE)
        # Our own signatures need no fetch.
        ours = local.keyring.own_keys.server_keys()
        await local.keyring.verify_json_for_server(ours, local.keyring.server_name)


def _member_event(sender_server: str, **content) -> dict:
    return {
        "type": "m.room.member",
        "room_id": "!room:" + sender_server,
        "sender": f"@u:{sender_server}",
        "state_key": f"@u:{sender_server}",
        "content": {"membership": "join", **content},
        "origin_server_ts": now_ms(),
        "depth": 5,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "x"},
    }


async def test_event_signatures_are_checked_over_the_redacted_event(tmp_path: Path) -> None:
    remote, net = FakeServer(REMOTE), FakeNetwork()
    net.serve_keys(remote)
    event = sign_event(_member_event(REMOTE), V10, REMOTE, remote.key.key_id, remote.key.key)
    async with open_local(tmp_path, net) as local:
        await local.keyring.verify_event_signatures(event, V10)
        # Content outside the redacted form is the hash's business, not the signature's.
        await local.keyring.verify_event_signatures(
            {**event, "content": {**event["content"], "displayname": "x"}}, V10
        )
        with pytest.raises(SignatureError):
            await local.keyring.verify_event_signatures({**event, "depth": 6}, V10)


async def test_restricted_join_needs_the_authorising_servers_signature(tmp_path: Path) -> None:
    remote, resident, net = FakeServer(REMOTE), FakeServer("resident.example:8448"), FakeNetwork()
    net.serve_keys(remote)
    net.serve_keys(resident)
    event = sign_event(
        _member_event(REMOTE, join_authorised_via_users_server="@a:resident.example:8448"),
        V12,
        REMOTE,
        remote.key.key_id,
        remote.key.key,
    )
    async with open_local(tmp_path, net) as local:
        with pytest.raises(SignatureError, match="resident"):
            await local.keyring.verify_event_signatures(event, V12)
        both = sign_event(event, V12, resident.name, resident.key.key_id, resident.key.key)
        await local.keyring.verify_event_signatures(both, V12)


async def test_event_keys_must_be_valid_when_the_event_was_sent(tmp_path: Path) -> None:
    remote, net = FakeServer(REMOTE), FakeNetwork()
    net.serve_keys(remote, remote.key_response(valid_until_ts=now_ms() + 1000))
    event = _member_event(REMOTE)
    event["origin_server_ts"] = now_ms() + 10 * 60 * 1000
    event = sign_event(event, V10, REMOTE, remote.key.key_id, remote.key.key)
    async with open_local(tmp_path, net) as local:
        with pytest.raises(KeyNotFound):
            await local.keyring.verify_event_signatures(event, V10)


# Configuration of notaries ------------------------------------------------------------


def test_trusted_key_servers_are_read_from_the_config(tmp_path: Path) -> None:
    notary = FakeServer(NOTARY)
    pinned = {NOTARY: {notary.key.key_id: notary.key.verify_key_base64}, "hq.example": {}}
    config = config_from_dict(
        {"server_name": "me.example", "federation": {"trusted_key_servers": pinned}}, tmp_path
    )
    assert config.trusted_key_servers == pinned


@pytest.mark.parametrize(
    "value",
    [
        ["hq.example"],
        {"not a name": {}},
        {"hq.example": "key"},
        {"hq.example": {"rsa:1": "AAAA"}},
        {"hq.example": {"ed25519:1": "not base64!"}},
    ],
)
def test_bad_trusted_key_servers_are_config_errors(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="trusted_key_servers"):
        config_from_dict(
            {"server_name": "me.example", "federation": {"trusted_key_servers": value}}, tmp_path
        )


async def test_a_new_route_also_forgets_a_failure_the_fetch_budget_remembers(
    tmp_path: Path,
) -> None:
    """Found in the mesh test: a kit's key fetch failed just before the kit was approved,
    and the fetch budget then refused, for ten minutes, every request needing that key
    (a join relayed for the new peer got 401)."""
    async with open_local(tmp_path, FakeNetwork()) as local:
        budget = FetchBudget(10.0, 10)
        local.keyring.fetch_budget = budget
        budget.failed("kit-c.mesh")
        assert not budget.may_fetch("kit-b.mesh", "kit-c.mesh")
        local.keyring.new_route("kit-c.mesh")
        assert budget.may_fetch("kit-b.mesh", "kit-c.mesh")
