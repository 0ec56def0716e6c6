"""The differential harness's servers, started once per test module and shared by every room
version: the fake remote, a second fake server (for server ACLs), a real Synapse 1.163.2 and a
real relay. Per room version (`conversations`, parametrised indirectly by the test) Alice
made a public room of that version with an alias on each target, and the remote's Carol
joined it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.federation.differential.conversation import Conversation
from tests.federation.differential.fake_remote import FakeRemote
from tests.integration.conftest import make_relay
from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import fresh_synapse


def _prepare(conv: Conversation) -> None:
    conv.client(
        "PUT", f"/profile/{conv.alice.user_id}/displayname", json={"displayname": "Alice"}
    ).raise_for_status()
    alias_name = f"diff{conv.kind}{conv.version}"
    conv.room_id = conv.alice.create_room(
        preset="public_chat",
        visibility="public",
        room_version=conv.version,
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


@dataclass
class Targets:
    """The servers one module shares: per target its kind, server name, federation URL and
    Alice's client; `remote` (Carol's server) and `other` (a second server, for ACLs)."""

    remote: FakeRemote
    other: FakeRemote
    targets: list[tuple[str, str, str, MatrixUser]]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    base: Path = tmp_path_factory.mktemp("differential")
    remote = FakeRemote(base / "remote")
    other = FakeRemote(base / "other")
    remote.start()
    other.start()
    # The relay lets any local user publish a room and serves the list over federation;
    # Synapse 1.163 does when told to (by default it quietly keeps createRoom's rooms private).
    synapse = fresh_synapse(
        base,
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
        for localpart in ("alice", "bob"):
            synapse.register(localpart)
            relay.cli("user", "add", localpart, "--password", "pw")
        yield Targets(
            remote,
            other,
            [
                (
                    "synapse",
                    synapse.server_name,
                    f"https://{synapse.host}:{synapse.federation_port}",
                    MatrixUser.login(synapse.client_url, "alice"),
                ),
                (
                    "relay",
                    relay.server_name,
                    relay.federation_url,
                    MatrixUser.login(relay.client_url, "alice"),
                ),
            ],
        )
    finally:
        relay.kill()
        synapse.kill()
        other.stop()
        remote.stop()


@pytest.fixture(scope="module")
def conversations(request: Any, targets: Targets) -> list[Conversation]:
    """Synapse's and the relay's conversation in the room version `request.param`."""
    version: str = request.param
    convs = [
        Conversation(kind, version, name, url, alice, targets.remote, targets.other)
        for kind, name, url, alice in targets.targets
    ]
    for conv in convs:
        _prepare(conv)
    return convs
