"""Relays in network namespaces joined by a bridge: real multicast, addresses only inside
the namespaces (../shared/INTEROP.md, "mDNS with zeroconf").

The lab: a bridge in a namespace of its own, and per relay a namespace with a veth pair
(`eth0` inside, the other end on the bridge), address 10.77.0.N/24. Each relay runs with
`ip netns exec`; the test reaches its client API (127.0.0.1:8008 inside its namespace)
through tests/mesh/nsforward.py. Needs `ip netns` (root, or CAP_SYS_ADMIN); otherwise
the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli
from tests.integration.matrix_client import MatrixUser
from tools.relay_process import Launched, launch

ROOT = Path(__file__).resolve().parent.parent.parent
SUBNET = "10.77.0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


class Lab:
    """Namespaces on one bridge; names carry the pid so parallel runs never meet."""

    def __init__(self) -> None:
        self.prefix = f"er{os.getpid() % 100000}"
        self.bridge_ns = f"{self.prefix}br"
        self.namespaces: list[str] = []
        # A run that died before close() left its namespaces (a pid is not reused while its
        # process lives, so names with this prefix are leftovers).
        listed = _ip("netns", "list", check=False).stdout.split()
        for ns in listed:
            if ns.startswith(self.prefix):
                _ip("netns", "del", ns, check=False)
        try:
            _ip("netns", "add", self.bridge_ns)
            self.namespaces.append(self.bridge_ns)
            _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        except RuntimeError:
            self.close()  # a failed lab leaves nothing behind to fail the next one
            raise

    def netns(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def add_node(self, name: str, host: int) -> tuple[str, str]:
        """A namespace for `name` on the bridge at 10.77.0.`host`; (netns, address)."""
        ns = self.netns(name)
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        inner, outer = f"{self.prefix}{name}i", f"{self.prefix}{name}o"
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "netns", self.bridge_ns)
        _ip("-n", ns, "link", "set", inner, "name", "eth0")
        address = f"{SUBNET}.{host}"
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", self.bridge_ns, "link", "set", outer, "master", "br0")
        _ip("-n", self.bridge_ns, "link", "set", outer, "up")
        return ns, address

    def link(self, name: str, up: bool) -> None:
        _ip("-n", self.netns(name), "link", "set", "eth0", "up" if up else "down")

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            _ip("netns", "del", ns, check=False)


def lab_or_skip() -> Lab:
    if shutil.which("ip") is None:
        pytest.skip("network namespaces unavailable: no `ip` command")
    try:
        return Lab()
    except RuntimeError as exc:
        reason = f"network namespaces unavailable here: {exc}"
        print(reason, file=sys.stderr)
        pytest.skip(reason)


@dataclass
class MeshRelay:
    name: str
    lab: Lab
    host: int
    data_dir: Path
    server_name: str
    netns: str = ""
    address: str = ""
    proc: subprocess.Popen[bytes] | None = None
    launched: Launched | None = None
    client_port: int = 0
    log_path: Path = field(init=False)
    #: forwarders opened by `forward`
    forwarders: list[subprocess.Popen[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.netns, self.address = self.lab.add_node(self.name, self.host)
        self.log_path = self.data_dir.parent / f"{self.name}.log"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--data-dir", str(self.data_dir), check=check)

    def init(self, *extra: str) -> None:
        run_cli(
            "init",
            "--data-dir",
            str(self.data_dir),
            "--server-name",
            self.server_name,
            "--client-listen",
            "127.0.0.1:8008",
            "--federation-listen",
            "0.0.0.0:8448",
            "--mdns-interface",
            "eth0",
            *extra,
        )
        self.edit_config(lambda text: text.replace("send_per_second = 20.0", "send_per_second = 0"))

    def edit_config(self, fn) -> None:
        path = self.data_dir / "relay.toml"
        path.write_text(fn(path.read_text()))

    def pin(self, server_name: str, verify_key: str) -> None:
        self.edit_config(
            lambda t: t.replace(
                "[mesh.trusted]\n", f'[mesh.trusted]\n"{server_name}" = "{verify_key}"\n'
            )
        )

    @property
    def verify_key(self) -> str:
        return json.loads(self.cli("status", "--json").stdout)["verify_key"]

    def forward(self, port: int) -> int:
        """A local port forwarded to 127.0.0.1:`port` inside this relay's namespace."""
        forwarder = subprocess.Popen(
            [sys.executable, "-m", "tests.mesh.nsforward", self.netns, "127.0.0.1", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.forwarders.append(forwarder)
        assert forwarder.stdout is not None
        return int(forwarder.stdout.readline())

    def start(self) -> None:
        """Start `relay run` inside the relay's namespace; `wait_ready()` follows."""
        self.client_port = self.forward(8008)
        with open(self.log_path, "ab") as log:
            self.launched = launch(
                self.data_dir,
                log=log,
                prefix=("ip", "netns", "exec", self.netns),
                describe=self.log,
            )
        self.proc = self.launched.proc

    def wait_ready(self, timeout: float = 30) -> None:
        """Return once the relay says READY=1 (its listeners serve)."""
        assert self.launched is not None
        self.launched.wait_ready(timeout)

    def peers(self) -> list[dict]:
        return json.loads(self.cli("peers", "list", "--json").stdout)

    def peer(self, name: str, address: str | None = None) -> dict | None:
        for row in self.peers():
            if row["name"] == name and (address is None or row["address"].startswith(address)):
                return row
        return None

    def user(self, localpart: str) -> MatrixUser:
        self.cli("user", "add", localpart, "--password", "pw")
        return MatrixUser.login(self.client_url, localpart)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        for proc in (self.proc, *self.forwarders):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = lab_or_skip()
    try:
        yield lab
    finally:
        lab.close()
