"""What does one message cost when many people long-poll the room it lands in?

    .venv/bin/python -m tools.bench.fanout [--watchers 50] [--rate 5] [--seconds 20]
                                           [--only relay|synapse]

For each server (the relay, then a real Synapse, as tools.bench.run starts them): one
room, ``--watchers`` users joined to it, each long-polling ``/sync`` in its own thread;
one sender sends ``--rate`` messages a second for ``--seconds``. Reports the delay from
each send until every watcher has the message (p50/p95 over all deliveries and of the
last watcher per message), the server's CPU time per message (utime + stime from /proc,
around the sending phase) and its RSS. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tools.bench.history import cpu_seconds
from tools.bench.run import V3, RelayServer, Server, SynapseServer, percentile, rss_mib
from tools.synapse_harness import ensure_synapse_installed


def measure(
    server: Server, watchers: int, rate: float, seconds: float, profile: Path | None = None
) -> dict[str, Any]:
    spy_path = Path(sys.executable).parent / "py-spy"
    if profile is not None and not spy_path.exists():
        # Checked before the server starts: a failure later would leave it running.
        raise SystemExit(f"--profile needs py-spy at {spy_path} (pip install py-spy)")
    server.start()
    names = [f"w{i}" for i in range(watchers)]
    for name in ["sender", *names]:
        server.add_user(name)
    sender = {"Authorization": f"Bearer {server.login('sender')}"}
    http = httpx.Client(base_url=server.client_url, timeout=60)
    room = http.post(f"{V3}/createRoom", headers=sender, json={"preset": "public_chat"}).json()[
        "room_id"
    ]
    heads = [{"Authorization": f"Bearer {server.login(n)}"} for n in names]
    for h in heads:
        while True:
            r = http.post(f"{V3}/rooms/{room}/join", headers=h, json={})
            if r.status_code != 429:
                break
            time.sleep(r.json().get("retry_after_ms", 1000) / 1000)
        r.raise_for_status()

    sent_at: dict[str, float] = {}
    seen: dict[str, list[float]] = {}
    lock = threading.Lock()
    #: /sync answers the watchers got during the run (one per message each is ideal).
    answers = [0]
    stop = threading.Event()
    started = threading.Barrier(watchers + 1)

    def watch(headers: dict[str, str]) -> None:
        with httpx.Client(base_url=server.client_url, timeout=90) as c:
            token = c.get(f"{V3}/sync", headers=headers, params={"timeout": 0}).json()["next_batch"]
            started.wait()
            while not stop.is_set():
                try:
                    body = c.get(
                        f"{V3}/sync",
                        headers=headers,
                        params={"since": token, "timeout": 5000},
                    ).json()
                except httpx.HTTPError:
                    continue
                now = time.perf_counter()
                with lock:
                    answers[0] += 1
                token = body["next_batch"]
                room_body = body.get("rooms", {}).get("join", {}).get(room, {})
                for event in room_body.get("timeline", {}).get("events", []):
                    tag = event.get("content", {}).get("body", "")
                    if tag.startswith("fan"):
                        with lock:
                            seen.setdefault(tag, []).append(now)

    threads = [threading.Thread(target=watch, args=(h,), daemon=True) for h in heads]
    for th in threads:
        th.start()
    started.wait()
    time.sleep(1)
    count = int(rate * seconds)
    spy = None
    if profile is not None:
        # py-spy (pip install py-spy) samples the server during the sending phase only.
        spy = subprocess.Popen(
            [
                str(spy_path),
                *("record", "-o", str(profile), "-f", "raw", "-r", "50", "--gil"),
                *("-p", str(server.proc.pid)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
    cpu_before = cpu_seconds(server.proc.pid)
    with lock:
        answers[0] = 0
    begin = time.perf_counter()
    for i in range(count):
        due = begin + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        tag = f"fan{i}"
        sent_at[tag] = time.perf_counter()
        http.put(
            f"{V3}/rooms/{room}/send/m.room.message/{tag}-{random.random()}",
            headers=sender,
            json={"msgtype": "m.text", "body": tag},
        ).raise_for_status()
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        with lock:
            if all(len(seen.get(t, [])) >= watchers for t in sent_at):
                break
        time.sleep(0.1)
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    with lock:
        syncs = answers[0]
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    rss = rss_mib(server.proc.pid)
    stop.set()
    all_delays = [(t - sent_at[tag]) * 1000 for tag, ts in seen.items() for t in ts]
    last = [(max(ts) - sent_at[tag]) * 1000 for tag, ts in seen.items() if len(ts) >= watchers]
    delivered = sum(len(ts) for ts in seen.values())
    server.stop()
    return {
        "server": server.name,
        "messages": count,
        "delivered_share": delivered / (count * watchers),
        "delivery_ms_p50": percentile(all_delays, 50) if all_delays else None,
        "delivery_ms_p95": percentile(all_delays, 95) if all_delays else None,
        "to_all_ms_p50": percentile(last, 50) if last else None,
        "to_all_ms_p95": percentile(last, 95) if last else None,
        "cpu_ms_per_message": cpu * 1000 / count,
        "syncs_per_message_per_watcher": syncs / (count * watchers),
        "rss_mib": rss,
    }


ROWS = [
    ("messages delivered to every watcher (share)", "delivered_share"),
    ("delivery p50 (ms)", "delivery_ms_p50"),
    ("delivery p95 (ms)", "delivery_ms_p95"),
    ("delivery to all watchers p50 (ms)", "to_all_ms_p50"),
    ("delivery to all watchers p95 (ms)", "to_all_ms_p95"),
    ("server CPU per message (ms)", "cpu_ms_per_message"),
    ("/sync answers per message per watcher", "syncs_per_message_per_watcher"),
    ("RSS at the end (MiB)", "rss_mib"),
]


def run(
    watchers: int, rate: float, seconds: float, only: str | None, profile: Path | None = None
) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        factories: list[tuple[str, Callable[[Path], Server]]] = [
            ("relay", RelayServer),
            ("synapse", SynapseServer),
        ]
        for key, factory in factories:
            if only and key != only:
                continue
            if key == "synapse":
                ensure_synapse_installed()
            results.append(
                measure(factory(tmp), watchers, rate, seconds, profile if key == "relay" else None)
            )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=["relay", "synapse"], default=None)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw output (relay)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    results = run(args.watchers, args.rate, args.seconds, args.only, args.profile)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, load average {load[0]:.2f}; "
        f"{args.watchers} watchers, {args.rate}/s for {args.seconds} s\n"
    )
    print("| measure | " + " | ".join(r["server"] for r in results) + " |")
    print("|" + " --- |" * (len(results) + 1))
    for label, key in ROWS:
        cells = []
        for r in results:
            v = r.get(key)
            cells.append("n/a" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v))
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
