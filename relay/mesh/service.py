"""The mesh service: discovery + trust + the hooks federation consults + gossip.

- `Mesh.resolve` is the resolver's mesh hook (relay/federation/resolver.py): a server name
  resolves to a LAN address only when that address proved it holds the name's pinned key
  (relay/mesh/trust.py), and only over the certificate it proved it with (every
  connection, federation requests and liveness probes alike, must present exactly it).
  Names never pinned, or announced by a spoofer, fall through to the usual resolution
  (which, on a LAN with no DNS, finds nothing).
- `Mesh.pinned_key` is the KeyRing's pin (relay/federation/server_keys.py): keys fetched for a
  pinned name must be the pinned key, whichever way they were fetched.
- `Mesh.notaries` is the KeyRing's mesh notaries: the reachable trusted peers, each with
  the key it was pinned with, vouch for other servers' keys (`/_matrix/key/v2/query`) when
  those servers cannot be reached from here (an upstream only one kit has a route to).
- `Mesh.inbound_gate` is consulted when an inbound federation request was refused
  (mesh.policy) or its signature could not be verified: a pending LAN peer whose request is
  signed with the key it served us tried to federate unapproved, and is marked rejected
  (the request itself is refused: 403, or 401 as its key resolves through no route we
  trust); a request not so signed forges its name and changes nothing.
  A server reachable by ordinary federation (e.g. an IP-literal name) is not a LAN peer
  to the mesh: it federates as any server on the Internet would.
- Pins come from `[mesh] trusted` and from `relay peers approve` (the peers table, re-read
  every liveness interval, so the CLI acts on a running relay within seconds).
- Every sighting and verdict is written to the peers table (store/peers.py) for
  `relay peers list`. An announcement rejected for a name we already trust is kept in a
  table of its own: a spoofer never changes the real peer's row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

import relay
from relay.federation.resolver import ResolvedServer
from relay.mesh.discovery import (
    Announcement,
    Discovery,
    SeenPeer,
    instance_name,
    key_fingerprint,
    lan_addresses,
)
from relay.mesh.gossip import Gossip
from relay.mesh.trust import (
    PENDING,
    REJECTED,
    TRUSTED,
    Verdict,
    check_announcement,
    signed_by_served_key,
)
from relay.runtime.clock import now_ms
from relay.services import Services
from store import peers as store_peers

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    server_name: str
    address: str
    port: int
    key_id: str
    verify_key: str
    instance: str
    #: The certificate (DER) the peer proved its key with: every connection must show it.
    certificate: bytes

    @property
    def resolved(self) -> ResolvedServer:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return ResolvedServer(
            f"https://{host}:{self.port}",
            self.server_name,
            self.server_name,
            pinned_certificate=self.certificate,
        )


def own_announcement(services: Services) -> Announcement:
    config = services.config
    key = services.signing_key
    fingerprint = key_fingerprint(key.verify_key_base64)
    listen_host = config.federation_listen.host
    if listen_host not in ("0.0.0.0", "::", ""):
        addresses = [listen_host]
    else:
        addresses = lan_addresses(config.mesh_interfaces)
    if not addresses:
        addresses = ["127.0.0.1"]
    return Announcement(
        instance=instance_name(config.server_name, fingerprint),
        server_name=config.server_name,
        addresses=tuple(addresses),
        port=config.federation_listen.port,
        key_id=key.key_id,
        fingerprint=fingerprint,
        version=relay.__version__,
    )


class Mesh:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config
        self.own = own_announcement(services)
        #: server name -> the verified LAN route (trusted peers only)
        self.routes: dict[str, Route] = {}
        #: instance -> (announcement, verdict): everything seen and judged
        self.verdicts: dict[str, tuple[Announcement, Verdict]] = {}
        #: server name -> approved key (from the peers table)
        self.approved: dict[str, str] = {}
        self.discovery: Discovery | None = None
        self.gossip = Gossip(services, self)
        self._http: httpx.AsyncClient | None = None

    # -- hooks consulted by federation -------------------------------------------------

    def resolve(self, server_name: str) -> ResolvedServer | None:
        route = self.routes.get(server_name)
        return route.resolved if route is not None else None

    def pinned_key(self, server_name: str) -> str | None:
        return self.config.mesh_trusted.get(server_name) or self.approved.get(server_name)

    def is_pinned(self, server_name: str) -> bool:
        return self.pinned_key(server_name) is not None

    def is_lan_peer(self, server_name: str) -> bool:
        return any(a.server_name == server_name for a, _ in self.verdicts.values())

    async def inbound_gate(self, origin: str, signed: dict[str, Any]) -> None:
        """A request naming `origin` was refused or failed authentication: if `origin` is an
        unapproved (pending) LAN peer and the request is signed with the key that peer
        served us, it really tried to federate unapproved: mark it rejected. A request
        not so signed is a forgery of its name, and changes nothing."""
        if origin in self.routes or not self.is_lan_peer(origin):
            return
        if self.pinned_key(origin) is not None:
            return  # pinned: the signature check against the pin decides
        row = await self.services.database.read(store_peers.get_peer, origin)
        if row is None or row["status"] != PENDING or not row["verify_key"] or not row["key_id"]:
            return
        if not signed_by_served_key(signed, origin, row["key_id"], row["verify_key"]):
            log.info("mesh: a request forging %s's name was refused; its status stays", origin)
            return
        reason = "not approved, yet it tried to federate"
        rejected = await self.services.database.write(
            lambda conn: store_peers.reject_pending(
                conn, origin, verify_key=row["verify_key"], reason=reason
            )
        )
        if rejected:
            log.warning("mesh: unapproved LAN peer %s tried to federate; rejected", origin)

    def live_trusted(self) -> list[str]:
        """Trusted peers that answer their health check now."""
        out = []
        for name, route in self.routes.items():
            seen = self.discovery.peers.get(route.instance) if self.discovery else None
            if seen is not None and seen.reachable:
                out.append(name)
        return sorted(out)

    def notaries(self) -> dict[str, dict[str, str]]:
        """Reachable trusted peers as key notaries: `{name: {key_id: pinned key}}`."""
        return {
            name: {self.routes[name].key_id: self.routes[name].verify_key}
            for name in self.live_trusted()
        }

    # -- the service ----------------------------------------------------------------------

    def install(self) -> None:
        self.services.federation_client.resolver.mesh_hook = self.resolve
        self.services.keyring.key_pin = self.pinned_key
        # Pinned peers may be reached on the LAN's private addresses (destinations.py).
        self.services.federation_client.policy.pinned_peer = self.is_pinned
        self.services.keyring.mesh_notaries = self.notaries
        self.services.mesh = self
        self.services.mesh_inbound_gate = self.inbound_gate
        self.services.ingest.on_accepted = self.gossip.forward

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        import httpx

        await self._load_approvals()
        self.install()
        # Certificates are not verified here: trust.py judges the one each address
        # presents against its signed key response, then pins it.
        async with httpx.AsyncClient(verify=False, timeout=5.0) as http:
            self._http = http
            self.discovery = Discovery(
                self.own,
                http,
                self._on_change,
                announce_interval=self.config.mesh_announce_interval_seconds,
                liveness_interval=self.config.mesh_liveness_interval_seconds,
                probe_client=self._probe_client,
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(self.discovery.serve)
                nursery.start_soon(self._watch_approvals)
                await nursery.start(self.gossip.serve)
                task_status.started()

    def _probe_client(self, announcement: Announcement) -> httpx.AsyncClient:
        """A trusted peer is probed over its pinned certificate; others as they come."""
        route = self.routes.get(announcement.server_name)
        if route is not None and route.instance == announcement.instance:
            return self.services.federation_client.pinned_client(route.certificate)
        assert self._http is not None
        return self._http

    async def _load_approvals(self) -> bool:
        rows = await self.services.database.read(store_peers.all_peers)
        approved = {r["server_name"]: r["approved_key"] for r in rows if r["approved_key"]}
        changed = approved != self.approved
        self.approved = approved
        return changed

    async def _watch_approvals(self) -> None:
        while True:
            await trio.sleep(min(2.0, self.config.mesh_liveness_interval_seconds))
            if await self._load_approvals():
                log.info("mesh: approvals changed; judging peers again")
                assert self.discovery is not None
                for peer in list(self.discovery.peers.values()):
                    await self._judge(peer)

    async def _on_change(self, peer: SeenPeer | None, instance: str) -> None:
        if peer is None:
            self._forget(instance)
            return
        if peer.reachable or instance not in self.verdicts:
            await self._judge(peer)
        else:
            await self._record_reachability(peer)

    def _forget(self, instance: str) -> None:
        self.verdicts.pop(instance, None)
        for name, route in list(self.routes.items()):
            if route.instance == instance:
                del self.routes[name]

    async def _judge(self, peer: SeenPeer) -> None:
        ann = peer.announcement
        if ann.server_name == self.config.server_name:
            return
        assert self._http is not None
        verdict = await check_announcement(self._http, ann, self.pinned_key(ann.server_name))
        previous = self.verdicts.get(ann.instance)
        if not verdict.fetched and previous is not None:
            # Could not reach it just now: keep what we knew.
            await self._record_reachability(peer)
            return
        await self._apply(peer, verdict)

    async def _apply(self, peer: SeenPeer, verdict: Verdict) -> None:
        """Route (or stop routing) the announced name as `verdict` says, and record it."""
        ann = peer.announcement
        self.verdicts[ann.instance] = (ann, verdict)
        route = self.routes.get(ann.server_name)
        if verdict.status == TRUSTED and verdict.verify_key and verdict.certificate:
            self.routes[ann.server_name] = Route(
                ann.server_name,
                ann.address,
                ann.port,
                key_id=ann.key_id,
                verify_key=verdict.verify_key,
                instance=ann.instance,
                certificate=verdict.certificate,
            )
            if route is None or route.address != ann.address:
                log.info("mesh: %s trusted at %s", ann.server_name, ann.base_url)
                self.services.keyring.new_route(ann.server_name)
            self.gossip.wake()
        elif (
            route is not None
            and route.instance == ann.instance
            and not (verdict.proof_failed and route.address != ann.address)
        ):
            # Its key changed, or it was revoked. (A failed proof from another address,
            # even under the same instance name, says nothing about the routed peer.)
            del self.routes[ann.server_name]
        await self._record(peer, verdict)

    async def _record(self, peer: SeenPeer, verdict: Verdict) -> None:
        ann = peer.announcement
        route = self.routes.get(ann.server_name)
        spoof_of_trusted = (
            verdict.status == REJECTED and route is not None and route.instance != ann.instance
        )

        def txn(conn: Any) -> None:
            now = now_ms()
            row = store_peers.get_peer(conn, ann.server_name)
            # An address that could not prove the key it names says nothing about the peer
            # that holds it: that peer's row is left alone, whatever its status (a replayer
            # must not turn a pending kit into a rejected one).
            replay = verdict.proof_failed and (row is None or row["address"] != ann.address)
            if (
                spoof_of_trusted
                or replay
                or (
                    verdict.status == REJECTED
                    and row is not None
                    and row["status"] == TRUSTED
                    and row["address"] != ann.address
                )
            ):
                store_peers.note_rejected_announcement(
                    conn,
                    server_name=ann.server_name,
                    address=ann.address,
                    port=ann.port,
                    fingerprint=ann.fingerprint,
                    reason=verdict.reason,
                    now_ms=now,
                )
                return
            status = verdict.status
            reason = verdict.reason
            if status == PENDING and row is not None and row["status"] == REJECTED:
                # Refused before (revoked, or it tried to federate unapproved): stays so.
                status, reason = REJECTED, row["reason"]
            store_peers.upsert_peer(
                conn,
                server_name=ann.server_name,
                address=ann.address,
                port=ann.port,
                key_id=ann.key_id,
                verify_key=verdict.verify_key,
                fingerprint=ann.fingerprint,
                status=status,
                version=ann.version,
                reachable=peer.reachable,
                reason=reason,
                now_ms=now,
            )

        await self.services.database.write(txn)

    async def _record_reachability(self, peer: SeenPeer) -> None:
        ann = peer.announcement
        judged = self.verdicts.get(ann.instance)
        if judged is None or judged[1].status == REJECTED:
            return
        if peer.reachable:
            log.info("mesh: %s is reachable", ann.server_name)
            self.gossip.wake()
        else:
            log.info("mesh: %s is unreachable", ann.server_name)

        def txn(conn: Any) -> None:
            row = store_peers.get_peer(conn, ann.server_name)
            if row is not None and row["address"] == ann.address:
                store_peers.set_reachable(conn, ann.server_name, peer.reachable, now_ms=now_ms())

        await self.services.database.write(txn)
