"""Benchmark the relay beside a real Synapse, in one run, on this machine.

    make bench            # or: .venv/bin/python -m tools.bench.run [--sends 500]

For each server: time from process start to the first served request, idle RSS,
send latency (sequential sends), delivery latency (a send until another user's
long-polling /sync returns it), throughput with 20 concurrent senders, RSS after
the run. Prints a Markdown table (paste into BENCHMARKS.md) and writes JSON to
tools/bench/results.json. Numbers, not assertions: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tools.relay_process import without_mdns
from tools.synapse_harness import Synapse, ensure_synapse_installed

ROOT = Path(__file__).resolve().parents[2]
V3 = "/_matrix/client/v3"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_first_request(url: str, start: float, proc: subprocess.Popen[bytes]) -> float:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited while starting ({url})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            time.sleep(0.005)


class Server:
    name: str
    client_url: str
    proc: subprocess.Popen[bytes]

    def login(self, localpart: str) -> str:
        r = httpx.post(
            f"{self.client_url}{V3}/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": "pw",
            },
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["access_token"]


class RelayServer(Server):
    name = "edge-relay"

    def __init__(self, tmp: Path) -> None:
        self.host = "127.0.0.31"
        self.port = free_port(self.host)
        fed = free_port(self.host)
        self.data = tmp / "relay"
        self.client_url = f"http://{self.host}:{self.port}"
        relay = [sys.executable, "-m", "relay.cli"]
        subprocess.run(
            [
                *relay,
                "init",
                "--data-dir",
                str(self.data),
                "--server-name",
                f"{self.host}:{fed}",
                "--client-listen",
                f"{self.host}:{self.port}",
                "--federation-listen",
                f"{self.host}:{fed}",
            ],
            check=True,
            capture_output=True,
        )
        conf = self.data / "relay.toml"
        text = conf.read_text()
        for key in ("login_per_second", "send_per_second"):
            text = text.replace(f"{key} = ", f"{key} = 0 #", 1)
        # A benchmark stays on loopback: no mDNS on the machine's networks.
        text = without_mdns(text)
        conf.write_text(text)
        self._relay = relay

    def start(self) -> float:
        start = time.monotonic()
        self.proc = subprocess.Popen(
            [*self._relay, "run", "--data-dir", str(self.data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return wait_first_request(f"{self.client_url}/_matrix/client/versions", start, self.proc)

    def add_user(self, localpart: str) -> None:
        subprocess.run(
            [
                *self._relay,
                "user",
                "add",
                "--data-dir",
                str(self.data),
                localpart,
                "--password",
                "pw",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class SynapseServer(Server):
    name = "synapse"

    def __init__(self, tmp: Path) -> None:
        host = "127.0.0.32"
        self.synapse = Synapse(tmp / "synapse", host, free_port(host), free_port(host))
        self.synapse.write_config()
        self.client_url = self.synapse.client_url

    def start(self) -> float:
        start = time.monotonic()
        self.synapse.start()
        self.proc = self.synapse.proc  # type: ignore[assignment]
        return wait_first_request(f"{self.client_url}/_matrix/client/versions", start, self.proc)

    def add_user(self, localpart: str) -> None:
        self.synapse.register(localpart)

    def stop(self) -> None:
        self.synapse.stop()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(
    server: Server, sends: int, deliveries: int, concurrent: int, per_sender: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"server": server.name}
    out["startup_s"] = server.start()
    time.sleep(5)
    out["idle_rss_mib"] = rss_mib(server.proc.pid)
    for user in ("alice", "bob"):
        server.add_user(user)
    alice = {"Authorization": f"Bearer {server.login('alice')}"}
    bob = {"Authorization": f"Bearer {server.login('bob')}"}
    http = httpx.Client(base_url=server.client_url, timeout=60)
    room = http.post(f"{V3}/createRoom", headers=alice, json={"preset": "public_chat"}).json()[
        "room_id"
    ]
    http.post(f"{V3}/rooms/{room}/join", headers=bob, json={}).raise_for_status()

    def send(client: httpx.Client, headers: dict[str, str], body: str) -> str:
        txn = f"{body}-{random.random()}"
        r = client.put(
            f"{V3}/rooms/{room}/send/m.room.message/{txn}",
            headers=headers,
            json={"msgtype": "m.text", "body": body},
        )
        r.raise_for_status()
        return r.json()["event_id"]

    latencies = []
    for i in range(sends):
        t = time.perf_counter()
        send(http, alice, f"seq{i}")
        latencies.append((time.perf_counter() - t) * 1000)
    out["send_ms_median"] = statistics.median(latencies)
    out["send_ms_p95"] = percentile(latencies, 95)

    # Delivery: bob long-polls /sync; alice sends; time until bob's sync returns the event.
    sync_client = httpx.Client(base_url=server.client_url, timeout=60)
    since = sync_client.get(f"{V3}/sync", headers=bob, params={"timeout": 0}).json()["next_batch"]
    delivery = []
    for i in range(deliveries):
        got: dict[str, Any] = {}
        ready = threading.Event()

        def poll(
            since_token: str = since,
            ready: threading.Event = ready,
            got: dict[str, Any] = got,
            i: int = i,
        ) -> None:
            token = since_token
            ready.set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                body = sync_client.get(
                    f"{V3}/sync", headers=bob, params={"since": token, "timeout": 30000}
                ).json()
                token = body["next_batch"]
                events = (
                    body.get("rooms", {})
                    .get("join", {})
                    .get(room, {})
                    .get("timeline", {})
                    .get("events", [])
                )
                if any(e.get("content", {}).get("body") == f"del{i}" for e in events):
                    got["t"] = time.perf_counter()
                    got["since"] = token
                    return

        th = threading.Thread(target=poll)
        th.start()
        ready.wait()
        time.sleep(0.05)  # let the long-poll reach the server
        t = time.perf_counter()
        send(http, alice, f"del{i}")
        th.join(40)
        if "t" in got:
            delivery.append((got["t"] - t) * 1000)
            since = got["since"]
    out["delivery_ms_median"] = statistics.median(delivery) if delivery else None
    out["delivery_ms_p95"] = percentile(delivery, 95) if delivery else None

    tokens = [{"Authorization": f"Bearer {server.login('alice')}"} for _ in range(concurrent)]

    def sender(headers: dict[str, str]) -> None:
        with httpx.Client(base_url=server.client_url, timeout=60) as c:
            for i in range(per_sender):
                send(c, headers, f"conc{i}")

    threads = [threading.Thread(target=sender, args=(h,)) for h in tokens]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    out["throughput_msgs_per_s"] = concurrent * per_sender / elapsed
    out["rss_after_mib"] = rss_mib(server.proc.pid)
    server.stop()
    return out


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=500)
    parser.add_argument("--deliveries", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--per-sender", type=int, default=50)
    parser.add_argument("--only", choices=["relay", "synapse"], default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        factories: list[tuple[str, Callable[[Path], Server]]] = [
            ("relay", RelayServer),
            ("synapse", SynapseServer),
        ]
        for key, factory in factories:
            if args.only and key != args.only:
                continue
            if key == "synapse":
                ensure_synapse_installed()
            results.append(
                measure(factory(tmp), args.sends, args.deliveries, args.concurrent, args.per_sender)
            )
    rows = [
        ("start to first request (s)", "startup_s"),
        ("idle RSS (MiB)", "idle_rss_mib"),
        (f"send latency median (ms, {args.sends} sequential)", "send_ms_median"),
        ("send latency p95 (ms)", "send_ms_p95"),
        (f"delivery to /sync median (ms, {args.deliveries})", "delivery_ms_median"),
        ("delivery to /sync p95 (ms)", "delivery_ms_p95"),
        (f"throughput, {args.concurrent} senders (msgs/s)", "throughput_msgs_per_s"),
        ("RSS after the run (MiB)", "rss_after_mib"),
    ]
    header = "| measure | " + " | ".join(r["server"] for r in results) + " |"
    print(
        f"{time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()})\n"
    )
    print(header)
    print("|" + " --- |" * (len(results) + 1))
    for label, key in rows:
        print(f"| {label} | " + " | ".join(fmt(r.get(key)) for r in results) + " |")
    (ROOT / "tools" / "bench" / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
