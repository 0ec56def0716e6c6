"""Another server speaking to the relay's real federation app in process: requests signed
with X-Matrix as that server, through httpx's ASGI transport, answered as raw
`httpx.Response`s so tests check the status and the whole body (errcode and shape)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from relay.federation.request_auth import authorization_headers
from relay.federation.routes import federation_app
from relay.runtime.clock import now_ms
from relay.runtime.identity import SigningKey
from store import keys as store_keys
from tests.client.conftest import SERVER_NAME, ClientApi

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
DAY_MS = 24 * 3600 * 1000


def signed_request(
    origin: str,
    key: SigningKey,
    destination: str,
    method: str,
    path: str,
    query: Mapping[str, str | Sequence[str]] | None,
    body: Any,
    *,
    signed: bool = True,
) -> tuple[str, dict[str, str], bytes | None]:
    """(uri, headers, content) of a federation request `origin` makes of `destination`,
    signed with X-Matrix unless `signed` is false. `path` is percent-encoded already;
    list query values repeat the key (`ver=`)."""
    pairs = [
        (k, v) for k, vs in (query or {}).items() for v in ([vs] if isinstance(vs, str) else vs)
    ]
    uri = path + ("?" + urlencode(pairs) if pairs else "")
    has_body = body is not None
    headers = {"Content-Type": "application/json"} if has_body else {}
    if signed:
        [headers["Authorization"]] = authorization_headers(
            method=method,
            uri=uri,
            origin=origin,
            destination=destination,
            signing_key=key,
            content=body,
            has_content=has_body,
        )
    return uri, headers, json.dumps(body).encode() if has_body else None


@dataclass
class SignedPeer:
    """`name` (holding `key`) calling the relay's federation listener."""

    name: str
    key: SigningKey
    http: httpx.AsyncClient

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        json_body: Any = None,
        signed: bool = True,
    ) -> httpx.Response:
        """`path` is percent-encoded already; `query` values may be lists (`ver=`)."""
        uri, headers, content = signed_request(
            self.name, self.key, SERVER_NAME, method, path, query, json_body, signed=signed
        )
        return await self.http.request(method, uri, content=content, headers=headers)


async def trust_key(api: ClientApi, name: str, key: SigningKey) -> None:
    """The relay knows `name`'s signing key (as if fetched from it)."""
    now = now_ms()
    await api.services.database.write(
        lambda conn: store_keys.put_server_key(
            conn,
            server_name=name,
            key_id=key.key_id,
            verify_key=key.verify_key_base64,
            valid_until_ts=now + DAY_MS,
            now_ms=now,
        )
    )


def federation_http(api: ClientApi) -> httpx.AsyncClient:
    """An httpx client on the relay's federation app (close it, or use it as a context)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=federation_app(api.services)),
        base_url=f"http://{SERVER_NAME}",
    )
