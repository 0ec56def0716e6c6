"""Does a send cost more when the room's history is longer? The relay alone, one run.

    .venv/bin/python -m tools.bench.history [--sizes 1000 10000] [--sends 500]

Starts one relay process (as tools.bench.run does: rate limits off, no mDNS), creates
a room, and for each history size in turn: fills the room up to that many messages
(20 concurrent senders), then times ``--sends`` sequential ``PUT /send`` and reads the
relay's CPU time (utime + stime from /proc) around them. Prints one Markdown row per
size: messages/s and server CPU per message. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tools.bench.run import V3, RelayServer

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--sends", type=int, default=500)
    parser.add_argument("--fillers", type=int, default=20)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        server = RelayServer(Path(tmp_name))
        server.start()
        try:
            server.add_user("alice")
            headers = {"Authorization": f"Bearer {server.login('alice')}"}
            http = httpx.Client(base_url=server.client_url, timeout=60)
            room = http.post(
                f"{V3}/createRoom", headers=headers, json={"preset": "public_chat"}
            ).json()["room_id"]

            def send(client: httpx.Client, body: str) -> None:
                client.put(
                    f"{V3}/rooms/{room}/send/m.room.message/{body}-{random.random()}",
                    headers=headers,
                    json={"msgtype": "m.text", "body": body},
                ).raise_for_status()

            def fill(count: int) -> None:
                def worker(n: int) -> None:
                    with httpx.Client(base_url=server.client_url, timeout=60) as c:
                        for i in range(n):
                            send(c, f"fill{i}")

                share = [
                    count // args.fillers + (i < count % args.fillers) for i in range(args.fillers)
                ]
                threads = [threading.Thread(target=worker, args=(n,)) for n in share if n]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()

            stored = 0
            rows = []
            for size in sorted(args.sizes):
                fill(size - stored)
                stored = size
                cpu = cpu_seconds(server.proc.pid)
                t = time.perf_counter()
                for i in range(args.sends):
                    send(http, f"seq{i}")
                elapsed = time.perf_counter() - t
                cpu = cpu_seconds(server.proc.pid) - cpu
                stored += args.sends
                rows.append((size, args.sends / elapsed, cpu / args.sends * 1000))
        finally:
            server.stop()

    print(
        f"{time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores, "
        f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}, Python {platform.python_version()})\n"
    )
    print(
        f"| messages in the room | msgs/s ({args.sends} sequential) | relay CPU per message (ms) |"
    )
    print("| --- | --- | --- |")
    for size, rate, cpu_ms in rows:
        print(f"| {size} | {rate:.1f} | {cpu_ms:.1f} |")


if __name__ == "__main__":
    main()
