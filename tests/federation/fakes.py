"""In-process stand-ins for other servers: signed key responses over an httpx MockTransport.

Server names carry explicit ports (`remote.example:8448`), so resolving them needs neither
.well-known nor DNS; the mock routes each request by its `Host` header.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from relay.config import Config, config_from_dict
from relay.events.signing import sign_json
from relay.federation.client import FederationClient
from relay.federation.key_server import OwnKeys
from relay.federation.server_keys import KeyRing
from relay.runtime.database import Database, open_database
from relay.runtime.identity import SigningKey, new_signing_key

DAY_MS = 24 * 3600 * 1000
ME = "me.example:8448"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class FakeServer:
    name: str
    key: SigningKey = field(default_factory=new_signing_key)
    old_keys: dict[str, tuple[SigningKey, int]] = field(default_factory=dict)

    def key_response(self, *, valid_until_ts: int | None = None, **overrides: Any) -> dict:
        response = {
            "server_name": self.name,
            "verify_keys": {self.key.key_id: {"key": self.key.verify_key_base64}},
            "old_verify_keys": {
                key_id: {"key": key.verify_key_base64, "expired_ts": expired}
                for key_id, (key, expired) in self.old_keys.items()
            },
            "valid_until_ts": valid_until_ts if valid_until_ts is not None else now_ms() + DAY_MS,
        }
        response.update(overrides)
        return sign_json(response, self.name, self.key.key_id, self.key.key)

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.name, self.key.key_id, self.key.key)


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeNetwork:
    """Host header -> handler; anything else is a refused connection. Counts requests."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def serve_keys(self, server: FakeServer, response: dict | None = None) -> None:
        body = response if response is not None else server.key_response()
        self.routes[server.name] = lambda request: httpx.Response(200, json=body)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.routes.get(request.headers["host"])
        if handler is None:
            raise httpx.ConnectError("connection refused", request=request)
        return handler(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def json_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def fake_config(tmp_path: Path, **federation: Any) -> Config:
    # Real stand-ins some tests start listen on loopback: here an ordinary remote address.
    federation.setdefault("ip_range_allowlist", ["127.0.0.0/8"])
    return config_from_dict({"server_name": ME, "federation": federation}, tmp_path)


@dataclass
class Local:
    database: Database
    client: FederationClient
    keyring: KeyRing
    network: FakeNetwork
    key: SigningKey


@asynccontextmanager
async def open_local(
    tmp_path: Path, network: FakeNetwork, **keyring_options: Any
) -> AsyncIterator[Local]:
    """Our side in-process: a real database in tmp_path, a client over the fake network."""
    key = new_signing_key()
    config = fake_config(tmp_path)
    async with open_database(tmp_path / "relay.db") as database:
        client = FederationClient(config, key, transport=network.transport())
        keyring = KeyRing(database, OwnKeys(ME, key), client, **keyring_options)
        try:
            yield Local(database, client, keyring, network, key)
        finally:
            await client.aclose()
