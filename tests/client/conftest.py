"""In-process Client-Server API tests: the real app over a real SQLite file in tmp_path,
called through httpx's ASGI transport (no sockets). Relays as subprocesses live in
tests/integration/."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.client.routes import client_app
from relay.config import config_from_dict, render_config
from relay.node import build_services
from relay.runtime.database import open_database
from relay.runtime.identity import new_signing_key
from relay.services import Services
from store import accounts as store_accounts

SERVER_NAME = "relay.test"


@dataclass
class ClientApi:
    services: Services
    http: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    async def add_user(self, localpart: str, password: str = "pw") -> str:
        user_id = f"@{localpart}:{SERVER_NAME}"
        hashed = store_accounts.hash_password(password)

        def txn(conn: Any) -> None:
            store_accounts.create_user(
                conn, user_id=user_id, password=None, password_hash=hashed, now_ms=0
            )

        await self.services.database.write(txn)
        return user_id

    async def login(self, localpart: str, password: str = "pw") -> dict[str, str]:
        """Create the user if needed, log in, and return auth headers."""
        if (
            await self.services.database.read(
                store_accounts.get_user, f"@{localpart}:{SERVER_NAME}"
            )
            is None
        ):
            await self.add_user(localpart, password)
        r = await self.http.post(
            "/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
            },
        )
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        self.tokens[localpart] = token
        return {"Authorization": f"Bearer {token}"}


def make_config(tmp_path: Path, **overrides: Any):
    text = render_config(
        server_name=SERVER_NAME,
        client_listen="127.0.0.1:8008",
        federation_listen="127.0.0.1:8448",
        upstream=None,
        upstream_url=None,
        ca_file=None,
        verify_tls=True,
    )
    doc = tomllib.loads(text)
    for dotted, value in overrides.items():
        table, _, key = dotted.rpartition(".")
        target = doc
        for part in filter(None, table.split(".")):
            target = target.setdefault(part, {})
        target[key] = value
    return config_from_dict(doc, tmp_path)


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[ClientApi]:
    """The client API over a fresh database. Mark a test with
    `@pytest.mark.config({"registration.mode": "open"})` to change config keys."""
    marker = request.node.get_closest_marker("config")
    overrides = marker.args[0] if marker else {}
    config = make_config(tmp_path, **overrides)
    async with open_database(config.database_path, synchronous="NORMAL") as database:
        services = await build_services(config, database, new_signing_key())
        transport = httpx.ASGITransport(app=client_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as http:
            yield ClientApi(services, http)
