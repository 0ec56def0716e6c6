"""What the HTTP layers are handed: the relay's long-lived services, built by node.py.

Route handlers reach them as `request.app.state.services`; they never build
services of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relay.config import Config
from relay.runtime.database import Database
from relay.runtime.identity import SigningKey

if TYPE_CHECKING:
    from relay.accounts import Accounts
    from relay.federation.client import FederationClient
    from relay.federation.key_server import OwnKeys
    from relay.federation.server_keys import KeyRing
    from relay.rooms.service import RoomService
    from relay.runtime.notifier import Notifier


@dataclass
class Services:
    config: Config
    database: Database
    signing_key: SigningKey
    own_keys: OwnKeys
    started_ms: int
    notifier: Notifier
    accounts: Accounts
    rooms: RoomService
    #: Signed outbound federation requests (closed by node.serve_node on shutdown).
    federation_client: FederationClient
    #: Our key and other servers' verify keys: checks request and event signatures.
    keyring: KeyRing
    #: Other services (typing, presence, rate limiters, ...) by name, added by node.py.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def server_name(self) -> str:
        return self.config.server_name
