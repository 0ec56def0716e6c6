"""A listener: accepts connections for one ASGI app, bounded in number and in time.

Hypercorn speaks HTTP (its h11/h2 protocol and per-connection `TCPServer`); this module
owns what hypercorn's own `serve` leaves open to whoever connects (issue 13: 1,100
connect-and-close in 9 s exhausted 1,024 descriptors; a body promised and never sent held
its connection for minutes). Rules kept here, every number a `[listeners]` setting
(`relay.config.ListenerLimits`):

- At most `max_connections` open connections per listener, and at most
  `max_connections_per_address` from one client address (one attacker cannot take every
  slot from the phones on the Wi-Fi). A connection over either limit gets a plain
  `503` with `M_LIMIT_EXCEEDED` and `Retry-After` (after its TLS handshake on the TLS
  listener), and is closed; at most `REFUSING_AT_ONCE` refusals are written at a time,
  beyond that a connection is closed at once.
- `header_timeout_seconds`: from accepting a connection (TLS handshake included) to its
  first request's complete headers, and from a later request's first byte to its complete
  headers. A connection that sends nothing is closed then, not after the keep-alive time.
- `body_timeout_seconds`: the longest silence while a request's body is still due (HTTP/1;
  HTTP/2 streams are bounded by the header and keep-alive timeouts only). No timeout
  applies while the app works on a request whose body has arrived (a `/sync` long-poll).
- `keep_alive_seconds`: how long a connection that served a request waits idle for the
  next (`client_keep_alive_seconds`, `federation_keep_alive_seconds`: slow links want it
  long; it never extends the two above, and only a connection that completed a request
  gets it).
- A connection the client closed is closed at once (hypercorn otherwise keeps its
  descriptor until the keep-alive timer ends).
- Running out of descriptors (EMFILE and kin) pauses accepting for 100 ms, as trio's
  `serve_listeners` does, with a warning at most every 10 s.
"""

from __future__ import annotations

import errno
import logging
import math
import ssl
from collections import Counter
from typing import Any

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper
from hypercorn.utils import wrap_app

from relay.config import Listen, ListenerLimits
from relay.runtime.http import MAX_REQUEST_BODY

log = logging.getLogger(__name__)

GRACE_SECONDS = 1.0
REFUSING_AT_ONCE = 64
REFUSAL_SECONDS = 2.0
ACCEPT_PAUSE_SECONDS = 0.1
OVERLOAD_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_REFUSAL_BODY = (
    b'{"errcode":"M_LIMIT_EXCEEDED","error":"Too many open connections, try again shortly",'
    b'"retry_after_ms":2000}'
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 2\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


def hypercorn_config(
    listen: Listen,
    limits: ListenerLimits,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [str(listen)]
    hc.certfile = certfile
    hc.keyfile = keyfile
    hc.graceful_timeout = GRACE_SECONDS
    hc.accesslog = None
    hc.errorlog = logging.getLogger("relay.runtime.http.server")
    hc.keep_alive_timeout = limits.keep_alive_seconds
    hc.ssl_handshake_timeout = limits.header_timeout_seconds
    # A WebSocket message (the federation transaction stream) is buffered whole: no more
    # than a request body may be.
    hc.websocket_max_message_size = MAX_REQUEST_BODY
    return hc


class _Connection(TCPServer):
    """Hypercorn's connection, with our timeouts (see the module docstring)."""

    def __init__(self, limits: ListenerLimits, *args: Any) -> None:
        super().__init__(*args)
        self.limits = limits
        self._idle = True  # no request in progress (none yet, or the last one answered)
        self._served = False  # a request was answered: idle now means keep-alive
        self._headers_started = False

    async def protocol_send(self, event: Any) -> None:
        if isinstance(event, Updated):
            self._idle = event.idle
            if event.idle:
                self._served = True
                self._headers_started = False
        await super().protocol_send(event)

    async def _idle_timeout(self) -> None:
        if self._served and not self._headers_started:
            timeout = self.limits.keep_alive_seconds
        else:
            timeout = self.limits.header_timeout_seconds
        with trio.move_on_after(timeout):
            await self.context.terminated.wait()
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()

    def _body_due(self) -> bool:
        """Whether an HTTP/1 request's body is still due (h2 has no such state)."""
        connection = getattr(self.protocol.protocol, "connection", None)
        return getattr(connection, "their_state", None) is h11.SEND_BODY

    async def _read_data(self) -> None:
        while True:
            timeout = self.limits.body_timeout_seconds if self._body_due() else math.inf
            try:
                with trio.fail_after(timeout):
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            if data and self._idle and not self._headers_started:
                # A request begins: its headers get header_timeout, not the keep-alive.
                self._headers_started = True
                await self.idle_task.restart(self._task_group, self._idle_timeout)
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())
        # The client is gone (or timed out): nothing is left for the idle timer to guard,
        # and the connection's task group would otherwise wait for it.
        await self.idle_task.stop()


def _peer_host(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return ""


class Listener:
    """One listening socket and the connections it accepted (see the module docstring)."""

    def __init__(
        self,
        app: Any,
        hc: HypercornConfig,
        limits: ListenerLimits,
    ) -> None:
        self.app: AppWrapper = wrap_app(app, hc.wsgi_max_body_size, "asgi")
        self.hc = hc
        self.limits = limits
        self.context = WorkerContext(None)
        self.ssl_context: ssl.SSLContext | None = hc.create_ssl_context()
        if self.ssl_context is not None:
            # No TLS 1.3 session tickets: ~700 B after every handshake (0.6 s at 9.6 kbit/s)
            # that no federation peer uses (httpx cannot resume a session; Synapse's
            # client does not either): connections are kept warm instead.
            self.ssl_context.num_tickets = 0
        self.open = 0
        self.by_address: Counter[str] = Counter()
        self.refused = 0
        self._refusing = 0
        self._last_overload_log = -math.inf

    def statistics(self) -> dict[str, int]:
        return {"open": self.open, "refused": self.refused}

    async def serve(
        self, shutdown: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept until `shutdown` is set; then give connections GRACE_SECONDS to finish."""
        sockets = self.hc.create_sockets()
        raw = [*sockets.secure_sockets, *sockets.insecure_sockets]
        for sock in raw:
            sock.listen(self.hc.backlog)
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in raw]
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept, listener, connections)
                task_status.started()
                await shutdown.wait()
                accepting.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            await self.context.terminated.set()  # idle connections close now
            connections.cancel_scope.deadline = trio.current_time() + self.hc.graceful_timeout

    async def _accept(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in OVERLOAD_ERRNOS:
                    raise
                now = trio.current_time()
                if now - self._last_overload_log > 10:
                    self._last_overload_log = now
                    log.warning("out of resources accepting connections: %s; pausing", exc)
                await trio.sleep(ACCEPT_PAUSE_SECONDS)
                continue
            host = _peer_host(stream)
            if (
                self.open >= self.limits.max_connections
                or self.by_address[host] >= self.limits.max_connections_per_address
            ):
                self.refused += 1
                if self._refusing < REFUSING_AT_ONCE:
                    self._refusing += 1
                    connections.start_soon(self._refuse, stream)
                else:
                    await stream.aclose()
                continue
            self.open += 1
            self.by_address[host] += 1
            connections.start_soon(self._connection, stream, host)

    def _wrap(self, stream: trio.SocketStream) -> trio.abc.Stream:
        if self.ssl_context is None:
            return stream
        return trio.SSLStream(stream, self.ssl_context, server_side=True, https_compatible=True)

    async def _connection(self, stream: trio.SocketStream, host: str) -> None:
        try:
            connection = _Connection(
                self.limits, self.app, self.hc, self.context, {}, self._wrap(stream)
            )
            await connection.run()
        finally:
            self.open -= 1
            self.by_address[host] -= 1
            if self.by_address[host] <= 0:
                del self.by_address[host]

    async def _refuse(self, stream: trio.SocketStream) -> None:
        """Tell an over-limit connection so (HTTP/1.1 503), briefly, then close it."""
        wrapped = self._wrap(stream)
        try:
            with trio.move_on_after(REFUSAL_SECONDS):
                await wrapped.send_all(REFUSAL)
                # Read what the request sends before closing: closing with unread data
                # would reset the connection, and the answer could be lost.
                while await wrapped.receive_some(MAX_RECV):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._refusing -= 1
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                await wrapped.aclose()


async def serve_listener(
    app: Any,
    hc: HypercornConfig,
    limits: ListenerLimits,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await Listener(app, hc, limits).serve(shutdown, task_status=task_status)
