"""store.relations: the relations index, its readers, and migration 0013 filling it for
events stored before it existed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from store import db, events, relations

ROOM = "!room:kit.example"


def _event(conn: sqlite3.Connection, event_id: str, content: dict[str, Any], **fields: Any) -> None:
    raw = json.dumps({"type": "m.room.message", "content": content, **fields}).encode()
    with db.write(conn):
        events.insert_event(
            conn,
            event_id=event_id,
            room_id=ROOM,
            type=fields.get("type", "m.room.message"),
            state_key=fields.get("state_key"),
            sender="@alice:kit.example",
            origin_server_ts=1000,
            depth=events.next_stream_ordering(conn),
            raw=raw,
            stream_ordering=events.max_stream_ordering(conn),
            prev_event_ids=[],
            auth_event_ids=[],
            received_ts=2000,
        )


def _rel(rel_type: str, parent: str, **extra: Any) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": rel_type, "event_id": parent, **extra}}


def test_migration_0013_indexes_the_relations_of_events_stored_before_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [step for step in db.migrations() if step[0] < 13]
    monkeypatch.setattr(db, "migrations", lambda: before)
    conn = db.open_database(db_path)
    monkeypatch.undo()
    try:
        assert db.schema_version(conn) == 12
        _event(conn, "$root", {"body": "root"})
        _event(conn, "$thread", _rel("m.thread", "$root"))
        _event(conn, "$like", _rel("m.annotation", "$root", key="👍"))
        _event(conn, "$badkey", _rel("m.annotation", "$root", key=3))
        _event(conn, "$state", _rel("m.reference", "$root"), state_key="")
        _event(conn, "$redaction", _rel("m.reference", "$root"), type="m.room.redaction")
        _event(conn, "$noid", {"m.relates_to": {"rel_type": "m.reference", "event_id": 1}})
        _event(conn, "$reply", {"m.relates_to": {"m.in_reply_to": {"event_id": "$root"}}})
        assert db.migrate(conn) == db.known_schema_version()
        rows = conn.execute(
            "SELECT event_id, relates_to_id, rel_type, aggregation_key FROM event_relations"
            " ORDER BY event_id"
        ).fetchall()
        assert [tuple(r) for r in rows] == [
            ("$badkey", "$root", "m.annotation", None),
            ("$like", "$root", "m.annotation", "👍"),
            ("$thread", "$root", "m.thread", None),
        ]
    finally:
        conn.close()


def test_children_leave_hidden_events_out_and_flag_claimed_redactions(
    conn: sqlite3.Connection,
) -> None:
    _event(conn, "$root", {"body": "root"})
    for event_id in ("$a", "$b"):
        _event(conn, event_id, _rel("m.thread", "$root"))
        with db.write(conn):
            relations.insert_relation(
                conn,
                event_id=event_id,
                room_id=ROOM,
                relates_to_id="$root",
                rel_type="m.thread",
                aggregation_key=None,
            )
    with db.write(conn):
        conn.execute("UPDATE events SET soft_failed = 1 WHERE event_id = '$b'")
        conn.execute("INSERT INTO redactions (event_id, redacts) VALUES ('$x', '$a')")
    with db.read(conn):
        rows = relations.relation_children(conn, ROOM, ["$root"], "m.thread")
        assert [(r["event_id"], r["redaction_claimed"]) for r in rows] == [("$a", True)]
        assert relations.has_relations(conn, "$root")
        assert relations.declares_relation(conn, "$a")
        assert not relations.declares_relation(conn, "$root")
