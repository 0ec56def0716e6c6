"""relay/mesh/trust.py's judgement: what a key response fetched from a LAN address, with the
certificate that address presented, is worth. Pure: real keys, real certificates, no I/O."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from relay.events.signing import sign_json
from relay.federation.key_server import (
    OwnKeys,
    certificate_file_sha256,
    certificate_sha256,
    listed_tls_fingerprints,
)
from relay.mesh.discovery import Announcement
from relay.mesh.trust import (
    PENDING,
    REJECTED,
    TRUSTED,
    judge_key_response,
    signed_by_served_key,
)
from relay.runtime.identity import SigningKey, new_signing_key
from tests.mesh.identities import announcement_of, make_certificate

NAME = "kit-b.mesh"


def _certificate(directory: Path, name: str = NAME) -> bytes:
    return make_certificate(directory, name)


def _announce(key: SigningKey, name: str = NAME, key_id: str | None = None) -> Announcement:
    return announcement_of(key, name, key_id=key_id)


@pytest.fixture
def kit(tmp_path: Path) -> tuple[SigningKey, bytes, dict]:
    """A kit's signing key, its certificate (DER), and its key response listing it."""
    key = new_signing_key()
    certificate = _certificate(tmp_path / "kit")
    response = OwnKeys(NAME, key, (certificate_sha256(certificate),)).server_keys()
    return key, certificate, response


def now() -> int:
    return int(time.time() * 1000)


def test_pinned_key_over_its_listed_certificate_is_trusted(kit) -> None:
    key, certificate, response = kit
    pin = key.verify_key_base64
    verdict = judge_key_response(_announce(key), response, pin, now(), certificate)
    assert verdict.status == TRUSTED
    assert verdict.verify_key == key.verify_key_base64.rstrip("=")
    assert verdict.certificate == certificate
    assert not verdict.proof_failed


def test_pin_with_base64_padding_matches(kit) -> None:
    key, certificate, response = kit
    pin = key.verify_key_base64.rstrip("=") + "="
    verdict = judge_key_response(_announce(key), response, pin, now(), certificate)
    assert verdict.status == TRUSTED


def test_unpinned_key_over_its_listed_certificate_is_pending(kit) -> None:
    key, certificate, response = kit
    verdict = judge_key_response(_announce(key), response, None, now(), certificate)
    assert verdict.status == PENDING
    assert verdict.certificate == certificate


def test_replayed_response_over_another_certificate_is_rejected(kit, tmp_path: Path) -> None:
    """The impostor: the kit's own public key response, served over the impostor's TLS."""
    key, _certificate_of_kit, response = kit
    impostor = _certificate(tmp_path / "impostor")
    for pin in (key.verify_key_base64, None):
        verdict = judge_key_response(_announce(key), response, pin, now(), impostor)
        assert verdict.status == REJECTED, pin
        assert verdict.proof_failed
        assert "replay" in verdict.reason


def test_no_certificate_seen_is_rejected(kit) -> None:
    key, _, response = kit
    verdict = judge_key_response(_announce(key), response, key.verify_key_base64, now(), None)
    assert verdict.status == REJECTED and verdict.proof_failed


def test_response_without_tls_fingerprints_is_rejected(tmp_path: Path) -> None:
    key = new_signing_key()
    certificate = _certificate(tmp_path)
    response = OwnKeys(NAME, key).server_keys()
    assert "tls_fingerprints" not in response
    pin = key.verify_key_base64
    verdict = judge_key_response(_announce(key), response, pin, now(), certificate)
    assert verdict.status == REJECTED and verdict.proof_failed


def test_fingerprint_added_after_signing_is_rejected(kit, tmp_path: Path) -> None:
    """Listing the impostor's certificate in the kit's response breaks its signature."""
    key, _, response = kit
    impostor = _certificate(tmp_path / "impostor")
    forged = dict(response, tls_fingerprints=[{"sha256": certificate_sha256(impostor)}])
    verdict = judge_key_response(_announce(key), forged, key.verify_key_base64, now(), impostor)
    assert verdict.status == REJECTED and verdict.proof_failed
    assert "bad key response" in verdict.reason


def test_impostor_signing_its_own_listing_is_not_the_pinned_key(tmp_path: Path) -> None:
    """An impostor may sign a response listing its own certificate, but with its own key:
    pinned, that is rejected; unpinned, it is a pending stranger under its own key."""
    real, impostor_key = new_signing_key(), new_signing_key()
    certificate = _certificate(tmp_path)
    response = OwnKeys(NAME, impostor_key, (certificate_sha256(certificate),)).server_keys()
    ann = _announce(impostor_key)
    verdict = judge_key_response(ann, response, real.verify_key_base64, now(), certificate)
    assert verdict.status == REJECTED and not verdict.proof_failed
    assert judge_key_response(ann, response, None, now(), certificate).status == PENDING


def test_response_for_another_name_is_rejected(kit) -> None:
    key, certificate, response = kit
    ann = _announce(key, name="kit-c.mesh")
    verdict = judge_key_response(ann, response, key.verify_key_base64, now(), certificate)
    assert verdict.status == REJECTED and verdict.proof_failed


def test_announced_key_id_not_served_is_rejected(kit) -> None:
    key, certificate, response = kit
    ann = _announce(key, key_id="ed25519:other")
    verdict = judge_key_response(ann, response, key.verify_key_base64, now(), certificate)
    assert verdict.status == REJECTED and verdict.proof_failed


def test_announced_key_only_in_old_verify_keys_is_rejected(tmp_path: Path) -> None:
    key, current = new_signing_key(), new_signing_key()
    certificate = _certificate(tmp_path)
    unsigned = {
        "server_name": NAME,
        "verify_keys": {current.key_id: {"key": current.verify_key_base64}},
        "old_verify_keys": {key.key_id: {"key": key.verify_key_base64, "expired_ts": now()}},
        "valid_until_ts": now() + 3_600_000,
        "tls_fingerprints": [{"sha256": certificate_sha256(certificate)}],
    }
    response = sign_json(unsigned, NAME, current.key_id, current.key)
    pin = key.verify_key_base64
    verdict = judge_key_response(_announce(key), response, pin, now(), certificate)
    assert verdict.status == REJECTED and verdict.proof_failed


def test_announced_fingerprint_of_another_key_is_rejected(kit) -> None:
    key, certificate, response = kit
    ann = dataclasses.replace(_announce(key), fingerprint="00" * 32)
    verdict = judge_key_response(ann, response, key.verify_key_base64, now(), certificate)
    assert verdict.status == REJECTED and verdict.proof_failed


@pytest.mark.parametrize("body", [None, [], "x", {"server_name": NAME}])
def test_malformed_response_is_rejected(kit, body: object) -> None:
    key, certificate, _ = kit
    verdict = judge_key_response(_announce(key), body, key.verify_key_base64, now(), certificate)
    assert verdict.status == REJECTED and verdict.proof_failed


def test_listed_tls_fingerprints_skips_malformed_entries() -> None:
    response = {"tls_fingerprints": [{"sha256": "abc="}, {"sha256": 5}, "x", {}, None]}
    assert listed_tls_fingerprints(response) == {"abc"}
    assert listed_tls_fingerprints({"tls_fingerprints": {"sha256": "abc"}}) == set()
    assert listed_tls_fingerprints([]) == set()


def test_certificate_file_sha256_is_the_der_digest(tmp_path: Path) -> None:
    der = _certificate(tmp_path)
    assert certificate_file_sha256(tmp_path / "tls.crt") == certificate_sha256(der)
    assert len(certificate_sha256(der)) == 43  # 32 bytes, unpadded base64


def _signed_request(key: SigningKey, origin: str = NAME) -> dict:
    unsigned = {"method": "GET", "uri": "/_matrix/federation/v1/version", "origin": origin}
    return sign_json(unsigned | {"destination": "kit-a.mesh"}, origin, key.key_id, key.key)


def test_request_signed_with_the_served_key_proves_the_peer() -> None:
    key = new_signing_key()
    signed = _signed_request(key)
    assert signed_by_served_key(signed, NAME, key.key_id, key.verify_key_base64)


def test_request_forging_the_peers_name_proves_nothing() -> None:
    """Signed by someone else, unsigned, or under another key id: a forgery."""
    key, forger = new_signing_key(), new_signing_key()
    forged = _signed_request(forger)
    forged["signatures"] = {NAME: {key.key_id: forged["signatures"][NAME][forger.key_id]}}
    assert not signed_by_served_key(forged, NAME, key.key_id, key.verify_key_base64)
    unsigned = {k: v for k, v in _signed_request(key).items() if k != "signatures"}
    assert not signed_by_served_key(unsigned, NAME, key.key_id, key.verify_key_base64)
    assert not signed_by_served_key(_signed_request(key), NAME, "ed25519:x", key.verify_key_base64)
    assert not signed_by_served_key("not an object", NAME, key.key_id, key.verify_key_base64)
    assert not signed_by_served_key(_signed_request(key), NAME, key.key_id, "not base64!")
