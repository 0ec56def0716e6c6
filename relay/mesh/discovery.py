"""Finding LAN peers with mDNS (zeroconf), and knowing which of them are alive.

What a relay announces, as `_matrix-relay._tcp.local.` (instance name: the server name made
DNS-safe plus the first 8 hex digits of the key fingerprint, so an impersonator of a name
never collides with the real one):

- the service's port: the federation listener's port; its addresses: the LAN addresses of
  the configured interfaces (`[mesh] interfaces`, names or addresses; default every
  non-loopback IPv4 interface);
- TXT `server_name`, `key_id`, `fingerprint` (lowercase hex SHA-256 of the raw 32-byte
  ed25519 verify key: `key_fingerprint`), `version` (edge-relay's version).

Rules kept (../shared/INTEROP.md, "mDNS with zeroconf"):

- zeroconf runs in its own thread with its own asyncio loop. We submit coroutines with
  `asyncio.run_coroutine_threadsafe`; its handlers never block: they schedule a resolve on
  that loop, and results reach trio through `TrioToken.run_sync_soon` into a memory
  channel. `Zeroconf.close()` runs in a worker thread under a shielded scope.
- zeroconf alone misses peers after a partition and keeps dead ones for an hour, so every
  `announce_interval` we re-announce (`async_update_service`) and restart the browser
  (a new browser queries at once), and every `liveness_interval` we GET each peer's
  federation `/health` over HTTPS. A peer is marked unreachable once nothing answered for
  `DEAD_AFTER_INTERVALS` intervals (3 s x 4 = 12 s plus the probe timeout, well under
  30 s) and reachable again on the first answer (one interval, 3 s: under 15 s). Peers that
  said goodbye are forgotten; silent ones stay known, so a healed peer is probed and
  returns even if mDNS stays quiet.

Discovery gives an address, never trust: relay/mesh/trust.py decides what to do with it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SERVICE_TYPE = "_matrix-relay._tcp.local."
RESOLVE_TIMEOUT_MS = 3000
DEAD_AFTER_INTERVALS = 4
CHANNEL_SIZE = 1000


def key_fingerprint(verify_key_base64: str) -> str:
    """Lowercase hex SHA-256 of the raw ed25519 verify key (32 bytes, base64 decoded)."""
    text = verify_key_base64.strip()
    raw = base64.b64decode(text + "=" * (-len(text) % 4))
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Announcement:
    """One `_matrix-relay._tcp` service as seen on the LAN (nothing here is verified)."""

    instance: str
    server_name: str
    addresses: tuple[str, ...]
    port: int
    key_id: str
    fingerprint: str
    version: str

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}"


def instance_name(server_name: str, fingerprint: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9-]", "-", server_name)[:50]
    return f"{safe}-{fingerprint[:8]}.{SERVICE_TYPE}"


def lan_addresses(interfaces: Sequence[str]) -> list[str]:
    """IPv4 addresses for `interfaces` (names or addresses); every non-loopback IPv4
    address when empty."""
    import ifaddr

    adapters = ifaddr.get_adapters()
    by_name: dict[str, list[str]] = {}
    every: list[str] = []
    for adapter in adapters:
        v4 = [ip.ip for ip in adapter.ips if isinstance(ip.ip, str)]
        by_name[adapter.nice_name] = v4
        by_name[adapter.name] = v4
        every.extend(a for a in v4 if not ipaddress.ip_address(a).is_loopback)
    if not interfaces:
        return list(dict.fromkeys(every))
    found: list[str] = []
    for item in interfaces:
        try:
            ipaddress.ip_address(item)
            found.append(item)
        except ValueError:
            found.extend(by_name.get(item, []))
    return list(dict.fromkeys(found))


def _txt(properties: dict[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in properties.items():
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if value is None:
            continue
        out[k] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out


def announcement_from_info(info: Any) -> Announcement | None:
    """An Announcement from a resolved zeroconf ServiceInfo, or None if it lacks a field."""
    txt = _txt(info.properties or {})
    addresses = tuple(info.parsed_addresses())
    needed = ("server_name", "key_id", "fingerprint")
    if not addresses or not info.port or any(not txt.get(k) for k in needed):
        return None
    return Announcement(
        instance=info.name,
        server_name=txt["server_name"],
        addresses=addresses,
        port=int(info.port),
        key_id=txt["key_id"],
        fingerprint=txt["fingerprint"].lower(),
        version=txt.get("version", ""),
    )


class ZeroconfThread:
    """The zeroconf side: everything here runs in zeroconf's own thread and loop, except
    `start`, `refresh` and `close`, which a trio worker thread calls."""

    def __init__(self, own: Announcement, deliver: Callable[[tuple[str, Any]], None]) -> None:
        self.own = own
        self.deliver = deliver
        self.zc: Any = None
        self.info: Any = None
        self.browser: Any = None
        self.known: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    def _submit(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.zc.loop).result(timeout)

    def start(self) -> None:
        from zeroconf import IPVersion, ServiceInfo, Zeroconf

        self.zc = Zeroconf(interfaces=list(self.own.addresses), ip_version=IPVersion.V4Only)
        self.info = ServiceInfo(
            SERVICE_TYPE,
            self.own.instance,
            addresses=[socket.inet_aton(a) for a in self.own.addresses],
            port=self.own.port,
            properties={
                "server_name": self.own.server_name,
                "key_id": self.own.key_id,
                "fingerprint": self.own.fingerprint,
                "version": self.own.version,
            },
            server=f"er-{self.own.fingerprint[:16]}.local.",
        )
        self._submit(self._register())

    async def _register(self) -> None:
        # Our instance name embeds our key's fingerprint: unique, so no probing needed.
        await self.zc.async_register_service(self.info, cooperating_responders=True)
        self._start_browser()

    def _start_browser(self) -> None:
        from zeroconf.asyncio import AsyncServiceBrowser

        self.browser = AsyncServiceBrowser(
            self.zc, SERVICE_TYPE, handlers=[self._on_change], delay=1000
        )

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceStateChange

        if name == self.own.instance:
            return
        if state_change is ServiceStateChange.Removed:
            self.known.discard(name)
            self.deliver(("gone", name))
            return
        self.known.add(name)
        self._spawn_resolve(name)

    def _spawn_resolve(self, name: str) -> None:
        task = asyncio.ensure_future(self._resolve(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        info = AsyncServiceInfo(SERVICE_TYPE, name)
        try:
            ok = await info.async_request(self.zc, RESOLVE_TIMEOUT_MS)
        except Exception as exc:  # zeroconf errors must not kill its loop
            log.info("resolving %s failed: %s", name, exc)
            return
        if not ok:
            return
        announcement = announcement_from_info(info)
        if announcement is not None:
            self.deliver(("seen", announcement))

    async def _refresh(self) -> None:
        await self.zc.async_update_service(self.info)
        if self.browser is not None:
            await self.browser.async_cancel()
        self._start_browser()
        for name in list(self.known):
            self._spawn_resolve(name)

    def refresh(self) -> None:
        """Re-announce ourselves and re-query the LAN (called every announce interval)."""
        self._submit(self._refresh())

    def close(self) -> None:
        if self.zc is not None:
            self.zc.close()


@dataclass
class SeenPeer:
    announcement: Announcement
    reachable: bool = False
    last_ok: float = 0.0
    first_seen: float = field(default_factory=time.monotonic)


#: Called on trio's side with (announcement, reachable) after a change, or (None, instance)
#: ... see `Discovery.on_change`.
OnChange = Callable[["SeenPeer", str], Awaitable[None]]


class Discovery:
    """The trio side: the peers seen on the LAN, with their liveness."""

    def __init__(
        self,
        own: Announcement,
        http: httpx.AsyncClient,
        on_change: Callable[[SeenPeer | None, str], Awaitable[None]],
        *,
        announce_interval: float = 15.0,
        liveness_interval: float = 3.0,
        probe_client: Callable[[Announcement], httpx.AsyncClient] | None = None,
    ) -> None:
        self.own = own
        self.http = http
        #: The client a peer's /health is probed with (the mesh gives a trusted peer's
        #: pinned-certificate client, so an address taken over by another host is not
        #: "reachable"); `http` by default.
        self.probe_client = probe_client or (lambda _announcement: http)
        self.on_change = on_change
        self.announce_interval = announce_interval
        self.liveness_interval = liveness_interval
        self.peers: dict[str, SeenPeer] = {}
        self.side: ZeroconfThread | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[tuple[str, Any]](CHANNEL_SIZE)
        token = trio.lowlevel.current_trio_token()

        def put(item: tuple[str, Any]) -> None:
            try:
                send.send_nowait(item)
            except (trio.WouldBlock, trio.ClosedResourceError):
                log.warning("mDNS channel full; dropping %s", item[0])

        def deliver(item: tuple[str, Any]) -> None:  # zeroconf's thread
            try:
                token.run_sync_soon(put, item)
            except trio.RunFinishedError:
                pass

        side = self.side = ZeroconfThread(self.own, deliver)
        try:
            await trio.to_thread.run_sync(side.start)
            log.info(
                "mDNS: announcing %s on %s port %d",
                self.own.server_name,
                ", ".join(self.own.addresses),
                self.own.port,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._consume, receive, nursery)
                nursery.start_soon(self._refresh_loop, side)
                nursery.start_soon(self._liveness_loop, nursery)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(3):
                await trio.to_thread.run_sync(side.close)

    async def _consume(self, receive: Any, nursery: trio.Nursery) -> None:
        async for kind, value in receive:
            if kind == "seen":
                ann: Announcement = value
                old = self.peers.get(ann.instance)
                if old is not None and old.announcement == ann:
                    continue
                peer = SeenPeer(ann)
                if old is not None:
                    peer.first_seen = old.first_seen
                self.peers[ann.instance] = peer
                log.info("mDNS: %s at %s (%s)", ann.server_name, ann.base_url, ann.fingerprint)
                nursery.start_soon(self._check, peer, True)
            elif kind == "gone":
                gone = self.peers.pop(value, None)
                if gone is not None:
                    log.info("mDNS: %s said goodbye", gone.announcement.server_name)
                    peer.reachable = False
                    await self.on_change(None, value)

    async def _refresh_loop(self, side: ZeroconfThread) -> None:
        while True:
            await trio.sleep(self.announce_interval)
            try:
                await trio.to_thread.run_sync(side.refresh)
            except Exception as exc:  # a failed refresh is retried next time
                log.info("mDNS refresh failed: %s", exc)

    async def _liveness_loop(self, nursery: trio.Nursery) -> None:
        while True:
            await trio.sleep(self.liveness_interval)
            for peer in list(self.peers.values()):
                nursery.start_soon(self._check, peer, False)

    async def _check(self, peer: SeenPeer, new: bool) -> None:
        """Probe one peer's federation /health; report changes (and every new sighting)."""
        import httpx

        ok = False
        timeout = max(1.0, min(2.5, self.liveness_interval))
        try:
            with trio.move_on_after(timeout + 0.5):
                response = await self.probe_client(peer.announcement).get(
                    f"{peer.announcement.base_url}/health", timeout=timeout
                )
                ok = response.status_code == 200
        except (httpx.HTTPError, OSError):
            ok = False
        if self.peers.get(peer.announcement.instance) is not peer:
            return  # replaced or gone meanwhile
        now = time.monotonic()
        changed = new
        if ok:
            peer.last_ok = now
            if not peer.reachable:
                peer.reachable = changed = True
        elif peer.reachable and now - peer.last_ok > DEAD_AFTER_INTERVALS * self.liveness_interval:
            peer.reachable = False
            changed = True
        if changed:
            await self.on_change(peer, peer.announcement.instance)
