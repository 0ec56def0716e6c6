"""store.peers: an unapproved peer that tries to federate is rejected, a trusted one is not."""

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


def test_only_a_pending_peer_is_rejected(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        _seen(conn, "pending.local", "pending")
        _seen(conn, "trusted.local", "trusted")
        assert peers.reject_pending_peer(conn, "pending.local", "tried to federate")
        assert not peers.reject_pending_peer(conn, "trusted.local", "tried to federate")
        assert not peers.reject_pending_peer(conn, "unknown.local", "tried to federate")
    pending = peers.get_peer(conn, "pending.local")
    trusted = peers.get_peer(conn, "trusted.local")
    assert pending is not None and pending["status"] == "rejected"
    assert pending["reason"] == "tried to federate"
    assert trusted is not None and trusted["status"] == "trusted" and trusted["reason"] is None
