"""Acknowledged writes survive kill -9; retries with the same txn id never duplicate.

50 concurrent senders (one device each) write into one room; the relay is killed
with SIGKILL mid-stream and restarted; every send that got a 200 is stored, the
senders retry what was in flight with the same txn ids, and no message is stored
twice. The database passes `PRAGMA integrity_check`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import httpx

from tests.integration.conftest import login_device, make_relay, unlimit_rates

SENDERS = 50
V3 = "/_matrix/client/v3"


def test_kill_9_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    relay = make_relay(tmp_path)
    relay.init()
    unlimit_rates(relay)
    relay.start()
    try:
        relay.cli("user", "add", "alice", "--password", "pw")
        tokens = [login_device(relay.client_url, n) for n in range(SENDERS)]
        r = httpx.post(
            f"{relay.client_url}{V3}/createRoom",
            headers={"Authorization": f"Bearer {tokens[0]}"},
            json={},
        )
        room_id = r.json()["room_id"]

        acked: dict[str, str] = {}  # txn id -> event id
        in_flight: dict[int, str] = {}
        lock = threading.Lock()
        enough = threading.Event()

        def sender(n: int) -> None:
            with httpx.Client(
                base_url=relay.client_url,
                headers={"Authorization": f"Bearer {tokens[n]}"},
                timeout=30,
            ) as client:
                for i in range(10_000):
                    txn = f"t{n}-{i}"
                    in_flight[n] = txn
                    try:
                        r = client.put(
                            f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                            json={"msgtype": "m.text", "body": txn},
                        )
                    except httpx.HTTPError:
                        return  # the relay died under us; txn stays in flight
                    assert r.status_code == 200, r.text
                    with lock:
                        acked[txn] = r.json()["event_id"]
                        if len(acked) >= 600:
                            enough.set()

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
        for t in threads:
            t.start()
        assert enough.wait(120), "senders made no progress"
        relay.kill()  # SIGKILL, mid-stream
        for t in threads:
            t.join(60)
        assert len(acked) >= 600

        relay.start()
        # Retry every in-flight send with its txn id: stored ones answer with their id.
        retried: dict[str, str] = {}
        for n, txn in in_flight.items():
            if txn in acked:
                continue
            r = httpx.put(
                f"{relay.client_url}{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                headers={"Authorization": f"Bearer {tokens[n]}"},
                json={"msgtype": "m.text", "body": txn},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            retried[txn] = r.json()["event_id"]
        # A retry of an acknowledged send returns the same event id.
        some = sorted(acked)[:20]
        for txn in some:
            n = int(txn[1:].split("-")[0])
            r = httpx.put(
                f"{relay.client_url}{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                headers={"Authorization": f"Bearer {tokens[n]}"},
                json={"msgtype": "m.text", "body": txn},
                timeout=30,
            )
            assert r.json()["event_id"] == acked[txn]
        relay.stop()
    finally:
        relay.kill()

    conn = sqlite3.connect(relay.data_dir / "relay.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute(
        "SELECT event_id, raw FROM events WHERE room_id = ? AND type = 'm.room.message'",
        (room_id,),
    ).fetchall()
    bodies = [json.loads(raw)["content"]["body"] for _, raw in rows]
    stored_ids = {event_id for event_id, _ in rows}
    assert len(bodies) == len(set(bodies)), "a message was stored twice"
    missing = {txn for txn, event_id in acked.items() if event_id not in stored_ids}
    assert missing == set(), f"{len(missing)} acknowledged sends lost"
    assert set(retried.values()) <= stored_ids
    assert len(rows) == len(acked) + len(retried)
