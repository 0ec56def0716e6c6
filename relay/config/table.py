"""The one table of relay.toml's settings (`SETTINGS`) and the constants it names.

Each row names a key by its TOML path, the parser that reads it (a key of
`relay.config.parse.PARSERS`), its default, lower bound, documentation and the `Config`
attribute it fills. Add a setting here and nowhere else: parsing, the file `relay init`
writes and the README's table follow (run `python -m tools.config_readme`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        "listeners.public_baseurl",
        "public_baseurl",
        "",
        "The URL clients reach the client API at (`https://chat.kit.example/`), handed out in"
        " `/login`'s `well_known` and `/.well-known/matrix/client`; set it when a TLS proxy"
        " is in front. Empty: the request's own scheme and `Host` (`X-Forwarded-Proto` and"
        " `X-Forwarded-Host` only from `listeners.trusted_proxies`).",
        "public_baseurl",
        shown_default='`""` (from the request)',
    ),
    Setting(
        "listeners.trusted_proxies",
        "addresses",
        [],
        "IP addresses of reverse proxies in front of the client listener whose"
        " `X-Forwarded-Proto`/`X-Forwarded-Host` headers are believed; anyone else's are"
        " ignored.",
        "trusted_proxies",
        shown_default="`[]`",
    ),
    Setting(
        "listeners.max_connections",
        "number",
        1000,
        "Open connections per listener. A connection over it (or over"
        " `max_connections_per_address`) gets `503 M_LIMIT_EXCEEDED` with `Retry-After` and"
        " is closed. Keep the unit's `LimitNOFILE` above twice this (the image has 16384).",
        "max_connections",
        minimum=1,
        cast=int,
    ),
    Setting(
        "listeners.max_connections_per_address",
        "number",
        100,
        "Open connections from one client address, per listener (one attacker cannot take"
        " every slot from the phones on the Wi-Fi). Behind a reverse proxy every client"
        " comes from the proxy's address: raise it to `max_connections` there.",
        "max_connections_per_address",
        minimum=1,
        cast=int,
    ),
    Setting(
        "listeners.header_timeout_seconds",
        "number",
        30.0,
        "From accepting a connection (TLS handshake included), or from a request's first"
        " byte, to its complete headers. A connection that sends nothing is closed then.",
        "header_timeout_seconds",
        minimum=1.0,
    ),
    Setting(
        "listeners.body_timeout_seconds",
        "number",
        60.0,
        "Longest silence while a request's body is still due (a phone roaming between access"
        " points survives it; a body promised and never sent holds its connection no longer)."
        " Nothing times out while the relay works on a request (a `/sync` long-poll).",
        "body_timeout_seconds",
        minimum=1.0,
    ),
    Setting(
        "listeners.client_keep_alive_seconds",
        "number",
        75.0,
        "How long an idle client connection that served a request is kept for the next one;"
        " separate from the two timeouts above.",
        "client_keep_alive_seconds",
        minimum=1.0,
    ),
    Setting(
        "listeners.federation_keep_alive_seconds",
        "number",
        900.0,
        "The same for federation connections: longer than peers keep theirs (Synapse: 120 s),"
        " so a peer on a slow link keeps its TLS session.",
        "federation_keep_alive_seconds",
        minimum=1.0,
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
        "How often an unreachable upstream or destination is probed (less often while probes"
        " time out; a live, silent upstream every 2 minutes); one that answers again is"
        " flushed at once (well within 5 s).",
        "probe_interval_seconds",
        minimum=0.1,
    ),
    Setting(
        "federation.request_timeout_seconds",
        "number",
        30.0,
        "How long a whole outbound request may take. On a slow link the relay sizes each"
        " transaction to finish well within it, and splits one that did not.",
        "request_timeout_seconds",
        minimum=1.0,
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
        "federation.ip_range_allowlist",
        "ip_ranges",
        [],
        'Addresses or networks (`"127.0.0.0/8"`, `"10.1.2.3"`) treated as ordinary'
        ' remote addresses by the destination policy ("Outbound requests" below): outbound'
        " requests made on others' behalf otherwise never go to loopback, private,"
        " link-local, multicast or reserved addresses, nor to this relay's listeners (which"
        " stay refused whatever this says), except to the upstream, the static servers"
        " (`federation.servers`) and pinned mesh peers. For labs and tests on loopback.",
        "ip_range_allowlist",
        shown_default="`[]`",
    ),
    Setting(
        "push.allowed_gateways",
        "gateway_urls",
        [],
        'Push gateways (`"http://10.0.0.9:5000"`: scheme, host and port) that pushers may'
        " reach although the destination policy refuses their address (a gateway on the"
        " LAN or this box) or their scheme is plain http. Any other pusher's gateway"
        " must be https on an ordinary remote address.",
        "push_allowed_gateways",
        shown_default="`[]`",
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
    *_limit(
        "key_fetch",
        0.2,
        30,
        "Fetches of other servers' keys one client address may cause per second: a"
        " federation request signed by a server the relay holds no key of, a notary query"
        " about servers it holds nothing fresh for (beyond it the relay answers from what it"
        " has). A server whose keys could not be fetched is not tried again on anyone's"
        " behalf for 10 minutes (notaries still are).",
    ),
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


def default_of(path: str) -> Any:
    """The default of the setting at `path`."""
    return SETTINGS_BY_PATH[path].default
