"""What the HTTP layers are handed: the relay's long-lived services, one typed field each.

`relay/node.py` is the one place that builds them and wires them together (the composition
root). Route handlers reach them as `request.app.state.services`; they never build
services of their own and keep no state of their own: state that outlives a request
(UIA sessions, shared-secret nonces, rate limiters) is a service here.

The federation services are built over the services themselves (they reach the rooms,
the keyring and each other through them), so node.py sets those fields once, right after
the rest; nothing else assigns to a `Services`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relay.config import Config
from relay.runtime.database import Database
from relay.runtime.identity import SigningKey
from relay.runtime.metrics import Metrics

if TYPE_CHECKING:
    from relay.accounts import Accounts
    from relay.client.hierarchy import HierarchyPages
    from relay.client.synapse_admin import Nonces
    from relay.client.uia import UiaSessions
    from relay.e2ee.device_keys import E2eKeys
    from relay.e2ee.device_lists import DeviceLists
    from relay.e2ee.key_backup import KeyBackup
    from relay.e2ee.to_device import ToDevice
    from relay.federation.backfill import Backfill
    from relay.federation.client import FederationClient
    from relay.federation.ingest import Ingest
    from relay.federation.key_server import OwnKeys
    from relay.federation.peer_policy import PeerPolicy
    from relay.federation.remote_membership import RemoteMembership
    from relay.federation.sender import FederationSender
    from relay.federation.server_keys import KeyRing
    from relay.media.repository import MediaRepository
    from relay.mesh.service import Mesh
    from relay.push.delivery import PushDelivery
    from relay.push.pushers import Pushers
    from relay.rooms.service import RoomService
    from relay.runtime.notifier import Notifier
    from relay.runtime.ratelimit import RateLimiter
    from relay.sync.account_data import AccountDataService
    from relay.sync.builder import SyncService
    from relay.sync.presence import PresenceService
    from relay.sync.receipts import ReceiptService
    from relay.sync.sliding import SlidingSyncService
    from relay.sync.typing_notices import TypingService

#: Called with a destination's server name when it answers again after an outage.
LinkUpHook = Callable[[str], Awaitable[None]]
#: Called with the origin (and the signed request) of a federation request that was refused
#: or whose signature did not verify.
InboundGate = Callable[[str, dict[str, Any]], Awaitable[None]]


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
    # -- what /sync gathers -----------------------------------------------------------------
    typing: TypingService
    presence: PresenceService
    receipts: ReceiptService
    account_data: AccountDataService
    sync: SyncService
    #: Simplified Sliding Sync (MSC4186), over the sync service.
    sliding_sync: SlidingSyncService
    # -- end-to-end encryption --------------------------------------------------------------
    device_lists: DeviceLists
    e2ee_keys: E2eKeys
    to_device: ToDevice
    key_backup: KeyBackup
    # -- media, limits and per-client state ---------------------------------------------------
    media: MediaRepository
    login_limiter: RateLimiter
    register_limiter: RateLimiter
    send_limiter: RateLimiter
    #: UIA sessions of `/register`.
    uia_register: UiaSessions
    #: UIA sessions of the account operations (password, delete devices, cross-signing keys).
    uia_account: UiaSessions
    #: Nonces of Synapse's shared-secret registration.
    shared_secret_nonces: Nonces
    #: The space hierarchy walks a `next_batch` token names.
    hierarchy_pages: HierarchyPages
    #: Whom this relay federates with (`mesh.policy`).
    peer_policy: PeerPolicy
    # -- push notifications -----------------------------------------------------------------
    #: The users' pushers (`/pushers`, `/pushers/set`).
    pushers: Pushers
    #: Pushes notifications to the http pushers' gateways (run by node.serve_node).
    push_delivery: PushDelivery
    #: What the relay counts while it runs (requests, transactions): read by /metrics.
    metrics: Metrics = field(default_factory=Metrics)
    # -- federation: built over these services by node.py, right after the rest -------------
    ingest: Ingest = field(init=False)
    sender: FederationSender = field(init=False)
    remote_membership: RemoteMembership = field(init=False)
    backfill: Backfill = field(init=False)
    on_link_up: LinkUpHook = field(init=False)
    # -- the LAN mesh, when enabled (it installs itself when it starts) ------------------------
    mesh: Mesh | None = None
    mesh_inbound_gate: InboundGate | None = None

    @property
    def server_name(self) -> str:
        return self.config.server_name
