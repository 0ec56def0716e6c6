"""The differential harness's servers, started once per test module: the fake remote, a real
Synapse 1.163.2 (room version 10 pinned) and a real relay; on each target Alice (power 100)
made a public room with an alias, and the remote's Carol joined it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.federation.differential.conversation import VERSION, Conversation
from tests.federation.differential.fake_remote import FakeRemote
from tests.integration.conftest import make_relay
from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import fresh_synapse


def _prepare(conv: Conversation) -> None:
    conv.client(
        "PUT", f"/profile/{conv.alice.user_id}/displayname", json={"displayname": "Alice"}
    ).raise_for_status()
    alias_name = f"diff{conv.kind}"
    conv.room_id = conv.alice.create_room(
        preset="public_chat",
        visibility="public",
        room_version=VERSION,
        room_alias_name=alias_name,
        name="Differential room",
        topic="the same script against two servers",
        # Synapse's public_chat preset leaves the (spec's) guest_access event out; the same
        # state on both keeps the state rows comparable (README: differences we keep).
        initial_state=[
            {
                "type": "m.room.guest_access",
                "state_key": "",
                "content": {"guest_access": "forbidden"},
            }
        ],
    )
    conv.alias = f"#{alias_name}:{conv.server_name}"
    r, _ = conv.join("carol")
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def conversations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Conversation]]:
    base: Path = tmp_path_factory.mktemp("differential")
    remote = FakeRemote(base / "remote")
    remote.start()
    # The relay lets any local user publish a room and serves the list over federation;
    # Synapse 1.163 does when told to (by default it quietly keeps createRoom's rooms private).
    synapse = fresh_synapse(
        base,
        room_version=VERSION,
        extra={
            "allow_public_rooms_over_federation": True,
            "room_list_publication_rules": [{"action": "allow"}],
        },
    )
    relay = make_relay(base, "relay")
    try:
        synapse.start()
        relay.init("--no-verify-tls")
        relay.start()
        synapse.register("alice")
        relay.cli("user", "add", "alice", "--password", "pw")
        convs = [
            Conversation(
                "synapse",
                synapse.server_name,
                f"https://{synapse.host}:{synapse.federation_port}",
                MatrixUser.login(synapse.client_url, "alice"),
                remote,
            ),
            Conversation(
                "relay",
                relay.server_name,
                relay.federation_url,
                MatrixUser.login(relay.client_url, "alice"),
                remote,
            ),
        ]
        for conv in convs:
            _prepare(conv)
        yield convs
    finally:
        relay.kill()
        synapse.kill()
        remote.stop()
