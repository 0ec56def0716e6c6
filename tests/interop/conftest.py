"""Real Matrix clients (matrix-nio, matrix-js-sdk) against a real relay subprocess.

These tests prove the Client-Server API with stock client libraries rather than
with our own HTTP calls. `make test` installs both clients (the `clients` stamp
target in the Makefile): matrix-nio into .venv, matrix-js-sdk into
tools/clients/node_modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.integration.conftest import RelayProcess
from tests.integration.conftest import relay as relay  # re-exported fixture


@dataclass(frozen=True)
class ChatPair:
    """Two accounts on one server, ready for a client to log in with."""

    base_url: str
    user_a: str
    password_a: str
    user_b: str
    password_b: str


@pytest.fixture
def chat_pair(relay: RelayProcess) -> ChatPair:
    """alice and bob, created with `relay user add` on the running relay."""
    relay.cli("user", "add", "alice", "--password", "alice pw")
    relay.cli("user", "add", "bob", "--password", "bob pw")
    return ChatPair(relay.client_url, "alice", "alice pw", "bob", "bob pw")


def relay_log_tail(relay: RelayProcess, lines: int = 80) -> str:
    return "\n".join(relay.log().splitlines()[-lines:])
