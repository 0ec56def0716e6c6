"""Where the relay may connect when it makes a request on someone else's behalf: the one
destination policy, applied to the address actually connected.

Outbound requests caused by others (federation requests to a server named in an event or
an `X-Matrix` origin, key fetches, notary queries, `.well-known`, SRV targets, a media
`Location`) all go through an httpx client made by `guarded_client`, whose network backend
resolves the host itself, checks every address against `DestinationPolicy.refusal`, and
connects to an allowed address only, never re-resolving (a DNS answer that changes between
the check and the connect, "DNS rebinding", cannot get past it). Rules, Synapse's
`ip_range_blacklist` for the ranges (synapse/config/server.py, DEFAULT_IP_RANGE_BLOCKLIST):

- Refused: loopback, private (RFC 1918, CGNAT, IPv6 unique-local), link-local, multicast,
  unspecified, documentation and reserved ranges (`DENIED_RANGES`), an IPv4 address
  inside IPv6 (mapped, 6to4) as its IPv4 self; and the relay's own listeners, whatever
  their address.
- Unless the destination is trusted by configuration: the upstream (`federation.upstream`,
  `upstream_url`), a `[federation.servers]` entry, a pinned mesh peer (`[mesh] trusted`,
  or approved: the `pinned_peer` hook the mesh layer sets). Their routes are known by
  host and port (`trust_route`, called by the resolver when it resolves a trusted name),
  and reach anything, private LAN addresses included: the mesh lives on a LAN.
- `federation.ip_range_allowlist`: addresses or networks treated as ordinary remote
  addresses (labs; tests on loopback, where every server is 127.x.y.z). The relay's own
  listeners stay refused.
- A URL someone else gave us (a media `Location`, a redirect's) must be `https` unless it
  is a trusted route (a configured `http://` upstream URL). Redirects are followed only
  where a client allows them (never for federation requests), at most `MAX_REDIRECTS`,
  each hop's URL and address checked again.

A refusal raises `AddressRefused` (an `OSError`: the federation client reports it as
`PeerUnreachable`, a client sees 502). Nothing is sent to a refused address. (Whether a
*server* may be talked to at all, `mesh.policy`, is `peer_policy.py`'s question, asked
before this one.)

`FetchBudget` bounds the fetches others can cause: per requester (the address a request
came from: an `X-Matrix` origin or a notary query names servers we then contact), a token
bucket; per destination, a failure is remembered for `NEGATIVE_TTL` seconds, during which
requesters cannot make us try it again.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import trio

from relay.config import Config, Listen
from relay.errors import LimitExceeded
from relay.runtime.ratelimit import RateLimiter

if TYPE_CHECKING:
    import httpcore
    import httpx

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Synapse's default ip_range_blacklist, plus the unspecified addresses it always adds.
DENIED_RANGES: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "169.254.0.0/16",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fe80::/10",
        "fc00::/7",
        "2001:db8::/32",
        "ff00::/8",
        "fec0::/10",
    )
)
#: Redirects followed by a client that follows any (well-known, a media Location).
MAX_REDIRECTS = 5
#: How long a destination that failed is not tried again on a requester's behalf.
NEGATIVE_TTL = 600.0
NEGATIVE_CACHE_SIZE = 10_000
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class AddressRefused(OSError):
    """The policy refused to connect to `host`:`port` (nothing was sent)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"destination {host}:{port} refused: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


def parse_ranges(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or CIDR networks -> networks (ValueError on a bad one)."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv6Address):
        return ip.ipv4_mapped or ip.sixtofour
    return None


def _within(ip: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    """The first of `networks` that holds `ip`."""
    for net in networks:
        if net.version == ip.version and ip in net:
            return net
    return None


def _is_local_address(ip: IPAddress) -> bool:
    """Whether `ip` is one of this machine's addresses (it can be bound)."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


def _listener_addresses(listen: Listen) -> list[tuple[IPAddress | None, int]]:
    """Where a listener is reached: its address, or every address a name resolves to (once,
    at start), or None for a wildcard."""
    if listen.host in WILDCARD_HOSTS:
        return [(None, listen.port)]
    try:
        return [(ipaddress.ip_address(listen.host), listen.port)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)
    except OSError:
        return [(None, listen.port)]  # unresolvable: guard every local address
    return [(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), listen.port) for info in infos]


def _url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


class DestinationPolicy:
    """See the module docstring. One per relay, shared by every outbound client."""

    def __init__(
        self,
        *,
        own_listeners: Sequence[Listen] = (),
        allowed_ranges: Sequence[IPNetwork] = (),
        trusted_servers: Iterable[str] = (),
        trusted_urls: Iterable[str] = (),
    ) -> None:
        self.own_listeners = tuple(own_listeners)
        #: (address, port) of each listener; address None for a wildcard one.
        self._own = [pair for listen in own_listeners for pair in _listener_addresses(listen)]
        self.allowed_ranges = tuple(allowed_ranges)
        self.trusted_servers = frozenset(trusted_servers)
        #: The mesh layer's pin lookup: is this server name a pinned (approved) peer?
        self.pinned_peer: Callable[[str], bool] | None = None
        #: server name ("" for the configured URLs) -> the (host, port) trusted for it.
        self._routes: dict[str, set[tuple[str, int]]] = {"": set(map(_url_host_port, trusted_urls))}

    @classmethod
    def from_config(cls, config: Config) -> DestinationPolicy:
        urls = [u for u in (config.upstream_url, *config.federation_map.values()) if u]
        servers = [s for s in (config.upstream, *config.federation_map, *config.mesh_trusted) if s]
        return cls(
            own_listeners=(config.client_listen, config.federation_listen),
            allowed_ranges=config.ip_range_allowlist,
            trusted_servers=servers,
            trusted_urls=urls,
        )

    # Trust -----------------------------------------------------------------------------

    def is_trusted_server(self, server_name: str) -> bool:
        """The upstream, a `[federation.servers]` entry or a pinned mesh peer."""
        if server_name in self.trusted_servers:
            return True
        return self.pinned_peer is not None and self.pinned_peer(server_name)

    def trust_route(self, server_name: str, host: str, port: int) -> None:
        """`host`:`port` is where the trusted `server_name` is reached (the resolver says);
        it replaces that server's previous route."""
        self._routes[server_name] = {(host.lower().strip("[]"), port)}

    def is_trusted_route(self, host: str, port: int) -> bool:
        key = (host.lower().strip("[]"), port)
        return any(key in routes for routes in self._routes.values())

    # The rules -------------------------------------------------------------------------

    def refusal(self, address: str, port: int) -> str | None:
        """Why connecting to the IP `address`:`port` is refused, or None when it is not
        (trusted routes are not asked: they may go anywhere)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self._is_own_listener(ip, port):
            return "it is this relay's own listener"
        candidates = [ip]
        inner = _embedded_ipv4(ip)
        if inner is not None:
            candidates.append(inner)
        for candidate in candidates:
            if _within(candidate, self.allowed_ranges) is not None:
                continue
            denied = _within(candidate, DENIED_RANGES)
            if denied is not None:
                return f"{candidate} is in the refused range {denied}"
        return None

    def _is_own_listener(self, ip: IPAddress, port: int) -> bool:
        for host, listen_port in self._own:
            if listen_port != port:
                continue
            if host is None:  # a wildcard listener: every address of this machine
                if ip.is_unspecified or ip.is_loopback or _is_local_address(ip):
                    return True
            elif host == ip:
                return True
        return False

    def check_url(self, url: httpx.URL) -> None:
        """A URL someone else gave us (a media `Location`, a redirect hop): https, unless
        it is a trusted route.

        Raises:
            AddressRefused: a scheme other than https to an untrusted route.
        """
        host, port = url.host.lower(), url.port or (443 if url.scheme == "https" else 80)
        if url.scheme == "https" or (url.scheme == "http" and self.is_trusted_route(host, port)):
            return
        refused = AddressRefused(host, port, f"{url.scheme or 'no'} scheme (https only)")
        log.warning("refused an outbound request to %s: %s", url, refused)
        raise refused

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host` that may be connected to at `port`, in the resolver's
        order; all of them for a trusted route.

        Raises:
            AddressRefused: none may (every refusal is logged).
            OSError: `host` does not resolve.
        """
        bare = host.strip("[]")
        infos = await trio.socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
        found: list[str] = []
        for info in infos:
            address = str(info[4][0])
            if address not in found:
                found.append(address)
        if self.is_trusted_route(bare, port):
            return found
        allowed: list[str] = []
        reasons: list[str] = []
        for address in found:
            reason = self.refusal(address, port)
            if reason is None:
                allowed.append(address)
            else:
                reasons.append(reason)
        if not allowed:
            why = "; ".join(reasons) or "no address"
            log.warning("refused an outbound connection to %s:%s: %s", host, port, why)
            raise AddressRefused(host, port, why)
        return allowed


class _PolicyBackend:
    """An httpcore network backend that connects only where the policy allows, to the
    very address it checked."""

    def __init__(self, policy: DestinationPolicy) -> None:
        import httpcore

        self.policy = policy
        self._inner = httpcore.TrioBackend()  # the relay runs under trio only

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        import httpcore

        last: Exception | None = None
        for address in await self.policy.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                last = exc  # try the next address, as a resolver's list is meant
        assert last is not None  # addresses() never returns an empty list
        raise last

    async def connect_unix_socket(self, path: str, *args: Any, **kwargs: Any) -> Any:
        raise AddressRefused(path, 0, "unix sockets are never a destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    policy: DestinationPolicy,
    *,
    verify: ssl.SSLContext | bool,
    timeout: httpx.Timeout | float,
    follow_redirects: bool = False,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    keepalive_expiry: float = 5.0,
) -> httpx.AsyncClient:
    """An httpx client every request of which keeps the policy: connections are made by
    `_PolicyBackend`, and each redirect hop's URL (at most MAX_REDIRECTS, when the client
    or the request follows them) is checked by `check_url` before it is followed (a URL
    someone else gave us, like a media `Location`, is checked by its caller). `transport`
    replaces the network (tests of the layers above that speak to stand-ins in-process);
    the redirect checks still apply."""
    import httpcore
    import httpx

    async def check_redirect(response: httpx.Response) -> None:
        if follow_redirects and response.has_redirect_location:
            policy.check_url(response.url.join(response.headers["location"]))

    if transport is None:
        guarded = httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
        # httpx takes no network backend: its pool is replaced by one that has ours.
        guarded._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(verify),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=keepalive_expiry,
            # Duck-typed (httpcore is imported lazily, so the class cannot derive from its
            # AsyncNetworkBackend at import time).
            network_backend=cast("httpcore.AsyncNetworkBackend", _PolicyBackend(policy)),
        )
        transport = guarded
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=MAX_REDIRECTS,
        headers=headers,
        trust_env=False,
        event_hooks={"response": [check_redirect]},
    )


def _ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class FetchBudget:
    """How many fetches of other servers' keys a requester may cause, and which
    destinations failed lately (see the module docstring)."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        negative_ttl: float = NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = RateLimiter(per_second, burst)
        self.negative_ttl = negative_ttl
        self._clock = clock
        #: destination -> when it failed
        self._failed: dict[str, float] = {}

    def may_fetch(self, requester: str | None, destination: str) -> bool:
        """Whether `requester` (None: the relay itself) may make us contact `destination`
        now; takes one token from the requester when it may."""
        if requester is None:
            return True
        failed_at = self._failed.get(destination)
        if failed_at is not None and self._clock() - failed_at < self.negative_ttl:
            return False
        try:
            self._limiter.take(requester, now=self._clock())
        except LimitExceeded:
            log.info("%s may not make us fetch keys now (asked for %s)", requester, destination)
            return False
        return True

    def failed(self, destination: str) -> None:
        self._failed[destination] = self._clock()
        if len(self._failed) > NEGATIVE_CACHE_SIZE:
            now = self._clock()
            self._failed = {d: t for d, t in self._failed.items() if now - t < self.negative_ttl}

    def succeeded(self, destination: str) -> None:
        self._failed.pop(destination, None)
