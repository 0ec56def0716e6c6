"""Connections under attack, measured (issue 13): a relay with 1,024 descriptors, 1,100
connect-and-close from 4 threads, then a body promised by Content-Length and never sent.

Prints, for the relay's default `[listeners]` settings: how long the storm took, the
relay's open descriptors right after it and 5 s later, whether (and how fast) a normal
request was served during and after it, and how long the stalled body kept its
connection (capped at `--cap` seconds). Numbers only: nothing here is a test.

    .venv/bin/python -m tools.bench.connections [--code DIR] [--cap 90]

`--code DIR` runs the relay from another checkout (e.g. `git archive main | tar -x -C
/tmp/main`) to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.support import free_port, fresh_loopback
from tools.relay_process import without_mdns


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _timed_get(url: str) -> float | None:
    start = time.monotonic()
    try:
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=10) as http:
            if http.get(url).status_code != 200:
                return None
    except httpx.HTTPError:
        return None
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", type=Path, default=None)
    parser.add_argument("--cap", type=float, default=90.0)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    relay = [sys.executable, "-m", "relay.cli"]
    if args.code is not None:
        # -S: no site processing, so the editable install of this checkout (a .pth
        # finder) does not win over `--code`; the packages are on the path by hand.
        packages = [p for p in sys.path if p.endswith("site-packages")]
        env["PYTHONPATH"] = os.pathsep.join([str(args.code.resolve()), *packages])
        relay = [sys.executable, "-S", "-m", "relay.cli"]
    host = fresh_loopback()
    client_port, fed_port = free_port(host), free_port(host)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "relay"
        subprocess.run(
            [
                *relay,
                "init",
                "--data-dir",
                str(data),
                "--server-name",
                f"{host}:{fed_port}",
                "--client-listen",
                f"{host}:{client_port}",
                "--federation-listen",
                f"{host}:{fed_port}",
            ],
            check=True,
            env=env,
            cwd=tmp,
            capture_output=True,
        )
        toml = data / "relay.toml"
        text = toml.read_text()
        toml.write_text(without_mdns(text))
        proc = subprocess.Popen(
            [*relay, "run", "--data-dir", str(data)],
            env=env,
            cwd=tmp,
            preexec_fn=_limit,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://{host}:{client_port}/_matrix/client/versions"
        try:
            while _timed_get(url) is None:
                time.sleep(0.1)
            print(f"descriptors at rest: {_fds(proc.pid)}")
            during: list[float | None] = []

            def storm() -> None:
                for _ in range(275):
                    with socket.create_connection((host, client_port), timeout=10):
                        pass

            start = time.monotonic()
            threads = [threading.Thread(target=storm) for _ in range(4)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                during.append(_timed_get(url))
            for t in threads:
                t.join()
            took = time.monotonic() - start
            after = _fds(proc.pid)
            served = [d for d in during if d is not None]
            print(f"storm: 1,100 connect-and-close in {took:.1f} s")
            print(f"descriptors right after: {after}")
            print(
                f"normal requests during: {len(served)}/{len(during)} served, "
                f"slowest {max(served, default=float('nan')):.3f} s"
            )
            time.sleep(5)
            print(f"descriptors 5 s later: {_fds(proc.pid)}")
            print(f"normal request after: {_timed_get(url)}")

            sock = socket.create_connection((host, client_port))
            sock.sendall(
                b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            sock.settimeout(args.cap)
            start = time.monotonic()
            try:
                while sock.recv(65536):
                    pass
                print(f"stalled body: closed by the relay after {time.monotonic() - start:.1f} s")
            except TimeoutError:
                print(f"stalled body: still open after {args.cap:.0f} s")
            finally:
                sock.close()
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
