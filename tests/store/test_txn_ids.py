"""store.txn_ids and store.fed_txns: retries get the first answer, never a second event."""

from __future__ import annotations

import sqlite3

from store import db, fed_txns, txn_ids

KEY = {"user_id": "@a:kit.example", "device_id": "PHONE", "scope": "send:!r:k", "txn_id": "t1"}


def test_send_same_txn_id_returns_same_event_id(conn: sqlite3.Connection) -> None:
    assert txn_ids.get_txn(conn, **KEY) is None
    with db.write(conn):
        assert txn_ids.put_txn(conn, **KEY, result="$first", now_ms=1) == "$first"
    with db.write(conn):
        assert txn_ids.put_txn(conn, **KEY, result="$second", now_ms=2) == "$first"
    assert txn_ids.get_txn(conn, **KEY) == "$first"
    assert conn.execute("SELECT count(*) FROM client_txn_ids").fetchone()[0] == 1


def test_txn_ids_are_scoped_to_device_and_endpoint(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        txn_ids.put_txn(conn, **KEY, result="$a", now_ms=1)
        txn_ids.put_txn(conn, **{**KEY, "device_id": "LAPTOP"}, result="$b", now_ms=1)
        txn_ids.put_txn(conn, **{**KEY, "scope": "send:!other:k"}, result="$c", now_ms=1)
    assert txn_ids.get_txn(conn, **KEY) == "$a"
    assert txn_ids.get_txn(conn, **{**KEY, "device_id": "LAPTOP"}) == "$b"
    assert txn_ids.get_txn(conn, **{**KEY, "scope": "send:!other:k"}) == "$c"


def test_rolled_back_txn_id_is_not_remembered(conn: sqlite3.Connection) -> None:
    try:
        with db.write(conn):
            txn_ids.put_txn(conn, **KEY, result="$lost", now_ms=1)
            raise RuntimeError
    except RuntimeError:
        pass
    assert txn_ids.get_txn(conn, **KEY) is None


def test_prune_txn_ids(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        txn_ids.put_txn(conn, **KEY, result="$old", now_ms=1)
        txn_ids.put_txn(conn, **{**KEY, "txn_id": "t2"}, result="$new", now_ms=100)
        assert txn_ids.prune_txns(conn, older_than_ms=50) == 1
    assert txn_ids.get_txn(conn, **KEY) is None
    assert txn_ids.get_txn(conn, **{**KEY, "txn_id": "t2"}) == "$new"


def test_federation_txn_retry_gets_stored_response(conn: sqlite3.Connection) -> None:
    assert fed_txns.get_txn(conn, origin="up.example", txn_id="1") is None
    with db.write(conn):
        first = fed_txns.put_txn(conn, origin="up.example", txn_id="1", response="{}", now_ms=1)
        again = fed_txns.put_txn(
            conn, origin="up.example", txn_id="1", response='{"x":1}', now_ms=2
        )
        fed_txns.put_txn(conn, origin="peer.example", txn_id="1", response="[]", now_ms=3)
    assert first == again == "{}"
    assert fed_txns.get_txn(conn, origin="up.example", txn_id="1") == "{}"
    assert fed_txns.get_txn(conn, origin="peer.example", txn_id="1") == "[]"
    with db.write(conn):
        assert fed_txns.prune_txns(conn, older_than_ms=2) == 1
    assert fed_txns.get_txn(conn, origin="up.example", txn_id="1") is None


def test_event_txn_id_is_read_only_by_the_sending_device(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        txn_ids.put_event_txn_id(
            conn, event_id="$e", user_id="@a:k", device_id="PHONE", txn_id="t1"
        )
        txn_ids.put_event_txn_id(
            conn, event_id="$e", user_id="@a:k", device_id="PHONE", txn_id="t2"
        )
    assert txn_ids.event_txn_id(conn, "$e", "@a:k", "PHONE") == "t1"
    assert txn_ids.event_txn_id(conn, "$e", "@a:k", "LAPTOP") is None
    assert txn_ids.event_txn_id(conn, "$e", "@b:k", "PHONE") is None
