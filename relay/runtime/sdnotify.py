"""systemd's service notification protocol (sd_notify), without a dependency.

Under systemd with `Type=notify`, `NOTIFY_SOCKET` names a datagram socket (a path, or an
abstract one when it starts with `@`) that takes newline-separated `KEY=VALUE` lines:
`READY=1` once the service serves, `WATCHDOG=1` at least every `WATCHDOG_USEC`/2 when
`WatchdogSec=` is set, `STOPPING=1` on the way out. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

import trio

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send `state` to the service manager; False when not run under one (or on error)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify(%r) failed: %s", state, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None if no watchdog is set
    for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.1)
    except ValueError:
        return None


async def ready_and_watchdog(until: trio.Event) -> None:
    """Tell systemd the relay is ready, then feed its watchdog from the event loop until
    `until` is set (a wedged event loop stops the pings and systemd restarts the relay)."""
    notify("READY=1")
    interval = watchdog_interval()
    while interval is not None and not until.is_set():
        notify("WATCHDOG=1")
        with trio.move_on_after(interval):
            await until.wait()
    if until.is_set():
        notify("STOPPING=1")
