"""The full-text index (store/search.py, the event_search migration): what the migration indexes of
the events stored before it, documents dropped, pages by rank and by time."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from store import db
from store import events as store_events
from store import search as store_search

ROOM = "!r:example.org"
KEYS = ["content.body", "content.name", "content.topic"]


def _insert(conn: sqlite3.Connection, n: int, type_: str, content: Any, **extra: Any) -> str:
    event_id = f"$e{n}"
    raw = json.dumps({"type": type_, "content": content}).encode()
    store_events.insert_event(
        conn,
        event_id=event_id,
        room_id=ROOM,
        type=type_,
        state_key="" if type_ in ("m.room.name", "m.room.topic") else None,
        sender="@a:example.org",
        origin_server_ts=1000 + n,
        depth=n,
        raw=raw,
        stream_ordering=n,
        prev_event_ids=[],
        auth_event_ids=[],
        received_ts=0,
        **extra,
    )
    return event_id


def _found(conn: sqlite3.Connection, word: str, keys: list[str] = KEYS) -> list[str]:
    hits = store_search.search_by_recent(conn, f'"{word}"', [ROOM], keys, 50)
    return [h.event_id for h in hits]


def test_the_migration_indexes_the_events_stored_before_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = db.migrations()
    [number] = [n for n, name, _ in steps if name.endswith("_event_search.sql")]
    before_search = [s for s in steps if s[0] < number]
    monkeypatch.setattr(db, "migrations", lambda: before_search)
    conn = db.open_database(db_path)
    assert db.schema_version(conn) == number - 1
    with db.write(conn):
        message = _insert(conn, 1, "m.room.message", {"msgtype": "m.text", "body": "old\0news"})
        name = _insert(conn, 2, "m.room.name", {"name": "old name"})
        topic = _insert(conn, 3, "m.room.topic", {"topic": "old topic"})
        _insert(conn, 4, "m.room.message", {"body": 5})
        _insert(conn, 5, "m.room.message", {"body": "old rejected"}, rejected_reason="auth")
        _insert(conn, 6, "m.room.encrypted", {"body": "old secret", "ciphertext": "x"})
        _insert(conn, 7, "m.reaction", {"body": "old"})
    monkeypatch.setattr(db, "migrations", lambda: steps)
    assert db.migrate(conn) >= number
    assert _found(conn, "old") == [topic, name, message]
    assert _found(conn, "news") == [message]
    assert _found(conn, "old", ["content.name"]) == [name]
    assert store_search.count_matches(conn, '"old"', [ROOM], KEYS) == 3
    conn.close()


def test_entries_are_found_until_dropped(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        first = _insert(conn, 1, "m.room.message", {"body": "tent tent"})
        second = _insert(conn, 2, "m.room.message", {"body": "tent and a long list of supplies"})
        for event_id, text in [(first, "tent tent"), (second, "tent and more")]:
            store_search.insert_search_entry(
                conn, event_id=event_id, room_id=ROOM, key="content.body", value=text
            )
    assert _found(conn, "tent") == [second, first]  # recent: newest first
    ranked = store_search.search_by_rank(conn, '"tent"', [ROOM], KEYS, 10)
    assert [h.event_id for h in ranked] == [first, second]  # closest first
    assert ranked[0].rank > ranked[1].rank
    below = store_search.search_by_recent(conn, '"tent"', [ROOM], KEYS, 10, before=(1002, 2))
    assert [h.event_id for h in below] == [first]
    assert store_search.search_by_recent(conn, '"tent"', ["!other:x"], KEYS, 10) == []
    with db.write(conn):
        store_search.delete_search_entry(conn, first)
        store_search.delete_search_entry(conn, "$never-indexed")
    assert _found(conn, "tent") == [second]
    assert store_search.count_matches(conn, '"tent"', [ROOM], KEYS) == 1
