"""store.device_inbox: an inbound to-device EDU is taken once per origin and message_id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store import db
from store import device_inbox as store_inbox


def test_remote_message_id_is_claimed_once_per_origin_even_after_reopening(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    with db.write(conn):
        assert store_inbox.claim_remote_message(conn, "a.example", "m1", 1)
        assert not store_inbox.claim_remote_message(conn, "a.example", "m1", 2)
        # Message ids are unique per origin only: another server may pick the same one.
        assert store_inbox.claim_remote_message(conn, "b.example", "m1", 3)
    conn.close()
    # A restart between an EDU and its retry must not deliver it twice.
    reopened = db.open_database(db_path)
    try:
        with db.write(reopened):
            assert not store_inbox.claim_remote_message(reopened, "a.example", "m1", 4)
    finally:
        reopened.close()
