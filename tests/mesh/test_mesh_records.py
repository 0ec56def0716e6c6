"""relay/mesh/service.py in process, over a real database: what a verdict does to the peers
table, and what a refused request does to a pending peer. Verdicts come from the real
judgement (relay/mesh/trust.py) on real keys and certificates; no network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.events.signing import sign_json
from relay.federation.key_server import OwnKeys, certificate_sha256
from relay.mesh.discovery import SeenPeer
from relay.mesh.service import Mesh
from relay.mesh.trust import PENDING, REJECTED, judge_key_response
from relay.node import build_services
from relay.runtime.clock import now_ms
from relay.runtime.database import open_database
from relay.runtime.identity import SigningKey, new_signing_key
from store import peers as store_peers
from tests.client.conftest import make_config
from tests.mesh.identities import announcement_of, make_certificate

NAME = "kit-b.mesh"
B_ADDRESS, IMPOSTOR_ADDRESS = "10.77.0.2", "10.77.0.6"


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    config = make_config(tmp_path)
    async with open_database(config.database_path, synchronous="NORMAL") as database:
        services = await build_services(config, database, new_signing_key())
        try:
            yield Mesh(services)
        finally:
            await services.federation_client.aclose()


async def _row(mesh: Mesh) -> dict:
    row = await mesh.services.database.read(store_peers.get_peer, NAME)
    assert row is not None
    return row


async def _pending_kit(mesh: Mesh, tmp_path: Path) -> tuple[SigningKey, dict]:
    """Kit b seen at its address and judged pending (its key is not pinned): b's key and
    its public key response."""
    key = new_signing_key()
    certificate = make_certificate(tmp_path / "b", NAME)
    response = OwnKeys(NAME, key, (certificate_sha256(certificate),)).server_keys()
    ann = announcement_of(key, NAME, address=B_ADDRESS)
    verdict = judge_key_response(ann, response, None, now_ms(), certificate)
    assert verdict.status == PENDING
    mesh.verdicts[ann.instance] = (ann, verdict)
    await mesh._record(SeenPeer(ann, reachable=True), verdict)
    return key, response


async def test_replaying_a_pending_kits_response_leaves_its_row_alone(
    mesh: Mesh, tmp_path: Path
) -> None:
    """An impostor replays b's key response before b is approved: it is rejected on its
    own, and b stays pending at its address (approvable), not rejected for ever."""
    key, response = await _pending_kit(mesh, tmp_path)
    impostor_certificate = make_certificate(tmp_path / "impostor", NAME)
    replay = announcement_of(key, NAME, address=IMPOSTOR_ADDRESS, instance="replay._x.local.")
    verdict = judge_key_response(replay, response, None, now_ms(), impostor_certificate)
    assert verdict.status == REJECTED and verdict.proof_failed
    await mesh._record(SeenPeer(replay, reachable=True), verdict)
    row = await _row(mesh)
    assert (row["status"], row["address"]) == (PENDING, B_ADDRESS)
    spoofs = await mesh.services.database.read(store_peers.rejected_announcements)
    assert [(s["server_name"], s["address"]) for s in spoofs] == [(NAME, IMPOSTOR_ADDRESS)]


def _signed_request(key: SigningKey) -> dict:
    request = {
        "method": "PUT",
        "uri": "/_matrix/federation/v1/send/t1",
        "origin": NAME,
        "destination": "relay.test",
        "content": {"pdus": []},
    }
    return sign_json(request, NAME, key.key_id, key.key)


async def test_request_forging_a_pending_kits_name_changes_nothing(
    mesh: Mesh, tmp_path: Path
) -> None:
    key, _ = await _pending_kit(mesh, tmp_path)
    forger = new_signing_key()
    forged = _signed_request(forger)
    forged["signatures"] = {NAME: {key.key_id: forged["signatures"][NAME][forger.key_id]}}
    await mesh.inbound_gate(NAME, forged)
    unsigned = {k: v for k, v in forged.items() if k != "signatures"}
    await mesh.inbound_gate(NAME, unsigned)
    assert (await _row(mesh))["status"] == PENDING


async def test_request_signed_by_the_pending_kit_itself_rejects_it(
    mesh: Mesh, tmp_path: Path
) -> None:
    """The twin: the kit really tried to federate before it was approved."""
    key, _ = await _pending_kit(mesh, tmp_path)
    await mesh.inbound_gate(NAME, _signed_request(key))
    row = await _row(mesh)
    assert row["status"] == REJECTED
    assert "tried to federate" in row["reason"]


async def test_replay_under_the_trusted_kits_own_instance_name_keeps_its_route(
    mesh: Mesh, tmp_path: Path
) -> None:
    """An impostor that copies b's announcement whole (instance name included) from its
    own address is rejected, and b stays routed at its address over its certificate."""
    key = new_signing_key()
    certificate = make_certificate(tmp_path / "b", NAME)
    response = OwnKeys(NAME, key, (certificate_sha256(certificate),)).server_keys()
    mesh.approved[NAME] = key.verify_key_base64.rstrip("=")
    real = announcement_of(key, NAME, address=B_ADDRESS)
    trusted = judge_key_response(real, response, mesh.pinned_key(NAME), now_ms(), certificate)
    await mesh._apply(SeenPeer(real, reachable=True), trusted)
    assert mesh.resolve(NAME).base_url == f"https://{B_ADDRESS}:8448"

    copy = announcement_of(key, NAME, address=IMPOSTOR_ADDRESS)
    assert copy.instance == real.instance
    impostor_certificate = make_certificate(tmp_path / "impostor", NAME)
    verdict = judge_key_response(
        copy, response, mesh.pinned_key(NAME), now_ms(), impostor_certificate
    )
    await mesh._apply(SeenPeer(copy, reachable=True), verdict)
    resolved = mesh.resolve(NAME)
    assert resolved is not None
    assert resolved.base_url == f"https://{B_ADDRESS}:8448"
    assert resolved.pinned_certificate == certificate
    row = await _row(mesh)
    assert (row["status"], row["address"]) == ("trusted", B_ADDRESS)
