"""store.outbox: per-destination ordering, batch limits, ack, destination status."""

from __future__ import annotations

import sqlite3

from store import db, outbox

PEER = "up.example"


def _enqueue(conn: sqlite3.Connection, kinds: str, destination: str = PEER) -> list[int]:
    """Queue one row per letter of ``kinds``: "p" a PDU, "e" an EDU."""
    ids = []
    with db.write(conn):
        for n, letter in enumerate(kinds):
            kind = "pdu" if letter == "p" else "edu"
            ids.append(
                outbox.enqueue(
                    conn,
                    destination=destination,
                    kind=kind,
                    payload=f"{kind}{n}".encode(),
                    event_id=f"$e{n}" if kind == "pdu" else None,
                    now_ms=n,
                )
            )
    return ids


def test_peek_returns_oldest_first_for_that_destination(conn: sqlite3.Connection) -> None:
    ids = _enqueue(conn, "pep")
    _enqueue(conn, "pp", destination="other.example")
    batch = outbox.peek(conn, PEER)
    assert [row["id"] for row in batch] == ids
    assert [row["kind"] for row in batch] == ["pdu", "edu", "pdu"]
    assert batch[0]["payload"] == b"pdu0"
    assert batch[0]["event_id"] == "$e0" and batch[1]["event_id"] is None
    assert batch[0]["attempts"] == 0
    assert outbox.peek(conn, "nobody.example") == []


def test_peek_caps_a_batch_at_50_pdus(conn: sqlite3.Connection) -> None:
    ids = _enqueue(conn, "p" * 120)
    batch = outbox.peek(conn, PEER)
    assert [row["id"] for row in batch] == ids[:50]


def test_peek_caps_a_batch_at_100_edus(conn: sqlite3.Connection) -> None:
    ids = _enqueue(conn, "e" * 130)
    batch = outbox.peek(conn, PEER)
    assert [row["id"] for row in batch] == ids[:100]


def test_peek_stops_at_the_first_row_over_a_limit(conn: sqlite3.Connection) -> None:
    # 50 PDUs, then an EDU, then a 51st PDU, then more EDUs: the batch is a prefix,
    # so acking its last id never drops the unsent 51st PDU.
    ids = _enqueue(conn, "p" * 50 + "e" + "p" + "e" * 5)
    batch = outbox.peek(conn, PEER)
    assert [row["id"] for row in batch] == ids[:51]
    with db.write(conn):
        outbox.ack(conn, PEER, batch[-1]["id"])
    rest = outbox.peek(conn, PEER)
    assert [row["id"] for row in rest] == ids[51:]
    assert rest[0]["kind"] == "pdu"


def test_peek_honours_custom_limits(conn: sqlite3.Connection) -> None:
    ids = _enqueue(conn, "ppeepp")
    batch = outbox.peek(conn, PEER, max_pdus=2, max_edus=1)
    assert [row["id"] for row in batch] == ids[:3]


def test_ack_deletes_up_to_and_including_id_for_that_destination(
    conn: sqlite3.Connection,
) -> None:
    ids = _enqueue(conn, "ppppp")
    other = _enqueue(conn, "pp", destination="other.example")
    with db.write(conn):
        assert outbox.ack(conn, PEER, ids[2]) == 3
    assert [row["id"] for row in outbox.peek(conn, PEER)] == ids[3:]
    assert outbox.depths(conn) == {PEER: 2, "other.example": 2}
    assert outbox.destinations_with_backlog(conn) == ["other.example", PEER]
    with db.write(conn):
        outbox.ack(conn, PEER, other[-1])  # ids are global; other's rows stay
    assert outbox.depths(conn) == {"other.example": 2}


def test_ack_rows_deletes_exactly_those_rows_of_that_destination(
    conn: sqlite3.Connection,
) -> None:
    ids = _enqueue(conn, "pepep")
    other = _enqueue(conn, "p", destination="other.example")
    with db.write(conn):
        assert outbox.ack_rows(conn, PEER, [ids[0], ids[2], ids[4], other[0]]) == 3
    assert [row["id"] for row in outbox.peek(conn, PEER)] == [ids[1], ids[3]]
    assert outbox.depths(conn) == {PEER: 2, "other.example": 1}


def test_note_attempt_counts_attempts(conn: sqlite3.Connection) -> None:
    ids = _enqueue(conn, "ppp")
    with db.write(conn):
        outbox.note_attempt(conn, PEER, ids[1])
        outbox.note_attempt(conn, PEER, ids[1])
    assert [row["attempts"] for row in outbox.peek(conn, PEER)] == [2, 2, 0]


def test_failures_back_off_and_success_resets(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        first = outbox.mark_failure(conn, PEER, now_ms=1_000)
        second = outbox.mark_failure(conn, PEER, now_ms=3_000)
        third = outbox.mark_failure(conn, PEER, now_ms=7_000, max_retry_ms=5_000)
    assert (first, second, third) == (outbox.MIN_RETRY_MS, 2 * outbox.MIN_RETRY_MS, 5_000)
    status = outbox.get_destination(conn, PEER)
    assert status is not None
    assert status["reachable"] is False
    assert status["failures"] == 3
    assert status["since_ts"] == 1_000  # unreachable since the first failure
    assert status["next_attempt_ts"] == 12_000
    with db.write(conn):
        outbox.mark_success(conn, PEER, now_ms=20_000)
    status = outbox.get_destination(conn, PEER)
    assert status is not None
    assert status["reachable"] is True
    assert (status["failures"], status["retry_interval_ms"]) == (0, 0)
    assert status["since_ts"] == status["last_success_ts"] == 20_000
    assert outbox.get_destination(conn, "nobody.example") is None


def test_reset_backoff_makes_destination_due(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        outbox.mark_failure(conn, PEER, now_ms=1_000)
        outbox.reset_backoff(conn, PEER)
    status = outbox.get_destination(conn, PEER)
    assert status is not None and status["next_attempt_ts"] == 1_000
    assert status["failures"] == 1


def test_destination_status_lists_known_and_backlogged(conn: sqlite3.Connection) -> None:
    _enqueue(conn, "pp")
    _enqueue(conn, "e", destination="fresh.example")
    with db.write(conn):
        outbox.mark_failure(conn, PEER, now_ms=1)
        outbox.mark_success(conn, "quiet.example", now_ms=2)
    status = {row["destination"]: row for row in outbox.destination_status(conn)}
    assert list(status) == ["fresh.example", "quiet.example", PEER]
    assert status[PEER]["backlog"] == 2 and status[PEER]["reachable"] is False
    assert status["quiet.example"]["backlog"] == 0
    assert status["fresh.example"]["backlog"] == 1
    assert status["fresh.example"]["reachable"] is True
    assert status["fresh.example"]["next_attempt_ts"] is None
