"""The notary routes: relay A answers for B's keys with B's and its own signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import signedjson.key
import signedjson.sign

from relay.runtime.identity import read_signing_key
from tests.federation.fakes import DAY_MS, FakeNetwork, FakeServer, now_ms, open_local
from tests.integration.conftest import RelayProcess

pytestmark = pytest.mark.integration


def _verify_key(relay: RelayProcess) -> Any:
    key = read_signing_key(relay.data_dir / "signing.key")
    return signedjson.key.decode_verify_key_bytes(key.key_id, bytes(key.key.verify_key))


async def test_get_query_returns_the_servers_keys_signed_by_it_and_by_us(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    async with httpx.AsyncClient(verify=False) as http:
        r = await http.get(f"{a.federation_url}/_matrix/key/v2/query/{b.server_name}")
    assert r.status_code == 200, r.text
    [entry] = r.json()["server_keys"]
    assert entry["server_name"] == b.server_name
    b_key = read_signing_key(b.data_dir / "signing.key")
    assert entry["verify_keys"] == {b_key.key_id: {"key": b_key.verify_key_base64}}
    signedjson.sign.verify_signed_json(entry, b.server_name, _verify_key(b))
    signedjson.sign.verify_signed_json(entry, a.server_name, _verify_key(a))


async def test_post_query_answers_for_known_servers_and_skips_unreachable_ones(
    relay_pair: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = relay_pair
    query = {
        "server_keys": {
            b.server_name: {},
            a.server_name: {},
            "127.0.0.1:1": {"ed25519:x": {"minimum_valid_until_ts": now_ms()}},
        }
    }
    async with httpx.AsyncClient(verify=False) as http:
        r = await http.post(f"{a.federation_url}/_matrix/key/v2/query", json=query)
    assert r.status_code == 200, r.text
    entries = {e["server_name"]: e for e in r.json()["server_keys"]}
    assert set(entries) == {a.server_name, b.server_name}
    for entry in entries.values():
        signedjson.sign.verify_signed_json(entry, a.server_name, _verify_key(a))
    signedjson.sign.verify_signed_json(entries[b.server_name], b.server_name, _verify_key(b))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/_matrix/key/v2/query/not%20a%20name", None),
        ("GET", "/_matrix/key/v2/query/b.example?minimum_valid_until_ts=soon", None),
        ("POST", "/_matrix/key/v2/query", {"server_keys": []}),
        ("POST", "/_matrix/key/v2/query", {"server_keys": {"b.example": {"k": 1}}}),
    ],
)
async def test_bad_queries_are_400(
    relay_pair: tuple[RelayProcess, RelayProcess], method: str, path: str, body: Any
) -> None:
    a, _ = relay_pair
    async with httpx.AsyncClient(verify=False) as http:
        r = await http.request(method, f"{a.federation_url}{path}", json=body)
    assert r.status_code == 400, r.text


async def test_the_last_response_is_served_while_the_server_is_unreachable(
    tmp_path: Path,
) -> None:
    remote, net = FakeServer("remote.example:8448"), FakeNetwork()
    net.serve_keys(remote, remote.key_response(valid_until_ts=now_ms() + 1000))
    async with open_local(tmp_path, net, min_refetch_interval_ms=0) as local:
        await local.keyring.fetch_server_keys(remote.name)
        del net.routes[remote.name]
        [entry] = await local.keyring.notary_responses(
            {remote.name: {}}, minimum_valid_until_ts=now_ms() + DAY_MS
        )
        assert len(net.requests) == 2  # it tried to refresh, and failed
        assert set(entry["signatures"]) == {remote.name, "me.example:8448"}


async def test_a_fresh_kept_response_is_served_without_fetching(tmp_path: Path) -> None:
    remote, net = FakeServer("remote.example:8448"), FakeNetwork()
    net.serve_keys(remote)
    async with open_local(tmp_path, net) as local:
        await local.keyring.fetch_server_keys(remote.name)
        [entry] = await local.keyring.notary_responses({remote.name: {remote.key.key_id: None}})
        assert len(net.requests) == 1
        assert entry["verify_keys"] == remote.key_response()["verify_keys"]
