"""The relay's configuration: `DIR/relay.toml`, read once at start, validated whole.

`SETTINGS` is the one table of settings: each row names a key by its TOML path, its
kind (the parser that reads it), default, lower bound, documentation and the `Config`
attribute it fills. The table drives parsing (`config_from_dict`, unknown keys are an
error), the file `relay init` writes (`render_config`, comments from the docs) and the
README's configuration table (`readme_table`; `tools/config_readme.py` writes it and
tests/test_config.py fails when they disagree). A broken file raises `ConfigError`
naming the key; the CLI turns it into a one-line error, exit 2. Paths in the file are
relative to the data dir.
"""

from __future__ import annotations

import ipaddress
import json
import textwrap
import tomllib
from collections.abc import Callable
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
REGISTRATION_MODES = ("closed", "token", "open")
MESH_POLICIES = ("open", "pinned")
MIB = 1024 * 1024
DEFAULT_THUMBNAIL_SIZES = (
    "32x32 crop",
    "96x96 crop",
    "320x240 scale",
    "640x480 scale",
    "800x600 scale",
)


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


# ---------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of relay.toml."""

    #: The TOML path, e.g. "federation.retry_min_seconds" (top-level keys have no dot).
    path: str
    #: The parser that reads it: a key of `PARSERS`.
    kind: str
    #: The value `relay init` writes and a missing key means (None: required).
    default: Any
    #: What it does (Markdown; the README's "meaning" and the rendered file's comment).
    doc: str
    #: The Config attribute it fills; "media.X" is `Config.media.X`,
    #: "rate_limits.ACTION.per_second|burst" a half of `Config.rate_limits[ACTION]`.
    attr: str
    #: Numbers: the smallest value accepted.
    minimum: float | None = None
    #: "choice" settings: the values accepted.
    choices: tuple[str, ...] = ()
    #: "number" settings: float, or int for counts written as numbers.
    cast: type = float
    #: The README's default column when the value alone would mislead.
    shown_default: str | None = None

    @property
    def section(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def key(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def is_table(self) -> bool:
        """Written as its own `[path]` table (a map), after its section's plain keys."""
        return isinstance(self.default, dict)


def _limit(action: str, per_second: float, burst: int, doc: str) -> tuple[Setting, Setting]:
    return (
        Setting(
            f"limits.{action}_per_second",
            "number",
            per_second,
            doc + " `0` disables it.",
            f"rate_limits.{action}.per_second",
            minimum=0,
        ),
        Setting(
            f"limits.{action}_burst",
            "number",
            burst,
            f"Burst of the `{action}` rate limit: requests allowed at once before it applies.",
            f"rate_limits.{action}.burst",
            minimum=0,
            cast=int,
        ),
    )


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "server_name",
        "server_name",
        None,
        "This relay's Matrix server name, e.g. `kit-07.relief.example` or `127.0.0.2:8448`."
        " Never change it after users exist.",
        "server_name",
        shown_default="(required)",
    ),
    Setting(
        "listeners.client",
        "listen",
        DEFAULT_CLIENT_LISTEN,
        "`HOST:PORT` of the Client-Server API (plain HTTP; IPv6 as `[::1]:8008`); put a TLS"
        " proxy in front when not on localhost.",
        "client_listen",
    ),
    Setting(
        "listeners.federation",
        "listen",
        DEFAULT_FEDERATION_LISTEN,
        "`HOST:PORT` of the Server-Server API and key server, served over TLS with"
        " `keys.tls_certificate`.",
        "federation_listen",
    ),
    Setting(
        "listeners.metrics",
        "metrics_listen",
        "",
        "`HOST:PORT` of Prometheus `GET /metrics` (plain HTTP), a loopback address only"
        " (`127.0.0.1:9101`, `[::1]:9101`); empty: off. It serves requests by listener,"
        " endpoint (route handler) and status, latency histograms, events stored (sent by"
        " local users, received from other servers), outbound transactions by destination"
        " and result, federation queue depth, oldest entry's age and up/down per destination,"
        " LAN peers by status, database bytes, process RSS, CPU seconds and start time.",
        "metrics_listen",
        shown_default='`""` (off)',
    ),
    Setting(
        "federation.upstream",
        "upstream",
        "",
        "Server name of the organisation's upstream homeserver, if any.",
        "upstream",
    ),
    Setting(
        "federation.upstream_url",
        "upstream_url",
        "",
        "Base URL (`https://host:port`) of the upstream's federation API, overriding discovery.",
        "upstream_url",
    ),
    Setting(
        "federation.ca_file",
        "optional_path",
        "",
        "PEM file of extra CA certificates trusted for outbound federation TLS (system CAs"
        " are always trusted).",
        "ca_file",
    ),
    Setting(
        "federation.verify_tls",
        "bool",
        True,
        "Verify peers' TLS certificates. `false` is for labs only; the relay logs a warning"
        " at start. Trusted mesh peers are checked against the certificate bound to their"
        ' pinned key whatever this says (see "LAN mesh").',
        "verify_tls",
    ),
    Setting(
        "federation.retry_min_seconds",
        "number",
        1.0,
        "Outbound retries to a destination that failed back off from this, doubling.",
        "retry_min_seconds",
        minimum=0.1,
    ),
    Setting(
        "federation.retry_max_seconds",
        "number",
        30.0,
        "The longest backoff between retries. Queued events are never dropped, however"
        " long the outage.",
        "retry_max_seconds",
        minimum=0.1,
    ),
    Setting(
        "federation.probe_interval_seconds",
        "number",
        2.0,
        "How often the upstream and every failing destination are probed; one that answers"
        " again is flushed at once (well within 5 s).",
        "probe_interval_seconds",
        minimum=0.1,
    ),
    Setting(
        "federation.gap_fill_cap",
        "number",
        10_000,
        "How many missing events are fetched (`/get_missing_events`) to close one gap in a"
        " room's history before the relay falls back to asking for the state at the gap.",
        "gap_fill_cap",
        minimum=10,
        cast=int,
    ),
    Setting(
        "federation.servers",
        "server_map",
        {},
        'Static map of server name to base URL, consulted before discovery, e.g. `"hq.example"'
        ' = "https://10.0.0.5:8448"`.',
        "federation_map",
        shown_default="empty table",
    ),
    Setting(
        "federation.trusted_key_servers",
        "trusted_key_servers",
        {},
        "Notaries asked (`POST /_matrix/key/v2/query`) for a server's signing keys when the"
        ' server itself can\'t be reached, each with its pinned keys, e.g. `"hq.example" ='
        ' { "ed25519:a_key" = "<base64 verify key>" }`. An empty inner table trusts the'
        " notary's own published keys.",
        "trusted_key_servers",
        shown_default="empty table",
    ),
    Setting(
        "mesh.enabled",
        "bool",
        True,
        "Find LAN peers over mDNS (`_matrix-relay._tcp.local.`) and gossip rooms with trusted"
        ' ones (see "LAN mesh").',
        "mesh_enabled",
    ),
    Setting(
        "mesh.interfaces",
        "interfaces",
        [],
        "Interface names (`eth0`) or addresses to announce and browse on; empty: every"
        " non-loopback IPv4 interface. When `listeners.federation` names one address, that"
        " address is announced.",
        "mesh_interfaces",
    ),
    Setting(
        "mesh.announce_interval_seconds",
        "number",
        15.0,
        "How often we re-announce ourselves and re-query the LAN (zeroconf alone never does"
        " after a partition).",
        "mesh_announce_interval_seconds",
        minimum=1.0,
    ),
    Setting(
        "mesh.liveness_interval_seconds",
        "number",
        3.0,
        "How often each peer's federation `/health` is probed over HTTPS. A peer silent for"
        " 4 intervals is marked unreachable (measured 12.8 s; bound 30 s); it is back on its"
        " first answer (measured 0.7 s; bound 15 s).",
        "mesh_liveness_interval_seconds",
        minimum=0.5,
    ),
    Setting(
        "mesh.policy",
        "choice",
        "open",
        "Whom the relay federates with: `open`, anyone, as a homeserver on the Internet"
        " would; `pinned`, only the upstream, `[federation.servers]`, pinned mesh peers and"
        " servers sharing a room with one of them; everyone else gets 403 `M_FORBIDDEN` and"
        ' is sent nothing (see "LAN mesh").',
        "mesh_policy",
        choices=MESH_POLICIES,
        shown_default="`open` (`pinned` on the appliance)",
    ),
    Setting(
        "mesh.trusted",
        "mesh_trusted",
        {},
        'Pinned peers: server name to its base64 ed25519 verify key, e.g. `"kit-b.lan" ='
        ' "<verify key>"` (the `verify_key` of `relay status` on that kit). A peer whose'
        " served key matches is trusted at once.",
        "mesh_trusted",
        shown_default="empty table",
    ),
    Setting(
        "media.max_upload_bytes",
        "integer",
        50 * MIB,
        "Largest upload accepted (`413 M_TOO_LARGE` beyond; clients read it from"
        " `/media/config`), and largest file fetched from another server (`502"
        " M_TOO_LARGE`).",
        "media.max_upload_bytes",
        minimum=1,
        shown_default="`52428800` (50 MiB)",
    ),
    Setting(
        "media.store_path",
        "string",
        "media",
        "Directory of media files, content-addressed (`ab/cd/<sha256>`, identical files"
        " stored once); relative to the data dir. Metadata is in the database.",
        "media.store_path",
    ),
    Setting(
        "media.remote_cache_max_bytes",
        "integer",
        1024 * MIB,
        "Media and thumbnails cached from other servers beyond this are dropped, least"
        " recently used first (after each fetch, and by `relay media cleanup`).",
        "media.remote_cache_max_bytes",
        minimum=0,
        shown_default="`1073741824` (1 GiB)",
    ),
    Setting(
        "media.thumbnail_sizes",
        "thumbnail_sizes",
        list(DEFAULT_THUMBNAIL_SIZES),
        "Sizes thumbnails are made at (`WIDTHxHEIGHT crop|scale`), on demand, and cached; a"
        " request is answered by the smallest size of its method at least as large as asked."
        " Images smaller than the size are served as they are (never upscaled).",
        "media.thumbnail_sizes",
    ),
    Setting(
        "media.max_image_pixels",
        "integer",
        32_000_000,
        "Images with more pixels are not thumbnailed (`413 M_TOO_LARGE`), checked from the"
        " header before decoding. It is the memory budget of thumbnailing: a PNG, GIF or WebP"
        " is decoded whole at up to 4 bytes a pixel (128 MB at the default, whatever the"
        " file's size), a JPEG at a 1/2 to 1/8 scale; one thumbnail is made at a time. Keep"
        " it at or under the default on a 1 GB board.",
        "media.max_image_pixels",
        minimum=1,
    ),
    Setting(
        "storage.database",
        "path",
        "relay.db",
        "The SQLite database.",
        "database_path",
    ),
    Setting(
        "storage.synchronous",
        "choice_upper",
        "FULL",
        "SQLite `synchronous` mode: `FULL` (or `EXTRA`) means an acknowledged write survives"
        " power loss; `NORMAL` may lose the last commits on power loss.",
        "synchronous",
        choices=SYNCHRONOUS_MODES,
    ),
    Setting(
        "storage.housekeeping_interval_seconds",
        "number",
        3600.0,
        "How often federation dedupe records older than a week (received transaction ids,"
        " to-device `message_id`s) are deleted; the first run is a minute after start, or"
        " sooner if this is shorter. Client transaction ids are kept for ever: a retry must"
        " never duplicate.",
        "housekeeping_interval_seconds",
        minimum=0.1,
    ),
    Setting(
        "keys.signing_key",
        "path",
        "signing.key",
        "The ed25519 signing key (Synapse's key file format). Never regenerate it.",
        "signing_key_path",
    ),
    Setting(
        "keys.tls_certificate",
        "path",
        "tls.crt",
        "Certificate (PEM) of the federation listener.",
        "tls_certificate_path",
    ),
    Setting(
        "keys.tls_private_key",
        "path",
        "tls.key",
        "Its private key (PEM).",
        "tls_private_key_path",
    ),
    Setting(
        "registration.mode",
        "choice",
        "closed",
        "Who may create accounts through `POST /_matrix/client/v3/register`: `closed`"
        " (nobody: accounts come from `relay user add`), `token` (anyone holding a token from"
        " `relay token add`; UIA stage `m.login.registration_token`), `open` (anyone; UIA"
        " stage `m.login.dummy`; labs only). Guest accounts are never offered.",
        "registration",
        choices=REGISTRATION_MODES,
    ),
    Setting(
        "registration.shared_secret",
        "string",
        "",
        "Secret for Synapse-style shared-secret registration, `/_synapse/admin/v1/register`"
        " (HMAC-SHA1, as Synapse's `register_new_matrix_user`). Works whatever"
        " `registration.mode` says; empty disables the endpoint.",
        "registration_shared_secret",
    ),
    *_limit("login", 0.5, 10, "Requests per second to `/login`, per client address."),
    *_limit(
        "register",
        0.5,
        10,
        "Requests per second to `/register`, `/register/available` and token validity"
        " checks, per client address.",
    ),
    *_limit("send", 20.0, 100, "Events sent per second, per user."),
    Setting(
        "logging.level",
        "choice_upper",
        "INFO",
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`.",
        "log_level",
        choices=LOG_LEVELS,
    ),
)

SETTINGS_BY_PATH: dict[str, Setting] = {s.path: s for s in SETTINGS}
#: The tables of relay.toml, in the order `relay init` writes them.
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SETTINGS if s.section))


def _default(path: str) -> Any:
    return SETTINGS_BY_PATH[path].default


# ---------------------------------------------------------------------------------------
# What the settings fill


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """[media]: the content repository (relay/media)."""

    max_upload_bytes: int = _default("media.max_upload_bytes")
    #: Relative to the data dir.
    store_path: str = _default("media.store_path")
    #: Media cached from other servers is dropped, least recently used first, beyond this.
    remote_cache_max_bytes: int = _default("media.remote_cache_max_bytes")
    #: "WIDTHxHEIGHT crop|scale": the sizes thumbnails are made at (requests snap to one).
    thumbnail_sizes: tuple = ()
    #: Images with more pixels are not thumbnailed (M_TOO_LARGE); decoding one takes up to
    #: 4 bytes a pixel (128 MB at the default), one thumbnail at a time.
    max_image_pixels: int = _default("media.max_image_pixels")


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
    synchronous: str = _default("storage.synchronous")
    #: listeners.metrics: Prometheus `/metrics` (relay/web/metrics.py); None: off.
    metrics_listen: Listen | None = None
    #: (relay/runtime/housekeeping.py)
    housekeeping_interval_seconds: float = _default("storage.housekeeping_interval_seconds")
    upstream: str | None = None
    upstream_url: str | None = None
    ca_file: Path | None = None
    verify_tls: bool = _default("federation.verify_tls")
    log_level: str = _default("logging.level")
    federation_map: dict[str, str] = field(default_factory=dict)
    #: action -> (requests per second, burst); per_second 0 disables the limit.
    rate_limits: dict[str, tuple[float, int]] = field(default_factory=dict)
    registration: str = _default("registration.mode")
    registration_shared_secret: str | None = None
    retry_min_seconds: float = _default("federation.retry_min_seconds")
    retry_max_seconds: float = _default("federation.retry_max_seconds")
    probe_interval_seconds: float = _default("federation.probe_interval_seconds")
    gap_fill_cap: int = _default("federation.gap_fill_cap")
    #: server name -> {key id: unpadded base64 verify key} (empty: trust its published keys).
    trusted_key_servers: dict[str, dict[str, str]] = field(default_factory=dict)
    media: MediaConfig = field(default_factory=MediaConfig)
    mesh_enabled: bool = _default("mesh.enabled")
    mesh_interfaces: tuple[str, ...] = ()
    #: server name -> pinned ed25519 verify key (unpadded base64).
    mesh_trusted: dict[str, str] = field(default_factory=dict)
    mesh_announce_interval_seconds: float = _default("mesh.announce_interval_seconds")
    mesh_liveness_interval_seconds: float = _default("mesh.liveness_interval_seconds")
    #: relay/federation/peer_policy.py
    mesh_policy: str = _default("mesh.policy")

    @property
    def media_store(self) -> Path:
        """The content repository's directory ([media] store_path under the data dir)."""
        return self.data_dir / self.media.store_path


# ---------------------------------------------------------------------------------------
# Parsers: (setting, value in the file or its default, data dir) -> the attribute's value.
# Strings: an empty string means the default.

Parser = Callable[[Setting, Any, Path], Any]


def _string(s: Setting, value: Any, data_dir: Path) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{s.path} must be a string")
    return value or s.default or None


def _path(s: Setting, value: Any, data_dir: Path) -> Path:
    return data_dir / (_string(s, value, data_dir) or s.default)


def _optional_path(s: Setting, value: Any, data_dir: Path) -> Path | None:
    text = _string(s, value, data_dir)
    return data_dir / text if text else None


def _bool(s: Setting, value: Any, data_dir: Path) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{s.path} must be true or false")
    return value


def _number(s: Setting, value: Any, data_dir: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{s.path} must be a number >= {s.minimum}")
    if s.minimum is not None and value < s.minimum:
        raise ConfigError(f"{s.path} must be a number >= {s.minimum}")
    return s.cast(value)


def _integer(s: Setting, value: Any, data_dir: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{s.path} must be an integer >= {s.minimum}")
    if s.minimum is not None and value < s.minimum:
        raise ConfigError(f"{s.path} must be an integer >= {s.minimum}")
    return value


def _choice(s: Setting, value: Any, data_dir: Path, upper: bool = False) -> str:
    text = _string(s, value, data_dir) or s.default
    if upper:
        text = text.upper()
    if text not in s.choices:
        raise ConfigError(f"{s.path} must be one of {', '.join(s.choices)}")
    return text


def _choice_upper(s: Setting, value: Any, data_dir: Path) -> str:
    return _choice(s, value, data_dir, upper=True)


def _server_name(s: Setting, value: Any, data_dir: Path) -> str:
    name = _string(s, value, data_dir)
    if not name:
        raise ConfigError("server_name is missing")
    if not is_valid_server_name(name):
        raise ConfigError(f"server_name {name!r} is not a valid Matrix server name")
    return name


def _listen(s: Setting, value: Any, data_dir: Path) -> Listen:
    return parse_listen(_string(s, value, data_dir) or "", s.path)


def _metrics_listen(s: Setting, value: Any, data_dir: Path) -> Listen | None:
    text = _string(s, value, data_dir)
    metrics = parse_listen(text, s.path) if text else None
    if metrics is not None and not _is_loopback(metrics.host):
        raise ConfigError(
            f"{s.path} must be a loopback address (127.0.0.0/8, ::1 or localhost):"
            " the figures name the servers this relay talks to"
        )
    return metrics


def _upstream(s: Setting, value: Any, data_dir: Path) -> str | None:
    upstream = _string(s, value, data_dir)
    if upstream is not None and not is_valid_server_name(upstream):
        raise ConfigError(f"{s.path} {upstream!r} is not a valid Matrix server name")
    return upstream


def _upstream_url(s: Setting, value: Any, data_dir: Path) -> str | None:
    url = _string(s, value, data_dir)
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(f"{s.path} must start with https://")
    return url


def _server_map(s: Setting, value: Any, data_dir: Path) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{s.path} must map server names to base URLs")
    return dict(value)


def _trusted_key_servers(s: Setting, value: Any, data_dir: Path) -> dict[str, dict[str, str]]:
    where = s.path
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


def _interfaces(s: Setting, value: Any, data_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        raise ConfigError(f"{s.path} must be a list of interface names or addresses")
    return tuple(value)


def _mesh_trusted(s: Setting, value: Any, data_dir: Path) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{s.path} must map server names to verify keys")
    for name, key in value.items():
        if not is_valid_server_name(name):
            raise ConfigError(f"{s.path}: {name!r} is not a valid Matrix server name")
        if not isinstance(key, str):
            raise ConfigError(f"{s.path}.{name} must be a base64 verify key")
        try:
            decode_verify_key_base64(key)
        except ValueError as exc:
            raise ConfigError(f"{s.path}.{name}: {exc}") from None
    return {name: key.rstrip("=") for name, key in value.items()}


def _thumbnail_sizes(s: Setting, value: Any, data_dir: Path) -> tuple[Any, ...]:
    from relay.media.thumbnails import parse_size

    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise ConfigError(f'{s.path} must be a list like ["96x96 crop"]')
    try:
        return tuple(parse_size(x) for x in value)
    except ValueError as exc:
        raise ConfigError(f"{s.path}: {exc}") from None


PARSERS: dict[str, Parser] = {
    "string": _string,
    "path": _path,
    "optional_path": _optional_path,
    "bool": _bool,
    "number": _number,
    "integer": _integer,
    "choice": _choice,
    "choice_upper": _choice_upper,
    "server_name": _server_name,
    "listen": _listen,
    "metrics_listen": _metrics_listen,
    "upstream": _upstream,
    "upstream_url": _upstream_url,
    "server_map": _server_map,
    "trusted_key_servers": _trusted_key_servers,
    "interfaces": _interfaces,
    "mesh_trusted": _mesh_trusted,
    "thumbnail_sizes": _thumbnail_sizes,
}


# ---------------------------------------------------------------------------------------
# Reading


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


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"unknown key {where}{extra[0]}")


def _tables(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Section name ("" for the top level) -> its table, each checked for unknown keys."""
    top = {s.key for s in SETTINGS if not s.section}
    _unknown_keys(doc, top | set(SECTIONS), "")
    tables: dict[str, dict[str, Any]] = {"": doc}
    for section in SECTIONS:
        value = doc.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}] must be a table")
        _unknown_keys(value, {s.key for s in SETTINGS if s.section == section}, section + ".")
        tables[section] = value
    return tables


def config_from_dict(doc: dict[str, Any], data_dir: Path) -> Config:
    """The Config a parsed relay.toml describes, every setting checked by its parser."""
    tables = _tables(doc)
    fields: dict[str, Any] = {}
    media: dict[str, Any] = {}
    rate_limits: dict[str, dict[str, Any]] = {}
    for s in SETTINGS:
        value = PARSERS[s.kind](s, tables[s.section].get(s.key, s.default), data_dir)
        owner, _, rest = s.attr.partition(".")
        if owner == "media":
            media[rest] = value
        elif owner == "rate_limits":
            action, _, half = rest.partition(".")
            rate_limits.setdefault(action, {})[half] = value
        else:
            fields[s.attr] = value
    return Config(
        data_dir=data_dir,
        media=MediaConfig(**media),
        rate_limits={a: (float(r["per_second"]), int(r["burst"])) for a, r in rate_limits.items()},
        **fields,
    )


# ---------------------------------------------------------------------------------------
# Writing: relay.toml for `relay init`, and the README's table


def toml_value(value: Any) -> str:
    """A TOML literal for a setting's value (strings, booleans, numbers, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"no TOML literal for {value!r}")


def _comment(doc: str) -> list[str]:
    return textwrap.wrap(
        doc.replace("`", ""),
        86,
        initial_indent="# ",
        subsequent_indent="# ",
        break_on_hyphens=False,
    )


def render_settings(values: dict[str, Any]) -> str:
    """relay.toml with every setting, `values` (TOML path -> value) over the defaults."""
    unknown = sorted(set(values) - set(SETTINGS_BY_PATH))
    if unknown:
        raise ValueError(f"not a setting: {unknown[0]}")
    lines = ["# edge-relay configuration. Every key is described in README.md.", ""]
    for section in ("", *SECTIONS):
        rows = [s for s in SETTINGS if s.section == section]
        if section:
            lines.append(f"[{section}]")
        for s in rows:
            if not s.is_table:
                lines += [
                    *_comment(s.doc),
                    f"{s.key} = {toml_value(values.get(s.path, s.default))}",
                ]
        lines.append("")
        for s in rows:
            if s.is_table:
                lines += [f"[{s.path}]", *_comment(s.doc)]
                for name, value in values.get(s.path, s.default).items():
                    lines.append(f"{toml_value(str(name))} = {toml_value(value)}")
                lines.append("")
    return "\n".join(lines)


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
    return render_settings(
        {
            "server_name": server_name,
            "listeners.client": client_listen,
            "listeners.federation": federation_listen,
            "federation.upstream": upstream or "",
            "federation.upstream_url": upstream_url or "",
            "federation.ca_file": ca_file or "",
            "federation.verify_tls": verify_tls,
            "registration.mode": registration,
            "mesh.interfaces": list(mdns_interfaces),
            "mesh.policy": mesh_policy,
        }
    )


def _kind_text(s: Setting) -> str:
    if s.choices:
        return " \\| ".join(f"`{c}`" for c in s.choices)
    text = {
        "number": "integer" if s.cast is int else "number",
        "integer": "integer",
        "bool": "boolean",
        "listen": "`HOST:PORT`",
        "metrics_listen": "`HOST:PORT`",
        "path": "path",
        "optional_path": "path",
        "interfaces": "list of strings",
        "thumbnail_sizes": "list of strings",
        "server_map": "table",
        "trusted_key_servers": "table of tables",
        "mesh_trusted": "table",
    }.get(s.kind, "string")
    return f"{text} ≥ {s.minimum}" if s.minimum is not None else text


def _default_text(s: Setting) -> str:
    if s.shown_default is not None:
        return s.shown_default
    if s.default == "":
        return "empty"
    if isinstance(s.default, str):
        return f"`{s.default}`"
    return f"`{toml_value(s.default)}`"


def readme_table() -> str:
    """The README's configuration table (between its config-table markers)."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        doc = s.doc.replace("|", "\\|")
        lines.append(f"| `{s.path}` | {_kind_text(s)} | {_default_text(s)} | {doc} |")
    return "\n".join(lines) + "\n"
