"""`mesh.policy = "pinned"` (relay/federation/peer_policy.py), with real relays on loopback:

- K, a kit with the pinned policy; P, a server K pins (`[mesh] trusted`, and a trusted key
  server as its pinned mesh peers would be on a LAN: the mesh is off on loopback); S, a
  stranger whose name is an IP literal (what used to federate with a kit unapproved).
- S gets 403 M_FORBIDDEN on every signed federation endpoint of K, and K never asks S for
  its key; P (pinned) is served, and S is served by P, whose policy is `open`.
- K sends S nothing (an invite is refused to K's user with 403); P gets its invite.
- Once S's user joins a room that P's user is in, S is reached through P: the two kits
  exchange messages directly.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from relay.federation.errors import RemoteError
from relay.federation.routes import SIGNED_ROUTES
from store import keys as store_keys
from tests.federation.conftest import open_side
from tests.integration.conftest import RelayProcess, make_relay
from tests.integration.matrix_client import V3, MatrixUser

pytestmark = pytest.mark.integration

PROFILE = "/_matrix/federation/v1/query/profile"
SHARED: dict[str, str] = {}


def _verify_key(relay: RelayProcess) -> tuple[str, str]:
    status = json.loads(relay.cli("status", "--json").stdout)
    return status["key_id"], status["verify_key"]


@pytest.fixture(scope="module")
def trio_(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RelayProcess]]:
    base: Path = tmp_path_factory.mktemp("policy")
    relays = {name: make_relay(base, name) for name in ("k", "p", "s")}
    k, p = relays["k"], relays["p"]
    try:
        k.init("--no-verify-tls", "--mesh-policy", "pinned")
        for r in (p, relays["s"]):
            r.init("--no-verify-tls")
        key_id, verify_key = _verify_key(p)
        config = k.data_dir / "relay.toml"
        text = config.read_text()
        assert 'policy = "pinned"' in text
        text = text.replace(
            "[mesh.trusted]\n", f'[mesh.trusted]\n"{p.server_name}" = "{verify_key}"\n'
        ).replace(
            "[federation.trusted_key_servers]\n",
            f'[federation.trusted_key_servers]\n"{p.server_name}" = '
            f'{{ "{key_id}" = "{verify_key}" }}\n',
        )
        config.write_text(text)
        for r in relays.values():
            r.start()
            r.cli("user", "add", f"{r.data_dir.name}user", "--password", "pw")
        yield relays
    finally:
        for r in relays.values():
            r.kill()


def _user(relay: RelayProcess) -> MatrixUser:
    return MatrixUser.login(relay.client_url, f"{relay.data_dir.name}user")


def _path(template: str) -> str:
    values = {
        "txn_id": "t1",
        "event_id": quote("$event", safe=""),
        "room_id": quote("!room:example", safe=""),
        "user_id": quote("@someone:example", safe=""),
        "media_id": "media",
    }
    return template.format(**values)


async def test_stranger_gets_403_on_every_federation_endpoint_and_no_key_fetch(
    trio_: dict[str, RelayProcess],
) -> None:
    k, s = trio_["k"], trio_["s"]
    async with open_side(s, verify_tls=False) as side:
        for template, _handler, method in SIGNED_ROUTES:
            has_body = method in ("PUT", "POST")
            with pytest.raises(RemoteError) as exc:
                await side.client.request_json(
                    method, k.server_name, _path(template), body={}, has_body=has_body
                )
            assert (exc.value.status, exc.value.errcode) == (403, "M_FORBIDDEN"), template
    async with open_side(k) as side:
        assert await side.database.read(store_keys.get_server_keys, s.server_name) == {}


async def test_pinned_server_is_served_and_an_open_relay_serves_the_stranger(
    trio_: dict[str, RelayProcess],
) -> None:
    k, p, s = trio_["k"], trio_["p"], trio_["s"]
    for asker, asked in ((p, k), (s, p)):
        async with open_side(asker, verify_tls=False) as side:
            user_id = f"@{asked.data_dir.name}user:{asked.server_name}"
            # 200 (a RemoteError otherwise): the profile a new user gets, as on Synapse.
            body = await side.client.get_json(asked.server_name, PROFILE, {"user_id": user_id})
            assert body == {"displayname": f"{asked.data_dir.name}user"}


def test_kit_sends_nothing_to_a_stranger_and_invites_a_pinned_server(
    trio_: dict[str, RelayProcess],
) -> None:
    k, p, s = trio_["k"], trio_["p"], trio_["s"]
    alice, bob = _user(k), _user(p)
    room_id = alice.create_room(preset="public_chat")
    refused = alice.http.post(
        f"{V3}/rooms/{room_id}/invite", json={"user_id": f"@suser:{s.server_name}"}
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["errcode"] == "M_FORBIDDEN"
    alice.invite(room_id, bob.user_id)
    bob.wait_for_invite(room_id, timeout=30)
    bob.join(room_id)
    alice.send(room_id, "hello bob")
    bob.wait_for_bodies(room_id, {"hello bob"}, timeout=30)
    # S never heard from K (it would have fetched K's key to check a signed request);
    # P did.
    assert _cached_keys(s, k.server_name) == {}
    assert _cached_keys(p, k.server_name) != {}
    SHARED["room"] = room_id


def test_stranger_in_a_room_with_the_pinned_server_is_reached_through_it(
    trio_: dict[str, RelayProcess],
) -> None:
    """S's user joins the room through P: S now shares a room with a pinned server, so K
    and S exchange the room's messages directly (no gossip on loopback)."""
    k, p, s = trio_["k"], trio_["p"], trio_["s"]
    room_id = SHARED["room"]
    alice, eve = _user(k), _user(s)
    eve.join(room_id, via=[p.server_name])
    eve.send(room_id, "hello from s")
    alice.wait_for_bodies(room_id, {"hello from s"}, timeout=30)
    alice.send(room_id, "hello eve")
    eve.wait_for_bodies(room_id, {"hello eve"}, timeout=30)
    assert _cached_keys(s, k.server_name) != {}


def _cached_keys(relay: RelayProcess, server_name: str) -> dict[str, dict[str, Any]]:
    """The keys of `server_name` that `relay` holds (read from its database)."""
    conn = sqlite3.connect(f"file:{relay.data_dir / 'relay.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return store_keys.get_server_keys(conn, server_name)
    finally:
        conn.close()
