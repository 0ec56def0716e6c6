"""store.state: current state, and delta-encoded state before/after events."""

from __future__ import annotations

import sqlite3

import pytest

from store import db, state

ROOM = "!room:kit.example"
CREATE = ("m.room.create", "")
POWER = ("m.room.power_levels", "")


def test_current_state_set_get_replace(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        state.set_current_state(conn, ROOM, "m.room.create", "", "$create")
        state.set_current_state(conn, ROOM, "m.room.member", "@a:k", "$join")
        state.set_current_state(conn, ROOM, "m.room.member", "@a:k", "$leave")
    assert state.get_current_state(conn, ROOM) == {
        CREATE: "$create",
        ("m.room.member", "@a:k"): "$leave",
    }
    assert state.get_current_state_event_id(conn, ROOM, "m.room.member", "@a:k") == "$leave"
    assert state.get_current_state_event_id(conn, ROOM, "m.room.topic", "") is None
    with db.write(conn):
        state.replace_current_state(conn, ROOM, {CREATE: "$create", POWER: "$pl"})
        state.remove_current_state(conn, ROOM, *POWER)
    assert state.get_current_state(conn, ROOM) == {CREATE: "$create"}
    assert state.get_current_state(conn, "!unknown:k") == {}


def test_state_group_round_trips_and_shares_unchanged_state(conn: sqlite3.Connection) -> None:
    base = {CREATE: "$create", POWER: "$pl", ("m.room.member", "@a:k"): "$join"}
    with db.write(conn):
        g1 = state.store_state_group(conn, room_id=ROOM, state=base)
        same = state.store_state_group(conn, room_id=ROOM, state=dict(base), prev_group=g1)
        changed = {**base, POWER: "$pl2"}
        del changed[("m.room.member", "@a:k")]
        g2 = state.store_state_group(conn, room_id=ROOM, state=changed, prev_group=g1)
    assert same == g1
    assert g2 != g1
    assert state.load_state_group(conn, g1) == base
    assert state.load_state_group(conn, g2) == changed
    # g2 is stored as a small delta, not a copy
    delta = conn.execute("SELECT prev_group, delta FROM state_groups WHERE id = ?", (g2,))
    prev_group, text = delta.fetchone()
    assert prev_group == g1 and "$create" not in text
    with pytest.raises(KeyError):
        state.load_state_group(conn, 99_999)


def test_state_group_chains_are_cut(conn: sqlite3.Connection) -> None:
    current = {CREATE: "$create"}
    with db.write(conn):
        group = state.store_state_group(conn, room_id=ROOM, state=current)
        for i in range(state.MAX_CHAIN * 2 + 3):
            current = {**current, ("m.room.member", f"@u{i}:k"): f"$m{i}"}
            group = state.store_state_group(conn, room_id=ROOM, state=current, prev_group=group)
    longest = conn.execute("SELECT max(chain_length) FROM state_groups").fetchone()[0]
    assert longest == state.MAX_CHAIN
    assert state.load_state_group(conn, group) == current


def test_state_before_and_after_event(conn: sqlite3.Connection) -> None:
    before = {CREATE: "$create"}
    after = {CREATE: "$create", POWER: "$pl"}
    with db.write(conn):
        g_before = state.store_state_group(conn, room_id=ROOM, state=before)
        g_after = state.store_state_group(conn, room_id=ROOM, state=after, prev_group=g_before)
        state.set_event_state(conn, "$pl", before_group=g_before, after_group=g_after)
        state.set_event_state(conn, "$msg", before_group=g_after, after_group=g_after)
    assert state.get_event_state_groups(conn, "$pl") == (g_before, g_after)
    assert state.get_state_before(conn, "$pl") == before
    assert state.get_state_after(conn, "$pl") == after
    assert state.get_state_before(conn, "$msg") == state.get_state_after(conn, "$msg") == after
    assert state.get_state_before(conn, "$unknown") is None
    assert state.get_event_state_groups(conn, "$unknown") is None


def test_record_event_state_writes_deltas_over_the_prev_events_state(
    conn: sqlite3.Connection,
) -> None:
    """Local and remote events alike: the state before an event is a delta over the state
    after its prev event (the remote path used to write a full copy per event)."""
    first = {CREATE: "$create"}
    with db.write(conn):
        b1, a1 = state.record_event_state(
            conn,
            room_id=ROOM,
            event_id="$pl",
            prev_event_ids=["$create"],
            state_before=first,
            state_key=POWER,
        )
        b2, a2 = state.record_event_state(
            conn,
            room_id=ROOM,
            event_id="$msg",
            prev_event_ids=["$unknown", "$pl"],
            state_before={**first, POWER: "$pl"},
            state_key=None,
        )
    assert state.get_state_after(conn, "$pl") == {CREATE: "$create", POWER: "$pl"}
    assert a1 != b1
    # The message changed nothing: its state before is the power levels' state after,
    # shared, not stored again.
    assert b2 == a2 == a1
    assert state.get_state_before(conn, "$msg") == {CREATE: "$create", POWER: "$pl"}
    row = conn.execute("SELECT prev_group FROM state_groups WHERE id = ?", (a1,)).fetchone()
    assert row[0] == b1
