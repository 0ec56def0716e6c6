"""store.peers: a pending peer that tries to federate with the key it announced is rejected;
another key, a trusted peer or an unknown one changes nothing."""

from __future__ import annotations

import sqlite3

from store import db, peers


def _seen(conn: sqlite3.Connection, name: str, status: str) -> None:
    peers.upsert_peer(
        conn,
        server_name=name,
        address="127.0.0.2",
        port=8448,
        key_id="ed25519:a",
        verify_key="key",
        fingerprint="fp",
        status=status,
        version="1",
        reachable=True,
        reason=None,
        now_ms=1,
    )


def test_only_a_pending_peer_with_its_own_key_is_rejected(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        _seen(conn, "pending.local", "pending")
        _seen(conn, "trusted.local", "trusted")
        why = "tried to federate"
        assert not peers.reject_pending(conn, "pending.local", verify_key="other", reason=why)
        assert peers.reject_pending(conn, "pending.local", verify_key="key", reason=why)
        assert not peers.reject_pending(conn, "trusted.local", verify_key="key", reason=why)
        assert not peers.reject_pending(conn, "unknown.local", verify_key="key", reason=why)
    pending = peers.get_peer(conn, "pending.local")
    trusted = peers.get_peer(conn, "trusted.local")
    assert pending is not None and pending["status"] == "rejected"
    assert pending["reason"] == "tried to federate"
    assert trusted is not None and trusted["status"] == "trusted" and trusted["reason"] is None
