"""The full-text index's costs as history grows (store/search.py, the event_search migration).

Fills a fresh database with N messages (words drawn from a 2,000-word vocabulary, one
word, "common", in every tenth message, one, "rare", in one message of 10,000), and
prints: the time to store and index them (per message, in batches of 1,000 per write);
then, for "common" and "rare", the median time of the count, a `rank` page (the best
500) and a `recent` page of 20 (newest first, the query `POST /search` runs) over 20
runs. The index only: visibility and formatting are the same per-result reads as
/messages. Numbers only: nothing here is a test.

    .venv/bin/python -m tools.bench.search [--messages 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from store import db
from store import events as store_events
from store import search as store_search

ROOM = "!bench:example.org"
KEYS = ["content.body", "content.name", "content.topic"]


def _fill(conn: sqlite3.Connection, n: int) -> float:
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(2000)]
    start = time.perf_counter()
    for first in range(0, n, 1000):
        with db.write(conn):
            for i in range(first, min(first + 1000, n)):
                words = rng.choices(vocabulary, k=8)
                if i % 10 == 0:
                    words.append("common")
                if i % 10_000 == 5_000:
                    words.append("rare")
                body = " ".join(words)
                event_id = f"$e{i}"
                store_events.insert_event(
                    conn,
                    event_id=event_id,
                    room_id=ROOM,
                    type="m.room.message",
                    state_key=None,
                    sender="@a:example.org",
                    origin_server_ts=1_000_000 + i,
                    depth=i + 1,
                    raw=json.dumps({"content": {"body": body}}).encode(),
                    stream_ordering=i + 1,
                    prev_event_ids=[],
                    auth_event_ids=[],
                    received_ts=0,
                )
                store_search.insert_search_entry(
                    conn, event_id=event_id, room_id=ROOM, key="content.body", value=body
                )
    return time.perf_counter() - start


def _median_ms(fn: Callable[[], object], runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _queries(conn: sqlite3.Connection, match: str, word: str) -> None:
    hits = store_search.count_matches(conn, match, [ROOM], KEYS)
    count = _median_ms(lambda: store_search.count_matches(conn, match, [ROOM], KEYS))
    rank = _median_ms(lambda: store_search.search_by_rank(conn, match, [ROOM], KEYS, 500))
    recent = _median_ms(lambda: store_search.search_by_recent(conn, match, [ROOM], KEYS, 20))
    print(
        f"  {word!r} ({hits} hits): count {count:.1f} ms, rank page {rank:.1f} ms,"
        f" recent page {recent:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    for n in args.messages:
        with tempfile.TemporaryDirectory() as tmp:
            conn = db.open_database(Path(tmp) / "bench.db", synchronous="NORMAL")
            fill_s = _fill(conn, n)
            print(
                f"{n} messages: stored and indexed in {fill_s:.1f} s "
                f"({fill_s / n * 1e6:.0f} us a message)"
            )
            for word in ("common", "rare"):
                _queries(conn, f'"{word}"', word)
            conn.close()


if __name__ == "__main__":
    main()
