"""store.redactions: which events claim to redact which, with their fate."""

from __future__ import annotations

import sqlite3
from typing import Any

from store import db, events, redactions

ROOM = "!room:kit.example"


def _redaction(conn: sqlite3.Connection, event_id: str, redacts: str, **flags: Any) -> None:
    with db.write(conn):
        stream = events.next_stream_ordering(conn)
        events.insert_event(
            conn,
            event_id=event_id,
            room_id=ROOM,
            type="m.room.redaction",
            state_key=None,
            sender="@alice:kit.example",
            origin_server_ts=1000,
            depth=1,
            raw=b"{}",
            stream_ordering=stream,
            prev_event_ids=[],
            auth_event_ids=[],
            received_ts=2000,
            **flags,
        )
        redactions.insert_redaction(conn, event_id=event_id, redacts=redacts)


def test_every_redaction_of_an_event_is_listed_oldest_first_with_its_fate(
    conn: sqlite3.Connection,
) -> None:
    # The target ($msg) is not stored: a redaction may arrive before it.
    _redaction(conn, "$r1", "$msg", rejected_reason="auth events: no")
    _redaction(conn, "$r2", "$msg", soft_failed=True)
    _redaction(conn, "$r3", "$msg")
    _redaction(conn, "$other", "$elsewhere")
    with db.read(conn):
        rows = redactions.redactions_of(conn, "$msg")
        none = redactions.redactions_of(conn, "$nothing")
    assert rows == [
        redactions.RedactionRow("$r1", rejected=True, soft_failed=False),
        redactions.RedactionRow("$r2", rejected=False, soft_failed=True),
        redactions.RedactionRow("$r3", rejected=False, soft_failed=False),
    ]
    assert none == []


def test_inserting_a_redaction_twice_keeps_one_row(conn: sqlite3.Connection) -> None:
    _redaction(conn, "$r1", "$msg")
    with db.write(conn):
        redactions.insert_redaction(conn, event_id="$r1", redacts="$msg")
    with db.read(conn):
        assert [r.event_id for r in redactions.redactions_of(conn, "$msg")] == ["$r1"]


def test_one_redaction_is_found_by_its_own_id_with_its_fate(conn: sqlite3.Connection) -> None:
    _redaction(conn, "$r1", "$msg", soft_failed=True)
    _redaction(conn, "$r2", "$msg")
    with db.read(conn):
        assert redactions.redaction_row(conn, "$r1") == redactions.RedactionRow(
            "$r1", rejected=False, soft_failed=True
        )
        assert redactions.redaction_row(conn, "$r2") == redactions.RedactionRow(
            "$r2", rejected=False, soft_failed=False
        )
        # The twin: the target's id, or any other event's, is no redaction.
        assert redactions.redaction_row(conn, "$msg") is None
