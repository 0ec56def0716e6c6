"""X-Matrix end to end: relay A (its identity, used from the test process) asks relay B's
`/_matrix/federation/v1/query/profile`; B checks the signature with A's key, which it
fetches from A's running key server."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.federation.client import FederationClient
from relay.federation.errors import RemoteError
from relay.federation.inbound_auth import with_origin
from relay.federation.peer_policy import PeerPolicy
from relay.federation.request_auth import authorization_headers
from relay.runtime.database import open_database
from relay.runtime.http import json_response, make_app, read_json_body
from relay.runtime.identity import SigningKey, new_signing_key, read_signing_key
from store import accounts as store_accounts
from tests.federation.conftest import open_side, relay_config
from tests.federation.fakes import ME, FakeNetwork, FakeServer, fake_config, open_local
from tests.integration.conftest import RelayProcess

pytestmark = pytest.mark.integration

PROFILE = "/_matrix/federation/v1/query/profile"


async def _add_user(relay: RelayProcess, localpart: str, displayname: str) -> str:
    user_id = f"@{localpart}:{relay.server_name}"
    config = relay_config(relay)

    def txn(conn: Any) -> None:
        if store_accounts.get_user(conn, user_id) is None:
            store_accounts.create_user(conn, user_id=user_id, password=None, now_ms=0)
        store_accounts.set_profile(conn, user_id, displayname=displayname)

    async with open_database(config.database_path) as db:
        await db.write(txn)
    return user_id


async def test_signed_profile_query_is_answered(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    alice = await _add_user(b, "alice", "Alice of B")
    async with open_side(a, verify_tls=False) as side:
        field = await side.client.get_json(
            b.server_name, PROFILE, query={"user_id": alice, "field": "displayname"}
        )
        whole = await side.client.get_json(b.server_name, PROFILE, query={"user_id": alice})
    assert field == {"displayname": "Alice of B"}
    assert whole == {"displayname": "Alice of B"}


async def test_profile_of_an_unknown_user_is_404(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with open_side(a, verify_tls=False) as side:
        with pytest.raises(RemoteError) as exc:
            await side.client.get_json(
                b.server_name, PROFILE, query={"user_id": f"@nobody:{b.server_name}"}
            )
    assert (exc.value.status, exc.value.errcode) == (404, "M_NOT_FOUND")


async def test_unsigned_request_is_401(relay_pair: tuple[RelayProcess, RelayProcess]) -> None:
    _, b = relay_pair
    async with httpx.AsyncClient(verify=False) as http:
        r = await http.get(
            f"{b.federation_url}{PROFILE}", params={"user_id": f"@alice:{b.server_name}"}
        )
    assert r.status_code == 401
    assert r.json()["errcode"] == "M_UNAUTHORIZED"


async def _send_signed(
    b: RelayProcess, origin: str, key: SigningKey, *, destination: str, uri: str, sent_uri: str
) -> httpx.Response:
    [header] = authorization_headers(
        method="GET", uri=uri, origin=origin, destination=destination, signing_key=key
    )
    async with httpx.AsyncClient(verify=False) as http:
        return await http.get(f"{b.federation_url}{sent_uri}", headers={"Authorization": header})


async def test_request_signed_for_another_destination_is_401(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    key = read_signing_key(a.data_dir / "signing.key")
    uri = f"{PROFILE}?user_id=%40alice%3A{b.server_name.replace(':', '%3A')}"
    r = await _send_signed(
        b, a.server_name, key, destination="elsewhere.example", uri=uri, sent_uri=uri
    )
    assert r.status_code == 401
    assert r.json()["errcode"] == "M_UNAUTHORIZED"
    # The same signature scheme, for the right destination, passes: the check is the name.
    ok = await _send_signed(b, a.server_name, key, destination=b.server_name, uri=uri, sent_uri=uri)
    assert ok.status_code in (200, 404), ok.text


async def test_request_signed_for_another_uri_is_401(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    key = read_signing_key(a.data_dir / "signing.key")
    sent = f"{PROFILE}?user_id=%40alice%3Ax"
    r = await _send_signed(
        b, a.server_name, key, destination=b.server_name, uri=sent + "y", sent_uri=sent
    )
    assert r.status_code == 401
    assert r.json()["errcode"] == "M_UNAUTHORIZED"


async def test_request_signed_by_an_unknown_key_is_401(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    config = dataclasses.replace(relay_config(a), verify_tls=False)
    bogus = SigningKey("ed25519:bogus", new_signing_key().key)
    client = FederationClient(config, bogus)
    try:
        with pytest.raises(RemoteError) as exc:
            await client.get_json(
                b.server_name, PROFILE, query={"user_id": f"@alice:{b.server_name}"}
            )
    finally:
        await client.aclose()
    assert (exc.value.status, exc.value.errcode) == (401, "M_UNAUTHORIZED")


async def test_request_signed_by_a_key_not_matching_the_key_id_is_401(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    config = dataclasses.replace(relay_config(a), verify_tls=False)
    real_id = read_signing_key(a.data_dir / "signing.key").key_id
    impostor = SigningKey(real_id, new_signing_key().key)
    client = FederationClient(config, impostor)
    try:
        with pytest.raises(RemoteError) as exc:
            await client.get_json(
                b.server_name, PROFILE, query={"user_id": f"@alice:{b.server_name}"}
            )
    finally:
        await client.aclose()
    assert (exc.value.status, exc.value.errcode) == (401, "M_UNAUTHORIZED")


async def test_malformed_header_is_400(relay_pair: tuple[RelayProcess, RelayProcess]) -> None:
    _, b = relay_pair
    async with httpx.AsyncClient(verify=False) as http:
        r = await http.get(
            f"{b.federation_url}{PROFILE}",
            params={"user_id": f"@alice:{b.server_name}"},
            headers={"Authorization": 'X-Matrix origin="a.example",key="ed25519:x"'},
        )
    assert r.status_code == 400
    assert r.json()["errcode"] == "M_UNAUTHORIZED"


# In process: a signed body reaches the handler intact --------------------------------


async def test_signed_body_is_verified_and_replayed_to_the_handler(tmp_path: Path) -> None:
    origin, net = FakeServer("origin.example:8448"), FakeNetwork()
    net.serve_keys(origin)

    async def echo(request: Request, origin_name: str) -> Response:
        return json_response({"origin": origin_name, "body": await read_json_body(request)})

    app = make_app([Route("/_matrix/federation/v1/send/{txn}", with_origin(echo), methods=["PUT"])])
    async with open_local(tmp_path, net) as local:
        config = fake_config(tmp_path)
        app.state.services = SimpleNamespace(
            server_name=ME,
            keyring=local.keyring,
            mesh_inbound_gate=None,
            peer_policy=PeerPolicy(config, local.database),
        )
        sender = FederationClient(
            dataclasses.replace(config, server_name=origin.name),
            origin.key,
            transport=httpx.ASGITransport(app),
        )
        try:
            body = {"pdus": [], "edus": [{"edu_type": "m.typing", "content": {"x": "ü"}}]}
            answer = await sender.put_json(ME, "/_matrix/federation/v1/send/t%201", body)
            assert answer == {"origin": origin.name, "body": body}
            unknown = FederationClient(
                dataclasses.replace(config, server_name="stranger.example:8448"),
                new_signing_key(),
                transport=httpx.ASGITransport(app),
            )
            with pytest.raises(RemoteError) as exc:
                await unknown.put_json(ME, "/_matrix/federation/v1/send/t2", body)
            assert (exc.value.status, exc.value.errcode) == (401, "M_UNAUTHORIZED")
            await unknown.aclose()
        finally:
            await sender.aclose()
