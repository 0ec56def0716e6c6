"""Two network namespaces joined by one veth pair, shaped like a slow satellite or radio link.

```
NS_A  veth "a" 10.208.0.1/24 <==== tbf + delayer, each way ====> 10.208.0.2/24 veth "b"  NS_B
```

Rate: `tc tbf` on each veth end (a deep 128 KiB buffer, like a satellite modem's: tbf never
drops). Delay and loss: `delayer.py` on each side's ingress, through NFQUEUE. TSO, GSO and
GRO are off, so every packet on the veth is a wire-sized packet. Counters: bytes and packets
of each veth (Ethernet bytes, both directions), and new TCP connections opened across the
link by each side (an iptables rule counting outgoing SYNs).

`inside(ns)` moves the calling thread into a namespace for a block: sockets it makes there
stay there, and processes it starts there run there. So a test starts a relay or a Synapse
with the existing harnesses inside `with link.inside(link.ns_a):`.

Needs root (ip netns, tc, iptables, ethtool: tools/host/packages.txt, group `lowband`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.linkemu.profiles import UNSHAPED, Profile

ROOT = Path(__file__).resolve().parent.parent.parent
TBF_BURST = 1600  # bytes: one full-size frame must fit
TBF_LIMIT = 128 * 1024  # bytes queued at the sender before tbf would drop
NEEDED = ("ip", "tc", "iptables", "ethtool")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LinkUnavailable(RuntimeError):
    """Namespaces or the tools cannot be used here (not root, a command missing)."""


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:]}")
    return proc


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns({path}): {os.strerror(error)}")
    finally:
        os.close(fd)


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """The calling thread is in network namespace `ns` for the block (setns is per thread)."""
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _setns(f"/run/netns/{ns}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise RuntimeError("could not return to the home network namespace")
    finally:
        os.close(home)


@dataclass
class Counters:
    """Bytes and packets on the veth (Ethernet, both directions) and new TCP connections
    opened across the link from each side."""

    bytes_a_to_b: int = 0
    bytes_b_to_a: int = 0
    packets: int = 0
    connections_from_a: int = 0
    connections_from_b: int = 0
    dropped: int = 0

    @property
    def bytes(self) -> int:
        return self.bytes_a_to_b + self.bytes_b_to_a

    def __sub__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, f) - getattr(other, f) for f in self.__dataclass_fields__))


class EmulatedLink:
    """`with EmulatedLink() as link:` makes the namespaces; `link.shape(profile)` changes the
    link at any time (UNSHAPED for a bare veth); leaving the block removes everything."""

    ADDRESS_A, ADDRESS_B = "10.208.0.1", "10.208.0.2"

    def __init__(self, tag: str = "", stats_dir: Path | None = None) -> None:
        prefix = f"lb{tag}{os.getpid() % 100000}"
        self.ns_a, self.ns_b = f"{prefix}a", f"{prefix}b"
        self.dev_a, self.dev_b = f"{prefix}va", f"{prefix}vb"
        self.stats_dir = stats_dir or Path(tempfile.mkdtemp(prefix="linkemu-"))
        self.profile: Profile = UNSHAPED
        self._delayers: dict[str, subprocess.Popen[str]] = {}
        self._made: list[str] = []

    @staticmethod
    def check_available() -> None:
        if os.geteuid() != 0:
            raise LinkUnavailable("the link emulator needs root (ip netns, tc, iptables)")
        missing = [c for c in NEEDED if shutil.which(c) is None]
        if missing:
            raise LinkUnavailable(
                f"missing {', '.join(missing)}: `tools/host/deps.sh lowband` installs them"
            )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> EmulatedLink:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sides(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.ns_a, self.dev_a), (self.ns_b, self.dev_b)

    def open(self) -> None:
        self.check_available()
        listed = _run("ip", "netns", "list", check=False).stdout.split()
        for ns in (self.ns_a, self.ns_b):
            if ns in listed:  # left by a killed run of this pid: nothing can still use it
                _run("ip", "netns", "del", ns, check=False)
        try:
            for ns in (self.ns_a, self.ns_b):
                _run("ip", "netns", "add", ns)
                self._made.append(ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                _run("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                     "net.ipv6.conf.all.disable_ipv6=1", "net.ipv4.ip_forward=0")  # fmt: skip
            _run("ip", "-n", self.ns_a, "link", "add", self.dev_a, "type", "veth",
                 "peer", "name", self.dev_b, "netns", self.ns_b)  # fmt: skip
            for (ns, dev), address in zip(
                self.sides(), (self.ADDRESS_A, self.ADDRESS_B), strict=True
            ):
                _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "up")
                _run("ip", "netns", "exec", ns, "ethtool", "-K", dev,
                     "tso", "off", "gso", "off", "gro", "off")  # fmt: skip
                # Counts the TCP connections this side opens across the link.
                _run("ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-o", dev,
                     "-p", "tcp", "--syn")  # fmt: skip
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        self._stop_delayers()
        for ns in reversed(self._made):
            _run("ip", "netns", "del", ns, check=False)
        self._made.clear()

    # -- shaping ----------------------------------------------------------------------------

    def shape(self, profile: Profile) -> None:
        """Apply `profile` to both directions (replacing the one before)."""
        self._stop_delayers()
        for ns, dev in self.sides():
            _run("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", check=False)
        self.profile = profile
        if profile.rate_bit is None:
            return
        for ns, dev in self.sides():
            _run("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
                 "rate", f"{profile.rate_bit}bit", "burst", str(TBF_BURST),
                 "limit", str(TBF_LIMIT))  # fmt: skip
            command = [
                "ip", "netns", "exec", ns, sys.executable, "-m", "tools.linkemu.delayer",
                "--rate-bit", str(profile.rate_bit), "--delay-ms", str(profile.delay_ms),
                "--loss", str(profile.loss),
            ]  # fmt: skip
            stats = self.stats_dir / f"delayer-{ns}.json"
            stats.unlink(missing_ok=True)
            command += ["--stats", str(stats)]
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT
            )
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                proc.kill()
                proc.wait()
                raise RuntimeError(f"the delay stage in {ns} did not start: {line!r}")
            self._delayers[ns] = proc
            _run("ip", "netns", "exec", ns, "iptables", "-t", "raw", "-A", "PREROUTING",
                 "-i", dev, "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass")  # fmt: skip

    def _stop_delayers(self) -> None:
        for ns, dev in self.sides():
            if ns in self._delayers:
                _run("ip", "netns", "exec", ns, "iptables", "-t", "raw", "-D", "PREROUTING",
                     "-i", dev, "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass",
                     check=False)  # fmt: skip
        for ns, proc in list(self._delayers.items()):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            del self._delayers[ns]

    def blackhole(self, on: bool) -> None:
        """Drop every packet arriving over the link, both ways (a radio fade), or stop."""
        for ns, dev in self.sides():
            action = "-I" if on else "-D"
            _run("ip", "netns", "exec", ns, "iptables", action, "INPUT", "-i", dev, "-j", "DROP",
                 check=on)  # fmt: skip

    def cut_connections(self) -> None:
        """Abort every TCP connection across the link (both ends), as a modem reset would."""
        for ns, peer in ((self.ns_a, self.ADDRESS_B), (self.ns_b, self.ADDRESS_A)):
            _run("ip", "netns", "exec", ns, "ss", "-tnK", "dst", peer, check=False)

    # -- counting ---------------------------------------------------------------------------

    def counters(self) -> Counters:
        out = Counters()
        (ns_a, dev_a), (ns_b, dev_b) = self.sides()
        stats_a = self._link_stats(ns_a, dev_a)
        out.bytes_a_to_b = stats_a["tx"]["bytes"]
        out.bytes_b_to_a = stats_a["rx"]["bytes"]
        out.packets = stats_a["tx"]["packets"] + stats_a["rx"]["packets"]
        out.connections_from_a = self._syns(ns_a, dev_a)
        out.connections_from_b = self._syns(ns_b, dev_b)
        for ns, _dev in self.sides():
            out.dropped += self._queue_drops(ns)
        return out

    def delayer_drops(self) -> int:
        """Packets the delay stages dropped (loss profiles) since the last `shape`."""
        dropped = 0
        for ns in (self.ns_a, self.ns_b):
            with contextlib.suppress(OSError, ValueError):
                path = self.stats_dir / f"delayer-{ns}.json"
                dropped += json.loads(path.read_text())["dropped"]
        return dropped

    @staticmethod
    def _link_stats(ns: str, dev: str) -> dict:
        [row] = json.loads(_run("ip", "-n", ns, "-s", "-j", "link", "show", dev).stdout)
        return row.get("stats64") or row["stats"]

    @staticmethod
    def _syns(ns: str, dev: str) -> int:
        text = _run("ip", "netns", "exec", ns, "iptables", "-nvxL", "OUTPUT").stdout
        for line in text.splitlines():
            fields = line.split()
            if fields and fields[0].isdigit() and dev in fields:
                return int(fields[0])
        return 0

    @staticmethod
    def _queue_drops(ns: str) -> int:
        text = _run(
            "ip", "netns", "exec", ns, "cat", "/proc/net/netfilter/nfnetlink_queue", check=False
        ).stdout.split()
        # queue portid waiting copy_mode copy_range queue_dropped user_dropped id_seq 1
        return int(text[5]) + int(text[6]) if len(text) >= 7 else 0


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2) -> float:
    """Poll until `predicate()` is truthy; the seconds it took (AssertionError at timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
