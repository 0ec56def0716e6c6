"""The relay's own identity on disk: its ed25519 signing key and its TLS certificate.

Both are generated once by `relay init` and never regenerated: other servers
cache the key, and a kit that changed its key would look forged. The key file
uses Synapse's format (`ed25519 <version> <unpadded base64 seed>`), so keys can
move between the two.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from relay.events.ids import decode_base64, encode_base64
from store.private_files import write_private


class IdentityError(Exception):
    """A key or certificate file is missing or unreadable."""


@dataclass(frozen=True)
class SigningKey:
    key_id: str  # "ed25519:<version>"
    key: nacl.signing.SigningKey

    @property
    def verify_key_base64(self) -> str:
        return encode_base64(bytes(self.key.verify_key))


def new_signing_key() -> SigningKey:
    version = "a_" + secrets.token_urlsafe(6).replace("-", "").replace("_", "")[:6]
    return SigningKey(f"ed25519:{version}", nacl.signing.SigningKey.generate())


def _write_private(path: Path, data: bytes) -> None:
    write_private(path, data, exclusive=True)


def write_signing_key(path: Path, key: SigningKey) -> None:
    algorithm, version = key.key_id.split(":", 1)
    seed = encode_base64(bytes(key.key))
    _write_private(path, f"{algorithm} {version} {seed}\n".encode())


def read_signing_key(path: Path) -> SigningKey:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"{path}: cannot read signing key: {exc}") from None
    parts = text.split()
    if len(parts) != 3 or parts[0] != "ed25519":
        raise IdentityError(f"{path}: expected 'ed25519 <version> <seed>'")
    try:
        seed = decode_base64(parts[2])
        key = nacl.signing.SigningKey(seed)
    except Exception:
        raise IdentityError(f"{path}: the seed is not a valid ed25519 key") from None
    return SigningKey(f"ed25519:{parts[1]}", key)


def write_self_signed_certificate(cert_path: Path, key_path: Path, server_name: str) -> None:
    """A self-signed certificate for the federation listener, valid ten years.

    Federation peers in the field cannot reach a public CA; the key server and
    signatures carry the trust, and operators may pin this certificate.
    """
    # cryptography is only needed by `relay init`; importing it here keeps it out of
    # the running relay's memory.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    host = server_name.rsplit(":", 1)[0] if not server_name.endswith("]") else server_name
    host = host.strip("[]")
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    _write_private(
        key_path,
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
