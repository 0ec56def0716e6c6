"""Benchmark Simplified Sliding Sync (MSC4186) on the relay beside a real Synapse.

    .venv/bin/python -m tools.bench.sliding [--rooms 50] [--initials 20] [--deliveries 50]

For each server: one user in `--rooms` rooms, each with a message; the time of a new
connection's first answer (a window of 20 rooms, timeline_limit 1, room name and lazy
members), and the delivery latency of a message to a long-polling connection (`pos`,
`timeout`). Prints a Markdown table; numbers, not assertions.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tools.bench.run import V3, RelayServer, Server, SynapseServer, percentile
from tools.synapse_harness import ensure_synapse_installed

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
BODY: dict[str, Any] = {
    "lists": {
        "all": {
            "ranges": [[0, 19]],
            "timeline_limit": 1,
            "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
        }
    }
}


def measure(server: Server, rooms: int, initials: int, deliveries: int) -> dict[str, Any]:
    server.start()
    try:
        return _measure(server, rooms, initials, deliveries)
    finally:
        server.stop()


def _measure(server: Server, rooms: int, initials: int, deliveries: int) -> dict[str, Any]:
    out: dict[str, Any] = {"server": server.name}
    for user in ("alice", "bob"):
        server.add_user(user)
    alice = {"Authorization": f"Bearer {server.login('alice')}"}
    bob = {"Authorization": f"Bearer {server.login('bob')}"}
    http = httpx.Client(base_url=server.client_url, timeout=60)
    room_ids = []
    for i in range(rooms):
        r = http.post(
            f"{V3}/createRoom", headers=alice, json={"preset": "public_chat", "name": f"r{i}"}
        )
        r.raise_for_status()
        room_id = r.json()["room_id"]
        http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={}).raise_for_status()
        http.put(
            f"{V3}/rooms/{room_id}/send/m.room.message/m{i}",
            headers=alice,
            json={"msgtype": "m.text", "body": f"m{i}"},
        ).raise_for_status()
        room_ids.append(room_id)
    times = []
    for i in range(initials):
        t = time.perf_counter()
        r = http.post(SS, headers=bob, params={"timeout": 0}, json={**BODY, "conn_id": f"c{i}"})
        r.raise_for_status()
        times.append((time.perf_counter() - t) * 1000)
    out["initial_ms_median"] = statistics.median(times)
    out["initial_ms_p95"] = percentile(times, 95)

    pos = http.post(SS, headers=bob, params={"timeout": 0}, json=BODY).json()["pos"]
    delivery = []
    for i in range(deliveries):
        got: dict[str, Any] = {}
        ready = threading.Event()

        def poll(
            start_pos: str = pos,
            got: dict[str, Any] = got,
            i: int = i,
            ready: threading.Event = ready,
        ) -> None:
            token = start_pos
            with httpx.Client(base_url=server.client_url, timeout=60) as c:
                ready.set()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    body = c.post(
                        SS, headers=bob, params={"timeout": 30000, "pos": token}, json=BODY
                    ).json()
                    token = body["pos"]
                    room = body.get("rooms", {}).get(room_ids[0], {})
                    if any(
                        e.get("content", {}).get("body") == f"d{i}"
                        for e in room.get("timeline", [])
                    ):
                        got["t"], got["pos"] = time.perf_counter(), token
                        return

        thread = threading.Thread(target=poll)
        thread.start()
        ready.wait()
        time.sleep(0.05)
        t = time.perf_counter()
        http.put(
            f"{V3}/rooms/{room_ids[0]}/send/m.room.message/d{i}",
            headers=alice,
            json={"msgtype": "m.text", "body": f"d{i}"},
        ).raise_for_status()
        thread.join(40)
        if "t" in got:
            delivery.append((got["t"] - t) * 1000)
            pos = got["pos"]
    out["delivery_ms_median"] = statistics.median(delivery) if delivery else None
    out["delivery_ms_p95"] = percentile(delivery, 95) if delivery else None
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--initials", type=int, default=20)
    parser.add_argument("--deliveries", type=int, default=50)
    parser.add_argument("--only", choices=["relay", "synapse"], default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for key, factory in (("relay", RelayServer), ("synapse", SynapseServer)):
            if args.only and key != args.only:
                continue
            if key == "synapse":
                ensure_synapse_installed()
            results.append(measure(factory(tmp), args.rooms, args.initials, args.deliveries))
    print(
        f"{time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores, "
        f"{platform.platform()}), {args.rooms} rooms\n"
    )
    print("| measure | " + " | ".join(r["server"] for r in results) + " |")
    print("|" + " --- |" * (len(results) + 1))
    rows = [
        (
            f"sliding sync first answer median (ms, {args.initials}, window of 20)",
            "initial_ms_median",
        ),
        ("sliding sync first answer p95 (ms)", "initial_ms_p95"),
        (
            f"delivery to a long-polling connection median (ms, {args.deliveries})",
            "delivery_ms_median",
        ),
        ("delivery p95 (ms)", "delivery_ms_p95"),
    ]
    for label, key in rows:
        values = [r.get(key) for r in results]
        print(
            f"| {label} | " + " | ".join("n/a" if v is None else f"{v:.1f}" for v in values) + " |"
        )


if __name__ == "__main__":
    main()
