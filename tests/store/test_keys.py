"""store.keys: the remote signing key cache."""

from __future__ import annotations

import sqlite3

from store import db, keys


def test_put_and_get_server_keys(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        keys.put_server_key(
            conn,
            server_name="up.example",
            key_id="ed25519:a",
            verify_key="Ab+cd",
            valid_until_ts=100,
            now_ms=10,
        )
        keys.put_server_key(
            conn,
            server_name="up.example",
            key_id="ed25519:old",
            verify_key="Zz",
            valid_until_ts=50,
            expired_ts=40,
            now_ms=10,
        )
    key = keys.get_server_key(conn, "up.example", "ed25519:a")
    assert key == {
        "server_name": "up.example",
        "key_id": "ed25519:a",
        "verify_key": "Ab+cd",
        "valid_until_ts": 100,
        "expired_ts": None,
        "fetched_ts": 10,
    }
    assert set(keys.get_server_keys(conn, "up.example")) == {"ed25519:a", "ed25519:old"}
    assert keys.get_server_key(conn, "up.example", "ed25519:zz") is None
    assert keys.get_server_keys(conn, "other.example") == {}


def test_refetch_replaces_key_inside_callers_transaction(conn: sqlite3.Connection) -> None:
    args = {"server_name": "up.example", "key_id": "ed25519:a", "verify_key": "Ab"}
    with db.write(conn):
        keys.put_server_key(conn, **args, valid_until_ts=100, now_ms=10)
    try:
        with db.write(conn):
            keys.put_server_key(conn, **args, valid_until_ts=999, now_ms=20)
            raise RuntimeError
    except RuntimeError:
        pass
    key = keys.get_server_key(conn, "up.example", "ed25519:a")
    assert key is not None and key["valid_until_ts"] == 100  # sqlite-utils did not commit
    with db.write(conn):
        keys.put_server_key(conn, **args, valid_until_ts=200, now_ms=30)
    key = keys.get_server_key(conn, "up.example", "ed25519:a")
    assert key is not None and (key["valid_until_ts"], key["fetched_ts"]) == (200, 30)
    with db.write(conn):
        assert keys.delete_server_keys(conn, "up.example") == 1
    assert keys.get_server_keys(conn, "up.example") == {}


def test_a_key_response_never_replaces_a_newer_one(conn: sqlite3.Connection) -> None:
    def put(body: str, valid_until_ts: int) -> bool:
        with db.write(conn):
            return keys.put_server_key_response(
                conn,
                server_name="up.example",
                response_json=body,
                valid_until_ts=valid_until_ts,
                from_server="up.example",
                now_ms=1,
            )

    assert put('{"v":2}', 200)
    assert not put('{"v":1}', 100)
    assert keys.get_server_key_response(conn, "up.example")["response_json"] == '{"v":2}'
    assert put('{"v":3}', 300)
    kept = keys.get_server_key_response(conn, "up.example")
    assert (kept["response_json"], kept["valid_until_ts"]) == ('{"v":3}', 300)
    with db.write(conn):
        keys.delete_server_keys(conn, "up.example")
    assert keys.get_server_key_response(conn, "up.example") is None
