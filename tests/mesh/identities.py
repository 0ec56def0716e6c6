"""Kits' identities for in-process mesh tests: a signing key, a certificate, an
announcement, as `relay init` and discovery make them (no I/O beyond tmp files)."""

from __future__ import annotations

import ssl
from pathlib import Path

from relay.mesh.discovery import Announcement, instance_name, key_fingerprint
from relay.runtime.identity import SigningKey, write_self_signed_certificate


def make_certificate(directory: Path, server_name: str) -> bytes:
    """A self-signed certificate for `server_name` in `directory` (DER)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls.crt", directory / "tls.key"
    write_self_signed_certificate(cert, key, server_name)
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def announcement_of(
    key: SigningKey,
    server_name: str,
    *,
    address: str = "10.77.0.2",
    key_id: str | None = None,
    instance: str | None = None,
) -> Announcement:
    """What a kit holding `key` announces (or an impostor naming that key)."""
    fingerprint = key_fingerprint(key.verify_key_base64)
    return Announcement(
        instance=instance or instance_name(server_name, fingerprint),
        server_name=server_name,
        addresses=(address,),
        port=8448,
        key_id=key_id or key.key_id,
        fingerprint=fingerprint,
        version="test",
    )
