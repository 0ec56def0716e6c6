"""`python -m tools.linkemu check PROFILE`: TCP connect and a 1000-byte echo over the link,
beside what the model predicts (a check that the emulator behaves on this machine)."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

from tools.linkemu.link import EmulatedLink, inside
from tools.linkemu.profiles import PROFILES, profile


def echo_check(link: EmulatedLink, payload: int = 1000) -> dict[str, float]:
    """Seconds for a TCP connect and for a `payload`-byte echo round trip, a -> b -> a."""
    with inside(link.ns_b):
        server = socket.create_server((link.ADDRESS_B, 7007))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            got = b""
            while len(got) < payload:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                got += chunk
            conn.sendall(got)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with inside(link.ns_a):
        start = time.monotonic()
        client = socket.create_connection((link.ADDRESS_B, 7007), timeout=60)
    connected = time.monotonic()
    with client:
        client.sendall(b"x" * payload)
        got = b""
        while len(got) < payload:
            got += client.recv(65536)
    done = time.monotonic()
    thread.join(10)
    server.close()
    return {"connect_s": connected - start, "echo_s": done - connected}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.linkemu")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="measure connect and echo times over a profile")
    check.add_argument("profile", choices=sorted(PROFILES))
    args = parser.parse_args(argv)
    chosen = profile(args.profile)
    with EmulatedLink("chk") as link:
        link.shape(chosen)
        before = link.counters()
        figures = echo_check(link)
        used = link.counters() - before
    print(f"{chosen.label}: connect {figures['connect_s']:.3f} s, 1000-byte echo "
          f"{figures['echo_s']:.3f} s, {used.bytes} bytes on the wire, "
          f"{used.connections_from_a} connection(s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
