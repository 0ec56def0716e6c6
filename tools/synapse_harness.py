"""Start a real Synapse on loopback for benchmarks and interop tests.

Synapse lives in its own venv (`make synapse` creates `.synapse-venv` with the
pinned release; ../shared/INTEROP.md has the facts this relies on). Each
Synapse gets its own loopback address and the knobs loopback federation
needs: loopback not blacklisted, self-signed certificates accepted, no
trusted key servers, a shared secret for creating users, rate limits raised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from relay.federation.destinations import DENIED_RANGES

ROOT = Path(__file__).resolve().parent.parent
SYNAPSE_VERSION = "1.163.2"
SYNAPSE_VENV = Path(os.environ.get("SYNAPSE_VENV", ROOT / ".synapse-venv"))
SHARED_SECRET = "edge-relay-test-secret"

#: Synapse's default deny list, less loopback and the unspecified addresses: the test
#: Synapse must reach relays and fake servers on 127.0.0.0/8 and ::1. One list, the
#: relay's (relay/federation/destinations.py).
_LOOPBACK = {"0.0.0.0/8", "127.0.0.0/8", "::/128", "::1/128"}
DEFAULT_BLACKLIST = [str(net) for net in DENIED_RANGES if str(net) not in _LOOPBACK]
FAST_RETRY = {
    "max_long_retry_delay": "1s",
    "max_long_retries": 20,
    "client_timeout": "10s",
    "destination_min_retry_interval": "2s",
    "destination_retry_multiplier": 1.5,
    "destination_max_retry_interval": "10s",
}
HIGH_LIMIT = {"per_second": 10000, "burst_count": 10000}


def synapse_python() -> Path:
    return SYNAPSE_VENV / "bin" / "python"


def _make_cert(directory: Path, host: str) -> tuple[Path, Path]:
    from relay.runtime.identity import write_self_signed_certificate

    cert, key = directory / "tls.crt", directory / "tls.key"
    if not cert.exists():
        write_self_signed_certificate(cert, key, host)
    return cert, key


@dataclass
class Synapse:
    directory: Path
    host: str
    client_port: int
    federation_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def server_name(self) -> str:
        return f"{self.host}:{self.federation_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    def write_config(
        self,
        *,
        fast_retry: bool = True,
        room_version: str | None = None,
        trusted_key_servers: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = _make_cert(self.directory, self.host)
        signing_key = self.directory / "signing.key"
        if not signing_key.exists():
            subprocess.run(
                [
                    str(synapse_python()),
                    "-m",
                    "synapse._scripts.generate_signing_key",
                    "-o",
                    str(signing_key),
                ],
                check=True,
                capture_output=True,
            )
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "pid_file": str(self.directory / "homeserver.pid"),
            "report_stats": False,
            "enable_metrics": False,
            "signing_key_path": str(signing_key),
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "listeners": [
                {
                    "port": self.client_port,
                    "bind_addresses": [self.host],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"]}],
                },
                {
                    "port": self.federation_port,
                    "bind_addresses": [self.host],
                    "type": "http",
                    "tls": True,
                    "resources": [{"names": ["federation"]}],
                },
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.directory / "homeserver.db")},
            },
            "log_config": str(self._log_config()),
            "media_store_path": str(self.directory / "media"),
            "registration_shared_secret": SHARED_SECRET,
            "federation_verify_certificates": False,
            "federation_ip_range_blacklist": DEFAULT_BLACKLIST,
            "ip_range_blacklist": DEFAULT_BLACKLIST,
            "trusted_key_servers": trusted_key_servers or [],
            "suppress_key_server_warning": True,
            "rc_message": HIGH_LIMIT,
            "rc_joins": {"local": HIGH_LIMIT, "remote": HIGH_LIMIT},
            # 50 users joining one room in a burst (tools/bench/fanout.py).
            "rc_joins_per_room": HIGH_LIMIT,
            "rc_invites": {
                "per_room": HIGH_LIMIT,
                "per_user": HIGH_LIMIT,
                "per_issuer": HIGH_LIMIT,
            },
            "rc_login": {
                "address": HIGH_LIMIT,
                "account": HIGH_LIMIT,
                "failed_attempts": HIGH_LIMIT,
            },
            "rc_registration": HIGH_LIMIT,
            "rc_federation": {
                "window_size": 1000,
                "sleep_limit": 10000,
                "sleep_delay": 1,
                "reject_limit": 10000,
                "concurrent": 100,
            },
            "rc_presence": {"per_user": HIGH_LIMIT},
            "rc_room_creation": HIGH_LIMIT,
        }
        if fast_retry:
            config["federation"] = FAST_RETRY
        if room_version:
            config["default_room_version"] = room_version
        config.update(extra or {})
        (self.directory / "homeserver.yaml").write_text(json.dumps(config, indent=1))

    def _log_config(self) -> Path:
        path = self.directory / "log.yaml"
        path.write_text(
            json.dumps(
                {
                    "version": 1,
                    "formatters": {
                        "f": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
                    },
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "formatter": "f",
                            "filename": str(self.directory / "homeserver.log"),
                        }
                    },
                    "root": {"level": "INFO", "handlers": ["file"]},
                    "disable_existing_loggers": False,
                }
            )
        )
        return path

    def start(self, timeout: float = 60) -> None:
        out = open(self.directory / "stdout.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(synapse_python()),
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self.directory / "homeserver.yaml"),
            ],
            stdout=out,
            stderr=out,
            cwd=self.directory,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"synapse exited:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.client_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"synapse did not become healthy:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        path = self.directory / "homeserver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def register(self, localpart: str, password: str = "pw", admin: bool = False) -> dict[str, Any]:
        """Create a user through the shared-secret admin API; returns the login response."""
        url = f"{self.client_url}/_synapse/admin/v1/register"
        nonce = httpx.get(url, timeout=10).json()["nonce"]
        mac = hmac.new(SHARED_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(
                [
                    nonce.encode(),
                    localpart.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                ]
            )
        )
        r = httpx.post(
            url,
            json={
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
            timeout=30,
        )
        r.raise_for_status()
        return r.json()


def ensure_synapse_installed() -> None:
    if not synapse_python().exists():
        raise RuntimeError(
            f"no Synapse venv at {SYNAPSE_VENV}: run `make synapse` (installs matrix-synapse=="
            f"{SYNAPSE_VERSION})"
        )


if __name__ == "__main__":
    print(synapse_python(), file=sys.stderr)
