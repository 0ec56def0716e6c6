"""Do the relay's costs stay flat as a team's history grows? Relay and Synapse, one run.

    make bench-scale     # or: .venv/bin/python -m tools.bench.scale
        [--history 1000 10000 100000] [--synapse-max 10000] [--sends 200] [--pages 100]
        [--rooms 10 100 500]
        [--watchers 50] [--rate 5] [--seconds 20] [--only relay|synapse]

For each server (started as tools.bench.run starts them):

- History: one room filled to each size (20 concurrent senders), then ``--sends``
  sequential sends (messages/s and server CPU per message, utime + stime from /proc),
  ``--pages`` ``/messages`` pages of 20 backwards from the newest and from random
  depths (p50/p95), one ``/context``, and the database's bytes per message.
- Rooms per user: a user in 10/100/500 rooms (one message each): initial sync time
  and bytes, then one new message in one room and the incremental sync after it.
- Fan-out: tools/bench/fanout.py (watchers long-polling one room at ``--rate``/s).

Prints Markdown tables with the date and load average (and keeps the figures so far in
tools/bench/scale-results.json); numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tools.bench import fanout
from tools.bench.history import cpu_seconds
from tools.bench.run import V3, RelayServer, Server, SynapseServer, percentile, rss_mib
from tools.synapse_harness import ensure_synapse_installed

FILLERS = 20
RESULTS = Path(__file__).with_name("scale-results.json")


def _database_bytes(server: Server) -> int:
    if isinstance(server, RelayServer):
        folder = server.data
    else:
        folder = server.synapse.directory  # type: ignore[attr-defined]
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and ".db" in p.name)


def _ms(f: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return (time.perf_counter() - t) * 1000, out


def _sender(server: Server, headers: dict[str, str], room: str) -> Callable[..., str]:
    def send(client: httpx.Client, body: str) -> str:
        r = client.put(
            f"{V3}/rooms/{room}/send/m.room.message/{body}-{random.random()}",
            headers=headers,
            json={"msgtype": "m.text", "body": body},
        )
        r.raise_for_status()
        return r.json()["event_id"]

    return send


def _fill(server: Server, send: Callable[..., str], count: int) -> None:
    def worker(n: int) -> None:
        with httpx.Client(base_url=server.client_url, timeout=120) as c:
            for i in range(n):
                send(c, f"fill{i}")

    share = [count // FILLERS + (i < count % FILLERS) for i in range(FILLERS)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in share if n]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def history(server: Server, sizes: list[int], sends: int, pages: int) -> list[dict[str, Any]]:
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        server.add_user("alice")
        headers = {"Authorization": f"Bearer {server.login('alice')}"}
        http = httpx.Client(base_url=server.client_url, timeout=120)
        room = http.post(
            f"{V3}/createRoom", headers=headers, json={"preset": "public_chat"}
        ).json()["room_id"]
        send = _sender(server, headers, room)
        stored = 0
        base_bytes = _database_bytes(server)
        for size in sorted(sizes):
            _fill(server, send, size - stored)
            stored = size
            cpu = cpu_seconds(server.proc.pid)
            t = time.perf_counter()
            last = ""
            for i in range(sends):
                last = send(http, f"seq{i}")
            elapsed = time.perf_counter() - t
            cpu = cpu_seconds(server.proc.pid) - cpu
            stored += sends
            page_ms: list[float] = []
            token = None
            for i in range(pages):
                params: dict[str, Any] = {"dir": "b", "limit": 20}
                if token is not None and i % 2:
                    params["from"] = token  # deeper into the history
                took, r = _ms(
                    lambda p=params: http.get(
                        f"{V3}/rooms/{room}/messages", headers=headers, params=p
                    )
                )
                r.raise_for_status()
                token = r.json().get("end")
                page_ms.append(took)
            context_ms, r = _ms(
                lambda event=last: http.get(
                    f"{V3}/rooms/{room}/context/{event}", headers=headers, params={"limit": 20}
                )
            )
            r.raise_for_status()
            rows.append(
                {
                    "server": server.name,
                    "messages": size,
                    "send_per_s": sends / elapsed,
                    "cpu_ms_per_send": cpu / sends * 1000,
                    "messages_p50_ms": percentile(page_ms, 50),
                    "messages_p95_ms": percentile(page_ms, 95),
                    "context_ms": context_ms,
                    "bytes_per_message": (_database_bytes(server) - base_bytes) / stored,
                    "rss_mib": rss_mib(server.proc.pid),
                }
            )
    finally:
        server.stop()
    return rows


def rooms_per_user(server: Server, counts: list[int]) -> list[dict[str, Any]]:
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        server.add_user("alice")
        headers = {"Authorization": f"Bearer {server.login('alice')}"}
        http = httpx.Client(base_url=server.client_url, timeout=300)
        rooms: list[str] = []
        for count in sorted(counts):
            while len(rooms) < count:
                room = http.post(
                    f"{V3}/createRoom", headers=headers, json={"preset": "private_chat"}
                ).json()["room_id"]
                _sender(server, headers, room)(http, "hello")
                rooms.append(room)
            initial: list[tuple[float, int]] = []
            since = ""
            for _ in range(3):
                # A new device each time: Synapse answers a repeated identical request
                # from its sync response cache (2 minutes) with the first answer.
                fresh = {"Authorization": f"Bearer {server.login('alice')}"}
                took, r = _ms(
                    lambda h=fresh: http.get(f"{V3}/sync", headers=h, params={"timeout": 0})
                )
                r.raise_for_status()
                initial.append((took, len(r.content)))
                since = r.json()["next_batch"]
            incremental: list[tuple[float, int]] = []
            for i in range(5):
                _sender(server, headers, random.choice(rooms))(http, f"new{i}")
                took, r = _ms(
                    lambda s=since: http.get(
                        f"{V3}/sync", headers=headers, params={"since": s, "timeout": 0}
                    )
                )
                r.raise_for_status()
                incremental.append((took, len(r.content)))
                since = r.json()["next_batch"]
            rows.append(
                {
                    "server": server.name,
                    "rooms": count,
                    "initial_ms": statistics.median(t for t, _ in initial),
                    "initial_kb": initial[-1][1] / 1024,
                    "incremental_ms": statistics.median(t for t, _ in incremental),
                    "incremental_kb": incremental[-1][1] / 1024,
                }
            )
    finally:
        server.stop()
    return rows


def _table(rows: list[dict[str, Any]], key: str, columns: list[tuple[str, str]]) -> None:
    servers = list(dict.fromkeys(r["server"] for r in rows))
    keys = sorted({r[key] for r in rows})
    print(
        "| "
        + key
        + " | "
        + " | ".join(f"{label} ({s})" for label, _ in columns for s in servers)
        + " |"
    )
    print("|" + " --- |" * (1 + len(columns) * len(servers)))
    for k in keys:
        cells = []
        for _, field in columns:
            for s in servers:
                found = [r for r in rows if r[key] == k and r["server"] == s]
                v = found[0].get(field) if found else None
                cells.append("n/a" if v is None else f"{v:.1f}")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print()


def _save(*parts: list[dict[str, Any]]) -> None:
    """The figures so far, so a run cut short (or failing on its last part) keeps them."""
    RESULTS.write_text(
        json.dumps(dict(zip(("history", "rooms", "fanout"), parts, strict=True)), indent=2)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument(
        "--synapse-max",
        type=int,
        default=10000,
        help="Synapse's history stops at this size (its fill at 100k takes hours here)",
    )
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--rooms", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=["relay", "synapse"], default=None)
    parser.add_argument("--skip", nargs="*", default=[], choices=["history", "rooms", "fanout"])
    args = parser.parse_args(argv)
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    factories: list[tuple[str, Callable[[Path], Server]]] = [
        ("relay", RelayServer),
        ("synapse", SynapseServer),
    ]
    hist: list[dict[str, Any]] = []
    rooms: list[dict[str, Any]] = []
    fan: list[dict[str, Any]] = []
    for key, factory in factories:
        if args.only and key != args.only:
            continue
        if key == "synapse":
            ensure_synapse_installed()
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for part in ("h", "r", "f"):
                (tmp / part).mkdir()
            if "history" not in args.skip:
                sizes = args.history
                if key == "synapse":
                    sizes = [size for size in sizes if size <= args.synapse_max]
                hist += history(factory(tmp / "h"), sizes, args.sends, args.pages)
                _save(hist, rooms, fan)
            if "rooms" not in args.skip:
                rooms += rooms_per_user(factory(tmp / "r"), args.rooms)
                _save(hist, rooms, fan)
            if "fanout" not in args.skip:
                fan.append(
                    fanout.measure(factory(tmp / "f"), args.watchers, args.rate, args.seconds)
                )
                _save(hist, rooms, fan)
    print(
        f"{started} UTC, load average {load[0]:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end ({os.cpu_count()} cores)\n"
    )
    if hist:
        _table(
            hist,
            "messages",
            [
                ("msgs/s", "send_per_s"),
                ("CPU ms/msg", "cpu_ms_per_send"),
                ("/messages p50 ms", "messages_p50_ms"),
                ("/messages p95 ms", "messages_p95_ms"),
                ("/context ms", "context_ms"),
                ("DB bytes/msg", "bytes_per_message"),
                ("RSS MiB", "rss_mib"),
            ],
        )
    if rooms:
        _table(
            rooms,
            "rooms",
            [
                ("initial ms", "initial_ms"),
                ("initial kB", "initial_kb"),
                ("incremental ms", "incremental_ms"),
                ("incremental kB", "incremental_kb"),
            ],
        )
    if fan:
        print("| fan-out | " + " | ".join(r["server"] for r in fan) + " |")
        print("|" + " --- |" * (len(fan) + 1))
        for label, key in fanout.ROWS:
            cells = []
            for r in fan:
                v = r.get(key)
                cells.append("n/a" if v is None else f"{v:.2f}")
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
