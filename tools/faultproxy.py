"""A fault-injecting TCP proxy for outage tests between servers.

Put it between two servers (a relay and its upstream Synapse) and switch the
link while they talk (../shared/INTEROP.md, "How Synapse behaves across an
outage"). It is plain TCP, so TLS runs end to end through it.

- ``heal()``: forward normally.
- ``cut()``: reset every open connection with RST (SO_LINGER 0) on both sides,
  and reset new ones as soon as they are accepted.
- ``blackhole()``: accept new connections but never answer; open connections
  stop forwarding silently. Nothing is read or dropped meanwhile, so a later
  ``heal()`` resumes them with no byte lost, as TCP does after a partition.
- ``delay(seconds)``: hold each chunk that long before forwarding it.

The proxy runs its own trio loop in a background thread; every method may be
called from any thread. ``python -m tools.faultproxy --help`` for the CLI.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
from typing import Any

import trio

HEAL, CUT, BLACKHOLE = "heal", "cut", "blackhole"
_LINGER_ZERO = struct.pack("ii", 1, 0)
_CHUNK = 65536


def _reset(stream: trio.SocketStream | None) -> None:
    """Close with RST instead of FIN; safe on an already closed stream."""
    if stream is None or stream.socket.fileno() == -1:
        return
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    except OSError:
        pass
    stream.socket.close()  # trio wakes any task blocked on it


class _Conn:
    __slots__ = ("client", "upstream")

    def __init__(self, client: trio.SocketStream):
        self.client = client
        self.upstream: trio.SocketStream | None = None

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.upstream)


class FaultProxy:
    """Forward ``listen_host:listen_port`` to ``target_host:target_port``.

    ``listen_port`` 0 picks a free port; read it from ``listen_port`` after
    ``start()``.
    """

    def __init__(self, listen_host: str, listen_port: int, target_host: str, target_port: int):
        self.listen_host, self.listen_port = listen_host, listen_port
        self.target = (target_host, target_port)
        self._mode = HEAL
        self._delay = 0.0
        self._stats = {"accepted": 0, "upstream_failures": 0, "bytes_up": 0, "bytes_down": 0}
        self._conns: set[_Conn] = set()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._changed: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- control, from any thread -------------------------------------------

    def start(self) -> FaultProxy:
        """Start listening in a background thread; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection; the port is free on return."""
        if self._thread is None or not self._thread.is_alive():
            return
        self._call(lambda: self._cancel.cancel())  # type: ignore[union-attr]
        self._thread.join(timeout)

    def heal(self) -> None:
        self._call(self._set_mode, HEAL)

    def cut(self) -> None:
        self._call(self._set_mode, CUT)

    def blackhole(self) -> None:
        self._call(self._set_mode, BLACKHOLE)

    def delay(self, seconds: float) -> None:
        """Added latency per forwarded chunk; 0 removes it."""
        self._delay = max(0.0, float(seconds))

    @property
    def mode(self) -> str:
        return self._mode

    def statistics(self) -> dict[str, Any]:
        """Counters since start: connections accepted, open, bytes each way, mode."""
        stats: dict[str, Any] = dict(self._stats)
        stats.update(open=len(self._conns), mode=self._mode, delay=self._delay)
        return stats

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, fn: Any, *args: Any) -> None:
        running = self._thread is not None and self._thread.is_alive() and self._token
        if not running or threading.current_thread() is self._thread:
            fn(*args)
        else:
            trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    # -- the trio side --------------------------------------------------------

    def _set_mode(self, mode: str) -> None:
        self._mode = mode
        if mode == CUT:
            for conn in list(self._conns):
                conn.reset()
            self._conns.clear()
        if self._changed is not None:
            self._changed.set()
            self._changed = trio.Event()

    async def _passable(self) -> bool:
        """Wait out a blackhole; False once the connection must die (cut)."""
        while self._mode == BLACKHOLE:
            await self._changed.wait()  # type: ignore[union-attr]
        return self._mode == HEAL

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # surfaced by start() if it fails early
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._changed = trio.Event()
        listeners = await trio.open_tcp_listeners(self.listen_port, host=self.listen_host)
        self.listen_port = listeners[0].socket.getsockname()[1]
        with trio.CancelScope() as self._cancel:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle, listeners)
                self._ready.set()
        for conn in list(self._conns):
            conn.reset()
        self._conns.clear()

    async def _handle(self, client: trio.SocketStream) -> None:
        self._stats["accepted"] += 1
        conn = _Conn(client)
        self._conns.add(conn)
        try:
            if not await self._passable():
                return
            try:
                upstream = await trio.open_tcp_stream(*self.target)
            except OSError:
                self._stats["upstream_failures"] += 1
                return
            conn.upstream = upstream
            if conn not in self._conns:  # cut while connecting
                conn.reset()
                return
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, upstream, "bytes_up")
                nursery.start_soon(self._pump, upstream, client, "bytes_down")
        finally:
            if conn in self._conns:
                self._conns.discard(conn)
                if self._mode == CUT or conn.upstream is None:
                    conn.reset()
                else:
                    await client.aclose()
                    await conn.upstream.aclose()

    async def _pump(self, src: trio.SocketStream, dst: trio.SocketStream, counter: str) -> None:
        try:
            while await self._passable():
                data = await src.receive_some(_CHUNK)
                if self._delay:
                    await trio.sleep(self._delay)
                if not await self._passable():
                    return
                if not data:
                    await dst.send_eof()
                    return
                self._stats[counter] += len(data)  # before sending: the peer can't outrun it
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            # One side broke: pass the reset on to the other.
            _reset(src)
            _reset(dst)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.faultproxy",
        description="Fault-injecting TCP proxy. Commands on stdin, one a line: "
        "heal, cut, blackhole, delay SECONDS, stats, quit (EOF quits too).",
    )
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT (0: any)")
    parser.add_argument("--target", type=_address, required=True, help="HOST:PORT")
    parser.add_argument("--mode", choices=[HEAL, CUT, BLACKHOLE], default=HEAL)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per chunk")
    args = parser.parse_args(argv)
    proxy = FaultProxy(*args.listen, *args.target)
    proxy.delay(args.delay)
    proxy.start()
    getattr(proxy, args.mode)()
    print(f"listening {args.listen[0]}:{proxy.listen_port} -> {args.target[0]}:{args.target[1]}")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            command, *rest = line.split() or [""]
            if command in (HEAL, CUT, BLACKHOLE):
                getattr(proxy, command)()
                print(f"ok {command}")
            elif command == "delay" and len(rest) == 1:
                proxy.delay(float(rest[0]))
                print(f"ok delay {proxy.statistics()['delay']}")
            elif command == "stats":
                print(json.dumps(proxy.statistics()))
            elif command == "quit":
                break
            elif command:
                print(f"error unknown command {line.strip()!r}")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
