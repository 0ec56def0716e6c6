"""The relay's configuration: `DIR/relay.toml`, read once at start, validated whole.

Every key is documented in README.md ("Configuration"). A broken file raises
`ConfigError` naming the key; the CLI turns it into a one-line error, exit 2.
Paths in the file are relative to the data dir.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.events.ids import is_valid_server_name
from relay.events.signing import decode_verify_key_base64, is_valid_key_id

CONFIG_FILE = "relay.toml"
DEFAULT_CLIENT_LISTEN = "127.0.0.1:8008"
DEFAULT_FEDERATION_LISTEN = "0.0.0.0:8448"
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MIB = 1024 * 1024
DEFAULT_THUMBNAIL_SIZES = (
    "32x32 crop",
    "96x96 crop",
    "320x240 scale",
    "640x480 scale",
    "800x600 scale",
)


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """[media]: the content repository (relay/media)."""

    max_upload_bytes: int = 50 * MIB
    #: Relative to the data dir.
    store_path: str = "media"
    #: Media cached from other servers is dropped, least recently used first, beyond this.
    remote_cache_max_bytes: int = 1024 * MIB
    #: "WIDTHxHEIGHT crop|scale": the sizes thumbnails are made at (requests snap to one).
    thumbnail_sizes: tuple = ()
    #: Images with more pixels are not thumbnailed (M_TOO_LARGE); decoding one takes up to
    #: 4 bytes a pixel (128 MB at the default), one thumbnail at a time.
    max_image_pixels: int = 32_000_000


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    server_name: str
    client_listen: Listen
    federation_listen: Listen
    signing_key_path: Path
    tls_certificate_path: Path
    tls_private_key_path: Path
    database_path: Path
    synchronous: str = "FULL"
    #: listeners.metrics: Prometheus `/metrics` (relay/web/metrics.py); None: off.
    metrics_listen: Listen | None = None
    #: [storage] housekeeping_interval_seconds: how often old dedupe rows are deleted
    #: (relay/runtime/housekeeping.py); the first run is a minute after start, or sooner if shorter.
    housekeeping_interval_seconds: float = 3600.0
    upstream: str | None = None
    upstream_url: str | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    log_level: str = "INFO"
    federation_map: dict[str, str] = field(default_factory=dict)
    #: action -> (requests per second, burst); per_second 0 disables the limit.
    rate_limits: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: "closed" (default), "token" (registration tokens required) or "open" (labs).
    registration: str = "closed"
    registration_shared_secret: str | None = None
    #: Outbound federation: backoff bounds and how often failing peers are probed.
    retry_min_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    probe_interval_seconds: float = 2.0
    #: A whole outbound request (connect to last byte); a slow link sizes transactions to it.
    request_timeout_seconds: float = 30.0
    #: How many missing events we fetch to close one gap before giving up.
    gap_fill_cap: int = 10_000
    #: Notaries asked for a server's keys when it can't be reached itself:
    #: server name -> {key id: unpadded base64 verify key} (empty: trust its published keys).
    trusted_key_servers: dict[str, dict[str, str]] = field(default_factory=dict)
    media: MediaConfig = field(default_factory=MediaConfig)
    #: [mesh]: LAN peers over mDNS (relay/mesh). interfaces: names or addresses; () = every
    #: LAN interface. trusted: server name -> pinned ed25519 verify key (unpadded base64).
    mesh_enabled: bool = True
    mesh_interfaces: tuple[str, ...] = ()
    mesh_trusted: dict[str, str] = field(default_factory=dict)
    mesh_announce_interval_seconds: float = 15.0
    mesh_liveness_interval_seconds: float = 3.0
    #: [mesh] policy: "open" federates with anyone; "pinned" only with the upstream,
    #: [federation.servers], pinned mesh peers and servers reached through them
    #: (relay/federation/peer_policy.py).
    mesh_policy: str = "open"

    @property
    def media_store(self) -> Path:
        """The content repository's directory ([media] store_path under the data dir)."""
        return self.data_dir / self.media.store_path


DEFAULT_RATE_LIMITS: dict[str, tuple[float, int]] = {
    "login": (0.5, 10),
    "send": (20.0, 100),
    "register": (0.5, 10),
}
REGISTRATION_MODES = ("closed", "token", "open")
MESH_POLICIES = ("open", "pinned")
#: [federation] numeric keys: default, minimum.
FEDERATION_NUMBERS: dict[str, tuple[float, float]] = {
    "retry_min_seconds": (1.0, 0.1),
    "retry_max_seconds": (30.0, 0.1),
    "probe_interval_seconds": (2.0, 0.1),
    "request_timeout_seconds": (30.0, 1.0),
    "gap_fill_cap": (10_000, 10),
}


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _str(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    value = table.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}{key} must be a string")
    return value or None


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"unknown key {where}{extra[0]}")


def load_config(data_dir: Path) -> Config:
    """Read and validate `data_dir/relay.toml`."""
    path = data_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no relay here (run `relay init` first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(doc, data_dir)


def config_from_dict(doc: dict[str, Any], data_dir: Path) -> Config:
    _unknown_keys(
        doc,
        {
            "server_name",
            "listeners",
            "federation",
            "storage",
            "keys",
            "logging",
            "limits",
            "registration",
            "media",
            "mesh",
        },
        "",
    )
    server_name = _str(doc, "server_name", "")
    if not server_name:
        raise ConfigError("server_name is missing")
    if not is_valid_server_name(server_name):
        raise ConfigError(f"server_name {server_name!r} is not a valid Matrix server name")

    listeners = _table(doc, "listeners")
    _unknown_keys(listeners, {"client", "federation", "metrics"}, "listeners.")
    client = parse_listen(
        _str(listeners, "client", "listeners.", DEFAULT_CLIENT_LISTEN) or "", "listeners.client"
    )
    federation = parse_listen(
        _str(listeners, "federation", "listeners.", DEFAULT_FEDERATION_LISTEN) or "",
        "listeners.federation",
    )

    metrics_text = _str(listeners, "metrics", "listeners.")
    metrics = parse_listen(metrics_text, "listeners.metrics") if metrics_text else None
    if metrics is not None and not _is_loopback(metrics.host):
        raise ConfigError(
            "listeners.metrics must be a loopback address (127.0.0.0/8, ::1 or localhost):"
            " the figures name the servers this relay talks to"
        )

    fed = _table(doc, "federation")
    _unknown_keys(
        fed,
        {
            "upstream",
            "upstream_url",
            "ca_file",
            "verify_tls",
            "servers",
            "trusted_key_servers",
            *FEDERATION_NUMBERS,
        },
        "federation.",
    )
    numbers: dict[str, float] = {}
    for key, (default, minimum) in FEDERATION_NUMBERS.items():
        value = fed.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"federation.{key} must be a number >= {minimum}")
        numbers[key] = value
    upstream = _str(fed, "upstream", "federation.")
    if upstream is not None and not is_valid_server_name(upstream):
        raise ConfigError(f"federation.upstream {upstream!r} is not a valid Matrix server name")
    upstream_url = _str(fed, "upstream_url", "federation.")
    if upstream_url is not None and not upstream_url.startswith(("https://", "http://")):
        raise ConfigError("federation.upstream_url must start with https://")
    ca_file_text = _str(fed, "ca_file", "federation.")
    verify_tls = fed.get("verify_tls", True)
    if not isinstance(verify_tls, bool):
        raise ConfigError("federation.verify_tls must be true or false")
    servers = fed.get("servers", {})
    if not isinstance(servers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in servers.items()
    ):
        raise ConfigError("federation.servers must map server names to base URLs")
    trusted_key_servers = _trusted_key_servers(fed.get("trusted_key_servers", {}))

    storage = _table(doc, "storage")
    _unknown_keys(storage, {"database", "synchronous", "housekeeping_interval_seconds"}, "storage.")
    synchronous = (_str(storage, "synchronous", "storage.", "FULL") or "FULL").upper()
    if synchronous not in SYNCHRONOUS_MODES:
        raise ConfigError(f"storage.synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    housekeeping_interval = storage.get("housekeeping_interval_seconds", 3600.0)
    if (
        isinstance(housekeeping_interval, bool)
        or not isinstance(housekeeping_interval, int | float)
        or housekeeping_interval < 0.1
    ):
        raise ConfigError("storage.housekeeping_interval_seconds must be a number >= 0.1")

    keys = _table(doc, "keys")
    _unknown_keys(keys, {"signing_key", "tls_certificate", "tls_private_key"}, "keys.")

    logging_table = _table(doc, "logging")
    _unknown_keys(logging_table, {"level"}, "logging.")
    level = (_str(logging_table, "level", "logging.", "INFO") or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"logging.level must be one of {', '.join(LOG_LEVELS)}")

    limits_table = _table(doc, "limits")
    rate_limits = dict(DEFAULT_RATE_LIMITS)
    for action in rate_limits:
        for suffix in ("per_second", "burst"):
            if f"{action}_{suffix}" in limits_table:
                value = limits_table[f"{action}_{suffix}"]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ConfigError(f"limits.{action}_{suffix} must be a number >= 0")
        rate_limits[action] = (
            float(limits_table.get(f"{action}_per_second", rate_limits[action][0])),
            int(limits_table.get(f"{action}_burst", rate_limits[action][1])),
        )
    _unknown_keys(
        limits_table,
        {f"{a}_{s}" for a in DEFAULT_RATE_LIMITS for s in ("per_second", "burst")},
        "limits.",
    )

    registration_table = _table(doc, "registration")
    _unknown_keys(registration_table, {"mode", "shared_secret"}, "registration.")
    registration = _str(registration_table, "mode", "registration.", "closed") or "closed"
    if registration not in REGISTRATION_MODES:
        raise ConfigError(f"registration.mode must be one of {', '.join(REGISTRATION_MODES)}")
    shared_secret = _str(registration_table, "shared_secret", "registration.")

    mesh = _mesh(_table(doc, "mesh"))

    media = _media(_table(doc, "media"))

    def path_of(table: dict[str, Any], key: str, where: str, default: str) -> Path:
        return data_dir / (_str(table, key, where, default) or default)

    return Config(
        data_dir=data_dir,
        server_name=server_name,
        client_listen=client,
        federation_listen=federation,
        metrics_listen=metrics,
        signing_key_path=path_of(keys, "signing_key", "keys.", "signing.key"),
        tls_certificate_path=path_of(keys, "tls_certificate", "keys.", "tls.crt"),
        tls_private_key_path=path_of(keys, "tls_private_key", "keys.", "tls.key"),
        database_path=path_of(storage, "database", "storage.", "relay.db"),
        synchronous=synchronous,
        housekeeping_interval_seconds=float(housekeeping_interval),
        upstream=upstream,
        upstream_url=upstream_url,
        ca_file=(data_dir / ca_file_text) if ca_file_text else None,
        verify_tls=verify_tls,
        log_level=level,
        federation_map=dict(servers),
        rate_limits=rate_limits,
        registration=registration,
        registration_shared_secret=shared_secret,
        retry_min_seconds=float(numbers["retry_min_seconds"]),
        retry_max_seconds=float(numbers["retry_max_seconds"]),
        probe_interval_seconds=float(numbers["probe_interval_seconds"]),
        request_timeout_seconds=float(numbers["request_timeout_seconds"]),
        gap_fill_cap=int(numbers["gap_fill_cap"]),
        trusted_key_servers=trusted_key_servers,
        media=media,
        **mesh,
    )


#: [mesh] numeric keys: default, minimum.
MESH_NUMBERS: dict[str, tuple[float, float]] = {
    "announce_interval_seconds": (15.0, 1.0),
    "liveness_interval_seconds": (3.0, 0.5),
}


def _mesh(table: dict[str, Any]) -> dict[str, Any]:
    """The [mesh] table as Config fields."""
    _unknown_keys(table, {"enabled", "interfaces", "trusted", "policy", *MESH_NUMBERS}, "mesh.")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("mesh.enabled must be true or false")
    policy = _str(table, "policy", "mesh.", "open") or "open"
    if policy not in MESH_POLICIES:
        raise ConfigError(f"mesh.policy must be one of {', '.join(MESH_POLICIES)}")
    interfaces = table.get("interfaces", [])
    if not isinstance(interfaces, list) or not all(isinstance(i, str) and i for i in interfaces):
        raise ConfigError("mesh.interfaces must be a list of interface names or addresses")
    trusted = table.get("trusted", {})
    if not isinstance(trusted, dict):
        raise ConfigError("mesh.trusted must map server names to verify keys")
    for name, key in trusted.items():
        if not is_valid_server_name(name):
            raise ConfigError(f"mesh.trusted: {name!r} is not a valid Matrix server name")
        if not isinstance(key, str):
            raise ConfigError(f"mesh.trusted.{name} must be a base64 verify key")
        try:
            decode_verify_key_base64(key)
        except ValueError as exc:
            raise ConfigError(f"mesh.trusted.{name}: {exc}") from None
    numbers: dict[str, float] = {}
    for key, (default, minimum) in MESH_NUMBERS.items():
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"mesh.{key} must be a number >= {minimum}")
        numbers[key] = float(value)
    return {
        "mesh_enabled": enabled,
        "mesh_interfaces": tuple(interfaces),
        "mesh_trusted": {name: key.rstrip("=") for name, key in trusted.items()},
        "mesh_announce_interval_seconds": numbers["announce_interval_seconds"],
        "mesh_liveness_interval_seconds": numbers["liveness_interval_seconds"],
        "mesh_policy": policy,
    }


def _media(table: dict[str, Any]) -> MediaConfig:
    """The [media] table."""
    from relay.media.thumbnails import parse_size

    defaults = MediaConfig()
    numbers = {"max_upload_bytes": 1, "remote_cache_max_bytes": 0, "max_image_pixels": 1}
    _unknown_keys(table, {"store_path", "thumbnail_sizes", *numbers}, "media.")
    values: dict[str, Any] = {}
    for key, minimum in numbers.items():
        value = table.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"media.{key} must be an integer >= {minimum}")
        values[key] = value
    store_path = _str(table, "store_path", "media.", defaults.store_path) or "media"
    sizes = table.get("thumbnail_sizes", list(DEFAULT_THUMBNAIL_SIZES))
    if not isinstance(sizes, list) or not sizes or not all(isinstance(s, str) for s in sizes):
        raise ConfigError('media.thumbnail_sizes must be a list like ["96x96 crop"]')
    try:
        parsed = tuple(parse_size(s) for s in sizes)
    except ValueError as exc:
        raise ConfigError(f"media.thumbnail_sizes: {exc}") from None
    return MediaConfig(store_path=store_path, thumbnail_sizes=parsed, **values)


def _trusted_key_servers(value: Any) -> dict[str, dict[str, str]]:
    where = "federation.trusted_key_servers"
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must map server names to {{key id = verify key}} tables")
    result: dict[str, dict[str, str]] = {}
    for name, keys in value.items():
        if not is_valid_server_name(name):
            raise ConfigError(f"{where}: {name!r} is not a valid Matrix server name")
        if not isinstance(keys, dict):
            raise ConfigError(f"{where}.{name} must be a table of key id = verify key")
        for key_id, key in keys.items():
            if not is_valid_key_id(key_id) or not isinstance(key, str):
                raise ConfigError(f"{where}.{name}: bad key {key_id!r}")
            try:
                decode_verify_key_base64(key)
            except ValueError as exc:
                raise ConfigError(f"{where}.{name}.{key_id}: {exc}") from None
        result[name] = dict(keys)
    return result


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_config(
    *,
    server_name: str,
    client_listen: str,
    federation_listen: str,
    upstream: str | None,
    upstream_url: str | None,
    ca_file: str | None,
    verify_tls: bool,
    registration: str = "closed",
    mdns_interfaces: tuple[str, ...] = (),
    mesh_policy: str = "open",
) -> str:
    """The text `relay init` writes: every key present, with a comment saying what it does."""
    lines = [
        "# edge-relay configuration. Every key is described in README.md.",
        "",
        "# This relay's Matrix server name: the part after ':' in its user ids.",
        f"server_name = {_toml_str(server_name)}",
        "",
        "[listeners]",
        "# Client-Server API, plain HTTP (put a TLS proxy in front when not on localhost).",
        f"client = {_toml_str(client_listen)}",
        "# Server-Server API and key server, TLS with keys.tls_certificate.",
        f"federation = {_toml_str(federation_listen)}",
        '# Prometheus /metrics, plain HTTP, loopback only, e.g. "127.0.0.1:9101"; empty: off.',
        'metrics = ""',
        "",
        "[federation]",
        "# The organisation's upstream homeserver (server name), if any.",
        f"upstream = {_toml_str(upstream or '')}",
        "# Base URL of the upstream's federation API, overriding discovery.",
        f"upstream_url = {_toml_str(upstream_url or '')}",
        "# Extra CA certificates (PEM) trusted for outbound federation TLS.",
        f"ca_file = {_toml_str(ca_file or '')}",
        "# Verify peers' TLS certificates. false is for labs only; the relay warns at start.",
        f"verify_tls = {'true' if verify_tls else 'false'}",
        "# Outbound retries back off from retry_min_seconds, doubling, to retry_max_seconds;",
        "# unreachable destinations (and the upstream) are probed every probe_interval_seconds",
        "# (less often while probes time out; a live, silent upstream every 2 minutes) and",
        "# flushed as soon as they answer. Nothing queued is ever dropped.",
        "retry_min_seconds = 1.0",
        "retry_max_seconds = 30.0",
        "probe_interval_seconds = 2.0",
        "# A whole outbound request may take this long; on a slow link the relay sizes each",
        "# transaction to finish well within it, and splits one that did not.",
        "request_timeout_seconds = 30.0",
        "# Missing events fetched to close one gap in a room's history before giving up.",
        "gap_fill_cap = 10000",
        "",
        "[federation.servers]",
        '# Static map of server name -> base URL, e.g. "hq.example" = "https://10.0.0.5:8448"',
        "",
        "[federation.trusted_key_servers]",
        "# Notaries asked for a server's keys when it can't be reached itself, each with its",
        '# pinned keys, e.g. "hq.example" = { "ed25519:a_key" = "<base64 verify key>" }',
        "",
        "[mesh]",
        "# LAN peers over mDNS: advertise and browse _matrix-relay._tcp.local. (README, Mesh).",
        "enabled = true",
        "# Interface names or addresses to use; empty: every LAN interface.",
        "interfaces = [" + ", ".join(_toml_str(i) for i in mdns_interfaces) + "]",
        "announce_interval_seconds = 15.0",
        "liveness_interval_seconds = 3.0",
        "# Whom we federate with. open: anyone, as a homeserver on the Internet would.",
        "# pinned: only the upstream, [federation.servers], pinned peers and servers reached",
        "# through them (sharing a room with one); everyone else gets 403 and nothing from us.",
        f"policy = {_toml_str(mesh_policy)}",
        "",
        "[mesh.trusted]",
        "# Pinned peers: server name -> its ed25519 verify key (base64), e.g.",
        '# "kit-b.lan" = "<verify key from `relay status` on kit-b>"',
        "",
        "[media]",
        "# Largest upload accepted (bytes; M_TOO_LARGE beyond), and largest remote file cached.",
        f"max_upload_bytes = {50 * MIB}",
        "# Where files are stored, content-addressed (relative to the data dir).",
        'store_path = "media"',
        "# Media cached from other servers is dropped, least recently used first, beyond this.",
        f"remote_cache_max_bytes = {1024 * MIB}",
        "# Sizes thumbnails are made at (requests are answered by the nearest one).",
        "thumbnail_sizes = [" + ", ".join(_toml_str(x) for x in DEFAULT_THUMBNAIL_SIZES) + "]",
        "# Images with more pixels than this are not thumbnailed; decoding one takes up to",
        "# 4 bytes a pixel (128 MB at 32000000), one thumbnail at a time.",
        "max_image_pixels = 32000000",
        "",
        "[storage]",
        'database = "relay.db"',
        "# SQLite synchronous mode: FULL survives power loss; NORMAL may lose the last commits.",
        'synchronous = "FULL"',
        "# How often federation dedupe records older than a week (transaction ids, to-device",
        "# message ids) are deleted; the first run is a minute after start. Client transaction",
        "# ids are kept: a retry must never duplicate.",
        "housekeeping_interval_seconds = 3600.0",
        "",
        "[keys]",
        'signing_key = "signing.key"',
        'tls_certificate = "tls.crt"',
        'tls_private_key = "tls.key"',
        "",
        "[registration]",
        "# closed: only `relay user add`; token: registration tokens required; open: labs only.",
        f"mode = {_toml_str(registration)}",
        "# Secret for Synapse-style /_synapse/admin/v1/register (empty: endpoint disabled).",
        'shared_secret = ""',
        "",
        "[limits]",
        "# Requests per second and burst, per client address (login, register) or user (send).",
        "login_per_second = 0.5",
        "login_burst = 10",
        "register_per_second = 0.5",
        "register_burst = 10",
        "send_per_second = 20.0",
        "send_burst = 100",
        "",
        "[logging]",
        'level = "INFO"',
        "",
    ]
    return "\n".join(lines)
