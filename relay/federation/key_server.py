"""Our own server keys, as served at `GET /_matrix/key/v2/server`.

The response is self-signed and valid for a day; it is re-signed once less
than half of that remains, so a peer never caches a key that is about to lapse.

It lists the SHA-256 of the federation listener's TLS certificate in `tls_fingerprints`
(`[{"sha256": "<unpadded base64 of the DER certificate's SHA-256>"}]`, the field earlier
versions of the spec defined; servers that do not know it ignore it). Being inside the
signed object, it binds the certificate to the signing key: a LAN peer that serves this
document from a connection presenting another certificate has replayed it
(relay/mesh/trust.py).

Spec: https://spec.matrix.org/v1.16/server-server-api/#get_matrixkeyv2server
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path
from typing import Any

from relay.events.signing import sign_json
from relay.runtime import clock
from relay.runtime.identity import SigningKey

KEY_VALIDITY_MS = 24 * 60 * 60 * 1000


def certificate_sha256(der: bytes) -> str:
    """The `tls_fingerprints` form of a certificate: unpadded base64 of its DER's SHA-256."""
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii").rstrip("=")


def certificate_file_sha256(path: Path) -> str:
    """`certificate_sha256` of the first certificate in a PEM file."""
    return certificate_sha256(ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii")))


class OwnKeys:
    def __init__(
        self, server_name: str, signing_key: SigningKey, tls_fingerprints: tuple[str, ...] = ()
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        #: `certificate_sha256` of the certificates our federation listener presents.
        self.tls_fingerprints = tls_fingerprints
        self._cached: dict[str, Any] | None = None

    def server_keys(self, now_ms: int | None = None) -> dict[str, Any]:
        now_ms = clock.now_ms() if now_ms is None else now_ms
        cached = self._cached
        if cached is None or cached["valid_until_ts"] - now_ms < KEY_VALIDITY_MS // 2:
            unsigned = {
                "server_name": self.server_name,
                "verify_keys": {
                    self.signing_key.key_id: {"key": self.signing_key.verify_key_base64}
                },
                "old_verify_keys": {},
                "valid_until_ts": now_ms + KEY_VALIDITY_MS,
            }
            if self.tls_fingerprints:
                unsigned["tls_fingerprints"] = [{"sha256": f} for f in self.tls_fingerprints]
            cached = sign_json(
                unsigned, self.server_name, self.signing_key.key_id, self.signing_key.key
            )
            self._cached = cached
        return cached


def listed_tls_fingerprints(response: Any) -> set[str]:
    """The `certificate_sha256` values a key document lists in `tls_fingerprints` (the
    malformed entries left out; none when the field is absent or not a list)."""
    listed = response.get("tls_fingerprints") if isinstance(response, dict) else None
    if not isinstance(listed, list):
        return set()
    return {
        entry["sha256"].rstrip("=")
        for entry in listed
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
    }
