"""What relay.toml parses into: `Config` (its defaults come from the table), and the
`ConfigError` every bad key raises."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from relay.config.table import default_of


class ConfigError(Exception):
    """The configuration (a file or a flag) is unusable; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str, what: str) -> Listen:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) -> Listen, or ConfigError naming `what`."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{what}: expected HOST:PORT, got {value!r}")
    host, _, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT with a port in 1-65535, got {value!r}")
    return Listen(host, int(port_text))


#: How a thumbnail fits its box (relay/media/thumbnails.py makes them).
THUMBNAIL_METHODS = ("crop", "scale")


@dataclass(frozen=True, slots=True)
class ThumbnailSize:
    width: int
    height: int
    method: str

    def __str__(self) -> str:
        return f"{self.width}x{self.height} {self.method}"


def parse_size(text: str) -> ThumbnailSize:
    """`"320x240 scale"` -> ThumbnailSize; ValueError if it is not that shape."""
    dims, _, method = text.strip().partition(" ")
    width, _, height = dims.partition("x")
    method = method.strip()
    if not (width.isdigit() and height.isdigit()) or method not in THUMBNAIL_METHODS:
        raise ValueError(f"expected 'WIDTHxHEIGHT crop|scale', got {text!r}")
    size = ThumbnailSize(int(width), int(height), method)
    if not (0 < size.width <= 4096 and 0 < size.height <= 4096):
        raise ValueError(f"thumbnail dimensions must be 1-4096, got {text!r}")
    return size


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """[media]: the content repository (relay/media)."""

    max_upload_bytes: int = default_of("media.max_upload_bytes")
    #: Relative to the data dir.
    store_path: str = default_of("media.store_path")
    #: Media cached from other servers is dropped, least recently used first, beyond this.
    remote_cache_max_bytes: int = default_of("media.remote_cache_max_bytes")
    #: "WIDTHxHEIGHT crop|scale": the sizes thumbnails are made at (requests snap to one).
    thumbnail_sizes: tuple[ThumbnailSize, ...] = ()
    #: Images with more pixels are not thumbnailed (M_TOO_LARGE); decoding one takes up to
    #: 4 bytes a pixel (128 MB at the default), one thumbnail at a time.
    max_image_pixels: int = default_of("media.max_image_pixels")


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """What one listener allows (relay/runtime/listener.py): how many connections, and how
    long each may take over what. A phone on bad Wi-Fi stalls for seconds, not minutes; an
    attacker who opens connections and sends nothing holds each for `header_timeout_seconds`
    at most."""

    max_connections: int = default_of("listeners.max_connections")
    max_connections_per_address: int = default_of("listeners.max_connections_per_address")
    header_timeout_seconds: float = default_of("listeners.header_timeout_seconds")
    body_timeout_seconds: float = default_of("listeners.body_timeout_seconds")
    #: How long an idle connection that already served a request is kept for the next.
    keep_alive_seconds: float = default_of("listeners.client_keep_alive_seconds")


@dataclass(frozen=True, slots=True)
class Config:
    """The parsed relay.toml; each field is documented by its row in `SETTINGS`."""

    data_dir: Path
    server_name: str
    client_listen: Listen
    federation_listen: Listen
    signing_key_path: Path
    tls_certificate_path: Path
    tls_private_key_path: Path
    database_path: Path
    synchronous: str = default_of("storage.synchronous")
    #: listeners.metrics: Prometheus `/metrics` (relay/web/metrics.py); None: off.
    metrics_listen: Listen | None = None
    #: (relay/runtime/housekeeping.py)
    housekeeping_interval_seconds: float = default_of("storage.housekeeping_interval_seconds")
    #: listeners.public_baseurl, ending in "/"; None: from the request.
    public_baseurl: str | None = None
    #: listeners.trusted_proxies: whose X-Forwarded-* headers are believed.
    trusted_proxies: tuple[str, ...] = ()
    upstream: str | None = None
    upstream_url: str | None = None
    ca_file: Path | None = None
    verify_tls: bool = default_of("federation.verify_tls")
    log_level: str = default_of("logging.level")
    federation_map: dict[str, str] = field(default_factory=dict)
    #: action -> (requests per second, burst); per_second 0 disables the limit.
    rate_limits: dict[str, tuple[float, int]] = field(default_factory=dict)
    registration: str = default_of("registration.mode")
    registration_shared_secret: str | None = None
    retry_min_seconds: float = default_of("federation.retry_min_seconds")
    retry_max_seconds: float = default_of("federation.retry_max_seconds")
    probe_interval_seconds: float = default_of("federation.probe_interval_seconds")
    request_timeout_seconds: float = default_of("federation.request_timeout_seconds")
    gap_fill_cap: int = default_of("federation.gap_fill_cap")
    #: server name -> {key id: unpadded base64 verify key} (empty: trust its published keys).
    trusted_key_servers: dict[str, dict[str, str]] = field(default_factory=dict)
    media: MediaConfig = field(default_factory=MediaConfig)
    mesh_enabled: bool = default_of("mesh.enabled")
    mesh_interfaces: tuple[str, ...] = ()
    #: server name -> pinned ed25519 verify key (unpadded base64).
    mesh_trusted: dict[str, str] = field(default_factory=dict)
    mesh_announce_interval_seconds: float = default_of("mesh.announce_interval_seconds")
    mesh_liveness_interval_seconds: float = default_of("mesh.liveness_interval_seconds")
    #: relay/federation/peer_policy.py
    mesh_policy: str = default_of("mesh.policy")
    #: federation.ip_range_allowlist: what the destination policy treats as remote
    #: (relay/federation/destinations.py).
    ip_range_allowlist: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    #: push.allowed_gateways: gateway URLs the push delivery may reach whatever their
    #: address or scheme (relay/push/gateway.py).
    push_allowed_gateways: tuple[str, ...] = ()
    #: [listeners] limits (relay/runtime/listener.py); see `client_limits`.
    max_connections: int = default_of("listeners.max_connections")
    max_connections_per_address: int = default_of("listeners.max_connections_per_address")
    header_timeout_seconds: float = default_of("listeners.header_timeout_seconds")
    body_timeout_seconds: float = default_of("listeners.body_timeout_seconds")
    client_keep_alive_seconds: float = default_of("listeners.client_keep_alive_seconds")
    federation_keep_alive_seconds: float = default_of("listeners.federation_keep_alive_seconds")

    def _limits(self, keep_alive_seconds: float) -> ListenerLimits:
        return ListenerLimits(
            max_connections=self.max_connections,
            max_connections_per_address=self.max_connections_per_address,
            header_timeout_seconds=self.header_timeout_seconds,
            body_timeout_seconds=self.body_timeout_seconds,
            keep_alive_seconds=keep_alive_seconds,
        )

    @property
    def client_limits(self) -> ListenerLimits:
        """The client (and metrics) listener's limits."""
        return self._limits(self.client_keep_alive_seconds)

    @property
    def federation_limits(self) -> ListenerLimits:
        """The federation listener's: the client's with its own keep-alive."""
        return self._limits(self.federation_keep_alive_seconds)

    @property
    def media_store(self) -> Path:
        """The content repository's directory ([media] store_path under the data dir)."""
        return self.data_dir / self.media.store_path
