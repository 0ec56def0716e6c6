"""The outbound federation client: signed JSON requests to other servers over HTTPS.

Rules kept here:

- Every request is signed with X-Matrix (`request_auth`); the signed `uri` is the path and
  query exactly as they go on the wire (taken from the built request, after httpx's own
  percent-encoding), so the receiver computes the same bytes.
- Where to connect comes from `ServerResolver`; the URL may name an IP or an SRV target while
  TLS checks (and SNI names) `tls_server_name`, and `Host` is what the resolver says.
- Every connection keeps the destination policy (`destinations.py`): the address actually
  connected is checked (loopback, private, link-local, our own listeners... refused unless
  trusted), URLs are https; federation requests never follow redirects, a media
  `Location` follows at most `MAX_REDIRECTS`, each hop checked again.
- TLS is verified against the system CAs plus `federation.ca_file`; `verify_tls = false`
  turns verification off (labs only; the node warns at start). A target the resolver
  gives with a `pinned_certificate` (a trusted mesh peer, relay/mesh/trust.py) is reached
  with a context that trusts exactly that certificate, whatever `verify_tls` says: the
  handshake fails, and nothing is sent, unless the peer proves it holds its key.
- The ClientHello offers the P-256 group with its key share: Synapse's listener accepts
  only P-256, so a default X25519 share costs a HelloRetryRequest (one more round trip,
  ~350 B: seconds on a 9.6 kbit/s link); P-256 is the group every TLS 1.3 server must
  implement (RFC 8446 9.1). No session resumption: httpx gives no way to hand a saved
  session to a new connection, so connections are kept warm instead.
- Connections are pooled per destination and kept open while idle for `KEEPALIVE_S`:
  longer than any gap between a relay's probes (sender.py), shorter than Synapse's own
  listener keeps an idle connection (measured, 1.163.2: still open after 700 s), so a kit
  on a slow link pays TCP+TLS setup (3 round trips, ~3 KB) once, not every few seconds.
- What each destination's link carries (`link_budget(destination)`, link_budget.py) is kept
  here, once per destination: the sender sizes transactions by it and `pull.py` sizes pulls
  by it, and both teach it what they measured; pulls from one destination take turns
  (`pull_turn`). A request cut by its timeout is always `RequestTimedOut`, whatever
  exception the cut surfaced as.
- Bodies of signed federation requests are gzipped for a destination that announced it
  takes them (a relay; content_coding.py), learned from its version answers, and its
  answers are asked for gzipped too (inflated within the answer's cap); plain JSON both
  ways with anyone else.
- Transactions (`send_transaction`) go on the destination's transaction stream when it
  has one (a relay; transaction_stream.py), opened on first use over the same TLS rules,
  kept like a pooled connection (closed once idle for `KEEPALIVE_S`, or at once when an
  exchange fails or is cut), one exchange at a time; as `PUT /send` to anyone else. A
  destination not heard of since we started is asked by trying the upgrade (its answer
  costs what a version request would, and a relay's stream opens on the first
  connection); one that answers anything but `101` (Synapse: 404) gets `/send` until a
  version answer announces the stream.
  `probe` is the cheapest sign of life: a keep-alive on an open stream, else a signed
  version request.
- Liveness: `last_heard(destination)` is when it last answered anything (any status), or
  sent us a signed request (`heard_from`, called by inbound_auth.py); the sender's probes
  only run when a destination has been silent.
- Nothing is sent to a server `mesh.policy` refuses (`peer_policy`, set by the node to
  relay/federation/peer_policy.py's `allows`): `DestinationRefused`, checked before the
  name is even resolved.
- Failures are two kinds (see `errors.py`): `PeerUnreachable` when no answer came
  (resolution, connect, TLS, timeout, a broken connection), `RemoteError` when the peer
  answered with an error status or with something that is not a JSON object.
- A whole request (connect to last byte) is bounded by `timeout`; a response body by what
  the answer can legitimately be (`max_bytes`, below), read as it arrives and dropped at the
  cap (a declared Content-Length over it is refused before reading): `ResponseTooLarge`.

Response caps (Synapse reads any federation JSON up to 100 MiB, and send_join and /state
answers up to 500 MiB; a 1 GB box cannot parse that much, so ours are tighter):

- `KEY_RESPONSE_BYTES`, 1 MiB: `/_matrix/key/v2/server` and notary `/key/v2/query`
  answers (a key response is a few hundred bytes per key);
- `ROOM_STATE_RESPONSE_BYTES`, 50 MiB: whole-room answers (send_join's state and auth
  chain, /state, /state_ids, /event_auth);
- `DEFAULT_RESPONSE_BYTES`, 8 MiB: everything else (a transaction answer, /event, 100-event
  /backfill and /get_missing_events answers: 100 PDUs of at most 64 KiB fit).

The httpx client is created on first use and closed by `aclose()`, which the node calls on
shutdown.

Spec: https://spec.matrix.org/v1.16/server-server-api/#api-standards
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import trio

import relay
from relay.config import Config
from relay.errors import TooLarge
from relay.events.canonical import JsonParseError, canonical_json, parse_json_strict
from relay.federation import content_coding
from relay.federation import transaction_stream as stream
from relay.federation.content_coding import UnsupportedCoding
from relay.federation.destinations import DestinationPolicy, guarded_client
from relay.federation.errors import (
    DestinationRefused,
    PeerUnreachable,
    RemoteError,
    RequestTimedOut,
    ResponseTooLarge,
)
from relay.federation.link_budget import MAX_TIMEOUT_S, LinkBudget
from relay.federation.request_auth import authorization_headers
from relay.federation.resolver import ResolutionError, ResolvedServer, ServerResolver
from relay.runtime.identity import SigningKey

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
KEEPALIVE_S = 300.0
#: the TLS 1.3 key-exchange group offered, with its key share, in the first flight.
TLS_GROUP = "prime256v1"
VERSION_PATH = "/_matrix/federation/v1/version"
#: every path under it is a signed request (a peer inflates coded bodies of those).
SIGNED_PREFIX = "/_matrix/federation/"
MIB = 1024 * 1024
KEY_RESPONSE_BYTES = 1 * MIB
#: Pinned-certificate clients kept (one per mesh peer's certificate); the oldest is closed
#: beyond this.
MAX_PINNED_CLIENTS = 32
ROOM_STATE_RESPONSE_BYTES = 50 * MIB
DEFAULT_RESPONSE_BYTES = 8 * MIB
USER_AGENT = f"edge-relay/{relay.__version__}"

QueryValue = str | int | Sequence[str]


def tls_context(config: Config) -> ssl.SSLContext:
    """System CAs plus `config.ca_file`; no verification at all when `verify_tls` is false."""
    ctx = ssl.create_default_context()
    ctx.set_ecdh_curve(TLS_GROUP)
    if config.ca_file is not None:
        ctx.load_verify_locations(cafile=str(config.ca_file))
    if not config.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def segment(value: str) -> str:
    """`value` as one percent-encoded path segment: room v3 event ids hold `/` and `+`."""
    return quote(value, safe="")


def pinned_tls_context(certificate: bytes) -> ssl.SSLContext:
    """A client context that accepts only a connection presenting `certificate` (DER).

    The certificate is the only trust anchor (partial chains allowed, so a leaf that is
    not self-signed works too). The host name is not checked: the certificate is the
    identity, bound to the peer's pinned signing key by its signed key response.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ecdh_curve(TLS_GROUP)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.load_verify_locations(cadata=certificate)
    return ctx


def _query_string(query: Mapping[str, QueryValue] | None) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        if isinstance(value, str | int):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(v)) for v in value)
    return "?" + urlencode(pairs)


class _StreamRefused(Exception):
    """A destination that announced a transaction stream would not open one."""


def _describe(exc: BaseException) -> str:
    """`Type: message` of the innermost cause that says something (httpx's wrappers of
    TLS and socket errors often say nothing themselves)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if str(current):
            parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return parts[-1] if parts else type(exc).__name__


class FederationClient:
    """Signed requests from `config.server_name` to other servers."""

    def __init__(
        self,
        config: Config,
        signing_key: SigningKey,
        *,
        resolver: ServerResolver | None = None,
        policy: DestinationPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.signing_key = signing_key
        self.ssl_context = tls_context(config)
        if policy is None and isinstance(resolver, ServerResolver):
            policy = resolver.policy
        elif policy is None:
            policy = DestinationPolicy.from_config(config)
        #: The destination policy every request keeps (shared with the resolver).
        self.policy = policy
        self.resolver = resolver or ServerResolver(
            config, ssl_context=self.ssl_context, policy=policy
        )
        self.timeout = timeout
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        #: certificate SHA-256 -> a client that trusts only that certificate
        self._pinned: dict[bytes, httpx.AsyncClient] = {}
        #: pinned clients pushed out (closed by `aclose`: one may still be in use)
        self._retired: list[httpx.AsyncClient] = []
        #: Whether a destination may be contacted (mesh.policy); None: anyone.
        self.peer_policy: Callable[[str], Awaitable[bool]] | None = None
        self._requests = 0
        self._unreachable = 0
        self._remote_errors = 0
        self._heard: dict[str, float] = {}
        self._codings: dict[str, frozenset[str]] = {}
        #: destination -> whether it announced a transaction stream (version answers)
        self._stream_offered: dict[str, bool] = {}
        self._streams: dict[str, stream.OpenStream] = {}
        self._stream_turns: dict[str, trio.Lock] = {}
        self._budgets: dict[str, LinkBudget] = {}
        self._pull_turns: dict[str, trio.Lock] = {}

    def link_budget(self, destination: str) -> LinkBudget:
        """What `destination`'s link carries per request: the one set of books for it."""
        budget = self._budgets.get(destination)
        if budget is None:
            budget = self._budgets[destination] = LinkBudget()
        return budget

    def pull_turn(self, destination: str) -> trio.Lock:
        """Pulls from `destination` take turns under this lock: two at once would each get
        half the link its budget counts on."""
        return self._pull_turns.setdefault(destination, trio.Lock())

    def heard_from(self, server: str) -> None:
        """`server` showed it is alive (it answered us, or sent us a signed request)."""
        self._heard[server] = trio.current_time()

    def last_heard(self, server: str) -> float | None:
        """`trio.current_time()` when `server` last showed it is alive; None if never."""
        return self._heard.get(server)

    def codings(self, destination: str) -> frozenset[str] | None:
        """The request codings `destination` announced; None until a version answer."""
        return self._codings.get(destination)

    @property
    def server_name(self) -> str:
        return self.config.server_name

    def statistics(self) -> dict[str, int]:
        """Requests sent (including failed ones), and failures of each kind."""
        return {
            "requests": self._requests,
            "unreachable": self._unreachable,
            "remote_errors": self._remote_errors,
        }

    def _new_client(self, verify: ssl.SSLContext) -> httpx.AsyncClient:
        # httpx (~4 MB resident) is imported on the first request: a relay that has
        # not federated yet need not carry it.
        import httpx

        return guarded_client(
            self.policy,
            verify=verify,
            transport=self._transport,
            # A request's own deadline (request_json) bounds it whole; a body write on a
            # slow link may take minutes (link_budget.MAX_TIMEOUT_S).
            timeout=httpx.Timeout(
                self.timeout,
                connect=min(self.timeout, CONNECT_TIMEOUT),
                write=max(self.timeout, MAX_TIMEOUT_S),
            ),
            keepalive_expiry=KEEPALIVE_S,
            # No compressed answers: a few KiB of gzip can inflate to megabytes in
            # one decoded chunk, before any cap on bytes read could see it.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = self._new_client(self.ssl_context)
        return self._http

    def pinned_client(self, certificate: bytes) -> httpx.AsyncClient:
        """The client whose connections must present exactly `certificate` (DER)."""
        import hashlib

        digest = hashlib.sha256(certificate).digest()
        client = self._pinned.get(digest)
        if client is None:
            if len(self._pinned) >= MAX_PINNED_CLIENTS:
                oldest = next(iter(self._pinned))
                self._retired.append(self._pinned.pop(oldest))
            client = self._pinned[digest] = self._new_client(pinned_tls_context(certificate))
        return client

    def _client_for(self, target: ResolvedServer) -> httpx.AsyncClient:
        if target.pinned_certificate is not None:
            return self.pinned_client(target.pinned_certificate)
        return self._client()

    async def get_json(
        self,
        destination: str,
        path: str,
        query: Mapping[str, QueryValue] | None = None,
        *,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_RESPONSE_BYTES,
    ) -> Any:
        """`GET path?query` on `destination`; the JSON object it answered.

        Raises:
            PeerUnreachable: no answer.
            RemoteError: an error status, or a body that is not a JSON object.
            ResponseTooLarge: a body over `max_bytes` (a RemoteError).
        """
        return await self.request_json(
            "GET", destination, path, query=query, timeout=timeout, max_bytes=max_bytes
        )

    async def put_json(
        self,
        destination: str,
        path: str,
        body: Any,
        query: Mapping[str, QueryValue] | None = None,
        *,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_RESPONSE_BYTES,
    ) -> Any:
        """`PUT` a JSON body; as `get_json`."""
        return await self.request_json(
            "PUT",
            destination,
            path,
            query=query,
            body=body,
            has_body=True,
            timeout=timeout,
            max_bytes=max_bytes,
        )

    async def post_json(
        self,
        destination: str,
        path: str,
        body: Any,
        query: Mapping[str, QueryValue] | None = None,
        *,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_RESPONSE_BYTES,
    ) -> Any:
        """`POST` a JSON body; as `get_json`."""
        return await self.request_json(
            "POST",
            destination,
            path,
            query=query,
            body=body,
            has_body=True,
            timeout=timeout,
            max_bytes=max_bytes,
        )

    async def request_json(
        self,
        method: str,
        destination: str,
        path: str,
        *,
        query: Mapping[str, QueryValue] | None = None,
        body: Any = None,
        has_body: bool = False,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_RESPONSE_BYTES,
    ) -> Any:
        """One signed request. `path` starts with `/_matrix/` and is already percent-encoded
        (quote user ids and the like in path segments); `query` is encoded here. At most
        `max_bytes` of the answer's body are read."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        timeout = self.timeout if timeout is None else timeout
        await self._check_policy(destination)
        self._requests += 1
        deadline = trio.current_time() + timeout
        try:
            with trio.fail_after(timeout):
                return await self._request(
                    method, destination, path, query, body, has_body, max_bytes
                )
        except trio.TooSlowError:
            self._unreachable += 1
            raise RequestTimedOut(destination, timeout) from None
        except PeerUnreachable:
            self._unreachable += 1
            if trio.current_time() >= deadline:
                # httpcore turns the deadline's cancellation into a transport error when it
                # strikes inside a connection it shares: still the timeout, and the caller
                # must know it (a request cut by the timeout is split, not retried whole).
                raise RequestTimedOut(destination, timeout) from None
            raise
        except RemoteError:
            self._remote_errors += 1
            raise

    async def _check_policy(self, destination: str) -> None:
        """Raises DestinationRefused when mesh.policy forbids contacting `destination`."""
        if self.peer_policy is not None and not await self.peer_policy(destination):
            raise DestinationRefused(destination)

    async def _request(
        self,
        method: str,
        destination: str,
        path: str,
        query: Mapping[str, QueryValue] | None,
        body: Any,
        has_body: bool,
        max_bytes: int,
    ) -> Any:
        import httpx

        client, request = await self._signed_request(
            method, destination, path, query, body, has_body
        )
        try:
            response = await client.send(request, stream=True)
            try:
                raw = await self._read_body(destination, response, max_bytes)
            finally:
                await response.aclose()
        except (httpx.TransportError, ssl.SSLError, OSError) as exc:
            raise PeerUnreachable(destination, _describe(exc)) from None
        self.heard_from(destination)
        doc = self._decode(destination, response.status_code, raw)
        if method == "GET" and path == VERSION_PATH:
            self._codings[destination] = content_coding.announced(doc)
            self._stream_offered[destination] = stream.offered(doc)
        return doc

    # -- transactions ----------------------------------------------------------------------

    async def send_transaction(
        self,
        destination: str,
        txn_id: str,
        body: dict[str, Any],
        *,
        timeout: float,
        room_versions: list[str | None] | None = None,
    ) -> Any:
        """Push one transaction; its answer (`{"pdus": {...}}`), from the transaction
        stream when the destination has one, else from `PUT /send`. `room_versions`, one
        per PDU (None where unknown), let the stream refer to earlier PDUs. As
        `request_json`: `PeerUnreachable`, `RequestTimedOut`, `RemoteError`."""
        if self._stream_offered.get(destination) is not False:
            # Unknown yet (no version answer since we started): try, which costs what asking
            # would, and a relay's stream then opens on the first connection.
            try:
                message = {"txn_id": txn_id} | body
                if room_versions is not None:
                    message["room_versions"] = room_versions
                answer = await self._on_stream(destination, message, timeout)
                self._stream_offered[destination] = True
                return answer
            except _StreamRefused as exc:
                if self._stream_offered.get(destination):
                    log.info("%s refused a transaction stream (%s); using /send", destination, exc)
                self._stream_offered[destination] = False
        return await self.put_json(
            destination, f"/_matrix/federation/v1/send/{segment(txn_id)}", body, timeout=timeout
        )

    async def probe(self, destination: str) -> None:
        """The cheapest request that shows `destination` is alive: a keep-alive on its open
        transaction stream (which keeps the stream warm), else a signed version request
        (which also learns what it offers). As `request_json`."""
        if destination in self._streams:
            try:
                await self._on_stream(destination, None, self.timeout)
                return
            except (PeerUnreachable, _StreamRefused):
                pass  # the stream broke: ask the plain way, which says what it really is
        await self.get_json(destination, VERSION_PATH)

    def has_stream(self, destination: str) -> bool:
        """Whether a transaction stream to `destination` is open."""
        return destination in self._streams

    async def _on_stream(
        self, destination: str, message: dict[str, Any] | None, timeout: float
    ) -> Any:
        await self._check_policy(destination)
        self._requests += 1
        turn = self._stream_turns.setdefault(destination, trio.Lock())
        async with turn:
            opened = self._streams.pop(destination, None)
            if opened is not None and trio.current_time() - opened.last_used > KEEPALIVE_S:
                await opened.aclose()  # idle past what the peer keeps: start afresh
                opened = None
            try:
                try:
                    with trio.fail_after(timeout):
                        answer = None
                        if opened is not None and not opened.looks_open():
                            await opened.aclose()  # ended while idle (the peer, a modem)
                            opened = None
                        if opened is not None:
                            try:
                                answer = await opened.exchange(message)
                            except stream.StreamBroken:
                                # A kept stream that broke while idle fails at once: try a
                                # fresh one (a transaction retried is answered from the
                                # peer's cache, never taken twice).
                                await opened.aclose()
                                opened = None
                        if opened is None:
                            opened = await self._open_stream(destination)
                            answer = await opened.exchange(message)
                except BaseException:
                    # Failed or cut mid-exchange: the stream may hold half a message.
                    if opened is not None:
                        await opened.aclose()
                    raise
            except trio.TooSlowError:
                self._unreachable += 1
                raise RequestTimedOut(destination, timeout) from None
            except stream.StreamBroken as exc:
                self._unreachable += 1
                raise PeerUnreachable(destination, f"transaction stream: {exc}") from None
            except PeerUnreachable:
                self._unreachable += 1
                raise
            if (message is None) != (answer is None):
                # A transaction answered by a keep-alive, or the reverse: not our protocol.
                await opened.aclose()
                self._unreachable += 1
                raise PeerUnreachable(destination, "transaction stream: answer out of turn")
            self._streams[destination] = opened
        self.heard_from(destination)
        if answer is not None and isinstance(answer.get("errcode"), str):
            self._remote_errors += 1
            status = answer.get("status")
            message_text = answer.get("error")
            raise RemoteError(
                destination,
                status if isinstance(status, int) else 400,
                answer["errcode"],
                message_text if isinstance(message_text, str) else answer["errcode"],
                body=answer,
            )
        return answer

    async def _close_stream(self, destination: str) -> None:
        opened = self._streams.pop(destination, None)
        if opened is not None:
            await opened.aclose()

    async def _open_stream(self, destination: str) -> stream.OpenStream:
        """A new transaction stream to `destination`: a signed upgrade request.

        Raises:
            _StreamRefused: it answered, but not `101` (then use `/send`).
            PeerUnreachable: no answer.
        """
        import base64
        import secrets

        import httpx
        from wsproto.utilities import generate_accept_token

        client, request = await self._signed_request(
            "GET", destination, stream.PATH, None, None, False
        )
        key = base64.b64encode(secrets.token_bytes(16))
        request.headers.update(
            {
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Key": key.decode(),
                "Sec-WebSocket-Version": "13",
            }
        )
        try:
            response = await client.send(request, stream=True)
        except (httpx.TransportError, ssl.SSLError, OSError) as exc:
            raise PeerUnreachable(destination, _describe(exc)) from None
        if response.status_code != 101:
            try:
                raw = await self._read_body(destination, response, 64 * 1024)
            except (httpx.TransportError, ssl.SSLError, OSError, RemoteError):
                raw = b""
            finally:
                await response.aclose()
            raise _StreamRefused(f"{response.status_code} {raw[:200]!r}")
        opened = stream.OpenStream(response)
        if response.headers.get("sec-websocket-accept", "").encode() != generate_accept_token(key):
            await opened.aclose()
            raise _StreamRefused("wrong Sec-WebSocket-Accept")
        return opened

    async def _signed_request(
        self,
        method: str,
        destination: str,
        path: str,
        query: Mapping[str, QueryValue] | None,
        body: Any,
        has_body: bool,
        *,
        coded_answer: bool = True,
    ) -> tuple[httpx.AsyncClient, httpx.Request]:
        """The client to send with (the target's TLS rule) and the signed request; it asks
        for a gzipped answer where the peer gives one, unless `coded_answer` is False (an
        answer read elsewhere than `_read_body`, which alone inflates within a cap)."""
        try:
            target = await self.resolver.resolve(destination)
        except ResolutionError as exc:
            raise PeerUnreachable(destination, str(exc)) from None
        content = canonical_json(body) if has_body else None
        coding = None
        codings = self._codings.get(destination, frozenset())
        if content is not None and path.startswith(SIGNED_PREFIX):
            content, coding = content_coding.encode(content, codings)
        # A relay gzips its answers when asked (_read_body inflates them within the cap).
        accept = None
        if coded_answer and path.startswith(SIGNED_PREFIX):
            accept = content_coding.accept_encoding(codings)
        client = self._client_for(target)
        import httpx  # loaded by _client_for()

        request = client.build_request(
            method,
            target.base_url + path + _query_string(query),
            content=content,
            headers={"Host": target.host_header}
            | ({"Content-Type": "application/json"} if has_body else {})
            | ({"Content-Encoding": coding} if coding else {})
            | ({"Accept-Encoding": accept} if accept else {}),
        )
        base_path = httpx.URL(target.base_url).raw_path.rstrip(b"/")
        uri = request.url.raw_path[len(base_path) :].decode("ascii")
        [request.headers["Authorization"]] = authorization_headers(
            method=method,
            uri=uri,
            origin=self.server_name,
            destination=destination,
            signing_key=self.signing_key,
            content=body,
            has_content=has_body,
        )
        if target.tls_server_name and target.tls_server_name != request.url.host:
            request.extensions["sni_hostname"] = target.tls_server_name
        return client, request

    @asynccontextmanager
    async def stream_get(
        self,
        destination: str,
        path: str,
        query: Mapping[str, QueryValue] | None = None,
        *,
        url: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A signed `GET path?query` on `destination` whose body the caller reads as it
        arrives (media); with `url`, a plain unsigned GET of that URL instead (a media
        `Location`, https only, following at most MAX_REDIRECTS redirects, each checked
        by the destination policy). Any other status is yielded as is. Not bounded by
        `timeout`: the caller bounds it.

        Raises:
            PeerUnreachable: no answer, or the connection broke while reading.
            DestinationRefused: mesh.policy forbids contacting `destination`.
        """
        import httpx

        await self._check_policy(destination)
        self._requests += 1
        try:
            if url is None:
                client, request = await self._signed_request(
                    "GET", destination, path, query, None, False, coded_answer=False
                )
            else:
                client = self._client()
                request = client.build_request("GET", url)
                self.policy.check_url(request.url)
            response = await client.send(request, stream=True, follow_redirects=url is not None)
        except (
            httpx.TransportError,
            httpx.TooManyRedirects,
            httpx.InvalidURL,
            ssl.SSLError,
            OSError,
        ) as exc:
            self._unreachable += 1
            raise PeerUnreachable(destination, _describe(exc)) from None
        try:
            yield response
        except (httpx.TransportError, ssl.SSLError, OSError) as exc:
            self._unreachable += 1
            raise PeerUnreachable(destination, _describe(exc)) from None
        finally:
            await response.aclose()

    async def _read_body(self, destination: str, response: httpx.Response, max_bytes: int) -> bytes:
        """The body, read as it arrives; ResponseTooLarge as soon as it passes `max_bytes`
        (or at once when Content-Length says it will), the rest never read. A coding we
        did not ask for is refused; a gzipped answer we asked a relay for is inflated as it
        arrives, each step bounded by what is left of `max_bytes` (no zip bomb: the cap
        counts the plain bytes held)."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        asked = response.request.headers.get("accept-encoding", "identity")
        plain = content_coding.Inflater.for_answer(encoding, asked)
        if plain is None:
            raise RemoteError(
                destination, response.status_code, None, f"unasked-for {encoding} encoding"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(destination, response.status_code, max_bytes)
        try:
            # Raw bytes only when coded: httpx would inflate a whole chunk at once.
            chunks = response.aiter_raw() if plain.coded else response.aiter_bytes()
            async for chunk in chunks:
                plain.feed(chunk, max_bytes)
            return plain.finish(max_bytes)
        except TooLarge:
            raise ResponseTooLarge(destination, response.status_code, max_bytes) from None
        except UnsupportedCoding as exc:
            raise RemoteError(destination, response.status_code, None, str(exc)) from None

    @staticmethod
    def _decode(destination: str, status: int, raw: bytes) -> Any:
        try:
            doc = parse_json_strict(raw)
        except JsonParseError:
            doc = None
        if 200 <= status < 300:
            if not isinstance(doc, dict):
                raise RemoteError(destination, status, None, "response is not a JSON object")
            return doc
        if isinstance(doc, dict) and isinstance(doc.get("errcode"), str):
            message = doc.get("error")
            raise RemoteError(
                destination,
                status,
                doc["errcode"],
                message if isinstance(message, str) else doc["errcode"],
                body=doc,
            )
        raise RemoteError(destination, status, None, raw[:200].decode("utf-8", "replace"))

    async def aclose(self) -> None:
        """Close the HTTP connections (the node calls this on shutdown)."""
        for destination in list(self._streams):
            await self._close_stream(destination)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        for client in [*self._pinned.values(), *self._retired]:
            await client.aclose()
        self._pinned.clear()
        self._retired.clear()
        await self.resolver.aclose()
