"""A relay started as a subprocess, for tests and benchmarks: one way to do it.

- `RELAY`: the command line of the relay's CLI in this interpreter.
- `without_mdns(text)`: a `relay.toml` with the LAN mesh off, so a relay started by a test
  or a benchmark never announces itself on the machine's real networks (tests/mesh/ runs
  the mesh inside network namespaces it makes itself and keeps it on).
- `launch(...)`: `relay run` started with `NOTIFY_SOCKET` pointing at a socket of ours, and
  `Launched.wait_ready()` returning once the relay says `READY=1` over systemd's
  notification protocol (relay/runtime/sdnotify.py): its listeners serve, nothing is
  polled. The socket is a path, not an abstract name, so a relay started inside another
  network namespace (`ip netns exec`) still reaches it: abstract unix sockets belong to
  a network namespace, paths do not.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["RELAY", "Launched", "launch", "without_mdns"]

ROOT = Path(__file__).resolve().parent.parent
RELAY = [sys.executable, "-m", "relay.cli"]


def without_mdns(text: str) -> str:
    """`relay.toml` text with `[mesh] enabled = false`."""
    mesh = text.index("[mesh]")
    return text[:mesh] + text[mesh:].replace("enabled = true", "enabled = false", 1)


@dataclass
class Launched:
    """A started `relay run` and the socket it reports readiness on."""

    proc: subprocess.Popen[bytes]
    _notify: socket.socket
    _dir: str
    describe: Callable[[], str]

    def wait_ready(self, timeout: float = 60) -> None:
        """Return once the relay has said READY=1; raise with its log if it exits or stays
        silent for `timeout` seconds. The socket is closed either way."""
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"relay exited early:\n{self.describe()}")
                try:
                    message = self._notify.recv(4096).decode(errors="replace")
                except TimeoutError:
                    continue
                if "READY=1" in message.splitlines():
                    return
            raise AssertionError(
                f"relay did not say READY=1 within {timeout} s:\n{self.describe()}"
            )
        finally:
            self._notify.close()
            shutil.rmtree(self._dir, ignore_errors=True)


def launch(
    data_dir: Path,
    *,
    log: IO[bytes] | int | None = subprocess.DEVNULL,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    describe: Callable[[], str] = lambda: "",
) -> Launched:
    """Start `[*prefix, *RELAY, "run", "--data-dir", data_dir]`; `wait_ready()` on the
    result. `describe` gives the text an error shows (the relay's log)."""
    # A short directory of its own: a socket path must fit in 108 bytes.
    directory = tempfile.mkdtemp(prefix="er-")
    path = os.path.join(directory, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        notify.bind(path)
        notify.settimeout(0.2)
        proc = subprocess.Popen(
            [*prefix, *RELAY, "run", "--data-dir", str(data_dir)],
            stdout=log,
            stderr=log,
            env={**(env or os.environ), "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": path},
            cwd=ROOT,
            preexec_fn=preexec_fn,
        )
    except BaseException:
        notify.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return Launched(proc, notify, directory, describe)
