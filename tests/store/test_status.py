"""store.status: the numbers `relay status` shows."""

from __future__ import annotations

import sqlite3

from store import accounts, db, events, outbox, rooms, status


def test_counts_and_statistics(conn: sqlite3.Connection) -> None:
    assert status.counts(conn) == {"users": 0, "rooms": 0, "events": 0}
    with db.write(conn):
        accounts.create_user(conn, user_id="@a:k", password=None, now_ms=1)
        rooms.create_room(conn, room_id="!r:k", room_version="11", creator="@a:k", now_ms=1)
        stream = events.next_stream_ordering(conn)
        events.insert_event(
            conn,
            event_id="$e",
            room_id="!r:k",
            type="m.room.create",
            state_key="",
            sender="@a:k",
            origin_server_ts=1,
            depth=1,
            raw=b"{}",
            stream_ordering=stream,
            prev_event_ids=[],
            auth_event_ids=[],
            received_ts=1,
        )
        outbox.enqueue(conn, destination="up.example", kind="pdu", payload=b"{}", now_ms=1)
    with db.read(conn):
        assert status.counts(conn) == {"users": 1, "rooms": 1, "events": 1}
        assert status.statistics(conn) == {
            "users": 1,
            "rooms": 1,
            "events": 1,
            "stream_position": stream,
            "outbox": 1,
        }


def test_snapshot_reads_in_one_transaction(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        outbox.enqueue(conn, destination="up.example", kind="pdu", payload=b"{}", now_ms=1)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        snap = status.snapshot(conn)
    finally:
        conn.set_trace_callback(None)
    assert snap["counts"] == {"users": 0, "rooms": 0, "events": 0}
    assert snap["depths"] == {"up.example": 1}
    assert [d["destination"] for d in snap["destinations"]] == ["up.example"]
    assert set(snap["media"]) >= {"local_media", "remote_media", "thumbnails"}
    # One BEGIN first, one COMMIT last, every query between them.
    verbs = [s.split(None, 1)[0].upper() for s in statements]
    assert verbs[0] == "BEGIN" and verbs[-1] == "COMMIT"
    assert verbs.count("BEGIN") == 1 and verbs.count("COMMIT") == 1
    assert not conn.in_transaction


def test_database_lists_every_table_with_its_rows(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        for n in range(3):
            outbox.enqueue(conn, destination="up.example", kind="pdu", payload=b"{}", now_ms=n)
        accounts.create_user(conn, user_id="@a:k", password=None, now_ms=1)
    with db.read(conn):
        found = status.database(conn)
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    assert found["schema_version"] == db.known_schema_version()
    assert found["bytes"] > 0 and found["bytes"] % 512 == 0
    assert set(found["rows"]) == tables
    assert found["rows"]["federation_outbox"] == 3
    assert found["rows"]["users"] == 1
    assert found["rows"]["events"] == 0
    assert next(iter(found["rows"])) == "federation_outbox"  # largest first
