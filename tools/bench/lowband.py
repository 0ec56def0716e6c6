"""Slow links (issue 17): the relay sending to a stock Synapse beside Synapse sending to
Synapse, over the same emulated link (tools/linkemu), in one run.

    make bench-lowband      # or: .venv/bin/python -m tools.bench.lowband [--profiles 9.6k,64k]

By default: 9.6 and 256 kbit/s (300 ms) for every pair, and relay -> relay again over each
with 1 % loss each way (`--loss-pairs`). The load average (1 min) is sampled before and
after each pair and printed with the tables.

Per profile and per pair (kit -> hq: relay -> stock Synapse, Synapse -> Synapse, and
relay -> relay), in two network namespaces joined by the shaped veth:

- setup on the bare veth: hq's user makes a private room, the kit's user joins it;
- steady: the link is shaped and every connection across it cut (both pairs start cold);
  `--msgs` messages of 40 characters, `--gap` s apart; delivery = the kit's `PUT /send`
  returning -> hq's long-polling `/sync` returning the event; bytes per message and new TCP
  connections (each a TLS connection here) kit -> hq;
- idle: `--idle-s` s of nothing (past Synapse's 120 s pool timeout): background bytes per
  second, then one message: its delivery ("first message after idle");
- burst: `--burst` messages of 40 characters fired at once (a thread each): seconds from
  the last send until all are at hq;
- long burst: `--burst` messages of 1,000 characters: how many arrive within `--hopeless-s`,
  each once and in order, and when the last did.

Prints a Markdown table per profile (paste into BENCHMARKS.md) and writes JSON to --out.
Numbers, not assertions: nothing here fails a build. Needs root (namespaces).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tools.linkemu.link import EmulatedLink, inside
from tools.linkemu.pair import MakeSeat, open_seat_pair, relay_seat, synapse_seat
from tools.linkemu.profiles import UNSHAPED, Profile, profile
from tools.linkemu.seats import V3, RelaySeat, Seat, SeatUser, SynapseSeat
from tools.synapse_harness import ensure_synapse_installed

ROOT = Path(__file__).resolve().parents[2]
SYNC_FILTER = json.dumps({"room": {"timeline": {"limit": 100}}, "presence": {"types": []}})


class Arrivals:
    """hq's user long-polling /sync in a thread (inside hq's namespace): when each message
    body first arrived."""

    def __init__(self, user: SeatUser, room_id: str) -> None:
        self.user, self.room_id = user, room_id
        self.seen: dict[str, float] = {}
        self.order: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Arrivals:
        self._thread.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(40)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.user.token}"}
        with inside(self.user.seat.ns), httpx.Client(timeout=60, headers=headers) as http:
            url = f"{self.user.seat.client_url}{V3}/sync"
            since = http.get(url, params={"timeout": 0, "filter": SYNC_FILTER}).json()
            token = since["next_batch"]
            self._ready.set()
            while not self._stop.is_set():
                try:
                    params = {"timeout": 5000, "since": token, "filter": SYNC_FILTER}
                    body = http.get(url, params=params).json()
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                now = time.monotonic()
                token = body.get("next_batch", token)
                room = body.get("rooms", {}).get("join", {}).get(self.room_id, {})
                for event in room.get("timeline", {}).get("events", []):
                    text = event.get("content", {}).get("body")
                    if event.get("type") == "m.room.message" and isinstance(text, str):
                        self.order.append(text)
                        self.seen.setdefault(text, now)

    def wait(self, bodies: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(b in self.seen for b in bodies):
                return True
            time.sleep(0.1)
        return False


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _text(seed: str, length: int) -> str:
    """`length` characters of made-up words (seeded): text that compresses about as well
    as a real message does, unlike one letter repeated."""
    rng = random.Random(seed)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(
            "".join(rng.choice("etaoinshrdlucmfwypvbgkjqxz") for _ in range(rng.randint(2, 9)))
        )
    return " ".join(words)[:length]


def short(tag: str, i: int) -> str:
    head = f"{tag} {i:03d} "
    return head + _text(head, 40 - len(head))


def long(tag: str, i: int) -> str:
    head = f"{tag} {i:03d} "
    return head + _text(head, 1000 - len(head))


#: A seat in a directory, as tools/linkemu/pair.py makes it.
PlanSeat = Callable[[Path], MakeSeat[Seat]]


def measure_pair(
    name: str,
    plan_hq: PlanSeat,
    plan_kit: PlanSeat,
    chosen: Profile,
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    out: dict[str, Any] = {"pair": name, "profile": chosen.label}
    with open_seat_pair("bn", tmp, plan_hq(tmp / "hq"), plan_kit(tmp / "kit")) as pair:
        link = pair.link
        hq, kit, room_id = pair.people_in_a_room("kit")
        say(f"{name}: room {room_id} joined over the bare veth")
        with Arrivals(hq, room_id) as arrivals:
            kit.send(room_id, "warm-up")
            arrivals.wait(["warm-up"], 60)
            link.shape(chosen)
            link.cut_connections()
            out.update(steady(link, kit, room_id, arrivals, args))
            say(f"{name}: steady {out['steady']}")
            if args.idle_s:
                out.update(idle(link, kit, room_id, arrivals, args))
                say(f"{name}: idle {out['idle']}")
            out.update(burst(link, kit, room_id, arrivals, args, "short", short))
            say(f"{name}: burst {out['burst_short']}")
            if args.long:
                out.update(burst(link, kit, room_id, arrivals, args, "long", long))
                say(f"{name}: long burst {out['burst_long']}")
            link.shape(UNSHAPED)
        out["drops"] = link.counters().dropped
    return out


def steady(
    link: EmulatedLink, kit: SeatUser, room_id: str, arrivals: Arrivals, args: argparse.Namespace
) -> dict[str, Any]:
    before = link.counters()
    sent: dict[str, float] = {}
    for i in range(args.msgs):
        body = short("steady", i)
        kit.send(room_id, body)
        sent[body] = time.monotonic()
        time.sleep(args.gap)
    arrivals.wait(list(sent), args.hopeless_s)
    used = link.counters() - before
    latencies = [arrivals.seen[b] - t for b, t in sent.items() if b in arrivals.seen]
    return {
        "steady": {
            "messages": args.msgs,
            "delivered": len(latencies),
            "p50_s": pct(latencies, 50),
            "p95_s": pct(latencies, 95),
            "bytes_per_message": used.bytes / max(1, args.msgs),
            "bytes_kit_to_hq_per_message": used.bytes_b_to_a / max(1, args.msgs),
            "new_connections_kit_to_hq": used.connections_from_b,
            "new_connections_hq_to_kit": used.connections_from_a,
        }
    }


def idle(
    link: EmulatedLink, kit: SeatUser, room_id: str, arrivals: Arrivals, args: argparse.Namespace
) -> dict[str, Any]:
    time.sleep(5)  # let the steady phase's last answers cross
    before = link.counters()
    time.sleep(args.idle_s)
    used = link.counters() - before
    body = short("after-idle", 0)
    kit.send(room_id, body)
    start = time.monotonic()
    arrivals.wait([body], args.hopeless_s)
    after = link.counters() - before
    return {
        "idle": {
            "seconds": args.idle_s,
            "background_bytes_per_s": used.bytes / args.idle_s,
            "new_connections_while_idle": used.connections_from_b + used.connections_from_a,
            "first_message_s": arrivals.seen[body] - start if body in arrivals.seen else None,
            "first_message_new_connections": (after - used).connections_from_b,
        }
    }


def burst(
    link: EmulatedLink,
    kit: SeatUser,
    room_id: str,
    arrivals: Arrivals,
    args: argparse.Namespace,
    kind: str,
    make: Callable[[str, int], str],
) -> dict[str, Any]:
    time.sleep(5)
    before = link.counters()
    bodies = [make(f"burst-{kind}", i) for i in range(args.burst)]
    # Fired at once, one thread each (as a busy team would): the kit queues them as fast as
    # it takes them.
    threads = [threading.Thread(target=kit.send, args=(room_id, b)) for b in bodies]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    last_sent = time.monotonic()
    arrivals.wait(bodies, args.hopeless_s)
    used = link.counters() - before
    delivered = [b for b in bodies if b in arrivals.seen]
    wanted = set(bodies)
    kit_order = [b for b in kit.recent_bodies(room_id, min(100, args.burst + 5)) if b in wanted]
    hq_order = [b for b in arrivals.order if b in wanted]
    return {
        f"burst_{kind}": {
            "messages": args.burst,
            "delivered": len(delivered),
            # In the order the kit's own timeline has them, each once.
            "each_once_in_order": hq_order == kit_order and len(kit_order) == len(bodies),
            "sending_s": last_sent - start,
            "all_delivered_after_last_send_s": (
                max(arrivals.seen[b] for b in bodies) - last_sent
                if len(delivered) == len(bodies)
                else None
            ),
            "bytes_per_message": used.bytes / max(1, args.burst),
            "new_connections_kit_to_hq": used.connections_from_b,
        }
    }


def relay_kit(directory: Path) -> MakeSeat[RelaySeat]:
    """The relay, its upstream the hq seat (`--upstream`, added by the pair)."""
    level = "DEBUG" if os.environ.get("BENCH_DEBUG") else "INFO"
    return relay_seat(directory, log_level=level)


def synapse_kit(directory: Path) -> MakeSeat[SynapseSeat]:
    return synapse_seat(directory, fast_retry=False)


def synapse_hq(directory: Path) -> MakeSeat[SynapseSeat]:
    """Stock retry settings: the upstream as deployed."""
    return synapse_seat(directory, fast_retry=False)


def relay_hq(directory: Path) -> MakeSeat[RelaySeat]:
    return relay_seat(directory)


#: --pairs key -> (column title, hq, kit)
PAIRS: dict[str, tuple[str, PlanSeat, PlanSeat]] = {
    "relay": ("relay -> Synapse", synapse_hq, relay_kit),
    "synapse": ("Synapse -> Synapse", synapse_hq, synapse_kit),
    "relay-relay": ("relay -> relay", relay_hq, relay_kit),
}


def say(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.2f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{value}{unit}"


def _cell(r: dict[str, Any], section: str, key: str) -> str:
    part = r.get(section) or {}
    if key == "p50/p95":
        return f"{fmt(part.get('p50_s'))} / {fmt(part.get('p95_s'))}"
    if key == "delivered":
        return f"{part.get('delivered')}/{part.get('messages')}"
    return fmt(part.get(key))


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    rows = [
        ("delivery p50 / p95 (s)", "steady", "p50/p95"),
        ("steady messages delivered", "steady", "delivered"),
        ("bytes on the wire per message (both ways)", "steady", "bytes_per_message"),
        ("  of which kit -> hq", "steady", "bytes_kit_to_hq_per_message"),
        (f"new TLS connections kit -> hq, {args.msgs} messages", "steady",
         "new_connections_kit_to_hq"),
    ]  # fmt: skip
    if args.idle_s:
        rows += [
            (f"idle background (B/s over {args.idle_s:g} s)", "idle", "background_bytes_per_s"),
            ("new connections while idle", "idle", "new_connections_while_idle"),
            ("first message after idle (s)", "idle", "first_message_s"),
        ]
    rows += [
        (f"burst of {args.burst} short: all delivered, s after the last send", "burst_short",
         "all_delivered_after_last_send_s"),
        ("  bytes per message", "burst_short", "bytes_per_message"),
    ]  # fmt: skip
    if args.long:
        rows += [
            (f"burst of {args.burst} x 1,000 chars: delivered (in {args.hopeless_s:g} s)",
             "burst_long", "delivered"),
            ("  each once, in order", "burst_long", "each_once_in_order"),
            ("  all delivered, s after the last send", "burst_long",
             "all_delivered_after_last_send_s"),
        ]  # fmt: skip
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_profile.setdefault(r["profile"], []).append(r)
    lines: list[str] = []
    for label, pair in by_profile.items():
        lines += [f"### {label}", "", "| | " + " | ".join(r["pair"] for r in pair) + " |"]
        lines.append("| --- |" + " --- |" * len(pair))
        for title, section, key in rows:
            cells = " | ".join(_cell(r, section, key) for r in pair)
            lines.append(f"| {title} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.lowband")
    parser.add_argument("--profiles", default="9.6k,256k", help="comma-separated, tools/linkemu")
    parser.add_argument(
        "--pairs", default="relay,synapse,relay-relay", help=f"of {', '.join(PAIRS)}"
    )
    parser.add_argument(
        "--loss-pairs",
        default="relay-relay",
        help="pairs also run over each profile's 1 %% loss variant ('' for none)",
    )
    parser.add_argument("--msgs", type=int, default=20)
    parser.add_argument("--gap", type=float, default=5.0)
    parser.add_argument("--idle-s", type=float, default=130.0)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--no-long", dest="long", action="store_false")
    parser.add_argument("--hopeless-s", type=float, default=240.0)
    parser.add_argument("--keep", type=Path, help="keep the servers' directories here")
    parser.add_argument("--out", type=Path, default=ROOT / "tools" / "bench" / "lowband.json")
    args = parser.parse_args(argv)
    ensure_synapse_installed()
    EmulatedLink.check_available()
    results = []
    runs = [
        (name, key) for name in args.profiles.split(",") for key in args.pairs.split(",") if key
    ]
    runs += [
        (f"{name}-loss", key)
        for name in args.profiles.split(",")
        for key in args.loss_pairs.split(",")
        if key and not name.endswith("-loss")
    ]
    load = [os.getloadavg()[0]]
    for profile_name, key in runs:
        chosen = profile(profile_name)
        name, plan_hq, plan_kit = PAIRS[key]
        say(f"{name} over {chosen.label}")
        if args.keep is not None:  # the servers' directories and logs stay there
            workdir = args.keep / f"{profile_name}-{key}"
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(measure_pair(name, plan_hq, plan_kit, chosen, args, workdir))
        else:
            with tempfile.TemporaryDirectory(prefix="bench-lowband-") as tmp:
                results.append(measure_pair(name, plan_hq, plan_kit, chosen, args, Path(tmp)))
        load.append(os.getloadavg()[0])
    report = {
        "load_average_1min": {"min": min(load), "max": max(load), "samples": load},
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=1))
    print(table(results, args))
    print(f"load average (1 min) during the run: {min(load):.1f} to {max(load):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
