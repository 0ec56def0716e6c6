"""store.account_data, store.receipts, store.registration_tokens: small per-user tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store import account_data, db, events, receipts, registration_tokens

USER = "@a:kit.example"


def test_account_data_global_and_per_room_on_the_shared_stream(
    conn: sqlite3.Connection,
) -> None:
    with db.write(conn):
        s1 = events.next_stream_ordering(conn)
        account_data.set_account_data(
            conn, user_id=USER, type="m.push_rules", content='{"a":1}', stream_ordering=s1
        )
        s2 = events.next_stream_ordering(conn)
        account_data.set_account_data(
            conn,
            user_id=USER,
            room_id="!r:k",
            type="m.tag",
            content="{}",
            stream_ordering=s2,
        )
        s3 = events.next_stream_ordering(conn)
        account_data.set_account_data(
            conn, user_id=USER, type="m.push_rules", content='{"a":2}', stream_ordering=s3
        )
    assert account_data.get_account_data(conn, USER, "m.push_rules") == '{"a":2}'
    assert account_data.get_account_data(conn, USER, "m.tag", "!r:k") == "{}"
    assert account_data.get_account_data(conn, USER, "m.tag") is None
    since = account_data.account_data_since(conn, USER, s1)
    assert [(d["room_id"], d["type"]) for d in since] == [("!r:k", "m.tag"), ("", "m.push_rules")]
    assert events.max_stream_ordering(conn) == s3


def test_filters_get_increasing_ids_per_user(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        first = account_data.put_filter(conn, USER, '{"room":{}}')
        second = account_data.put_filter(conn, USER, "{}")
        other = account_data.put_filter(conn, "@b:k", "{}")
    assert (first, second, other) == ("0", "1", "0")
    assert account_data.get_filter(conn, USER, "0") == '{"room":{}}'
    assert account_data.get_filter(conn, USER, "7") is None
    assert account_data.get_filter(conn, USER, "not-a-number") is None


def test_receipts_replace_and_list_since(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        for n, event_id in enumerate(["$1", "$2"], start=1):
            receipts.set_receipt(
                conn,
                room_id="!r:k",
                receipt_type="m.read",
                user_id=USER,
                event_id=event_id,
                data='{"ts":1}',
                stream_ordering=n,
            )
        receipts.set_receipt(
            conn,
            room_id="!s:k",
            receipt_type="m.read",
            user_id=USER,
            event_id="$9",
            stream_ordering=3,
        )
    assert [r["event_id"] for r in receipts.get_receipts(conn, "!r:k")] == ["$2"]
    since = receipts.receipts_since(conn, ["!r:k", "!s:k"], 1)
    assert [r["event_id"] for r in since] == ["$2", "$9"]
    assert receipts.receipts_since(conn, ["!r:k"], 2) == []


def test_registration_token_uses_and_expiry(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        registration_tokens.create_token(conn, token="once", uses_allowed=1)
        registration_tokens.create_token(conn, token="old", expiry_time=100)
    assert registration_tokens.token_valid(conn, "once", now_ms=0)
    assert not registration_tokens.token_valid(conn, "old", now_ms=100)
    assert not registration_tokens.token_valid(conn, "missing", now_ms=0)
    with db.write(conn):
        assert registration_tokens.reserve_token(conn, "once", now_ms=0)
        assert not registration_tokens.reserve_token(conn, "once", now_ms=0)
        registration_tokens.release_token(conn, "once")
        assert registration_tokens.reserve_token(conn, "once", now_ms=0)
        registration_tokens.complete_token(conn, "once")
    token = registration_tokens.get_token(conn, "once")
    assert token is not None and (token["pending"], token["completed"]) == (0, 1)
    assert not registration_tokens.token_valid(conn, "once", now_ms=0)
    with db.write(conn):
        assert registration_tokens.delete_token(conn, "once")
    assert registration_tokens.get_token(conn, "once") is None


def test_registration_tokens_are_stored_hashed(conn: sqlite3.Connection) -> None:
    """A copy of relay.db holds no token anyone could register with."""
    secret = "Zm9vYmFyYmF6cXV4"
    with db.write(conn):
        registration_tokens.create_token(conn, token=secret, uses_allowed=2)
    dump = "\n".join(conn.iterdump())
    assert secret not in dump
    [row] = registration_tokens.list_tokens(conn)
    assert row["hint"] == secret[:4] and "token" not in row
    assert registration_tokens.token_valid(conn, secret, now_ms=0)


def test_migration_hashes_existing_registration_tokens(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "old.db")
    try:
        hashed = next(n for n, name, _ in db.migrations() if "registration_tokens_hashed" in name)
        shipped = db.migrations()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(db, "migrations", lambda: shipped[: hashed - 1])
            db.migrate(conn)
        with db.write(conn):
            conn.execute(
                "INSERT INTO registration_tokens (token, uses_allowed, pending, completed,"
                " expiry_time) VALUES ('old-token-from-v10', 5, 1, 2, NULL)"
            )
        db.migrate(conn)
        assert "old-token-from-v10" not in "\n".join(conn.iterdump())
        token = registration_tokens.get_token(conn, "old-token-from-v10")
        assert token is not None
        assert (token["hint"], token["uses_allowed"], token["pending"], token["completed"]) == (
            "old-",
            5,
            1,
            2,
        )
        assert registration_tokens.token_valid(conn, "old-token-from-v10", now_ms=0)
    finally:
        conn.close()
