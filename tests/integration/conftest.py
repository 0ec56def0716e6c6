"""Real relays as subprocesses on 127.0.0.x ports, for integration tests."""

from __future__ import annotations

import resource
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, fresh_loopback
from tools.relay_process import RELAY, launch, without_mdns

__all__ = ["free_port", "fresh_loopback"]


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*RELAY, *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"relay {' '.join(args)} failed: {proc.stderr}")
    return proc


@dataclass
class RelayProcess:
    data_dir: Path
    host: str
    client_port: int
    federation_port: int
    proc: subprocess.Popen[bytes] | None = None
    #: host:port other servers reach us at, when not the listener itself (a proxy).
    public_address: str | None = None
    #: `federation.ip_range_allowlist`: what this relay treats as remote (default: all
    #: loopback, where every server of a test lives); set before init.
    remote_ranges: tuple[str, ...] = ("127.0.0.0/8",)
    #: RLIMIT_NOFILE for the relay process (None: inherited).
    nofile: int | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def server_name(self) -> str:
        return self.public_address or f"{self.host}:{self.federation_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def federation_url(self) -> str:
        return f"https://{self.host}:{self.federation_port}"

    def init(self, *extra: str) -> None:
        run_cli(
            "init",
            "--data-dir",
            str(self.data_dir),
            "--server-name",
            self.server_name,
            "--client-listen",
            f"{self.host}:{self.client_port}",
            "--federation-listen",
            f"{self.host}:{self.federation_port}",
            *extra,
        )
        # Tests stay on loopback: no mDNS announcements onto the machine's real networks
        # (tests/mesh/ runs the mesh inside network namespaces it makes itself).
        config = self.data_dir / "relay.toml"
        text = without_mdns(config.read_text())
        # The relay's own listeners stay refused whatever the allowlist says.
        config.write_text(text.replace("ip_range_allowlist = []", self.allowlist_line(), 1))

    def allowlist_line(self) -> str:
        return "ip_range_allowlist = [" + ", ".join(f'"{r}"' for r in self.remote_ranges) + "]"

    def start(self, timeout: float = 60) -> None:
        """Start `relay run` and return once it says READY=1 (tools/relay_process.py)."""
        with open(self.log_path, "ab") as log:
            launched = launch(
                self.data_dir,
                log=log,
                preexec_fn=self._limit_nofile if self.nofile else None,
                describe=self.log,
            )
        self.proc = launched.proc
        launched.wait_ready(timeout)

    def _limit_nofile(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--data-dir", str(self.data_dir), check=check)


def unlimit_rates(relay: RelayProcess) -> None:
    """Switch off the login and send rate limits in `relay`'s config (load tests)."""
    path = relay.data_dir / "relay.toml"
    text = path.read_text()
    for key in ("login_per_second", "send_per_second"):
        text = text.replace(f"{key} = ", f"{key} = 0 #", 1)
    path.write_text(text)


def login_device(base: str, n: int, user: str = "alice") -> str:
    """An access token for `user` (password "pw") on device DEV<n>."""
    r = httpx.post(
        f"{base}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": "pw",
            "device_id": f"DEV{n}",
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def make_relay(tmp_path: Path, name: str = "relay") -> RelayProcess:
    host = fresh_loopback()
    return RelayProcess(
        data_dir=tmp_path / name,
        host=host,
        client_port=free_port(host),
        federation_port=free_port(host),
    )


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """An initialised, running relay on a fresh 127.0.x.y address."""
    r = make_relay(tmp_path)
    r.init()
    r.start()
    try:
        yield r
    finally:
        r.kill()


@pytest.fixture
def two_relays(tmp_path: Path) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    """Relays A (user alice) and B (user bob), running, not verifying each other's
    self-signed certificates."""
    relays = [make_relay(tmp_path, "a"), make_relay(tmp_path, "b")]
    try:
        for r in relays:
            r.init("--no-verify-tls")
            r.start()
            r.cli("user", "add", "alice" if r is relays[0] else "bob", "--password", "pw")
        yield relays[0], relays[1]
    finally:
        for r in relays:
            r.kill()
