"""Federation tests: in-process pieces, and real relays as subprocesses on 127.0.x.y."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from relay.config import Config, load_config
from relay.federation.client import FederationClient
from relay.federation.key_server import OwnKeys
from relay.federation.server_keys import KeyRing
from relay.runtime.database import Database, open_database
from relay.runtime.identity import read_signing_key
from tests.integration.conftest import RelayProcess, make_relay
from tools.linkemu.link import LinkUnavailable
from tools.linkemu.pair import SeatPair, open_seat_pair, relay_seat
from tools.linkemu.seats import RelaySeat

#: Two relays across an emulated link (tools/linkemu): hq in one network namespace, logging
#: each PDU and EDU it takes (DEBUG); the field relay in the other, its upstream hq.
SlowRelayPair = SeatPair[RelaySeat, RelaySeat]


@pytest.fixture
def slow_relay_pair(tmp_path: Path) -> Iterator[SlowRelayPair]:
    """The pair, the link still a bare veth (shape it in the test); skips where this
    kernel cannot make the link."""
    try:
        with open_seat_pair(
            "pr",
            tmp_path,
            relay_seat(tmp_path / "hq", log_level="DEBUG"),
            relay_seat(tmp_path / "field"),
        ) as pair:
            yield pair
    except LinkUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def relay_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    """Two running relays, A and B, that do not verify each other's self-signed certs."""
    base = tmp_path_factory.mktemp("federation")
    relays = [make_relay(base, "a"), make_relay(base, "b")]
    try:
        for r in relays:
            r.init("--no-verify-tls")
            r.start()
        yield relays[0], relays[1]
    finally:
        for r in relays:
            r.kill()


def relay_config(relay: RelayProcess, **changes: Any) -> Config:
    return dataclasses.replace(load_config(relay.data_dir), **changes)


@dataclasses.dataclass
class Side:
    """A relay's identity used from the test process: its client and keyring over its DB."""

    config: Config
    database: Database
    client: FederationClient
    keyring: KeyRing


@asynccontextmanager
async def open_side(
    relay: RelayProcess, *, keyring_options: dict[str, Any] | None = None, **config_changes: Any
) -> AsyncIterator[Side]:
    """`relay`'s FederationClient and KeyRing, built here over its data dir."""
    config = relay_config(relay, **config_changes)
    key = read_signing_key(config.signing_key_path)
    async with open_database(config.database_path, synchronous=config.synchronous) as db:
        client = FederationClient(config, key)
        keyring = KeyRing(db, OwnKeys(config.server_name, key), client, **(keyring_options or {}))
        try:
            yield Side(config, db, client, keyring)
        finally:
            await client.aclose()
