"""Gossip: relays that share a room converge to the union of its events.

Two mechanisms, both using the ordinary outbox (store/outbox.py) and `/send` transactions,
so carried PDUs travel byte for byte with their original signatures:

- Flooding (`Gossip.forward`, the Ingest's `on_accepted` hook): a PDU we accept from
  another server, whatever its origin, is queued for every server in the room that is a
  trusted LAN peer or our upstream, except the server it came from and its sender's
  server. That is how a kit with no uplink reaches the upstream through one that has it,
  and how the upstream's events reach that kit. Each relay forwards a PDU once (the first
  time it stores it); duplicates are dropped on receipt.
- Anti-entropy (`Gossip.serve`, every `GOSSIP_INTERVAL` and whenever a peer becomes
  reachable or trusted): for each room with local members and each reachable trusted peer
  in it whose outbox is empty, ask the peer for its forward extremities (our signed
  endpoint `GET /_matrix/federation/unstable/org.edge_relay.mesh/extremities/{roomId}`)
  and queue, oldest first, the events we hold that are not ancestors of them (above a
  depth cutoff just below their extremities). Repairs whatever flooding missed (a peer
  that was away, a relay restarted), and costs one small request per room and peer when
  in sync. The peer does the same towards us, so both sides converge.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from relay.events.ids import server_of
from relay.events.pdu import Pdu
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.runtime.clock import now_ms
from relay.services import Services
from store import Connection
from store import events as store_events
from store import outbox as store_outbox
from store import rooms as store_rooms

if TYPE_CHECKING:
    from relay.mesh.service import Mesh

log = logging.getLogger(__name__)

GOSSIP_INTERVAL = 5.0
EXTREMITIES_PATH = "/_matrix/federation/unstable/org.edge_relay.mesh/extremities/{room_id}"
MAX_PUSH = 2000
#: How far below the peer's shallowest extremity we look for forks it may lack.
DEPTH_MARGIN = 50


def _ancestors_txn(
    conn: Connection, start: list[str], min_depth: int, limit: int
) -> dict[str, int]:
    """{event_id: depth} of `start` and their ancestors with depth >= min_depth."""
    found: dict[str, int] = {}
    frontier = list(dict.fromkeys(start))
    while frontier and len(found) < limit:
        depths = store_events.get_depths(conn, frontier)
        nxt: list[str] = []
        for event_id, depth in depths.items():
            if event_id in found or depth < min_depth:
                continue
            found[event_id] = depth
            nxt.extend(store_events.get_prev_event_ids(conn, event_id))
        frontier = [e for e in dict.fromkeys(nxt) if e not in found]
    return found


def events_peer_lacks_txn(
    conn: Connection, room_id: str, theirs: list[str], limit: int = MAX_PUSH
) -> list[str]:
    """Event ids we hold in `room_id` that are not `theirs` or their ancestors, oldest
    first (rejected events and outliers left out)."""
    ours = store_events.get_forward_extremities(conn, room_id)
    if set(ours) <= set(theirs):
        return []
    known = store_events.get_depths(conn, theirs)
    cutoff = (min(known.values()) - DEPTH_MARGIN) if known else 0
    their_side = _ancestors_txn(conn, list(known), cutoff, 100_000)
    our_side = _ancestors_txn(conn, ours, cutoff, 100_000)
    missing = sorted(
        (depth, event_id) for event_id, depth in our_side.items() if event_id not in their_side
    )
    out: list[str] = []
    for _, event_id in missing:
        row = store_events.get_event_row(conn, event_id)
        if row is None or row["outlier"] or row["rejected_reason"] is not None:
            continue
        out.append(event_id)
        if len(out) >= limit:
            break
    return out


class Gossip:
    def __init__(self, services: Services, mesh: Mesh) -> None:
        self.services = services
        self.mesh = mesh
        self._wake = trio.Event()
        self.pushed = 0
        self.forwarded = 0

    def wake(self) -> None:
        self._wake.set()

    def _notify_sender(self, destinations: list[str]) -> None:
        for destination in destinations:
            self.services.sender.notify(destination)

    # -- flooding ----------------------------------------------------------------------------

    def _carry_targets(self, servers: list[str], exclude: set[str]) -> list[str]:
        wanted = set(self.mesh.routes)
        if self.services.config.upstream:
            wanted.add(self.services.config.upstream)
        return sorted((set(servers) & wanted) - exclude - {self.services.server_name})

    async def forward(self, origin: str, pdu: Pdu) -> None:
        """A PDU from `origin` was stored: carry it to the room's trusted peers and upstream."""
        sender_server = server_of(pdu.sender)

        def txn(conn: Connection) -> list[str]:
            servers = store_rooms.servers_in_room(conn, pdu.room_id)
            targets = self._carry_targets(servers, {origin, sender_server})
            for destination in targets:
                store_outbox.enqueue(
                    conn,
                    destination=destination,
                    kind="pdu",
                    payload=pdu.raw,
                    event_id=pdu.event_id,
                    now_ms=now_ms(),
                )
            return targets

        targets = await self.services.database.write(txn)
        if targets:
            self.forwarded += len(targets)
            self._notify_sender(targets)

    # -- anti-entropy ------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            with trio.move_on_after(GOSSIP_INTERVAL):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.round()
            except (PeerUnreachable, RemoteError) as exc:
                log.info("gossip round: %s", exc)

    async def round(self) -> None:
        peers = self.mesh.live_trusted()
        if not peers:
            return

        def rooms_txn(conn: Connection) -> dict[str, list[str]]:
            me = self.services.server_name
            out = {}
            for room_id in store_rooms.all_room_ids(conn):
                servers = store_rooms.servers_in_room(conn, room_id)
                if me in servers:
                    out[room_id] = [s for s in servers if s in peers]
            return out

        rooms = await self.services.database.read(rooms_txn)
        depths = await self.services.database.read(store_outbox.depths)
        for room_id, room_peers in rooms.items():
            for peer in room_peers:
                if depths.get(peer):
                    continue  # still delivering: compare once the outbox is empty
                await self._sync_room_with(room_id, peer)

    async def _sync_room_with(self, room_id: str, peer: str) -> None:
        client = self.services.federation_client
        try:
            with trio.fail_after(10):
                body = await client.get_json(peer, EXTREMITIES_PATH.format(room_id=room_id))
        except (PeerUnreachable, RemoteError, trio.TooSlowError) as exc:
            log.debug("extremities of %s from %s: %s", room_id, peer, exc)
            return
        theirs = body.get("extremities")
        if not isinstance(theirs, list) or not all(isinstance(e, str) for e in theirs):
            return
        rooms = self.services.rooms

        def txn(conn: Connection) -> int:
            lacking = events_peer_lacks_txn(conn, room_id, theirs)
            pdus = rooms.get_pdus_txn(conn, lacking)
            for event_id in lacking:
                pdu = pdus.get(event_id)
                if pdu is None:
                    continue
                store_outbox.enqueue(
                    conn,
                    destination=peer,
                    kind="pdu",
                    payload=pdu.raw,
                    event_id=event_id,
                    now_ms=now_ms(),
                )
            return len(lacking)

        count = await self.services.database.write(txn)
        if count:
            log.info("gossip: %s lacks %d events of %s; pushing", peer, count, room_id)
            self.pushed += count
            self._notify_sender([peer])

    def statistics(self) -> dict[str, Any]:
        return {"forwarded": self.forwarded, "pushed": self.pushed}
