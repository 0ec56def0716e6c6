"""Whom this relay federates with: `mesh.policy`, the one rule every federation path calls.

- `open`: anyone, as a homeserver on the Internet would.
- `pinned` (the appliance's default): only
  - the upstream (`federation.upstream`) and the names in `[federation.servers]`;
  - pinned mesh peers: `[mesh] trusted`, and every peer approved with `relay peers
    approve` (store/peers.py; read at each check, so an approval acts at once);
  - servers reached through those: a server with a user joined to a room in which one of
    the above has a joined user too (the upstream's users, a kit carried by a peer).
  Everyone else is refused both ways: an inbound request naming it as `X-Matrix` origin is
  answered 403 `M_FORBIDDEN` before its signature is checked (checking it could mean
  fetching its key: a request to it), and the federation client sends it nothing
  (`DestinationRefused`, before any name resolution or connection).

The unauthenticated key endpoints (`/_matrix/key/v2/...`), `/version` and `/health` stay
public: they name nobody, and a LAN peer must fetch our key to judge us.

Which servers are "reached through" is read from our copy of room memberships: one query
per check, on the database's reader threads.
"""

from __future__ import annotations

from relay.config import Config
from relay.runtime.database import Database
from store import Connection
from store import peers as store_peers
from store import rooms as store_rooms

OPEN, PINNED = "open", "pinned"


class PeerPolicy:
    def __init__(self, config: Config, database: Database) -> None:
        self.config = config
        self.database = database

    @property
    def policy(self) -> str:
        return self.config.mesh_policy

    def _configured(self) -> set[str]:
        named = {self.config.server_name, *self.config.federation_map, *self.config.mesh_trusted}
        if self.config.upstream:
            named.add(self.config.upstream)
        return named

    async def allows(self, server_name: str) -> bool:
        """Whether we may exchange federation requests with `server_name`."""
        if self.policy == OPEN:
            return True
        configured = self._configured()
        if server_name in configured:
            return True

        def txn(conn: Connection) -> bool:
            pinned = configured | store_peers.approved_server_names(conn)
            if server_name in pinned:
                return True
            bases = sorted(pinned - {self.config.server_name})
            return store_rooms.shares_a_room(conn, server_name, bases)

        return await self.database.read(txn)
