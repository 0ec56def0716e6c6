"""A real Synapse (tools/synapse_harness.py, installed by `make synapse`) beside real relays.

Every server gets its own loopback address; the relay does not verify Synapse's
self-signed certificate and Synapse does not verify the relay's (both as labs do).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RelayProcess, make_relay, unlimit_rates
from tests.integration.matrix_client import MatrixUser
from tests.support import free_port
from tools.synapse_harness import Synapse, ensure_synapse_installed


def fresh_synapse(tmp_path: Path, name: str = "synapse", **config: object) -> Synapse:
    ensure_synapse_installed()
    host = f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"
    synapse = Synapse(tmp_path / name, host, free_port(host), free_port(host))
    synapse.write_config(**config)  # type: ignore[arg-type]
    return synapse


@dataclass
class Pair:
    relay: RelayProcess
    synapse: Synapse

    def relay_user(self, localpart: str) -> MatrixUser:
        self.relay.cli("user", "add", localpart, "--password", "pw")
        return MatrixUser.login(self.relay.client_url, localpart)

    def synapse_user(self, localpart: str) -> MatrixUser:
        self.synapse.register(localpart)
        return MatrixUser.login(self.synapse.client_url, localpart)

    def same_user_on_each(self, localpart: str) -> list[MatrixUser]:
        """The user `localpart`, logged in on Synapse and on the relay (in that order)."""
        return [self.synapse_user(localpart), self.relay_user(localpart)]


@contextmanager
def side_by_side(tmp: Path, *, unlimited: bool = False, **synapse_config: Any) -> Iterator[Pair]:
    """A real Synapse and a relay that do not federate, for differential tests (the same
    requests to each); both are killed on the way out. `unlimited` switches the relay's
    login and send rate limits off, as the test Synapse has them."""
    synapse = fresh_synapse(tmp, **synapse_config)
    relay = make_relay(tmp, "relay")
    relay.init()
    if unlimited:
        unlimit_rates(relay)
    try:
        synapse.start()
        relay.start()
        yield Pair(relay, synapse)
    finally:
        relay.kill()
        synapse.kill()


def start_pair(tmp_path: Path, *, room_version: str | None = None) -> Pair:
    synapse = fresh_synapse(tmp_path, room_version=room_version)
    relay = make_relay(tmp_path, "relay")
    relay.init("--no-verify-tls", "--upstream", synapse.server_name)
    # As the test Synapse (tools/synapse_harness.py): many logins and sends in a few
    # seconds on a fast machine; the limits themselves are tests/client/'s subject.
    unlimit_rates(relay)
    synapse.start()
    relay.start()
    return Pair(relay, synapse)


@pytest.fixture(scope="module")
def module_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """One Synapse and one relay for a whole module (each test uses users of its own):
    starting a Synapse costs seconds, and a module of a dozen room versions adds up."""
    p = start_pair(tmp_path_factory.mktemp("pair"))
    try:
        yield p
    finally:
        p.relay.kill()
        p.synapse.kill()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = start_pair(tmp_path)
    try:
        yield p
    finally:
        p.relay.kill()
        p.synapse.kill()
