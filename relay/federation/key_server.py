"""Our own server keys, as served at `GET /_matrix/key/v2/server`.

The response is self-signed and valid for a day; it is re-signed once less
than half of that remains, so a peer never caches a key that is about to lapse.

Spec: https://spec.matrix.org/v1.16/server-server-api/#get_matrixkeyv2server
"""

from __future__ import annotations

from typing import Any

from relay.events.signing import sign_json
from relay.runtime import clock
from relay.runtime.identity import SigningKey

KEY_VALIDITY_MS = 24 * 60 * 60 * 1000


class OwnKeys:
    def __init__(self, server_name: str, signing_key: SigningKey) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
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
            cached = sign_json(
                unsigned, self.server_name, self.signing_key.key_id, self.signing_key.key
            )
            self._cached = cached
        return cached
