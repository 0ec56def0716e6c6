"""store.events: storing events with their edges, the stream, extremities, pagination."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from store import db, events
from store.errors import EventExists

ROOM = "!room:kit.example"


def _store(
    conn: sqlite3.Connection,
    event_id: str,
    prevs: list[str],
    *,
    depth: int = 1,
    room_id: str = ROOM,
    extremities: bool = True,
    **flags: Any,
) -> int:
    with db.write(conn):
        stream = events.next_stream_ordering(conn)
        events.insert_event(
            conn,
            event_id=event_id,
            room_id=room_id,
            type="m.room.message",
            state_key=None,
            sender="@alice:kit.example",
            origin_server_ts=1000 + stream,
            depth=depth,
            raw=b'{"event":"' + event_id.encode() + b'"}',
            stream_ordering=stream,
            prev_event_ids=prevs,
            auth_event_ids=["$create", "$power"],
            received_ts=2000 + stream,
            **flags,
        )
        if extremities:
            events.update_forward_extremities(conn, room_id, event_id, prevs)
    return stream


def test_stream_orderings_increase_and_survive_in_max(conn: sqlite3.Connection) -> None:
    assert events.max_stream_ordering(conn) == 0
    first = _store(conn, "$a", [])
    second = _store(conn, "$b", ["$a"], depth=2)
    assert second > first
    assert events.max_stream_ordering(conn) == second


def test_rolled_back_write_gives_its_stream_ordering_back(conn: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError), db.write(conn):
        events.next_stream_ordering(conn)
        raise RuntimeError
    assert events.max_stream_ordering(conn) == 0


def test_insert_event_keeps_raw_bytes_and_edges(conn: sqlite3.Connection) -> None:
    raw = b'{"content":{"body":"\xc3\xa9"},"type":"m.room.message"}'
    with db.write(conn):
        events.insert_event(
            conn,
            event_id="$x",
            room_id=ROOM,
            type="m.room.member",
            state_key="@alice:kit.example",
            sender="@alice:kit.example",
            origin_server_ts=5,
            depth=3,
            raw=raw,
            stream_ordering=events.next_stream_ordering(conn),
            prev_event_ids=["$p2", "$p1"],
            auth_event_ids=["$a1"],
            rejected_reason="auth",
            outlier=True,
            received_ts=6,
        )
    assert events.get_event_raw(conn, "$x") == raw
    assert events.get_event_raw(conn, "$missing") is None
    assert events.get_prev_event_ids(conn, "$x") == ["$p1", "$p2"]
    assert events.get_auth_event_ids(conn, "$x") == ["$a1"]
    row = events.get_event_row(conn, "$x")
    assert row is not None
    assert "raw" not in row
    assert row["state_key"] == "@alice:kit.example"
    assert row["rejected_reason"] == "auth"
    assert row["outlier"] is True and row["soft_failed"] is False
    assert (row["depth"], row["origin_server_ts"], row["received_ts"]) == (3, 5, 6)
    assert events.get_event_row(conn, "$missing") is None
    assert events.count_events(conn) == 1


def test_insert_same_event_twice_raises_event_exists(conn: sqlite3.Connection) -> None:
    _store(conn, "$a", [])
    with pytest.raises(EventExists):
        _store(conn, "$a", [])
    assert events.count_events(conn) == 1


def test_have_events_and_batch_reads(conn: sqlite3.Connection) -> None:
    _store(conn, "$a", [])
    _store(conn, "$b", ["$a"], depth=2)
    wanted = ["$a", "$b", "$c", *(f"$n{i}" for i in range(1200))]
    assert events.have_events(conn, wanted) == {"$a", "$b"}
    assert events.have_events(conn, []) == set()
    assert set(events.get_events_raw(conn, wanted)) == {"$a", "$b"}
    assert events.get_depths(conn, ["$a", "$b", "$c"]) == {"$a": 1, "$b": 2}


def test_forward_extremities_follow_the_dag(conn: sqlite3.Connection) -> None:
    _store(conn, "$create", [])
    assert events.get_forward_extremities(conn, ROOM) == ["$create"]
    _store(conn, "$a", ["$create"], depth=2)
    assert events.get_forward_extremities(conn, ROOM) == ["$a"]
    # a fork: two events on the same parent
    _store(conn, "$b1", ["$a"], depth=3)
    _store(conn, "$b2", ["$a"], depth=3)
    assert events.get_forward_extremities(conn, ROOM) == ["$b1", "$b2"]
    # the merge
    _store(conn, "$m", ["$b1", "$b2"], depth=4)
    assert events.get_forward_extremities(conn, ROOM) == ["$m"]


def test_late_event_with_known_child_is_not_an_extremity(conn: sqlite3.Connection) -> None:
    _store(conn, "$a", [])
    _store(conn, "$c", ["$b"], depth=3)  # $b missing for now
    assert events.get_forward_extremities(conn, ROOM) == ["$a", "$c"]
    _store(conn, "$b", ["$a"], depth=2)  # arrives late via get_missing_events
    assert events.get_forward_extremities(conn, ROOM) == ["$c"]


def test_forward_extremity_update_looks_up_children_not_the_room(
    conn: sqlite3.Connection,
) -> None:
    # "Does a stored event name the new one as a prev?" starts from event_edges_prev;
    # searching events by room (events_room_stream) walked the whole history per send.
    for i in range(20):
        _store(conn, f"$m{i}", [f"$m{i - 1}"] if i else [], depth=i + 1)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        with db.write(conn):
            events.update_forward_extremities(conn, ROOM, "$m19", ["$m18"])
    finally:
        conn.set_trace_callback(None)
    (child,) = [s for s in statements if s.startswith("SELECT 1 FROM event_edges")]
    plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {child}")]
    assert plan[0].startswith("SEARCH ed USING INDEX event_edges_prev (prev_event_id=?)")
    assert not any("events_room" in step or step.startswith("SCAN") for step in plan)


def test_set_forward_extremities_replaces(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        events.set_forward_extremities(conn, ROOM, ["$x", "$y"])
        events.set_forward_extremities(conn, "!other:kit.example", ["$z"])
        events.set_forward_extremities(conn, ROOM, ["$y"])
    assert events.get_forward_extremities(conn, ROOM) == ["$y"]
    assert events.get_forward_extremities(conn, "!other:kit.example") == ["$z"]


def test_pagination_forwards_and_backwards(conn: sqlite3.Connection) -> None:
    streams = {}
    prev: list[str] = []
    for i in range(6):
        streams[f"$e{i}"] = _store(conn, f"$e{i}", prev, depth=i + 1)
        prev = [f"$e{i}"]
    _store(conn, "$elsewhere", [], room_id="!other:kit.example")
    s = [streams[f"$e{i}"] for i in range(6)]

    page = events.events_in_room_by_stream(conn, ROOM, 0, None, 3, "f")
    assert [e["event_id"] for e in page] == ["$e0", "$e1", "$e2"]
    assert page[0]["raw"] == b'{"event":"$e0"}'
    page = events.events_in_room_by_stream(conn, ROOM, s[2], s[4], 10, "f")
    assert [e["event_id"] for e in page] == ["$e3", "$e4"]

    page = events.events_in_room_by_stream(conn, ROOM, s[5], None, 2, "b")
    assert [e["event_id"] for e in page] == ["$e5", "$e4"]
    page = events.events_in_room_by_stream(conn, ROOM, s[3], s[0], 10, "b")
    assert [e["event_id"] for e in page] == ["$e3", "$e2", "$e1"]
    assert events.events_in_room_by_stream(conn, ROOM, 0, None, 0, "f") == []
    with pytest.raises(ValueError):
        events.events_in_room_by_stream(conn, ROOM, 0, None, 5, "x")  # type: ignore[arg-type]


def test_topological_pagination_orders_by_depth_then_stream(conn: sqlite3.Connection) -> None:
    # Stored out of depth order, as after gap filling: $late1/$late2 arrive last.
    for event_id, depth in [("$a", 1), ("$b", 2), ("$c", 4), ("$late1", 2), ("$late2", 3)]:
        _store(conn, event_id, [], depth=depth)
    so = {e: events.get_stream_orderings(conn, [e])[e] for e in ("$a", "$b", "$c", "$late1")}

    def ids(**kw: Any) -> list[str]:
        return [r["event_id"] for r in events.events_in_room_by_topology(conn, ROOM, **kw)]

    everything = ["$a", "$b", "$late1", "$late2", "$c"]
    assert ids(direction="f") == everything
    assert ids(direction="b") == everything[::-1]
    # Keys sit just after the event they name: "f" excludes it, "b" includes it.
    assert ids(direction="f", from_key=(2, so["$b"]), limit=2) == ["$late1", "$late2"]
    assert ids(direction="b", from_key=(2, so["$late1"] - 1)) == ["$b", "$a"]
    assert ids(direction="b", from_key=(4, so["$c"]), to_key=(2, so["$b"])) == [
        "$c",
        "$late2",
        "$late1",
    ]
    # A stream window keeps to what was stored in it, whatever the depth.
    assert ids(direction="b", max_stream=so["$c"]) == ["$c", "$b", "$a"]
    assert ids(direction="f", min_stream=so["$c"]) == ["$late1", "$late2"]
    with pytest.raises(ValueError):
        events.events_in_room_by_topology(conn, ROOM, direction="x")  # type: ignore[arg-type]


def test_topological_pagination_walks_the_depth_stream_index(conn: sqlite3.Connection) -> None:
    # No sort step: the index of migration 0009 gives the bounds and the order.
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT event_id FROM events WHERE room_id = ?"
        " AND (depth, stream_ordering) <= (?, ?) AND stream_ordering <= ?"
        " ORDER BY depth DESC, stream_ordering DESC LIMIT 10",
        (ROOM, 5, 5, 5),
    ).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "events_room_depth_stream" in details
    assert "TEMP B-TREE" not in details


def test_backfill_stream_orderings_count_down_below_every_other(conn: sqlite3.Connection) -> None:
    first = _store(conn, "$a", [])
    with db.write(conn):
        assert events.next_backfill_stream_ordering(conn) == -1
    with db.write(conn):
        stream = events.next_backfill_stream_ordering(conn)
        events.insert_event(
            conn,
            event_id="$old",
            room_id=ROOM,
            type="m.room.message",
            state_key=None,
            sender="@alice:kit.example",
            origin_server_ts=1,
            depth=1,
            raw=b"{}",
            stream_ordering=stream,
            prev_event_ids=[],
            auth_event_ids=[],
            received_ts=1,
        )
        assert events.next_backfill_stream_ordering(conn) == -2
    # The main stream is untouched: the next local event still comes after $a.
    assert _store(conn, "$b", ["$a"], depth=2) == first + 1


def test_backward_extremities_are_prevs_missing_or_only_outliers(conn: sqlite3.Connection) -> None:
    _store(conn, "$outlier", [], outlier=True, extremities=False)
    _store(conn, "$a", ["$outlier"], depth=5)
    _store(conn, "$b", ["$a", "$gone"], depth=6)
    _store(conn, "$c", ["$b"], depth=7)
    _store(conn, "$rejected", ["$also-gone"], depth=8, rejected_reason="auth")
    assert events.backward_extremities(conn, ROOM) == ["$gone", "$outlier"]
    assert events.backward_extremities(conn, ROOM, max_depth=5) == ["$outlier"]
    assert events.backward_extremities(conn, ROOM, event_ids=["$b", "$c"]) == ["$gone"]
    assert events.backward_extremities(conn, ROOM, event_ids=["$c"]) == []
    assert events.backward_extremities(conn, ROOM, limit=1) == ["$gone"]
    assert events.backward_extremities(conn, "!other:kit.example") == []


def test_pagination_hides_outliers_rejected_and_soft_failed(conn: sqlite3.Connection) -> None:
    _store(conn, "$ok", [])
    _store(conn, "$outlier", [], outlier=True, extremities=False)
    _store(conn, "$rejected", [], rejected_reason="auth", extremities=False)
    _store(conn, "$soft", [], soft_failed=True, extremities=False)
    visible = events.events_in_room_by_stream(conn, ROOM, 0, None, 10, "f")
    assert [e["event_id"] for e in visible] == ["$ok"]
    everything = events.events_in_room_by_stream(conn, ROOM, 0, None, 10, "f", include_hidden=True)
    assert len(everything) == 4
