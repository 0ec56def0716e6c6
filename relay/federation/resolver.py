"""Server name -> where to connect: base URL, `Host` header, and the name TLS must match.

The order, first answer wins:

1. the mesh hook (`ServerResolver.mesh_hook`, installed by the mesh layer: LAN peers found
   by mDNS), when it knows the name;
2. `federation.upstream_url` when the name is `federation.upstream`;
3. the static map `[federation.servers]`;
4. the spec's discovery: an IP literal (port or 8448); a hostname with an explicit port;
   `https://<hostname>/.well-known/matrix/server` (cached per its `Cache-Control`
   `max-age`, 24 h by default, 48 h at most, 1 h after an error), whose `m.server` is
   resolved by the same steps minus well-known; SRV `_matrix-fed._tcp.<name>`, then the
   deprecated `_matrix._tcp.<name>`; else `<hostname>:8448`.

A URL from the config or the mesh is used as any HTTPS URL: `Host` is its host[:port] and
TLS checks its host. For discovered servers `Host` and the TLS name are what the spec says
(the server name, or the delegated hostname), and the URL may name an SRV target or an IP.
Hostnames in URLs are resolved (A/AAAA, CNAME) where the connection is made, by the
destination policy (`destinations.py`), which also checks every address. When the name
resolved is trusted (the upstream, a `[federation.servers]` entry, a pinned mesh peer),
its route is handed to the policy as trusted (`trust_route`), .well-known host included.

SRV queries use dnspython in a worker thread; tests inject a resolver object (anything with
`resolve(qname, "SRV", lifetime=...)`) and a `well_known_url` mapping, so no test needs DNS.

Spec: https://spec.matrix.org/v1.16/server-server-api/#resolving-server-names
"""

from __future__ import annotations

import ipaddress
import logging
import random
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from relay.config import Config
from relay.events.canonical import parse_json_strict
from relay.events.ids import is_valid_server_name
from relay.federation.destinations import DestinationPolicy, guarded_client

if TYPE_CHECKING:
    import httpx

# httpx and dnspython (~7 MB resident together) are imported where first used: a relay
# that has not federated yet need not carry them.

log = logging.getLogger(__name__)

DEFAULT_PORT = 8448
WELL_KNOWN_DEFAULT_TTL = 24 * 3600.0
WELL_KNOWN_MAX_TTL = 48 * 3600.0
WELL_KNOWN_ERROR_TTL = 3600.0
WELL_KNOWN_MAX_BYTES = 50 * 1024
WELL_KNOWN_TIMEOUT = 10.0
SRV_MIN_TTL = 60.0
SRV_MAX_TTL = 24 * 3600.0
SRV_NEGATIVE_TTL = 600.0
SRV_LIFETIME = 5.0

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


class ResolutionError(ValueError):
    """A server name that cannot be resolved (not a valid server name)."""


@dataclass(frozen=True, slots=True)
class ResolvedServer:
    """Where to send requests for a server name."""

    #: "https://host:port" (host may be an IP or an SRV target), no trailing slash.
    base_url: str
    #: The `Host` header to send.
    host_header: str
    #: The name the certificate must match (also sent as SNI unless it is an IP);
    #: None for plain-HTTP URLs.
    tls_server_name: str | None
    #: A pinned mesh peer's certificate (DER): the connection must present exactly it,
    #: whatever `federation.verify_tls` says (relay/mesh/trust.py); None: usual TLS checks.
    pinned_certificate: bytes | None = None


#: The mesh layer's lookup: a server name -> a LAN address, or None when it does not know.
MeshHook = Callable[[str], ResolvedServer | None]


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """`host[:port]` -> (host, port or None); IPv6 hosts lose their brackets.

    Raises:
        ResolutionError: not a valid server name.
    """
    if not is_valid_server_name(server_name):
        raise ResolutionError(f"{server_name!r} is not a valid server name")
    if server_name.startswith("["):
        end = server_name.index("]")
        host, rest = server_name[1:end], server_name[end + 1 :]
        return host, int(rest[1:]) if rest else None
    host, _, port = server_name.partition(":")
    return host, int(port) if port else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _https(host: str, port: int) -> str:
    return f"https://{_url_host(host)}:{port}"


def resolved_from_url(url: str) -> ResolvedServer:
    """A `ResolvedServer` for a configured base URL (`https://host[:port]`)."""
    import httpx

    parsed = httpx.URL(url.rstrip("/"))
    host = parsed.host
    netloc = _url_host(host) + (f":{parsed.port}" if parsed.port else "")
    return ResolvedServer(
        base_url=str(parsed).rstrip("/"),
        host_header=netloc,
        tls_server_name=host if parsed.scheme == "https" else None,
    )


def order_srv_records(
    records: list[SrvRecord], rng: random.Random | None = None
) -> list[SrvRecord]:
    """RFC 2782 order: by priority, weighted-random within a priority; `.` targets dropped."""
    rng = rng or random.Random()
    usable = [r for r in records if r.target not in (".", "")]
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in usable}):
        group = [r for r in usable if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                pick = group[0]
            else:
                point = rng.randint(1, total)
                running = 0
                for pick in group:
                    running += pick.weight
                    if running >= point:
                        break
            ordered.append(pick)
            group.remove(pick)
    return ordered


def _cache_ttl(cache_control: str | None) -> float:
    if cache_control:
        lowered = cache_control.lower()
        if "no-store" in lowered:
            return 0.0
        match = _MAX_AGE.search(cache_control)
        if match:
            return min(float(match.group(1)), WELL_KNOWN_MAX_TTL)
    return WELL_KNOWN_DEFAULT_TTL


class ServerResolver:
    """Resolves server names for the federation client (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        ssl_context: ssl.SSLContext | bool = True,
        policy: DestinationPolicy | None = None,
        mesh_hook: MeshHook | None = None,
        well_known_url: Callable[[str], str] | None = None,
        dns_resolver: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.policy = policy or DestinationPolicy.from_config(config)
        self.mesh_hook = mesh_hook
        self._ssl_context = ssl_context
        self._well_known_url = well_known_url or (
            lambda host: f"https://{_url_host(host)}/.well-known/matrix/server"
        )
        self._dns_resolver = dns_resolver
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        #: hostname -> (expires at, delegated server name or None)
        self._well_known: dict[str, tuple[float, str | None]] = {}
        #: qname -> (expires at, records)
        self._srv: dict[str, tuple[float, list[SrvRecord]]] = {}

    async def resolve(self, server_name: str) -> ResolvedServer:
        """Where to reach `server_name`.

        Raises:
            ResolutionError: `server_name` is not a valid server name.
        """
        if self.mesh_hook is not None:
            found = self.mesh_hook(server_name)
            if found is not None:
                self._trust(server_name, found)  # the mesh routes pinned peers only
                return found
        trusted = self.policy.is_trusted_server(server_name)
        if trusted:
            host, port = split_server_name(server_name)
            if port is None and not _is_ip(host):
                self.policy.trust_route(f"{server_name} .well-known", host, 443)
        target = await self._resolve(server_name)
        if trusted:
            self._trust(server_name, target)
        return target

    def _trust(self, server_name: str, target: ResolvedServer) -> None:
        import httpx

        url = httpx.URL(target.base_url)
        self.policy.trust_route(server_name, url.host, url.port or 443)

    async def _resolve(self, server_name: str) -> ResolvedServer:
        if self.config.upstream_url and server_name == self.config.upstream:
            return resolved_from_url(self.config.upstream_url)
        mapped = self.config.federation_map.get(server_name)
        if mapped:
            return resolved_from_url(mapped)
        host, port = split_server_name(server_name)
        if _is_ip(host):
            return ResolvedServer(_https(host, port or DEFAULT_PORT), server_name, host)
        if port is not None:
            return ResolvedServer(_https(host, port), server_name, host)
        delegated = await self.well_known(host)
        if delegated is not None:
            return await self._resolve_delegated(delegated)
        return await self._resolve_by_srv(host)

    async def _resolve_delegated(self, delegated: str) -> ResolvedServer:
        host, port = split_server_name(delegated)
        if _is_ip(host):
            return ResolvedServer(_https(host, port or DEFAULT_PORT), delegated, host)
        if port is not None:
            return ResolvedServer(_https(host, port), delegated, host)
        return await self._resolve_by_srv(host)

    async def _resolve_by_srv(self, host: str) -> ResolvedServer:
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            records = await self.srv_records(f"{service}.{host}")
            if records:
                best = records[0]
                return ResolvedServer(_https(best.target, best.port), host, host)
        return ResolvedServer(_https(host, DEFAULT_PORT), host, host)

    # .well-known ---------------------------------------------------------------------

    async def well_known(self, hostname: str) -> str | None:
        """The `m.server` that `hostname` delegates to, or None (cached either way)."""
        now = self._clock()
        cached = self._well_known.get(hostname)
        if cached is not None and cached[0] > now:
            return cached[1]
        import httpx

        try:
            delegated, ttl = await self._fetch_well_known(hostname)
        except (httpx.HTTPError, ValueError, ssl.SSLError, OSError) as exc:  # refusals too
            log.info("no .well-known for %s: %s", hostname, exc)
            delegated, ttl = None, WELL_KNOWN_ERROR_TTL
        if ttl > 0:
            self._well_known[hostname] = (now + ttl, delegated)
        else:
            self._well_known.pop(hostname, None)
        return delegated

    async def _fetch_well_known(self, hostname: str) -> tuple[str | None, float]:

        if self._http is None:
            self._http = guarded_client(
                self.policy,
                verify=self._ssl_context,
                follow_redirects=True,
                timeout=WELL_KNOWN_TIMEOUT,
            )
        async with self._http.stream("GET", self._well_known_url(hostname)) as response:
            if response.status_code != 200:
                return None, WELL_KNOWN_ERROR_TTL
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > WELL_KNOWN_MAX_BYTES:
                    raise ValueError("response too large")
            ttl = _cache_ttl(response.headers.get("cache-control"))
        doc = parse_json_strict(body)
        delegated = doc.get("m.server") if isinstance(doc, dict) else None
        if not isinstance(delegated, str) or not is_valid_server_name(delegated):
            raise ValueError(f"invalid m.server: {delegated!r}")
        return delegated, ttl

    # SRV -------------------------------------------------------------------------------

    async def srv_records(self, qname: str) -> list[SrvRecord]:
        """The SRV records of `qname` in RFC 2782 order ([] when there are none)."""
        now = self._clock()
        cached = self._srv.get(qname)
        if cached is not None and cached[0] > now:
            return order_srv_records(cached[1])
        records, ttl = await trio.to_thread.run_sync(self._lookup_srv, qname)
        self._srv[qname] = (now + ttl, records)
        return order_srv_records(records)

    def _lookup_srv(self, qname: str) -> tuple[list[SrvRecord], float]:
        import dns.exception
        import dns.resolver

        resolver = self._dns_resolver
        if resolver is None:
            resolver = self._dns_resolver = dns.resolver.Resolver()
        try:
            answer = resolver.resolve(qname, "SRV", lifetime=SRV_LIFETIME)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], SRV_NEGATIVE_TTL
        except dns.exception.DNSException as exc:
            log.info("SRV lookup of %s failed: %s", qname, exc)
            return [], SRV_NEGATIVE_TTL
        records = [
            SrvRecord(int(r.priority), int(r.weight), int(r.port), str(r.target).rstrip(".") or ".")
            for r in answer
        ]
        rrset = getattr(answer, "rrset", None)
        ttl = float(getattr(rrset, "ttl", SRV_MIN_TTL) or SRV_MIN_TTL)
        return records, min(max(ttl, SRV_MIN_TTL), SRV_MAX_TTL)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
